"""The asyncio flavour: many transit calls in flight on one event loop.

    python examples/python/async_quickstart.py
"""

from __future__ import annotations

import asyncio

import strongroom
import strongroom.aio


async def main() -> None:
    async with await strongroom.aio.Strongroom.open(strongroom.Config.dev()) as sr:
        token = sr.dev_root_token()
        assert token is not None
        client = sr.client(token)
        await client.sys().enable_mount("transit", "transit")
        transit = client.transit("transit")
        await transit.create_key("orders")
        plaintexts = [f"order {i}".encode() for i in range(100)]
        ciphertexts = await asyncio.gather(*(transit.encrypt("orders", p) for p in plaintexts))
        back = await asyncio.gather(*(transit.decrypt("orders", c) for c in ciphertexts))
        assert back == plaintexts
        print(f"encrypted and decrypted {len(back)} orders concurrently")
        try:
            await sr.client("not-a-token").kv("secret").get("x")
        except strongroom.PermissionDenied as e:
            print(f"a bad token raises {type(e).__name__} (code {e.code!r})")


if __name__ == "__main__":
    asyncio.run(main())
