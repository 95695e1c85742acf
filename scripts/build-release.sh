#!/usr/bin/env bash
# The release builds the packaging checks need (the Python abi3 wheel; the bindings that
# package themselves join here), in the workspace's target directory. scripts/test-all.sh
# runs this in the background, at low priority, while the debug tests run: the two use
# separate profile directories, so neither waits for the other's lock.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-python-packaging.sh build
