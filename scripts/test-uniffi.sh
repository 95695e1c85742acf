#!/usr/bin/env bash
# The uniffi layer (bindings-uniffi): build libstrongroom_uniffi (debug) and the workspace's
# uniffi-bindgen (the runtime's uniffi version), generate the Kotlin, Swift and Python sources
# from the library, then run the generated Python against the shared conformance scenarios
# plus direct tests (bindings-uniffi/tests/python). Kotlin and Swift sources are generated and
# checked to be there, not compiled: the registries' Kotlin (Debian's kotlin 1.3.31) is too old
# for uniffi 0.32's Kotlin, and no Swift toolchain installs from them (docs/uniffi.md).
#
# The Kubernetes login runs against the Kubernetes API stand-in (built here).
# Needs PostgreSQL (STRONGROOM_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres)
# for the database scenario and the lease-events test. A missing server fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
target="$(realpath "${CARGO_TARGET_DIR:-target}")"
out="$target/uniffi"
rm -rf "$out"
mkdir -p "$out"

echo "== uniffi: build libstrongroom_uniffi and uniffi-bindgen (debug)"
# With the Kubernetes API stand-in (an example of the core crate) for the Kubernetes login test.
./scripts/build-debug.sh
lib="$target/debug/libstrongroom_uniffi.so"
export STRONGROOM_K8S_STANDIN_BIN="$target/debug/examples/k8s_standin"

echo "== uniffi: generate Kotlin, Swift and Python from the library"
for lang in kotlin swift python; do
  "$target/debug/uniffi-bindgen" generate --library "$lib" --language "$lang" --out-dir "$out/$lang" --no-format
done
test -s "$out/python/strongroom_uniffi.py"
test -s "$out/kotlin/uniffi/strongroom_uniffi/strongroom_uniffi.kt"
test -s "$out/swift/strongroom_uniffi.swift"
test -s "$out/swift/strongroom_uniffiFFI.h"
test -s "$out/swift/strongroom_uniffiFFI.modulemap"
cp "$lib" "$out/python/"

py="$(pwd)/target/python-venv/bin/python"
if [ ! -x "$py" ]; then
  python3 -m venv target/python-venv
  target/python-venv/bin/pip install -q -r tests/python/requirements.txt
fi

echo "== uniffi: the generated Python (conformance scenarios, errors, secrets, lease events)"
STRONGROOM_UNIFFI_PY="$out/python" "$py" -m pytest -q -p no:cacheprovider bindings-uniffi/tests/python

echo "uniffi: passed in $((SECONDS - start)) s"
