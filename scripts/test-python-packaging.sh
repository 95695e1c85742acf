#!/usr/bin/env bash
# Packaging check of the Python binding, as a user meets it:
#   1. `maturin build --release` makes one abi3 wheel (phase `build`);
#   2. `pip install ./bindings-python` into a clean venv builds it from source (PEP 517,
#      maturin as the backend, release profile: the wheel's build left it cached) and it
#      imports and works; the wheel installs into another clean venv with no build step
#      (`--no-index --only-binary :all:`) and works (phase `check`).
# Usage: scripts/test-python-packaging.sh [build|check]   (no argument: both, in order).
# scripts/test-all.sh runs `build` in the background while the tests run, then `check`.
# Release builds share the workspace's target directory with everything else.
set -euo pipefail
cd "$(dirname "$0")/.."

phase="${1:-all}"
python="${PYTHON:-python3}"
work="target/python-packaging"

smoke='
import strongroom
with strongroom.Strongroom.open(strongroom.Config.dev()) as sr:
    kv = sr.client(sr.dev_root_token()).kv("secret")
    kv.put("smoke", {"ok": True})
    assert kv.get("smoke").data == {"ok": True}
print("strongroom", strongroom.__file__, "works")
'

build() {
  rm -rf "$work"
  mkdir -p "$work"
  # The interpreter the from-source install will use: building the wheel with it (the same
  # PYO3_PYTHON) leaves pip's build a cached one.
  "$python" -m venv "$work/source-venv"
  "$python" -m venv "$work/tools-venv"
  "$work/tools-venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2"  # what pip's PEP 517 build resolves too
  echo "== maturin build --release (one abi3 wheel)"
  "$work/tools-venv/bin/maturin" build --release -q -m bindings-python/Cargo.toml -o "$work/wheels" \
    -i "$work/source-venv/bin/python"
  ls "$work"/wheels/strongroom-*-cp39-abi3-*.whl
}

check() {
  [ -x "$work/source-venv/bin/python" ] || { echo "run the build phase first" >&2; exit 1; }
  echo "== pip install ./bindings-python (build from source) into a clean venv"
  "$work/source-venv/bin/python" -m pip install -q --disable-pip-version-check ./bindings-python
  (cd "$work" && source-venv/bin/python -c "$smoke")

  wheel=$(ls "$work"/wheels/strongroom-*-cp39-abi3-*.whl)
  echo "== install the wheel ($wheel) into a clean venv (no build, no cargo)"
  rm -rf "$work/wheel-venv"
  "$python" -m venv "$work/wheel-venv"
  "$work/wheel-venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --only-binary :all: "$wheel"
  (cd "$work" && PATH="/usr/bin:/bin" wheel-venv/bin/python -c "$smoke")
  echo "python packaging: 2 passed, 0 failed"
}

case "$phase" in
  build) build ;;
  check) check ;;
  all) build && check ;;
  *) echo "usage: $0 [build|check]" >&2; exit 2 ;;
esac
