"""Benchmarks of the Python binding against the targets of issue 15.

    python bindings-python/bench/bench.py            # prints each figure and its target
    python bindings-python/bench/bench.py --check    # exits 1 when a target is missed

Run it against a release build (`maturin develop --release`, or the wheel): a debug build is
10-50x slower. Each figure is the best of a few rounds, so a busy machine shows less noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from typing import Callable

import strongroom
import strongroom.aio

ROUNDS = 3


def best(fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(ROUNDS))


def rate(n: int, fn: Callable[[int], None]) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def setup() -> tuple[strongroom.Strongroom, strongroom.Client]:
    sr = strongroom.Strongroom.open(strongroom.Config.dev())
    token = sr.dev_root_token()
    assert token is not None
    client = sr.client(token)
    client.sys().enable_mount("transit", "transit")
    client.transit().create_key("k")
    client.kv().put("app/db", {"username": "app", "password": "s3cr3t"})
    return sr, client


def encrypt_one_thread(client: strongroom.Client, size: int, n: int) -> float:
    t, pt = client.transit(), os.urandom(size)

    def run(n: int) -> None:
        enc = t.encrypt
        for _ in range(n):
            enc("k", pt)

    return best(lambda: rate(n, run))


def encrypt_threads(client: strongroom.Client, threads: int, size: int, n: int) -> float:
    t, pt = client.transit(), os.urandom(size)

    def one() -> float:
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            for _ in range(n):
                t.encrypt("k", pt)

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for th in ts:
            th.start()
        barrier.wait()
        start = time.perf_counter()
        for th in ts:
            th.join()
        return threads * n / (time.perf_counter() - start)

    return best(one)


def kv_get(client: strongroom.Client, n: int) -> float:
    kv = client.kv()

    def run(n: int) -> None:
        get = kv.get
        for _ in range(n):
            get("app/db")

    return best(lambda: rate(n, run))


def asyncio_encrypt(in_flight: int, n: int) -> float:
    async def main() -> float:
        sr = await strongroom.aio.Strongroom.open(strongroom.Config.dev())
        token = sr.dev_root_token()
        assert token is not None
        client = sr.client(token)
        await client.sys().enable_mount("transit", "transit")
        t = client.transit()
        await t.create_key("k")
        pt = os.urandom(64)
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await t.encrypt("k", pt)

        rates = []
        for _ in range(ROUNDS):
            queue = iter(range(n))
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            rates.append(n / (time.perf_counter() - start))
        await sr.close()
        return max(rates)

    return asyncio.run(main())


def import_and_open_ms() -> float:
    code = (
        "import time; t = time.perf_counter(); import strongroom; "
        "sr = strongroom.Strongroom.open(strongroom.Config.dev()); "
        "print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
        for _ in range(5)
    ]
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--n", type=int, default=200_000, help="calls per round")
    args = parser.parse_args()
    n = args.n
    sr, client = setup()
    one_4k = encrypt_one_thread(client, 4096, n // 4)
    four_4k = encrypt_threads(client, 4, 4096, n // 8)
    results = [
        ("transit encrypt 64 B, blocking, 1 thread (calls/s)", encrypt_one_thread(client, 64, n), 250_000, ">="),
        ("transit encrypt 64 B, asyncio, 64 in flight (calls/s)", asyncio_encrypt(64, n // 2), 50_000, ">="),
        ("kv get, blocking, 1 thread (calls/s)", kv_get(client, n), 200_000, ">="),
        ("transit encrypt 4 KiB, 4 threads / 1 thread (x)", four_4k / one_4k, 1.6, ">="),
        ("import strongroom + open a dev store (ms)", import_and_open_ms(), 150, "<="),
    ]
    sr.close()
    print(f"cpus: {os.cpu_count()}, 4 KiB encrypt: 1 thread {one_4k:,.0f}/s, 4 threads {four_4k:,.0f}/s")
    missed = 0
    for name, value, target, op in results:
        ok = value >= target if op == ">=" else value <= target
        missed += not ok
        print(f"{'ok  ' if ok else 'MISS'} {name}: {value:,.2f} (target {op} {target:,})")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
