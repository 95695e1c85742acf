#!/usr/bin/env bash
# Packaging check of the Python binding, as a user meets it:
#   1. `pip install ./bindings-python` into a clean venv builds it from source (PEP 517,
#      maturin as the backend, release profile) and it imports and works;
#   2. `maturin build --release` makes one abi3 wheel, which installs into another clean venv
#      with no build step (`--no-index --only-binary :all:`) and works.
# Release builds share the workspace's target directory with everything else.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
work="target/python-packaging"
rm -rf "$work"
mkdir -p "$work"

smoke='
import strongroom
with strongroom.Strongroom.open(strongroom.Config.dev()) as sr:
    kv = sr.client(sr.dev_root_token()).kv("secret")
    kv.put("smoke", {"ok": True})
    assert kv.get("smoke").data == {"ok": True}
print("strongroom", strongroom.__file__, "works")
'

echo "== pip install ./bindings-python (build from source) into a clean venv"
"$python" -m venv "$work/source-venv"
"$work/source-venv/bin/python" -m pip install -q ./bindings-python
(cd "$work" && source-venv/bin/python -c "$smoke")

echo "== maturin build --release (one abi3 wheel)"
maturin_bin="${MATURIN:-target/python-venv/bin/maturin}"
# The interpreter pip's build used: the same PYO3_PYTHON keeps the release build cached.
"$maturin_bin" build --release -q -m bindings-python/Cargo.toml -o "$work/wheels" \
  -i "$work/source-venv/bin/python"
wheel=$(ls "$work"/wheels/strongroom-*-cp39-abi3-*.whl)
echo "wheel: $wheel"

echo "== install the wheel into a clean venv (no build, no cargo)"
"$python" -m venv "$work/wheel-venv"
"$work/wheel-venv/bin/python" -m pip install -q --no-index --only-binary :all: "$wheel"
(cd "$work" && PATH="/usr/bin:/bin" wheel-venv/bin/python -c "$smoke")
echo "python packaging: 2 passed, 0 failed"
