#!/usr/bin/env bash
# Runs the Node.js client tests: node-vault (npm, unmodified) against `strongroom server -dev`
# processes the tests start, plus the Kubernetes API stand-in and a real PostgreSQL
# (STRONGROOM_TEST_POSTGRES_URL). Installs tests/node's packages with npm and builds both binaries.
# tests/node/test/{engines,audit}.test.js also pass against OpenBao itself: run them with
# STRONGROOM_BIN=<path to bao> to check an expectation against the reference.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "node is not installed; the Node client tests need Node.js >= 18" >&2; exit 1; }
echo "== npm install (tests/node)"
(cd tests/node && npm install --no-audit --no-fund --loglevel=error)

echo "== build the server and the Kubernetes API stand-in (scripts/build-debug.sh)"
./scripts/build-debug.sh
target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
export STRONGROOM_BIN="$target_dir/debug/strongroom"
[ -x "$STRONGROOM_BIN" ] || { echo "server binary not found at $STRONGROOM_BIN" >&2; exit 1; }
export STRONGROOM_K8S_STANDIN_BIN="$target_dir/debug/examples/k8s_standin"
[ -x "$STRONGROOM_K8S_STANDIN_BIN" ] || { echo "stand-in not found at $STRONGROOM_K8S_STANDIN_BIN" >&2; exit 1; }
export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

echo "== node --test tests/node"
cd tests/node && exec npm test --silent
