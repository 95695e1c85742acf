"""Dynamic database credentials against the real PostgreSQL, used with psycopg: leases, lease
events, and a keeper that replaces the credential and lets the application reconnect."""

from __future__ import annotations

import asyncio
import datetime
import threading
import uuid
from typing import Iterator

import psycopg
import pytest

import strongroom
import strongroom.aio
from strongroom import Config, Strongroom

from conftest import POSTGRES_URL, root_token

CREATE = (
    'CREATE ROLE "{{name}}" WITH LOGIN PASSWORD \'{{password}}\' VALID UNTIL \'{{expiration}}\'; '
    'GRANT CONNECT ON DATABASE "%s" TO "{{name}}";'
)


@pytest.fixture
def database() -> Iterator[str]:
    """A database of this test's own, dropped afterwards; its URL."""
    name = f"sr_py_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mount(root: strongroom.Client, url: str, ttl: str, max_ttl: str) -> strongroom.Database:
    name = url.rsplit("/", 1)[1]
    root.sys().enable_mount("database", "database")
    db = root.database()
    db.configure("pg", {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": url,
        "allowed_roles": "app",
    })
    db.write_role("app", {
        "db_name": "pg",
        "creation_statements": CREATE % name,
        "default_ttl": ttl,
        "max_ttl": max_ttl,
    })
    return db


def connect(url: str, cred: strongroom.DbCredential) -> psycopg.Connection:
    host = url.split("@", 1)[1]
    return psycopg.connect(
        f"postgresql://{host}", user=cred.username, password=cred.password.reveal(), autocommit=True
    )


def test_creds_leases_and_events(database: str) -> None:
    with Strongroom.open(Config.dev()) as sr:
        root = sr.client(root_token(sr))
        db = mount(root, database, "1h", "24h")
        events = root.leases().events()
        cred = db.creds("app")
        assert cred.username.startswith("v-") and cred.renewable
        assert cred.lease_duration == datetime.timedelta(hours=1)
        assert cred.password.reveal() not in repr(cred)
        with connect(database, cred) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (cred.username,)
        leases = root.leases()
        details = leases.lookup(cred.lease_id)
        assert details.id == cred.lease_id and details.path == "database/creds/app"
        assert details.ttl <= datetime.timedelta(hours=1)
        assert isinstance(details.issue_time, datetime.datetime)
        renewed = leases.renew(cred.lease_id, datetime.timedelta(hours=2))
        assert renewed.ttl == datetime.timedelta(hours=2)
        ev = events.next(timeout=5)
        assert ev is not None and ev.kind == "renewed" and ev.lease_id == cred.lease_id
        assert ev.ttl == datetime.timedelta(hours=2)
        leases.revoke(cred.lease_id)
        ev = events.next(timeout=5)
        assert ev is not None and ev.kind == "revoked" and ev.lease_id == cred.lease_id
        with pytest.raises(psycopg.OperationalError):
            connect(database, cred)
        with pytest.raises(strongroom.InvalidInput):
            leases.lookup(cred.lease_id)
        second = db.creds("app")
        leases.revoke_prefix("database/creds/app")
        ev = next(iter(events))  # the blocking iterator
        assert ev.kind == "revoked" and ev.lease_id == second.lease_id
        with pytest.raises(strongroom.InvalidInput):
            leases.lookup(second.lease_id)


def test_lease_events_async_iterator(database: str) -> None:
    async def main() -> None:
        sr = await strongroom.aio.Strongroom.open(Config.dev())
        root = sr.client(root_token(sr))
        await root.sys().enable_mount("database", "database")
        db = root.database()
        name = database.rsplit("/", 1)[1]
        await db.configure("pg", {"plugin_name": "postgresql-database-plugin",
                                  "connection_url": database, "allowed_roles": "app"})
        await db.write_role("app", {"db_name": "pg", "creation_statements": CREATE % name,
                                    "default_ttl": "1h", "max_ttl": "2h"})
        events = root.leases().events()
        cred = await db.creds("app")
        await root.leases().revoke(cred.lease_id)
        async for ev in events:
            assert ev.kind == "revoked" and ev.lease_id == cred.lease_id
            break
        keeper = await db.keep_fresh("app")
        assert keeper.current().username.startswith("v-")
        keeper.stop()
        await root.leases().revoke_prefix("database/creds/app")
        await sr.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_keeper_replaces_the_credential_and_the_pool_reconnects(database: str) -> None:
    # A lease of 3 s that cannot be renewed past 3 s: the keeper must replace the credential
    # before it runs out, and the callback reconnects with the new one.
    with Strongroom.open(Config.dev()) as sr:
        root = sr.client(root_token(sr))
        db = mount(root, database, "3s", "3s")
        changed = threading.Event()
        seen: list[tuple[str, str]] = []

        def on_change(cred: strongroom.DbCredential) -> None:
            # What a pool does: open connections with the new credential.
            with connect(database, cred) as conn:
                row = conn.execute("SELECT current_user").fetchone()
                assert row is not None
                seen.append((cred.username, row[0]))
            changed.set()

        with db.keep_fresh("app", on_change=on_change) as keeper:
            first = keeper.current()
            with connect(database, first) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            assert changed.wait(20), "the keeper did not replace the credential"
            new = keeper.current()
            assert new.username != first.username
            assert seen and seen[0][0] == seen[0][1] and seen[0][0] != first.username
            # wait_for_change returns the next replacement.
            nxt = keeper.wait_for_change(timeout=20)
            assert nxt is not None and nxt.username not in (first.username, new.username)
        root.leases().revoke_prefix("database/creds/app")
