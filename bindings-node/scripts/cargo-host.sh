#!/usr/bin/env bash
# Cargo for `napi build` (package.json sets CARGO to this script): the napi CLI always passes
# `--target <triple>`, which makes cargo build every dependency a second time under
# target/<triple>/. For the host triple this drops the flag, so the addon is built in the
# workspace's own target/<profile>/ (sharing everything `cargo build` / `cargo test` already
# compiled), then links the artifact where the CLI looks for it (target/<triple>/<profile>/).
set -euo pipefail
host="$(rustc -vV | sed -n 's/^host: //p')"
args=()
triple=""
profile=debug
while [ $# -gt 0 ]; do
  if [ "$1" = "--target" ] && [ "${2:-}" = "$host" ]; then
    triple="$2"
    shift 2
    continue
  fi
  [ "$1" = "--release" ] && profile=release
  args+=("$1")
  shift
done
# STRONGROOM_NAPI_WORKSPACE=1 (CI, after `cargo test --workspace`): build the addon in a
# workspace-wide invocation with the test targets selected, so cargo resolves dependency
# features exactly as `cargo test --workspace` did and reuses every crate it built (`-p
# strongroom-node` alone resolves features for this package only and compiles the core again).
# The Python binding is left out: maturin builds it, and leaving it out changes no shared feature.
if [ "${STRONGROOM_NAPI_WORKSPACE:-0}" = "1" ] && [ "$profile" = debug ]; then
  args+=(--workspace --exclude strongroom-python --lib --tests)
fi
cargo "${args[@]}"
if [ -n "$triple" ]; then
  target_dir="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')}"
  mkdir -p "$target_dir/$triple/$profile"
  ln -sf "$target_dir/$profile/libstrongroom_node.so" "$target_dir/$triple/$profile/libstrongroom_node.so"
fi
