"""The blocking API: lifecycle on every storage, KV, transit, sys, tokens, request, errors and
secrets."""

from __future__ import annotations

import datetime
import os
import pathlib
import re
import uuid

import pytest

import strongroom
from strongroom import Config, Strongroom

from conftest import POSTGRES_URL

NATIVE_STUB = pathlib.Path(strongroom.__file__).with_name("_native.pyi")


def test_dev_store_kv_roundtrip(root: strongroom.Client) -> None:
    kv = root.kv("secret")
    v1 = kv.put("app/db", {"username": "app", "password": "pw1"})
    assert v1.version == 1
    assert isinstance(v1.created_time, datetime.datetime)
    assert v1.created_time.tzinfo is not None
    assert kv.put("app/db", {"username": "app", "password": "pw2"}, cas=1).version == 2
    with pytest.raises(strongroom.Conflict) as e:
        kv.put("app/db", {}, cas=1)
    assert e.value.code == "conflict"
    assert kv.patch("app/db", {"username": None}).version == 3
    latest = kv.get("app/db")
    assert latest is not None and latest.version == 3
    assert latest.data == {"password": "pw2"}
    first = kv.get("app/db", version=1)
    assert first is not None and first.data["password"] == "pw1"
    assert sorted(kv.versions("app/db")) == [1, 2, 3]
    meta = kv.metadata("app/db")
    assert meta is not None and meta["current_version"] == 3
    assert kv.list("app/") == ["db"]
    kv.delete("app/db")
    assert kv.get("app/db") is None
    kv.undelete("app/db", [3])
    assert kv.get("app/db") is not None
    kv.destroy("app/db", [1])
    assert kv.get("app/db", version=1) is None
    kv.delete_metadata("app/db")
    assert kv.metadata("app/db") is None


def test_dev_options() -> None:
    with Strongroom.open(Config.dev(root_token_id="root", kv_v1=True)) as sr:
        token = sr.dev_root_token()
        assert token is not None and token.reveal() == "root"
        root = sr.client("root")
        root.request("write", "secret/app", {"v": 1})
        assert root.request("read", "secret/app")["data"] == {"v": 1}  # type: ignore[index]


def test_memory_store_init_unseal_seal() -> None:
    with Strongroom.open(Config.memory()) as sr:
        assert sr.is_initialized() is False
        assert sr.is_sealed()
        with pytest.raises(strongroom.Sealed):
            sr.client("x").kv().get("a")
        init = sr.init(shares=3, threshold=2)
        assert len(init["keys"]) == 3
        with pytest.raises(strongroom.AlreadyInitialized):
            sr.init()
        status = sr.unseal(init["keys"][0])
        assert status["sealed"] is True and status["progress"] == 1
        status = sr.unseal(init["keys"][2].reveal())
        assert status["sealed"] is False
        client = sr.client(init["root_token"])
        client.sys().enable_mount("kv", "kv", options={"version": "2"})
        client.kv("kv").put("a", {"b": "c"})
        sr.seal()
        assert sr.is_sealed()
        with pytest.raises(strongroom.Sealed):
            client.kv("kv").get("a")


def test_sqlite_store_with_key_file(tmp_path: pathlib.Path) -> None:
    db, key = tmp_path / "sr.db", tmp_path / "unseal.key"
    config = Config.sqlite(str(db)).unseal_key_file(str(key))
    with Strongroom.open(config) as sr:
        assert not sr.is_initialized()
        token = sr.init_with_key_file(key)
        assert isinstance(token, strongroom.Secret)
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        c = sr.client(token)
        c.sys().enable_mount("secret", "kv", options={"version": "2"})
        c.kv().put("app", {"pw": "s3cr3t"})
    # Reopened: unsealed from the key file, the data is there.
    with Strongroom.open(config) as sr:
        assert sr.is_initialized() and not sr.is_sealed()
        got = sr.client(token).kv().get("app")
        assert got is not None and got.data == {"pw": "s3cr3t"}
        with pytest.raises(strongroom.InvalidInput, match="already exists"):
            sr.init_with_key_file(key)


