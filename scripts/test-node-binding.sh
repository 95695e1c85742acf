#!/usr/bin/env bash
# Runs the Node binding's tests (bindings-node/test: the conformance scenarios, errors, secrets,
# lifecycle, transit sync/batch forms, thousands of Promises in flight, ESM, and the database
# tests against a real PostgreSQL at STRONGROOM_TEST_POSTGRES_URL, including the event loop
# staying responsive during a slow call).
#
# Installs the package's dev dependencies (@napi-rs/cli, pg) with npm, builds the addon in
# debug mode with `napi build` into the workspace's own target directory (see
# bindings-node/scripts/cargo-host.sh: nothing already built by `cargo build` is compiled
# again), and runs `node --test`. examples/node/quickstart.mjs runs in scripts/test-all.sh.
set -euo pipefail
cd "$(dirname "$0")/../bindings-node"

command -v node >/dev/null || { echo "node is not installed; the Node binding needs Node.js >= 18" >&2; exit 1; }
export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

echo "== npm install (bindings-node)"
npm install --no-audit --no-fund --loglevel=error

echo "== napi build (debug) of strongroom-node"
npm run -s build:debug

echo "== node --test bindings-node/test"
exec npm test --silent
