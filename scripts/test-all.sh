#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, then the Rust workspace (unit,
# engine, storage conformance against real PostgreSQL, multi-process and crash tests, doc
# tests), the Python client tests (hvac, bao CLI) and the Node client tests (node-vault)
# against the server, then the examples and the fuzz targets (60 s each).
# Bindings (Python, Node, C) join here as they land.
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth) unless STRONGROOM_TEST_POSTGRES_URL points
# elsewhere; it is started here when it is installed locally and not running.
set -euo pipefail
cd "$(dirname "$0")/.."

export STRONGROOM_TEST_POSTGRES_URL="${STRONGROOM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# The database secrets engine's tests also use MariaDB and Redis (started with the machine).
export STRONGROOM_TEST_MYSQL_URL="${STRONGROOM_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}"
export STRONGROOM_TEST_REDIS_URL="${STRONGROOM_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# A CI machine builds once from scratch: incremental caches would only fill its disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi

ensure_postgres() {
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    return
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "== starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  fi
  echo "PostgreSQL is not reachable at 127.0.0.1:5432; the storage tests will fail (set STRONGROOM_TEST_POSTGRES_URL)" >&2
}
ensure_postgres

START=$(date +%s)
# Each step's header shows the seconds since the start, so a slow step shows in the log.
step() { echo "== [$(( $(date +%s) - START ))s] $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace --no-run (build the tests)"
cargo test --workspace --no-run

# The release builds of the packaging checks run in the background, at low priority, while
# the debug tests run (their CPU is often idle: database round trips, an outage being
# waited out). Release and debug builds use separate profile directories of the one target
# directory, so neither waits for the other's lock.
mkdir -p target
release_log="target/release-build.log"
step "release builds for the packaging checks (background; log: $release_log)"
# Its own process group (setsid), so a failure here stops the whole build with it.
setsid nice -n 10 ./scripts/build-release.sh >"$release_log" 2>&1 &
release_pid=$!
tmp=$(mktemp -d)
trap 'kill -- -"$release_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT

step "cargo test"
cargo test --workspace

# The core without its optional parts (storage on memory only, no database plugins): it must
# build, lint clean and pass the tests that need none of them.
step "cargo clippy + test -p strongroom --no-default-features"
cargo clippy -p strongroom --no-default-features --lib --tests -- -D warnings
cargo test -p strongroom --no-default-features --lib --tests

step "python (the binding's tests, then hvac and the bao CLI against strongroom server -dev)"
./scripts/test-python.sh

step "node (node-vault against strongroom server -dev)"
./scripts/test-node.sh

step "node binding (bindings-node: napi debug build, node --test)"
./scripts/test-node-binding.sh

step "C (the C ABI: the cbindgen header, C tests under ASan/UBSan, conformance, the C and C++ examples)"
./scripts/test-c.sh

step "examples"
cargo build -q --example quickstart
example_bin="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/examples/quickstart"
# First run initialises the store, the second unseals it from the key file and reads back.
(cd "$tmp" && "$example_bin" && "$example_bin") | tee "$tmp/out.txt"
grep -q "initialised a new store" "$tmp/out.txt"
grep -q "unsealed an existing store" "$tmp/out.txt"
# The Python quickstart does the same steps through the binding (built by test-python.sh).
py="$(pwd)/target/python-venv/bin/python"
py_example="$(pwd)/examples/python/quickstart.py"
mkdir "$tmp/py"
(cd "$tmp/py" && "$py" "$py_example" && "$py" "$py_example") | tee "$tmp/py-out.txt"
grep -q "initialised a new store" "$tmp/py-out.txt"
grep -q "unsealed an existing store" "$tmp/py-out.txt"
grep -q "secret/app/db keeps 2 versions" "$tmp/py-out.txt"
"$py" examples/python/async_quickstart.py | tee "$tmp/py-async.txt"
grep -q "encrypted and decrypted 100 orders" "$tmp/py-async.txt"
# The Node quickstart through the binding (built by test-node-binding.sh), imported by its
# package name as an application would.
mkdir -p "$tmp/node/node_modules"
ln -s "$(pwd)/bindings-node" "$tmp/node/node_modules/strongroom"
cp examples/node/quickstart.mjs "$tmp/node/"
(cd "$tmp/node" && node quickstart.mjs && node quickstart.mjs) | tee "$tmp/node-out.txt"
grep -q "initialised a new store" "$tmp/node-out.txt"
grep -q "unsealed an existing store" "$tmp/node-out.txt"
grep -q "secret/app/db keeps 2 versions" "$tmp/node-out.txt"
echo "examples: 4 passed, 0 failed"

# Each fuzz target for 60 s, two at a time, after building them with cargo-fuzz on nightly into
# target/fuzz (docs/fuzzing.md); any crash, out-of-memory or timeout fails the run.
step "fuzz (cargo +nightly fuzz: build the targets, run each 60 s, two at a time)"
./scripts/fuzz-ci.sh

step "waiting for the release builds"
if ! wait "$release_pid"; then
  echo "the release builds failed:" >&2
  tail -n 60 "$release_log" >&2
  exit 1
fi
step "python packaging (pip install from source, the release abi3 wheel in a clean venv)"
./scripts/test-python-packaging.sh check
step "node packaging (napi release build, npm pack, the tarball in an empty project without cargo)"
./scripts/test-node-packaging.sh
step "all tests passed"