def test_postgres_store() -> None:
    import psycopg

    name = f"sr_py_store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        assert "Postgres(<url>)" in repr(Config.postgres(url))
        with Strongroom.open(Config.postgres(url)) as sr:
            init = sr.init()
            sr.unseal(init["keys"][0])
            c = sr.client(init["root_token"])
            c.sys().enable_mount("kv", "kv", options={"version": "1"})
            c.request("write", "kv/x", {"y": "z"})
            r = c.request("read", "kv/x")
            assert r is not None and r["data"] == {"y": "z"}
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_transit(root: strongroom.Client) -> None:
    root.sys().enable_mount("transit", "transit")
    t = root.transit()
    t.create_key("k")
    ct = t.encrypt("k", b"\x00binary\xff")
    assert ct.startswith("vault:v1:")
    assert t.decrypt("k", ct) == b"\x00binary\xff"
    assert t.rotate("k") == 2
    rewrapped = t.rewrap("k", ct)
    assert rewrapped.startswith("vault:v2:")
    assert t.decrypt("k", rewrapped) == b"\x00binary\xff"
    # Associated data binds the ciphertext.
    ad = t.encrypt("k", b"x", associated_data=b"ctx-1")
    assert t.decrypt("k", ad, associated_data=b"ctx-1") == b"x"
    with pytest.raises(strongroom.StrongroomError):
        t.decrypt("k", ad, associated_data=b"ctx-2")
    # Batches: one result per item, a failed item is its exception.
    cts = t.encrypt_batch("k", [b"a", b"b", b""])
    assert all(isinstance(c, str) for c in cts)
    out = t.decrypt_batch("k", [*cts, "vault:v1:not-base64!"])  # type: ignore[list-item]
    assert out[:3] == [b"a", b"b", b""]
    assert isinstance(out[3], strongroom.InvalidInput)
    dk = t.datakey("k", bits=256)
    assert len(dk.plaintext) == 32 and dk.key_version == 2
    assert t.decrypt("k", dk.ciphertext) == dk.plaintext
    assert "redacted" in repr(dk) and repr(dk.plaintext) not in repr(dk)
    mac = t.hmac("k", b"msg")
    assert t.verify_hmac("k", b"msg", mac) and not t.verify_hmac("k", b"other", mac)
    t.create_key("signer", type_="ed25519")
    sig = t.sign("signer", b"msg")
    assert t.verify("signer", b"msg", sig) and not t.verify("signer", b"msh", sig)
    # Sign / verify / hmac batches: item by item what the single calls give.
    sigs = t.sign_batch("signer", [b"msg", b""])
    assert sigs[0] == sig and isinstance(sigs[1], str)
    checks = t.verify_batch("signer", [(b"msg", sig), (b"msh", sig), (b"msg", "vault:v1:not-base64!")])
    assert checks[:2] == [True, False]
    assert isinstance(checks[2], strongroom.StrongroomError)
    macs = t.hmac_batch("k", [b"msg", b"other"])
    assert macs[0] == mac
    assert t.verify_hmac_batch("k", [(b"msg", mac), (b"other", mac)]) == [True, False]


def test_sys_policies_auth_and_logins(sr: Strongroom, root: strongroom.Client) -> None:
    sys = root.sys()
    assert "secret/" in sys.mounts()
    sys.write_policy("reader", 'path "secret/data/shared/*" { capabilities = ["read"] }')
    assert "reader" in sys.list_policies()
    assert "secret/data/shared" in (sys.read_policy("reader") or "")
    assert sys.read_policy("nope") is None
    sys.enable_auth("userpass", "userpass")
    sys.enable_auth("approle", "approle")
    assert {"userpass/", "approle/", "token/"} <= set(sys.auth_methods())
    root.request("write", "auth/userpass/users/alice", {"password": "correct horse", "token_policies": "reader"})
    root.kv().put("shared/motd", {"text": "hi"})
    root.kv().put("private", {"text": "no"})
    alice = sr.login_userpass("userpass", "alice", "correct horse")
    got = alice.kv().get("shared/motd")
    assert got is not None and got.data == {"text": "hi"}
    with pytest.raises(strongroom.PermissionDenied):
        alice.kv().get("private")
    with pytest.raises(strongroom.InvalidInput, match="invalid username or password"):
        sr.login_userpass("userpass", "alice", "wrong")
    root.request("write", "auth/approle/role/ci", {"token_policies": "reader"})
    role_id = root.request("read", "auth/approle/role/ci/role-id")["data"]["role_id"]  # type: ignore[index]
    secret_id = root.request("write", "auth/approle/role/ci/secret-id")["data"]["secret_id"]  # type: ignore[index]
    ci = sr.login_approle("approle", role_id, strongroom.Secret(secret_id))
    assert ci.token().lookup_self()["path"] == "auth/approle/login"
    sys.delete_policy("reader")
    assert "reader" not in sys.list_policies()
    sys.disable_auth("approle")
    assert "approle/" not in sys.auth_methods()


