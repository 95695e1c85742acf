#!/usr/bin/env bash
# Runs the Node.js client tests: node-vault (npm, unmodified) against `strongroom server -dev`
# processes the tests start. Installs tests/node's packages with npm and builds the server.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "node is not installed; the Node client tests need Node.js >= 18" >&2; exit 1; }
echo "== npm install (tests/node)"
(cd tests/node && npm install --no-audit --no-fund --loglevel=error)

echo "== cargo build -p strongroom-server"
cargo build -q -p strongroom-server
target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
export STRONGROOM_BIN="$target_dir/debug/strongroom"
[ -x "$STRONGROOM_BIN" ] || { echo "server binary not found at $STRONGROOM_BIN" >&2; exit 1; }

echo "== node --test tests/node"
cd tests/node && exec npm test --silent
