#!/usr/bin/env bash
# The release builds the packaging checks need (the Python abi3 wheel; the bindings that
# package themselves join here), in the workspace's target directory. scripts/test-all.sh
# runs this in the background, at low priority, while the debug tests run: the two use
# separate profile directories, so neither waits for the other's lock.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-python-packaging.sh build
# The Node addon in release (napi build --release), into target/node-release rather than
# bindings-node/, where the debug addon of the tests lives meanwhile; test-node-packaging.sh
# packs it. Needs bindings-node/node_modules (test-all.sh installs it before starting this).
start=$(date +%s)
rm -rf target/node-release
(cd bindings-node && [ -x node_modules/.bin/napi ] || npm install --no-audit --no-fund --loglevel=error)
(cd bindings-node && CARGO=./scripts/cargo-host.sh npx napi build --platform --release --no-js \
  --dts native.d.ts -o ../target/node-release)
echo "node release addon built in $(( $(date +%s) - start )) s"
