"""The shared conformance scenarios (tests/conformance/*.json, specified in its README)
replayed through the Python binding, once blocking and once with strongroom.aio. The Rust
runner is core/tests/conformance.rs; results are compared as JSON the same way."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import pathlib
import re
from typing import Any

import pytest

import strongroom
import strongroom.aio

from conftest import POSTGRES_URL

SCENARIOS = sorted(
    (pathlib.Path(__file__).resolve().parents[2] / "tests" / "conformance").glob("*.json")
)


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


def plain(v: Any) -> Any:
    """A binding result as JSON: Secret -> its value, timedelta -> seconds."""
    if isinstance(v, strongroom.Secret):
        return v.reveal()
    if isinstance(v, datetime.timedelta):
        return int(v.total_seconds())
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


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


async def settle(v: Any) -> Any:
    """A blocking call's value, or an asyncio call's awaited value."""
    return await v if inspect.isawaitable(v) else v


def key_version(ciphertext: str) -> int | None:
    m = re.match(r"vault:v(\d+):", ciphertext)
    return int(m.group(1)) if m else None


async def call(client: Any, sr: Any, name: str, a: dict[str, Any]) -> Any:
    """One call through the binding's typed surface; the result as the README specifies."""
    if name == "request":
        return plain(await settle(client.request(a["op"], a["path"], a.get("data"))))
    if name in ("kv.put", "kv.patch"):
        kv = client.kv(a["mount"])
        fn = kv.put if name == "kv.put" else kv.patch
        v = await settle(fn(a["key"], a["data"]))
        return {"version": v.version}
    if name == "kv.get":
        s = await settle(client.kv(a["mount"]).get(a["key"], version=a.get("version")))
        return None if s is None else {"data": plain(s.data), "version": s.version}
    if name == "kv.delete":
        return await settle(client.kv(a["mount"]).delete(a["key"]))
    if name == "kv.list":
        return {"keys": await settle(client.kv(a["mount"]).list(a["prefix"]))}
    if name == "kv.metadata":
        m = await settle(client.kv(a["mount"]).metadata(a["key"]))
        if m is None:
            return None
        return {
            "current_version": m["current_version"],
            "oldest_version": m["oldest_version"],
            "max_versions": m["max_versions"],
            "versions": [str(n) for n in sorted(m["versions"])],
        }
    if name.startswith("transit."):
        t = client.transit(a["mount"])
        op = name.split(".", 1)[1]
        if op == "encrypt":
            c = await settle(t.encrypt(a["key"], a["plaintext"].encode()))
            return {"ciphertext": c, "key_version": key_version(c)}
        if op == "decrypt":
            return {"plaintext": (await settle(t.decrypt(a["key"], a["ciphertext"]))).decode()}
        if op == "rotate":
            return {"latest_version": await settle(t.rotate(a["key"]))}
        if op == "hmac":
            return {"hmac": await settle(t.hmac(a["key"], a["input"].encode()))}
        if op == "sign":
            return {"signature": await settle(t.sign(a["key"], a["input"].encode()))}
        if op == "verify":
            return {"valid": await settle(t.verify(a["key"], a["input"].encode(), a["signature"]))}
    if name == "token.create":
        auth = await settle(
            client.token().create(
                policies=a.get("policies", []),
                ttl=seconds(a["ttl"]) if "ttl" in a else None,
                num_uses=a.get("num_uses", 0),
                type_=a.get("type"),
            )
        )
        return plain(auth)
    if name == "token.lookup_self":
        info = plain(await settle(client.token().lookup_self()))
        return {k: info[k] for k in ("policies", "ttl", "num_uses", "orphan", "renewable", "type", "path")}
    if name == "token.revoke_self":
        return await settle(client.token().revoke_self())
    # Logins as the auth block: the typed `login_*` calls return a Client, so the block comes
    # from the same endpoints through `request`.
    if name == "auth.userpass.login":
        r = await settle(client.request(
            "write", f"auth/{a['mount']}/login/{a['username']}", {"password": a["password"]}))
        return plain(r["auth"])
    if name == "auth.approle.role_id":
        r = await settle(client.request("read", f"auth/{a['mount']}/role/{a['role']}/role-id"))
        return {"role_id": r["data"]["role_id"]}
    if name == "auth.approle.secret_id":
        r = await settle(client.request("write", f"auth/{a['mount']}/role/{a['role']}/secret-id"))
        return {"secret_id": r["data"]["secret_id"], "accessor": r["data"]["secret_id_accessor"]}
    if name == "auth.approle.login":
        r = await settle(client.request(
            "write", f"auth/{a['mount']}/login", {"role_id": a["role_id"], "secret_id": a["secret_id"]}))
        return plain(r["auth"])
    if name == "leases.lookup":
        d = await settle(client.leases().lookup(a["lease_id"]))
        return {"id": d.id, "ttl": plain(d.ttl), "renewable": d.renewable, "path": d.path}
    if name == "leases.renew":
        r = await settle(client.leases().renew(a["lease_id"], seconds(a.get("increment", 0))))
        return {"lease_id": r.lease_id, "ttl": plain(r.ttl)}
    if name == "leases.revoke":
        return await settle(client.leases().revoke(a["lease_id"]))
    if name == "leases.revoke_prefix":
        return await settle(client.leases().revoke_prefix(a["prefix"]))
    if name == "database.creds":
        c = await settle(client.database(a["mount"]).creds(a["role"]))
        return {
            "username": c.username,
            "has_password": len(c.password.reveal()) > 0,
            "lease_id": c.lease_id,
            "lease_duration": plain(c.lease_duration),
            "renewable": c.renewable,
        }
    if name == "sys.seal":
        return await settle(sr.seal())
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


async def replay(path: pathlib.Path, flavour: str) -> int:
    scenario = json.loads(path.read_text())
    assert scenario["open"]["config"] == "dev"
    clock = strongroom.VirtualClock()
    config = strongroom.Config.dev().clock(clock)
    if flavour == "aio":
        sr: Any = await strongroom.aio.Strongroom.open(config)
    else:
        sr = strongroom.Strongroom.open(config)
    root = sr.dev_root_token().reveal()
    run = Run(root)
    clients: dict[str, Any] = {}
    try:
        for i, step in enumerate(scenario["steps"]):
            at = f"{path.name} step {i}"
            if "advance" in step:
                clock.advance(seconds(step["advance"]))
                await settle(sr.run_expiry())
                continue
            name = step["call"]
            args = run.interpolate(step.get("args") or {})
            token = run.interpolate(step["token"]) if "token" in step else root
            client = clients.setdefault(token, sr.client(token))
            try:
                got = await call(client, sr, name, args)
            except strongroom.StrongroomError as e:
                code = step.get("expect_error")
                assert code is not None, f"{at} ({name}): {type(e).__name__}: {e}"
                assert e.code == code, f"{at} ({name}): wanted {code}, got {e.code}: {e}"
                assert type(e) is strongroom.ERROR_CLASSES[code], at
                if "error_contains" in step:
                    assert step["error_contains"] in str(e), f"{at}: {e}"
                continue
            assert "expect_error" not in step, f"{at} ({name}): wanted {step['expect_error']}, got {got!r}"
            if "expect" in step:
                matches(run.interpolate(step["expect"]), got, f"{at} ({name}) result")
            if "save" in step:
                run.vars[step["save"]] = got
    finally:
        await settle(sr.close())
    return len(scenario["steps"])


@pytest.mark.parametrize("flavour", ["blocking", "aio"])
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario(path: pathlib.Path, flavour: str) -> None:
    assert asyncio.run(replay(path, flavour)) > 0
