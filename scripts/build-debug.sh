#!/usr/bin/env bash
# Builds, in debug, every Rust artifact the test scripts run: the server and agent binaries,
# the examples (the Kubernetes API stand-in among them), the C library (bindings-ffi), the
# uniffi library and its bindgen. One workspace-wide invocation that selects the test targets,
# so cargo resolves features exactly as `cargo test --workspace` does and reuses all it built:
# after test-all.sh's test build this is a no-op. (`cargo build -p strongroom-server` alone
# resolves features for that package only: tokio, serde_json and the core get other features,
# and most of the tree is compiled a second time; so does each other `-p`.)
#
# The Python binding is left out (its cdylib needs PYO3_BUILD_EXTENSION_MODULE, see
# test-python.sh); leaving it out changes no feature any other crate shares.
#   STRONGROOM_BUILD_PYTHON=1  include it (test-python.sh sets the pyo3 environment)
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=(--exclude strongroom-python)
[ "${STRONGROOM_BUILD_PYTHON:-0}" = 1 ] && exclude=()
exec cargo build -q --workspace "${exclude[@]}" --lib --bins --tests --examples "$@"
