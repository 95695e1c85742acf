"""Transit keys move from Strongroom to OpenBao: keys created here are backed up, restored
into a real `bao server -dev`, and what Strongroom produced with them (ciphertexts, signatures,
HMACs) decrypts and verifies there. The other direction (OpenBao's output checked here) is
core/tests/transit_vectors.rs.
"""

import base64
import json
import os
import urllib.error
import urllib.request

import pytest

from security_pair import BaoDev
from test_hvac import DevServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("BAO_BIN"), reason="BAO_BIN (the OpenBao binary) not set"
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def call(addr, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{addr}/v1/{path}",
        data=data,
        method=method,
        headers={"X-Vault-Token": token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read()!r}") from e


class Bao(BaoDev):
    """`bao server -dev` (the probe harness's), called like `bao("POST", path, body)`."""

    def __init__(self):
        super().__init__("bao-root")
        self.addr = self.url
        self.token = self.root_token

    def __call__(self, method, path, body=None):
        return call(self.addr, self.token, method, path, body)


@pytest.fixture
def both():
    ours = DevServer()
    bao = Bao()
    try:
        yield (lambda m, p, b=None: call(ours.url, ours.root_token, m, p, b)), bao
    finally:
        bao.stop()
        ours.stop()


@pytest.mark.parametrize(
    "key_type",
    ["aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "xchacha20-poly1305", "ed25519", "ecdsa-p256", "ecdsa-p521", "rsa-2048"],
)
def test_strongroom_keys_and_output_work_in_openbao(both, key_type):
    ours, bao = both
    ours("POST", "sys/mounts/transit", {"type": "transit"})
    bao("POST", "sys/mounts/transit", {"type": "transit"})
    ours("POST", "transit/keys/k", {"type": key_type, "exportable": True, "allow_plaintext_backup": True})
    ours("POST", "transit/keys/k/rotate")
    msg = b64(b"moved from strongroom")
    made = []
    if not key_type.startswith(("ed", "ecdsa")):
        for version in (1, 2):
            body = {"plaintext": msg, "key_version": version}
            if not key_type.startswith("rsa"):
                body["associated_data"] = b64(b"aad")
            ct = ours("POST", "transit/encrypt/k", body)["data"]["ciphertext"]
            made.append(("decrypt", {"ciphertext": ct, **({"associated_data": body["associated_data"]} if "associated_data" in body else {})}))
    else:
        for opts in ({}, {"hash_algorithm": "sha2-512"}, {"marshaling_algorithm": "jws"}):
            if opts.get("marshaling_algorithm") and not key_type.startswith("ecdsa"):
                continue
            sig = ours("POST", "transit/sign/k", {"input": msg, **opts})["data"]["signature"]
            made.append(("verify", {"input": msg, "signature": sig, **opts}))
    if key_type.startswith("rsa"):
        for opts in ({}, {"signature_algorithm": "pkcs1v15"}, {"salt_length": "hash"}):
            sig = ours("POST", "transit/sign/k", {"input": msg, **opts})["data"]["signature"]
            made.append(("verify", {"input": msg, "signature": sig, **opts}))
    mac = ours("POST", "transit/hmac/k", {"input": msg})["data"]["hmac"]

    backup = ours("GET", "transit/backup/k")["data"]["backup"]
    bao("POST", "transit/restore/k", {"backup": backup})

    for path, body in made:
        out = bao("POST", f"transit/{path}/k", body)["data"]
        if path == "decrypt":
            assert out["plaintext"] == msg
        else:
            assert out["valid"] is True, body
    assert bao("POST", "transit/hmac/k", {"input": msg})["data"]["hmac"] == mac
    theirs = bao("GET", "transit/keys/k")["data"]
    mine = ours("GET", "transit/keys/k")["data"]
    assert theirs["latest_version"] == mine["latest_version"] == 2
    assert theirs["type"] == key_type
    # The same exports from both sides.
    for kind in ("hmac-key", "encryption-key", "signing-key", "public-key"):
        try:
            want = bao("GET", f"transit/export/{kind}/k")["data"]["keys"]
        except AssertionError:
            continue
        assert ours("GET", f"transit/export/{kind}/k")["data"]["keys"] == want, kind


@pytest.mark.parametrize("key_type", ["aes256-gcm96", "xchacha20-poly1305"])
@pytest.mark.parametrize("convergent", [False, True])
def test_derived_keys_datakeys_rewrap_and_batches_work_in_openbao(both, key_type, convergent):
    ours, bao = both
    ours("POST", "sys/mounts/transit", {"type": "transit"})
    bao("POST", "sys/mounts/transit", {"type": "transit"})
    create = {"type": key_type, "derived": True, "convergent_encryption": convergent}
    ours("POST", "transit/keys/k", {**create, "allow_plaintext_backup": True, "exportable": True})
    ctx = b64(b"tenant-7")
    msg = b64(b"moved from strongroom")
    v1 = ours("POST", "transit/encrypt/k", {"plaintext": msg, "context": ctx})["data"]["ciphertext"]
    ours("POST", "transit/keys/k/rotate")
    rewrapped = ours("POST", "transit/rewrap/k", {"ciphertext": v1, "context": ctx})["data"]
    assert rewrapped["key_version"] == 2 and rewrapped["ciphertext"].startswith("vault:v2:")
    datakey = ours("POST", "transit/datakey/plaintext/k", {"context": ctx, "bits": 512})["data"]
    batch = ours(
        "POST",
        "transit/encrypt/k",
        {"batch_input": [{"plaintext": b64(bytes([i]) * i), "context": ctx, "reference": str(i)} for i in range(4)]},
    )["data"]["batch_results"]
    assert [r["reference"] for r in batch] == ["0", "1", "2", "3"]

    backup = ours("GET", "transit/backup/k")["data"]["backup"]
    bao("POST", "transit/restore/k", {"backup": backup})

    def bao_decrypt(ct):
        return bao("POST", "transit/decrypt/k", {"ciphertext": ct, "context": ctx})["data"]["plaintext"]

    assert bao_decrypt(v1) == msg
    assert bao_decrypt(rewrapped["ciphertext"]) == msg
    assert bao_decrypt(datakey["ciphertext"]) == datakey["plaintext"]
    assert len(base64.b64decode(datakey["plaintext"])) == 64
    out = bao(
        "POST",
        "transit/decrypt/k",
        {"batch_input": [{"ciphertext": r["ciphertext"], "context": ctx, "reference": r["reference"]} for r in batch]},
    )["data"]["batch_results"]
    assert [r["plaintext"] for r in out] == [b64(bytes([i]) * i) for i in range(4)]
    # The raw layout is nonce ‖ ct ‖ tag with the type's nonce length.
    nonce_len = 24 if key_type.startswith("x") else 12
    raw = base64.b64decode(v1.split(":", 2)[2])
    assert len(raw) == nonce_len + len(b"moved from strongroom") + 16
    if convergent:
        # Both sides derive the same nonce from the same plaintext and context.
        again = {"plaintext": msg, "context": ctx, "key_version": 2}
        mine = ours("POST", "transit/encrypt/k", again)["data"]["ciphertext"]
        assert bao("POST", "transit/encrypt/k", again)["data"]["ciphertext"] == mine
    theirs = bao("GET", "transit/keys/k")["data"]
    assert theirs["type"] == key_type and theirs["derived"] is True
    assert theirs["convergent_encryption"] is convergent


FIXTURE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "core", "tests", "fixtures", "transit", "openbao-2.7.2.json"
)


def one_per_combination(items, produced):
    """The first item of each combination of options (versions and messages repeat them)."""
    seen, out = set(), []
    for item in items:
        opts = {k: v for k, v in item.items() if k not in (produced, "input", "key_version")}
        key = json.dumps(opts, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def test_every_signature_and_hmac_combination_made_here_verifies_in_openbao(both):
    """Both sides hold the same keys (OpenBao's backups from the committed vectors); for every
    combination of hash, padding, salt length, marshaling and prehashing the vectors cover,
    Strongroom signs and HMACs, and OpenBao verifies. The other direction is
    core/tests/transit_vectors.rs."""
    ours, bao = both
    with open(FIXTURE) as f:
        keys = json.load(f)["keys"]
    ours("POST", "sys/mounts/transit", {"type": "transit"})
    bao("POST", "sys/mounts/transit", {"type": "transit"})
    checked = 0
    for name, k in keys.items():
        if not k.get("signatures") and not k.get("hmacs"):
            continue
        ours("POST", f"transit/restore/{name}", {"backup": k["backup"]})
        bao("POST", f"transit/restore/{name}", {"backup": k["backup"]})
        for item in one_per_combination(k.get("signatures", []), "signature"):
            request = {f: v for f, v in item.items() if f != "signature"}
            made = ours("POST", f"transit/sign/{name}", request)["data"]["signature"]
            body = {f: v for f, v in request.items() if f != "key_version"}
            out = bao("POST", f"transit/verify/{name}", {**body, "signature": made})["data"]
            assert out["valid"] is True, (name, request)
            # And not for another input.
            out = bao("POST", f"transit/verify/{name}", {**body, "input": "AAAA", "signature": made})["data"]
            assert out["valid"] is False, (name, request)
            checked += 1
        for item in one_per_combination(k.get("hmacs", []), "hmac"):
            algo = item["algorithm"]
            body = {"input": item["input"], "key_version": item["key_version"]}
            made = ours("POST", f"transit/hmac/{name}/{algo}", body)["data"]["hmac"]
            assert made == item["hmac"], (name, algo)
            out = bao("POST", f"transit/verify/{name}/{algo}", {"input": item["input"], "hmac": made})["data"]
            assert out["valid"] is True, (name, algo)
            checked += 1
    assert checked >= 400, checked