def test_tokens(root: strongroom.Client, sr: Strongroom) -> None:
    auth = root.token().create(policies=["default"], ttl=datetime.timedelta(hours=1), num_uses=3)
    assert isinstance(auth["client_token"], strongroom.Secret)
    child = sr.client(auth["client_token"])
    info = child.token().lookup_self()
    assert info["ttl"] <= datetime.timedelta(hours=1) and info["num_uses"] == 2
    assert child.token_id() == auth["client_token"]
    child.token().revoke_self()
    with pytest.raises(strongroom.PermissionDenied):
        child.token().lookup_self()


def test_request_for_everything_else(root: strongroom.Client) -> None:
    assert root.request("read", "secret/data/nothing") is None
    root.request("POST", "sys/mounts/kv1", {"type": "kv"})
    w = root.request("PUT", "kv1/a", {"n": 1, "f": 1.5, "l": [1, "x"], "d": {"t": True}, "z": None})
    assert w is not None
    assert root.request("GET", "kv1/a")["data"] == {"n": 1, "f": 1.5, "l": [1, "x"], "d": {"t": True}, "z": None}  # type: ignore[index]
    assert root.request("LIST", "kv1") == {"keys": ["a"]}
    assert root.request("DELETE", "kv1/a") is None
    with pytest.raises(strongroom.InvalidInput, match="unknown method"):
        root.request("FETCH", "kv1/a")
    with pytest.raises(strongroom.InvalidInput):
        root.request("write", "kv1/a", {"bad": object()})


def test_error_classes_follow_the_core_table() -> None:
    assert len(strongroom.ERROR_CODES) == 16
    for number, code in enumerate(strongroom.ERROR_CODES, start=1):
        cls = strongroom.ERROR_CLASSES[code]
        assert cls.__name__ == "".join(p.capitalize() for p in code.split("_"))
        assert issubclass(cls, strongroom.StrongroomError)
        assert getattr(strongroom, cls.__name__) is cls
        assert cls.code == code and cls.number == number
    stub = NATIVE_STUB.read_text()
    stubbed = set(re.findall(r"^class (\w+)\(StrongroomError\)", stub, re.M))
    assert stubbed == {c.__name__ for c in strongroom.ERROR_CLASSES.values()}, "the .pyi drifted"


def test_errors_by_code(sr: Strongroom, root: strongroom.Client) -> None:
    with pytest.raises(strongroom.UnsupportedPath):
        root.kv("nowhere").get("x")
    with pytest.raises(strongroom.PermissionDenied) as pd:
        sr.client("s.not-a-real-token").kv().get("x")
    assert pd.value.code == "permission_denied" and pd.value.number == 3
    root.sys().enable_mount("transit", "transit")
    root.transit().create_key("k")
    with pytest.raises(strongroom.InvalidInput):
        root.transit().decrypt("k", "vault:v1:not-base64!")
    with pytest.raises(strongroom.InvalidInput):
        root.leases().lookup("nope/lease")
    with pytest.raises(strongroom.InvalidInput):
        root.kv().put("x", "not a dict")  # type: ignore[arg-type]
    with pytest.raises(strongroom.InvalidInput):
        root.leases().renew("x", "soon")


def test_secrets_never_shown(sr: Strongroom, root: strongroom.Client) -> None:
    token = sr.dev_root_token()
    assert token is not None
    value = token.reveal()
    assert value and value not in repr(token) and value not in str(token)
    assert value not in repr(root) and value not in repr(root.token_id())
    assert strongroom.Secret("a") == strongroom.Secret("a") and strongroom.Secret("a") != "a"
    root.kv().put("app", {"password": "hunter2-very-secret"})
    got = root.kv().get("app")
    assert got is not None and "hunter2" not in repr(got)
    init_like = root.token().create(policies=["default"])
    assert init_like["client_token"].reveal() not in repr(init_like)
    with pytest.raises(strongroom.PermissionDenied) as e:
        sr.client("s.leakme-123").kv().get("x")
    assert "leakme" not in str(e.value) and "leakme" not in repr(e.value)
    with Strongroom.open(Config.memory()) as fresh:
        init = fresh.init(shares=1, threshold=1)
        shown = repr(init)
        assert init["keys"][0].reveal() not in shown and init["root_token"].reveal() not in shown


def test_closed_engine_refuses_calls(root: strongroom.Client, sr: Strongroom) -> None:
    sr.close()
    with pytest.raises(strongroom.Unavailable):
        root.kv().get("x")


def test_environment_not_mutated() -> None:
    # The binding reads the unseal key env var only when told to.
    os.environ.pop("SR_TEST_KEY", None)
    with Strongroom.open(Config.memory().unseal_key_env("SR_TEST_KEY")) as sr:
        assert sr.is_sealed()
