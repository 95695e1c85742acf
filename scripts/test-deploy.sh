#!/usr/bin/env bash
# deploy/kubernetes/: every manifest (and what injector-tls.sh generates) validated against
# the Kubernetes schemas kubernetes-validate bundles (strict: unknown fields fail), for the
# oldest and newest Kubernetes versions we support; then scripts/check-deploy.py holds the
# manifests against the real binary (injector flags, webhook path and port, certificate,
# the server's config on PostgreSQL with two replicas). No cluster needed; ~10 s.
#
# Needs PostgreSQL (STRONGROOM_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/deploy-venv
req=deploy/kubernetes/requirements-test.txt
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! cmp -s "$req" "$venv/requirements-test.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req"
  cp "$req" "$venv/requirements-test.txt"
fi

./scripts/build-debug.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
deploy/kubernetes/injector-tls.sh "$tmp/tls" >/dev/null
manifests=(deploy/kubernetes/*.yaml deploy/kubernetes/examples/*.yaml "$tmp/tls/"*.yaml)
for version in 1.30.0 1.37.0; do
  echo "== kubernetes-validate --strict, Kubernetes $version"
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
echo "== the manifests against the binary"
"$venv/bin/python" scripts/check-deploy.py
