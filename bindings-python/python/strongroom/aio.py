"""The asyncio flavour: the same names as :mod:`strongroom`, returning awaitables.

    import strongroom, strongroom.aio
    async with await strongroom.aio.Strongroom.open(strongroom.Config.dev()) as sr:
        transit = sr.client(sr.dev_root_token()).transit()
        ct = await transit.encrypt("k", b"data")

Awaitables run on the running event loop; the engine works on its own threads, so the loop is
never blocked on I/O. Handles made from an async ``Strongroom`` (clients, engines) are async too.
"""

from __future__ import annotations

from typing import Any

from . import _native
from ._native import Config, Secret, StrongroomError, VirtualClock

__all__ = ["Config", "Secret", "Strongroom", "StrongroomError", "VirtualClock"]


class Strongroom:
    """Entry point of the asyncio flavour: ``await Strongroom.open(config)``."""

    @staticmethod
    async def open(config: Config) -> Any:
        return await _native.Strongroom._open_aio(config)
