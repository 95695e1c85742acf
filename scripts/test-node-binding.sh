#!/usr/bin/env bash
# Runs the Node binding's tests (bindings-node/test: the conformance scenarios, errors, secrets,
# lifecycle, transit sync/batch forms, thousands of Promises in flight, ESM, and the database
# tests against a real PostgreSQL at STRONGROOM_TEST_POSTGRES_URL, including the event loop
# staying responsive during a slow call).
#
# Installs the package's dev dependencies (@napi-rs/cli, pg, typescript) with npm, builds the
# addon in debug mode with `napi build` into the workspace's own target directory, resolving
# features as `cargo test --workspace` does (STRONGROOM_NAPI_WORKSPACE=1, see
# bindings-node/scripts/cargo-host.sh), so after test-all.sh's `cargo test --workspace` only the
# addon itself is compiled (run alone on a fresh clone, it builds the workspace's test targets
# too). Then tsc, `node --test`, and an install from source. examples/node/quickstart.mjs runs
# in scripts/test-all.sh.
set -euo pipefail
cd "$(dirname "$0")/../bindings-node"

command -v node >/dev/null || { echo "node is not installed; the Node binding needs Node.js >= 18" >&2; exit 1; }
export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

echo "== npm install (bindings-node)"
npm install --no-audit --no-fund --loglevel=error

echo "== napi build (debug) of strongroom-node"
STRONGROOM_NAPI_WORKSPACE=1 npm run -s build:debug

echo "== tsc --strict --noEmit (test/typed.ts, examples/node/quickstart.mjs against index.d.ts)"
npx tsc -p tsconfig.json

# The Kubernetes API stand-in (an example of the core crate) for the Kubernetes login test.
echo "== build the Kubernetes API stand-in (scripts/build-debug.sh)"
../scripts/build-debug.sh
target_dir="$(cd .. && cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
export STRONGROOM_K8S_STANDIN_BIN="$target_dir/debug/examples/k8s_standin"
[ -x "$STRONGROOM_K8S_STANDIN_BIN" ] || { echo "stand-in not found at $STRONGROOM_K8S_STANDIN_BIN" >&2; exit 1; }

echo "== node --test bindings-node/test"
npm test --silent

# `npm install ./bindings-node` into an empty project builds the addon from source when no
# prebuilt one is there (install.js; debug profile here, release by default).
echo "== npm install ./bindings-node from source, into an empty project"
proj="$(mktemp -d)"
addon="strongroom.$(node -p 'process.platform + "-" + process.arch')-gnu.node"
mv "$addon" "$proj/prebuilt.node"
restore() { [ -f "$proj/prebuilt.node" ] && [ ! -f "$addon" ] && mv "$proj/prebuilt.node" "$addon"; rm -rf "$proj"; }
trap restore EXIT
(cd "$proj" && npm init -y >/dev/null && STRONGROOM_NODE_PROFILE=dev STRONGROOM_NAPI_WORKSPACE=1 npm install --no-audit --no-fund --loglevel=error "$OLDPWD" &&
  node -e 'const sr = require("strongroom"); sr.Strongroom.open(sr.Config.dev()).then(async (s) => { await s.client(s.devRootToken()).kv().put("x", { ok: true }); console.log("installed from source:", (await s.client(s.devRootToken()).kv().get("x")).data); await s.close() })')
[ -f "$addon" ] || { echo "install.js did not build $addon" >&2; exit 1; }
