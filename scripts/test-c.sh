#!/usr/bin/env bash
# The C ABI (bindings-ffi): the committed header is what cbindgen generates; then C tests built
# with -Wall -Werror -fsanitize=address,undefined (LeakSanitizer included) against the debug
# libstrongroom_ffi: the ABI tests (errors, ownership, double frees, threads, lifecycle on
# memory / SQLite / PostgreSQL, logins, database credentials and lease events), the shared
# conformance scenarios replayed by a C runner, the C quickstart run twice (initialise, then
# unseal from the key file), the C++ example and the full example of docs/c.md, built and run.
# Compiler flags come from bindings-ffi/strongroom.pc.
#
# Needs PostgreSQL (STRONGROOM_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres):
# the database engine's credentials, and a uniquely named database for the storage test,
# dropped at the end. A missing server fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
target="$(realpath "${CARGO_TARGET_DIR:-target}")"
out="$target/c"
mkdir -p "$out"
tmp=$(mktemp -d)
db="sr_ffi_test_$$_${RANDOM}"
cleanup() {
  psql -q "$STRONGROOM_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== C: the committed header is what cbindgen generates"
cargo test -q --manifest-path bindings-ffi/header-check/Cargo.toml --target-dir "$target/header-check"

echo "== C: build libstrongroom_ffi (debug; scripts/build-debug.sh)"
./scripts/build-debug.sh

flags=$(PKG_CONFIG_PATH="$(pwd)/bindings-ffi" pkg-config --define-variable=libdir="$target/debug" --cflags --libs strongroom)
san=(-Wall -Wextra -Werror -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
# shellcheck disable=SC2086
{
  cc -std=c11 "${san[@]}" bindings-ffi/tests/c/abi_test.c -o "$out/abi_test" $flags -lpthread -lm
  cc -std=c11 "${san[@]}" bindings-ffi/tests/c/conformance.c -o "$out/conformance" $flags -lm
  cc -std=c11 "${san[@]}" examples/c/quickstart.c -o "$out/quickstart" $flags
  c++ -std=c++17 "${san[@]}" examples/cpp/quickstart.cpp -o "$out/quickstart-cpp" $flags
  # The full example of docs/c.md, as printed there.
  sed -n '/^```c$/,/^```$/p' docs/c.md | sed '1d;$d' > "$tmp/doc_example.c"
  cc -std=c11 "${san[@]}" "$tmp/doc_example.c" -o "$out/doc_example" $flags
}
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

echo "== C: ABI tests"
psql -q "$STRONGROOM_TEST_POSTGRES_URL" -c "CREATE DATABASE $db"
SR_FFI_PG_STORAGE_URL="${STRONGROOM_TEST_POSTGRES_URL%/*}/$db" "$out/abi_test"

echo "== C: conformance scenarios"
"$out/conformance" tests/conformance/*.json

echo "== C: examples (quickstart twice: initialise, then unseal from the key file; C++)"
(cd "$tmp" && "$out/quickstart" && "$out/quickstart") | tee "$tmp/out.txt"
grep -q "initialised a new store" "$tmp/out.txt"
grep -q "unsealed an existing store" "$tmp/out.txt"
grep -q "secret/app/db keeps 2 versions" "$tmp/out.txt"
"$out/quickstart-cpp" | tee "$tmp/cpp.txt"
grep -q "a failed call throws: status unsupported_path" "$tmp/cpp.txt"
"$out/doc_example" | tee "$tmp/doc.txt"
grep -q -- "-> card 4111" "$tmp/doc.txt"

echo "C: passed in $((SECONDS - start)) s"
