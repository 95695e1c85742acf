"""Threads, the GIL, asyncio and fork."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pathlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import strongroom
import strongroom.aio
from strongroom import Config, Strongroom

from conftest import root_token


def test_many_threads_share_one_client(root: strongroom.Client) -> None:
    root.sys().enable_mount("transit", "transit")
    root.transit().create_key("k")

    def work(n: int) -> int:
        kv, t = root.kv(), root.transit()
        for i in range(100):
            kv.put(f"t{n}/k{i}", {"v": f"{n}-{i}"})
            got = kv.get(f"t{n}/k{i}")
            assert got is not None and got.data == {"v": f"{n}-{i}"}
            pt = f"{n}:{i}".encode()
            assert t.decrypt("k", t.encrypt("k", pt)) == pt
        return n

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))
    assert len(root.kv().list("")) == 8


def test_gil_is_released_while_the_engine_waits(root: strongroom.Client) -> None:
    # A blocking call that waits in the engine for 0.5 s: another Python thread must run
    # meanwhile (it could not if the GIL were held).
    events = root.leases().events()
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.05)
        before = ticks
        started = time.monotonic()
        assert events.next(timeout=0.5) is None
        waited = time.monotonic() - started
        during = ticks - before
    finally:
        stop.set()
        counter.join()
    assert waited >= 0.45
    assert during > 10_000, f"the other thread ran only {during} loops while the engine waited"


def test_asyncio_flavour() -> None:
    async def main() -> None:
        async with await strongroom.aio.Strongroom.open(Config.dev()) as sr:
            assert sr.is_async
            root = sr.client(root_token(sr))
            await root.sys().enable_mount("transit", "transit")
            t = root.transit()
            await t.create_key("k")
            pts = [f"m{i}".encode() for i in range(256)]
            cts = await asyncio.gather(*(t.encrypt("k", p) for p in pts))
            assert await asyncio.gather(*(t.decrypt("k", c) for c in cts)) == pts
            kv = root.kv()
            await asyncio.gather(*(kv.put(f"a{i}", {"i": i}) for i in range(64)))
            got = await kv.get("a7")
            assert got is not None and got.data == {"i": 7}
            with pytest.raises(strongroom.PermissionDenied):
                await sr.client("bad").kv().get("x")
            with pytest.raises(strongroom.InvalidInput):
                await t.decrypt("k", "vault:v1:not-base64!")
            # A login hashes with bcrypt on the engine's threads: the loop keeps running.
            await root.sys().enable_auth("userpass", "userpass")
            await root.request("write", "auth/userpass/users/u", {"password": "pw"})
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            ticker = asyncio.ensure_future(tick())
            user = await sr.login_userpass("userpass", "u", "pw")
            ticker.cancel()
            assert (await user.token().lookup_self())["path"] == "auth/userpass/login/u"
            assert ticks > 0

    asyncio.run(main())


def test_asyncio_cancellation_is_harmless() -> None:
    async def main() -> None:
        sr = await strongroom.aio.Strongroom.open(Config.dev())
        leases = sr.client(root_token(sr)).leases()
        events = leases.events()
        waiter = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await sr.close()

    asyncio.run(main())


def _child(fn: Any) -> int:
    """Run `fn` in a forked child; its exit status (never hangs: killed after 60 s)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung")


def test_forked_child_gets_a_clear_error_and_can_reopen(tmp_path: pathlib.Path) -> None:
    db, key = tmp_path / "sr.db", tmp_path / "unseal.key"
    config = Config.sqlite(str(db)).unseal_key_file(str(key))
    sr = Strongroom.open(config)
    token = sr.init_with_key_file(key)
    root = sr.client(token)
    root.sys().enable_mount("secret", "kv", options={"version": "2"})
    root.kv().put("app", {"from": "parent"})

    def in_child() -> int:
        try:
            root.kv().get("app")
            return 10  # the parent's handle must not be usable here
        except strongroom.Unavailable as e:
            if "open the store again" not in str(e):
                return 11
        with Strongroom.open(config) as mine:
            got = mine.client(token).kv().get("app")
            if got is None or got.data != {"from": "parent"}:
                return 12
            mine.client(token).kv().put("app", {"from": "child"})
        return 0

    assert _child(in_child) == 0
    got = root.kv().get("app")
    assert got is not None and got.data == {"from": "child"}
    # The parent's handles still work after the fork.
    assert root.kv().put("app", {"from": "parent again"}).version == 3
    sr.close()


def _pool_read(args: tuple[str, str, str, int]) -> str:
    db, key, token, n = args
    with Strongroom.open(Config.sqlite(db).unseal_key_file(key)) as sr:
        kv = sr.client(token).kv()
        kv.put(f"worker/{n}", {"n": n})
        got = kv.get("shared")
        assert got is not None
        return str(got.data["v"])


def test_multiprocessing_pool(tmp_path: pathlib.Path) -> None:
    db, key = str(tmp_path / "sr.db"), str(tmp_path / "unseal.key")
    sr = Strongroom.open(Config.sqlite(db).unseal_key_file(key))
    token = sr.init_with_key_file(key).reveal()
    root = sr.client(token)
    root.sys().enable_mount("secret", "kv", options={"version": "2"})
    root.kv().put("shared", {"v": "hello"})
    with multiprocessing.get_context("fork").Pool(3) as pool:
        out = pool.map_async(_pool_read, [(db, key, token, n) for n in range(6)]).get(timeout=120)
    assert out == ["hello"] * 6
    assert sorted(root.kv().list("worker/")) == [str(n) for n in range(6)]
    sr.close()
