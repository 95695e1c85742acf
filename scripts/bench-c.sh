#!/usr/bin/env bash
# Benchmarks of the C ABI (not part of CI): builds the release library, then runs
# bindings-ffi/bench/bench.c (transit encrypt 64 B, KV get, opening a dev store) and the same
# loops through the Rust typed API (bindings-ffi/examples/typed_bench.rs) for comparison.
#   ./scripts/bench-c.sh [seconds per figure]
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(realpath "${CARGO_TARGET_DIR:-target}")"
seconds="${1:-3}"
cargo build -q --release -p strongroom-ffi --lib --example typed_bench
mkdir -p "$target/c"
cc -std=c11 -O2 -Wall -Werror -Ibindings-ffi/include bindings-ffi/bench/bench.c \
  "$target/release/libstrongroom_ffi.a" -lpthread -ldl -lm -o "$target/c/bench"
"$target/c/bench" "$seconds"
"$target/release/examples/typed_bench" "$seconds"
