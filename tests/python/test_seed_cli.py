"""The seed's Vault workflow, typed with the OpenBao CLI (`bao`, unmodified) as the guide
writes it, against `strongroom server -dev`, the Kubernetes API stand-in (real HTTPS,
TokenReview, RS256 service-account JWTs; core/tests/k8s_standin) and a real PostgreSQL:

    vault auth enable kubernetes
    vault write auth/kubernetes/config kubernetes_host=...
    vault write auth/kubernetes/role/api-service bound_service_account_names=api-service-sa ...
    vault kv put secret/production/api-service database_url=... api_key=...
    (policy api-secrets: path "secret/data/production/api-service" { capabilities = ["read"] })
    vault secrets enable database
    vault write database/config/postgres plugin_name=postgresql-database-plugin ...
    vault write database/roles/api-role db_name=postgres creation_statements=... default_ttl=1h max_ttl=24h

then the application's side: log in as `api-service-sa` of `production`, read its secret, and
the operator's: read database credentials and log in to PostgreSQL with them.

Only what cannot be literal here changes: the Kubernetes API's address and CA (in a pod they
come from the service account mount), PostgreSQL's host and a database and admin of this
test's own (`postgres:5432/app`, `vault_admin`), created here and dropped after.
"""

import os
import secrets
import subprocess

import pytest

from test_bao_cli import Cli
from test_hvac import PG_URL, DevServer, _psql
from test_hvac_auth_audit import StandIn

pytestmark = pytest.mark.skipif(
    not os.environ.get("BAO_BIN"), reason="BAO_BIN (the OpenBao CLI) not set"
)

POLICY = """path "secret/data/production/api-service" {
capabilities = ["read"]
}
"""

CREATION = (
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; "
    'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{{name}}";'
)


@pytest.fixture
def world():
    server = DevServer()
    standin = StandIn()
    suffix = secrets.token_hex(4)
    db, admin = f"app_{suffix}", f"vault_admin_{suffix}"
    _psql(PG_URL, f"CREATE DATABASE {db}")
    _psql(PG_URL, f"CREATE ROLE {admin} WITH LOGIN CREATEROLE PASSWORD 'admin_password'")
    _psql(PG_URL.rpartition("/")[0] + f"/{db}", f"GRANT ALL ON SCHEMA public TO {admin}; CREATE TABLE orders (id int); GRANT ALL ON orders TO {admin} WITH GRANT OPTION")
    try:
        yield server, standin, db, admin
    finally:
        assert server.stop() == 0
        assert standin.stop() == 0
        # Grants are per database: ask the app database which issued users still hold any.
        leftover = _psql(
            PG_URL.rpartition("/")[0] + f"/{db}",
            "SELECT coalesce(string_agg(DISTINCT grantee, ','), '') FROM information_schema.role_table_grants WHERE grantee LIKE 'v-%'",
        )
        _psql(PG_URL, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        _psql(PG_URL, f"DROP ROLE IF EXISTS {admin}")
        assert not leftover, f"users left behind: {leftover}"


def test_the_seed_workflow_with_the_bao_cli(world, tmp_path):
    server, standin, db, admin = world
    host = PG_URL.rpartition("/")[0].split("@")[-1]
    bao = Cli(server)
    ca = tmp_path / "k8s-ca.pem"
    ca.write_text(standin.info["ca_pem"])

    # Kubernetes authentication.
    bao.ok("auth", "enable", "kubernetes")
    bao.ok(
        "write",
        "auth/kubernetes/config",
        f"kubernetes_host={standin.info['url']}",
        f"kubernetes_ca_cert=@{ca}",
        f"token_reviewer_jwt={standin.info['reviewer_jwt']}",
    )
    bao.ok(
        "write",
        "auth/kubernetes/role/api-service",
        "bound_service_account_names=api-service-sa",
        "bound_service_account_namespaces=production",
        "policies=api-secrets",
        "ttl=1h",
    )
    # Static secrets and the application's policy.
    bao.ok(
        "kv",
        "put",
        "secret/production/api-service",
        "database_url=postgresql://user:pass@db:5432/app",
        "api_key=sk_live_xxxxx",
    )
    bao.ok("policy", "write", "api-secrets", "-", stdin=POLICY)
    # Dynamic database credentials.
    bao.ok("secrets", "enable", "database")
    bao.ok(
        "write",
        "database/config/postgres",
        "plugin_name=postgresql-database-plugin",
        f"connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{host}/{db}",
        "allowed_roles=api-role",
        f"username={admin}",
        "password=admin_password",
    )
    bao.ok(
        "write",
        "database/roles/api-role",
        "db_name=postgres",
        f"creation_statements={CREATION}",
        "default_ttl=1h",
        "max_ttl=24h",
    )

    # The application logs in with its service account's token...
    sa = next(a for a in standin.info["service_accounts"] if a["name"] == "api-service-sa")
    anon = Cli(server, token="")
    login = anon.json("write", "auth/kubernetes/login", "role=api-service", f"jwt={sa['jwt']}")["auth"]
    assert login["policies"] == ["api-secrets", "default"]
    assert login["lease_duration"] == 3600
    assert login["metadata"]["service_account_namespace"] == "production"
    app = Cli(server, token=login["client_token"])
    # ... reads exactly its secret ...
    got = app.json("kv", "get", "secret/production/api-service")["data"]["data"]
    assert got == {"database_url": "postgresql://user:pass@db:5432/app", "api_key": "sk_live_xxxxx"}
    # ... and nothing else.
    denied = app.run("kv", "get", "secret/production/other")
    assert denied.returncode == 2 and "permission denied" in denied.stderr
    assert app.run("read", "database/creds/api-role").returncode == 2
    # Another namespace's account does not get the role.
    intruder = next(a for a in standin.info["service_accounts"] if a["name"] == "intruder")
    refused = anon.run("write", "auth/kubernetes/login", "role=api-service", f"jwt={intruder['jwt']}")
    assert refused.returncode == 2, refused.stderr
    assert "not authorized" in refused.stderr, refused.stderr

    # The operator reads credentials; they log in to PostgreSQL and can use the tables.
    creds = bao.json("read", "database/creds/api-role")
    user, password = creds["data"]["username"], creds["data"]["password"]
    assert creds["lease_duration"] == 3600 and creds["renewable"] is True
    who = subprocess.run(
        ["psql", f"postgresql://{user}:{password}@{host}/{db}", "-tAc", "INSERT INTO orders VALUES (1); SELECT current_user"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert who.returncode == 0 and who.stdout.strip().splitlines()[-1] == user, who.stderr
    assert _psql(PG_URL, f"SELECT rolvaliduntil IS NOT NULL FROM pg_roles WHERE rolname = '{user}'") == "t"
    # Revoking the lease drops the user: nothing is left behind.
    bao.ok("lease", "revoke", "-sync", creds["lease_id"])
    assert _psql(PG_URL, f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'") == "0"
