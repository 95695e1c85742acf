"""The uniffi layer on this machine: the Python module that uniffi-bindgen generated from
libstrongroom_uniffi (scripts/test-uniffi.sh puts it on STRONGROOM_UNIFFI_PY) replays the
shared conformance scenarios (tests/conformance/*.json, specified in its README; the same
matching as the other runners), then a few direct tests: errors map to their code, secrets
stay out of repr/str, lease events arrive through the callback interface."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import sys
import threading
from typing import Any

import pytest

sys.path.insert(0, os.environ["STRONGROOM_UNIFFI_PY"])
import strongroom_uniffi as sr_mod  # noqa: E402
from strongroom_uniffi import (  # noqa: E402
    Config,
    LeaseEvent,
    LeaseListener,
    Secret,
    Strongroom,
    StrongroomError,
    VirtualClock,
)

POSTGRES_URL = os.environ.get(
    "STRONGROOM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
ROOT = pathlib.Path(__file__).resolve().parents[3]
SCENARIOS = sorted((ROOT / "tests" / "conformance").glob("*.json"))


def test_every_scenario_is_found() -> None:
    assert len(SCENARIOS) >= 7


def seconds(text: Any) -> int:
    """Go-style duration (`1h30m`, `90s`) or a number, in whole seconds."""
    if isinstance(text, (int, float)):
        return int(text)
    total, num = 0, ""
    for c in text:
        if c.isdigit():
            num += c
            continue
        total += int(num) * {"h": 3600, "m": 60, "s": 1}[c]
        num = ""
    return total + (int(num) if num else 0)


def matches(want: Any, got: Any, at: str) -> None:
    if isinstance(want, str) and want.startswith("$"):
        if want == "$any":
            ok = got is not None
        elif want == "$absent":
            ok = got is None
        elif want == "$nonempty":
            ok = isinstance(got, (str, list, dict)) and len(got) > 0
        elif want.startswith("$prefix:"):
            ok = isinstance(got, str) and got.startswith(want[len("$prefix:"):])
        elif want.startswith("$contains:"):
            ok = isinstance(got, str) and want[len("$contains:"):] in got
        else:
            raise AssertionError(f"{at}: unknown matcher {want}")
        assert ok, f"{at}: {want} does not hold for {got!r}"
    elif isinstance(want, dict):
        assert isinstance(got, dict), f"{at}: wanted an object, got {got!r}"
        for k, w in want.items():
            matches(w, got.get(k), f"{at}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{at}: wanted {want}, got {got!r}"
        for i, (w, g) in enumerate(zip(want, got)):
            matches(w, g, f"{at}[{i}]")
    else:
        assert want == got, f"{at}: wanted {want!r}, got {got!r}"


def key_version(ciphertext: str) -> int | None:
    m = re.match(r"vault:v(\d+):", ciphertext)
    return int(m.group(1)) if m else None


async def request(client: Any, op: str, path: str, data: Any = None) -> Any:
    text = await client.request(op, path, None if data is None else json.dumps(data))
    return None if text is None else json.loads(text)


def pick(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


async def call(client: Any, sr: Strongroom, name: str, a: dict[str, Any]) -> Any:
    """One call through the generated module; the result as the README specifies."""
    if name == "request":
        return await request(client, a["op"], a["path"], a.get("data"))
    if name in ("kv.put", "kv.patch"):
        kv = client.kv(a["mount"])
        fn = kv.put if name == "kv.put" else kv.patch
        return {"version": await fn(a["key"], json.dumps(a["data"]))}
    if name == "kv.get":
        s = await client.kv(a["mount"]).get(a["key"], a.get("version"))
        return None if s is None else {"data": json.loads(s.data.reveal()), "version": s.version}
    if name == "kv.delete":
        return await client.kv(a["mount"]).delete(a["key"])
    if name == "kv.list":
        return {"keys": await client.kv(a["mount"]).list(a["prefix"])}
    if name == "kv.metadata":
        m = await client.kv(a["mount"]).metadata(a["key"])
        if m is None:
            return None
        return {
            "current_version": m.current_version,
            "oldest_version": m.oldest_version,
            "max_versions": m.max_versions,
            "versions": [str(n) for n in sorted(m.versions)],
        }
    if name.startswith("transit."):
        t = client.transit(a["mount"])
        op = name.split(".", 1)[1]
        if op == "encrypt":
            c = await t.encrypt(a["key"], a["plaintext"].encode())
            return {"ciphertext": c, "key_version": key_version(c)}
        if op == "decrypt":
            return {"plaintext": (await t.decrypt(a["key"], a["ciphertext"])).reveal()}
        if op == "rotate":
            return {"latest_version": await t.rotate(a["key"])}
        if op == "hmac":
            return {"hmac": await t.hmac(a["key"], a["input"].encode())}
        if op == "sign":
            return {"signature": await t.sign(a["key"], a["input"].encode())}
        if op == "verify":
            return {"valid": await t.verify(a["key"], a["input"].encode(), a["signature"])}
    # Tokens and the auth blocks of logins through `request` (the typed logins return a
    # Client), as the C runner does.
    if name == "token.create":
        body = {k: a[k] for k in ("policies", "ttl", "num_uses", "type") if k in a}
        return (await request(client, "write", "auth/token/create", body))["auth"]
    if name == "token.lookup_self":
        r = await request(client, "read", "auth/token/lookup-self")
        return pick(r["data"], ("policies", "ttl", "num_uses", "orphan", "renewable", "type", "path"))
    if name == "token.revoke_self":
        await request(client, "write", "auth/token/revoke-self")
        return None
    if name == "auth.userpass.login":
        r = await request(
            client, "write", f"auth/{a['mount']}/login/{a['username']}", {"password": a["password"]}
        )
        return r["auth"]
    if name == "auth.approle.role_id":
        r = await request(client, "read", f"auth/{a['mount']}/role/{a['role']}/role-id")
        return {"role_id": r["data"]["role_id"]}
    if name == "auth.approle.secret_id":
        r = await request(client, "write", f"auth/{a['mount']}/role/{a['role']}/secret-id")
        return {"secret_id": r["data"]["secret_id"], "accessor": r["data"]["secret_id_accessor"]}
    if name == "auth.approle.login":
        r = await request(
            client, "write", f"auth/{a['mount']}/login",
            {"role_id": a["role_id"], "secret_id": a["secret_id"]},
        )
        return r["auth"]
    if name == "leases.lookup":
        d = await client.leases().lookup(a["lease_id"])
        return {"id": d.id, "ttl": d.ttl, "renewable": d.renewable, "path": d.path}
    if name == "leases.renew":
        r = await client.leases().renew(a["lease_id"], seconds(a.get("increment", 0)))
        return {"lease_id": r.lease_id, "ttl": r.ttl}
    if name == "leases.revoke":
        return await client.leases().revoke(a["lease_id"])
    if name == "leases.revoke_prefix":
        return await client.leases().revoke_prefix(a["prefix"])
    if name == "database.creds":
        c = await client.database(a["mount"]).creds(a["role"])
        return {
            "username": c.username,
            "has_password": len(c.password.reveal()) > 0,
            "lease_id": c.lease_id,
            "lease_duration": c.lease_duration,
            "renewable": c.renewable,
        }
    if name == "sys.seal":
        return await sr.seal()
    raise AssertionError(f"unknown call `{name}`")


class Run:
    def __init__(self, root: str) -> None:
        self.root = root
        self.vars: dict[str, Any] = {}

    def lookup(self, expr: str) -> Any:
        head, *parts = expr.split(".")
        if head == "env":
            assert parts == ["POSTGRES_URL"], expr
            return POSTGRES_URL
        if head == "root":
            return self.root
        v = self.vars[head]
        for p in parts:
            v = v[int(p)] if isinstance(v, list) else (v or {}).get(p)
        return v

    def interpolate(self, v: Any) -> Any:
        if isinstance(v, str):
            m = re.fullmatch(r"\$\{([^${}]*)\}", v)
            if m:
                return self.lookup(m.group(1))

            def one(m: re.Match[str]) -> str:
                x = self.lookup(m.group(1))
                return x if isinstance(x, str) else json.dumps(x)

            return re.sub(r"\$\{([^}]*)\}", one, v)
        if isinstance(v, list):
            return [self.interpolate(x) for x in v]
        if isinstance(v, dict):
            return {k: self.interpolate(x) for k, x in v.items()}
        return v


def camel(code: str) -> str:
    return "".join(w.capitalize() for w in code.split("_"))


async def replay(path: pathlib.Path) -> int:
    scenario = json.loads(path.read_text())
    assert scenario["open"]["config"] == "dev"
    clock = VirtualClock()
    sr = await Strongroom.open(Config.dev().with_clock(clock))
    token = sr.dev_root_token()
    assert token is not None
    root = token.reveal()
    run = Run(root)
    clients: dict[str, Any] = {}
    try:
        for i, step in enumerate(scenario["steps"]):
            at = f"{path.name} step {i}"
            if "advance" in step:
                clock.advance(seconds(step["advance"]))
                await sr.run_expiry()
                continue
            name = step["call"]
            args = run.interpolate(step.get("args") or {})
            tok = run.interpolate(step["token"]) if "token" in step else root
            if tok not in clients:
                clients[tok] = sr.client(Secret.from_text(tok))
            try:
                got = await call(clients[tok], sr, name, args)
            except StrongroomError as e:
                code = step.get("expect_error")
                assert code is not None, f"{at} ({name}): {e!r}"
                assert e.code == code, f"{at} ({name}): wanted {code}, got {e.code}: {e}"
                assert type(e) is getattr(StrongroomError, camel(code)), f"{at}: {type(e)}"
                if "error_contains" in step:
                    assert step["error_contains"] in str(e), f"{at}: {e}"
                continue
            assert "expect_error" not in step, f"{at} ({name}): wanted {step['expect_error']}, got {got!r}"
            if "expect" in step:
                matches(run.interpolate(step["expect"]), got, f"{at} ({name}) result")
            if "save" in step:
                run.vars[step["save"]] = got
    finally:
        await sr.shutdown()
    return len(scenario["steps"])


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario(path: pathlib.Path) -> None:
    assert asyncio.run(replay(path)) > 0


# ---- direct tests ----


async def dev() -> tuple[Strongroom, Any]:
    sr = await Strongroom.open(Config.dev())
    token = sr.dev_root_token()
    assert token is not None
    return sr, sr.client(token)


def test_errors_carry_their_code_as_variant_and_field() -> None:
    async def go() -> None:
        sr, root = await dev()
        try:
            # Each wanted code through a real call; the variant is the CamelCase of the code.
            nobody = sr.client(Secret.from_text("not-a-token"))
            cases = [
                (lambda: nobody.kv("secret").get("app", None), "permission_denied"),
                (lambda: root.request("read", "nowhere/at/all", None), "unsupported_path"),
                (lambda: root.request("frobnicate", "secret/data/x", None), "invalid_input"),
                (lambda: root.kv("secret").put("k", "[1, 2]"), "invalid_input"),
                (lambda: root.kv("secret").put_cas("k", "{}", 7), "conflict"),
            ]
            for make, code in cases:
                with pytest.raises(StrongroomError) as info:
                    await make()
                e = info.value
                assert e.code == code, (code, e)
                assert type(e) is getattr(StrongroomError, camel(code)), (code, type(e))
                assert isinstance(e, StrongroomError)
                # The message is `detail`; Python's str() of a uniffi error names every field.
                assert e.detail and e.detail in str(e) and code in str(e), e
            # Every variant of the core table exists with its code.
            names = [n for n in dir(StrongroomError) if n[0].isupper()]
            assert len(names) == 16, names
            await sr.seal()
            with pytest.raises(StrongroomError.Sealed) as info:
                await root.kv("secret").get("app", None)
            assert info.value.code == "sealed"
        finally:
            await sr.shutdown()

    asyncio.run(go())


def test_secrets_stay_out_of_repr_and_str() -> None:
    async def go() -> None:
        sr, root = await dev()
        try:
            value = "hunter2-do-not-print"
            await root.kv("secret").put("app", json.dumps({"password": value}))
            got = await root.kv("secret").get("app", None)
            assert got is not None
            await root.request("write", "sys/mounts/transit", json.dumps({"type": "transit"}))
            t = root.transit("transit")
            pt = await t.decrypt("k", await t.encrypt("k", value.encode()))
            token = sr.dev_root_token()
            assert token is not None
            for shown in (repr(got), str(got), repr(got.data), str(got.data), repr(pt), str(pt),
                          repr(token), str(token), repr(root.token())):
                assert value not in shown and token.reveal() not in shown, shown
                assert "redacted" in shown or "KvSecret" in shown, shown
            # And the values are there for whoever asks.
            assert json.loads(got.data.reveal()) == {"password": value}
            assert pt.reveal() == value and pt.reveal_bytes() == value.encode()
            bad = await t.decrypt("k", await t.encrypt("k", b"\xff\xfe"))
            assert bad.reveal_bytes() == b"\xff\xfe"
            with pytest.raises(StrongroomError.InvalidInput):
                bad.reveal()
            # A failed login's error does not echo the password.
            await root.auth().enable("userpass", "userpass")
            await root.request("write", "auth/userpass/users/alice", json.dumps({"password": "right-pw"}))
            with pytest.raises(StrongroomError) as info:
                await sr.login_userpass("userpass", "alice", Secret.from_text("wrong-pw-secret"))
            assert "wrong-pw-secret" not in repr(info.value) + str(info.value)
            alice = await sr.login_userpass("userpass", "alice", Secret.from_text("right-pw"))
            assert alice.token().reveal() not in ("", token.reveal())
        finally:
            await sr.shutdown()

    asyncio.run(go())


def test_transit_batches_report_per_item() -> None:
    async def go() -> None:
        sr, root = await dev()
        try:
            await root.sys().enable_mount("transit", "transit", {})
            t = root.transit("transit")
            items = await t.encrypt_batch("orders", [b"a", b"bb", b"ccc"])
            assert [i.error for i in items] == [None, None, None]
            cts = [i.ciphertext for i in items]
            assert all(c.startswith("vault:v1:") for c in cts)
            back = await t.decrypt_batch("orders", cts + ["vault:v1:AAAA", "not-a-ciphertext"])
            assert [b.plaintext.reveal() for b in back[:3]] == ["a", "bb", "ccc"]
            assert back[3].plaintext is None and back[3].error.code in ("crypto", "invalid_input")
            assert back[4].plaintext is None and back[4].error.code == "invalid_input"
        finally:
            await sr.shutdown()

    asyncio.run(go())


class Recorder(LeaseListener):
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.cv = threading.Condition()

    def on_event(self, event: Any) -> None:
        with self.cv:
            self.events.append(event)
            self.cv.notify_all()

    def wait_for(self, pred: Any, timeout: float = 10.0) -> Any:
        with self.cv:
            assert self.cv.wait_for(lambda: any(pred(e) for e in self.events), timeout), self.events
            return next(e for e in self.events if pred(e))


def test_lease_events_reach_the_callback_interface() -> None:
    async def go() -> None:
        clock = VirtualClock()
        sr = await Strongroom.open(Config.dev().with_clock(clock))
        token = sr.dev_root_token()
        assert token is not None
        root = sr.client(token)
        rec = Recorder()
        sub = root.leases().subscribe(rec)
        try:
            await root.sys().enable_mount("database", "database", {})
            db = root.database("database")
            await db.configure("pg", json.dumps({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": POSTGRES_URL,
                "allowed_roles": "app",
            }))
            await db.write_role("app", json.dumps({
                "db_name": "pg",
                "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                "default_ttl": "1h",
                "max_ttl": "24h",
            }))
            cred = await db.creds("app")
            assert cred.username.startswith("v-") and cred.lease_duration == 3600
            assert "redacted" in repr(cred.password) and cred.password.reveal() not in repr(cred)
            clock.advance(1800)
            renewed = await root.leases().renew(cred.lease_id, 7200)
            assert renewed.ttl == 7200
            e = rec.wait_for(lambda e: isinstance(e, LeaseEvent.RENEWED))
            assert e.lease_id == cred.lease_id and e.ttl == 7200
            await root.leases().revoke(cred.lease_id)
            rec.wait_for(lambda e: isinstance(e, LeaseEvent.REVOKED) and e.lease_id == cred.lease_id)
            # Expiry through the virtual clock revokes too, and is reported.
            cred2 = await db.creds("app")
            clock.advance(3700)
            await sr.run_expiry()
            rec.wait_for(lambda e: isinstance(e, LeaseEvent.REVOKED) and e.lease_id == cred2.lease_id)
            with pytest.raises(StrongroomError.InvalidInput):
                await root.leases().lookup(cred2.lease_id)
            # After stop, no more events arrive.
            sub.stop()
            sub.stop()
            seen = len(rec.events)
            cred3 = await db.creds("app")
            await root.leases().revoke(cred3.lease_id)
            await asyncio.sleep(0.3)
            assert len(rec.events) == seen
        finally:
            sub.stop()
            await sr.shutdown()

    asyncio.run(go())


def test_lifecycle_on_sqlite(tmp_path: pathlib.Path) -> None:
    async def go() -> None:
        db = str(tmp_path / "store.db")
        key = str(tmp_path / "unseal.key")
        sr = await Strongroom.open(Config.sqlite(db))
        assert not await sr.is_initialized()
        root = await sr.init_with_key_file(key)
        assert not sr.is_sealed()
        c = sr.client(root)
        await c.sys().enable_mount("kv", "kv", {"version": "2"})
        assert await c.kv("kv").put("a", '{"x": 1}') == 1
        await sr.shutdown()
        sr = await Strongroom.open(Config.sqlite(db).with_unseal_key_file(key))
        try:
            got = await sr.client(root).kv("kv").get("a", None)
            assert got is not None and json.loads(got.data.reveal()) == {"x": 1}
        finally:
            await sr.shutdown()
        # A memory store: init with shares, unseal with them.
        m = await Strongroom.open(Config.memory())
        try:
            init = await m.init(3, 2)
            assert len(init.keys) == 3 and m.is_sealed()
            s = await m.unseal(init.keys[0])
            assert s.sealed and s.progress == 1 and s.threshold == 2
            s = await m.unseal(init.keys_base64[1])
            assert not s.sealed and not m.is_sealed()
            assert "policies" in json.dumps(await m.client(init.root_token).request("read", "auth/token/lookup-self", None))
        finally:
            await m.shutdown()

    asyncio.run(go())


def test_module_is_the_generated_one() -> None:
    # The module came from uniffi-bindgen (its checksum check against the library ran at import).
    assert "uniffi" in (sr_mod.__doc__ or "") + pathlib.Path(sr_mod.__file__).read_text()[:2000]


def test_logins_userpass_approle_kubernetes() -> None:
    """The typed logins; Kubernetes against the Kubernetes API stand-in (a real HTTPS server
    speaking TokenReview; STRONGROOM_K8S_STANDIN_BIN, built by scripts/test-uniffi.sh)."""
    bin_path = os.environ.get("STRONGROOM_K8S_STANDIN_BIN")
    assert bin_path, "STRONGROOM_K8S_STANDIN_BIN is not set: run scripts/test-uniffi.sh"
    import subprocess

    # It exits when its stdin closes.
    proc = subprocess.Popen([bin_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        jwt = {a["name"]: a["jwt"] for a in info["service_accounts"]}

        async def go() -> None:
            sr, root = await dev()
            try:
                for kind in ("userpass", "approle", "kubernetes"):
                    await root.auth().enable(kind, kind)
                assert {"userpass/", "approle/", "kubernetes/"} <= set(json.loads(await root.auth().list()))
                await root.sys().write_policy("reader", 'path "secret/data/app" { capabilities = ["read"] }')
                assert "reader" in await root.sys().list_policies()
                await root.kv("secret").put("app", '{"k": "v"}')

                await root.request("write", "auth/userpass/users/alice",
                                   json.dumps({"password": "pw", "policies": "reader"}))
                alice = await sr.login_userpass("userpass", "alice", Secret.from_text("pw"))
                got = await alice.kv("secret").get("app", None)
                assert got is not None and json.loads(got.data.reveal()) == {"k": "v"}
                with pytest.raises(StrongroomError.PermissionDenied):
                    await alice.kv("secret").put("app", "{}")

                await root.request("write", "auth/approle/role/svc", json.dumps({"token_policies": "reader"}))
                role_id = json.loads(await root.request("read", "auth/approle/role/svc/role-id", None))["data"]["role_id"]
                secret_id = json.loads(await root.request("write", "auth/approle/role/svc/secret-id", None))["data"]["secret_id"]
                svc = await sr.login_approle("approle", role_id, Secret.from_text(secret_id))
                assert (await svc.kv("secret").get("app", None)) is not None
                with pytest.raises(StrongroomError.InvalidInput):
                    await sr.login_approle("approle", role_id, Secret.from_text("wrong"))

                await root.request("write", "auth/kubernetes/config", json.dumps({
                    "kubernetes_host": info["url"], "kubernetes_ca_cert": info["ca_pem"],
                    "token_reviewer_jwt": info["reviewer_jwt"],
                }))
                await root.request("write", "auth/kubernetes/role/api-service", json.dumps({
                    "bound_service_account_names": "api-service-sa",
                    "bound_service_account_namespaces": "production",
                    "policies": "reader", "ttl": "1h",
                }))
                app = await sr.login_kubernetes("kubernetes", "api-service", Secret.from_text(jwt["api-service-sa"]))
                me = json.loads(await app.request("read", "auth/token/lookup-self", None))["data"]
                assert me["path"] == "auth/kubernetes/login"
                assert sorted(me["policies"]) == ["default", "reader"]
                assert (await app.kv("secret").get("app", None)) is not None
                with pytest.raises(StrongroomError) as refused:
                    await sr.login_kubernetes("kubernetes", "api-service", Secret.from_text(jwt["intruder"]))
                assert "not authorized" in refused.value.detail
            finally:
                await sr.shutdown()

        asyncio.run(go())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
