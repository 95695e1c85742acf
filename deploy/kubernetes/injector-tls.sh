#!/usr/bin/env bash
# The injector's serving certificate, and its CA in the webhook registration.
#
#   deploy/kubernetes/injector-tls.sh OUTDIR
#
# writes into OUTDIR (created if needed):
#   ca.crt, ca.key            a CA of its own (EC P-256, 10 years; keep ca.key offline or delete it)
#   tls.crt, tls.key          the injector's certificate (1 year) for
#                             strongroom-injector.strongroom.svc (and its longer/shorter names)
#   15-injector-tls.yaml      the Secret strongroom-injector-tls holding tls.crt / tls.key
#   20-injector.yaml          20-injector.yaml of this directory with the caBundle filled in
# Then: kubectl apply -f OUTDIR/   Run it again (and apply again) to renew the certificate.
# Needs openssl and base64 only: no cluster access.
set -euo pipefail
out="${1:?usage: injector-tls.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
service=strongroom-injector
namespace=strongroom
mkdir -p "$out"
umask 077

openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key" 2>/dev/null
openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 \
  -subj "/CN=strongroom injector CA" -out "$out/ca.crt"

openssl ecparam -name prime256v1 -genkey -noout -out "$out/tls.key.ec" 2>/dev/null
# PKCS#8, which every TLS stack reads.
openssl pkcs8 -topk8 -nocrypt -in "$out/tls.key.ec" -out "$out/tls.key"
rm -f "$out/tls.key.ec"
openssl req -new -key "$out/tls.key" -subj "/CN=$service.$namespace.svc" -out "$out/tls.csr"
cat >"$out/tls.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$service, DNS:$service.$namespace, DNS:$service.$namespace.svc, DNS:$service.$namespace.svc.cluster.local
EXT
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days 365 -sha256 -extfile "$out/tls.ext" -out "$out/tls.crt" 2>/dev/null
rm -f "$out/tls.csr" "$out/tls.ext" "$out/ca.srl"

b64() { base64 <"$1" | tr -d '\n'; }
cat >"$out/15-injector-tls.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $service-tls
  namespace: $namespace
  labels:
    app.kubernetes.io/name: $service
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$out/tls.crt")
  tls.key: $(b64 "$out/tls.key")
YAML

placeholder="$(printf 'CA_BUNDLE_PLACEHOLDER' | base64)"
grep -q "caBundle: $placeholder" "$here/20-injector.yaml" || {
  echo "20-injector.yaml has no caBundle placeholder to fill in" >&2
  exit 1
}
sed "s|caBundle: $placeholder|caBundle: $(b64 "$out/ca.crt")|" "$here/20-injector.yaml" >"$out/20-injector.yaml"
chmod 0644 "$out/ca.crt" "$out/tls.crt" "$out/20-injector.yaml"
echo "wrote $out: apply with kubectl apply -f $out/"
