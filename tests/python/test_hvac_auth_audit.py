"""hvac against a real `strongroom server -dev`: Kubernetes auth against the Kubernetes API
stand-in (core/tests/k8s_standin/process.rs, the `k8s_standin` example: real HTTPS with its own
CA, TokenReview, RS256/ES256 service-account tokens), tokens, policies, leases (database
credentials on a real PostgreSQL) and audit devices.

STRONGROOM_K8S_STANDIN_BIN names the stand-in binary (scripts/test-python.sh builds it);
STRONGROOM_TEST_POSTGRES_URL the PostgreSQL admin URL (default postgres@127.0.0.1:5432).
"""

import json
import os
import secrets
import subprocess
import threading
import time

import hvac
import hvac.exceptions
import pytest

from test_hvac import PG_URL, DevServer, _psql, setup_pg_engine


class StandIn:
    """The Kubernetes API stand-in as a child process; its JSON line is `self.info`."""

    def __init__(self):
        binary = os.environ.get("STRONGROOM_K8S_STANDIN_BIN")
        if not binary:
            pytest.fail("STRONGROOM_K8S_STANDIN_BIN is not set: run scripts/test-python.sh")
        # It exits when its stdin closes, so it never outlives this process.
        self.proc = subprocess.Popen(
            [binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(timeout=60)
        if not line or not line[0]:
            self.proc.kill()
            pytest.fail("the Kubernetes API stand-in printed nothing within 60 s")
        self.info = json.loads(line[0])

    def sa(self, name):
        return next(a for a in self.info["service_accounts"] if a["name"] == name)

    def stop(self):
        self.proc.stdin.close()
        return self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server():
    s = DevServer()
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def standin():
    k = StandIn()
    yield k
    assert k.stop() == 0


def test_kubernetes_auth_login(server, standin):
    root = server.client()
    root.sys.enable_auth_method("kubernetes")
    k8s = root.auth.kubernetes
    k8s.configure(
        kubernetes_host=standin.info["url"],
        kubernetes_ca_cert=standin.info["ca_pem"],
        token_reviewer_jwt=standin.info["reviewer_jwt"],
    )
    cfg = k8s.read_config()
    assert cfg["kubernetes_host"] == standin.info["url"]
    assert cfg["token_reviewer_jwt_set"] is True and "token_reviewer_jwt" not in cfg

    root.sys.create_or_update_policy(
        name="k8s-web", policy='path "secret/data/web/*" { capabilities = ["read"] }'
    )
    root.secrets.kv.v2.create_or_update_secret(path="web/cfg", secret={"db": "pg"})
    k8s.create_role(
        name="web",
        bound_service_account_names=["web", "worker", "legacy"],
        bound_service_account_namespaces=["apps"],
        policies=["k8s-web"],
        ttl="1h",
    )
    role = k8s.read_role(name="web")
    assert role["bound_service_account_names"] == ["web", "worker", "legacy"]
    assert role["token_policies"] == ["k8s-web"] and role["token_ttl"] == 3600
    assert k8s.list_roles()["keys"] == ["web"]

    for name in ("web", "worker", "legacy"):
        sa = standin.sa(name)
        client = hvac.Client(url=server.url, timeout=30)
        login = client.auth.kubernetes.login(role="web", jwt=sa["jwt"])
        auth = login["auth"]
        assert client.token == auth["client_token"], "hvac uses the login token"
        assert auth["policies"] == ["default", "k8s-web"]
        assert auth["lease_duration"] == 3600 and auth["orphan"] is True
        assert auth["metadata"] == {
            "role": "web",
            "service_account_name": name,
            "service_account_namespace": "apps",
            "service_account_secret_name": "legacy-token-abcde" if sa["kind"] == "legacy" else "",
            "service_account_uid": sa["uid"],
        }
        got = client.secrets.kv.v2.read_secret_version(
            path="web/cfg", raise_on_deleted_version=True
        )
        assert got["data"]["data"] == {"db": "pg"}
        with pytest.raises(hvac.exceptions.Forbidden):
            client.secrets.kv.v2.create_or_update_secret(path="web/cfg", secret={})
        me = client.auth.token.lookup_self()["data"]
        assert me["display_name"] == f"kubernetes-apps-{name}"
        renewed = client.auth.token.renew_self(increment="30m")
        assert renewed["auth"]["lease_duration"] == 1800

    anon = hvac.Client(url=server.url, timeout=30)
    with pytest.raises(hvac.exceptions.Forbidden, match="service account name not authorized"):
        anon.auth.kubernetes.login(role="web", jwt=standin.sa("intruder")["jwt"])
    head, claims, _ = standin.sa("web")["jwt"].split(".")
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        anon.auth.kubernetes.login(role="web", jwt=f"{head}.{claims}.bm90LWEtc2lnbmF0dXJl")
    with pytest.raises(hvac.exceptions.InvalidRequest, match='invalid role name "nope"'):
        anon.auth.kubernetes.login(role="nope", jwt=standin.sa("web")["jwt"])

    # pem_keys: the signature is checked locally too; only the RSA key is trusted here. (hvac's
    # configure() accepts certificates only, so the bare public key goes in a plain write.)
    root.adapter.post(
        "/v1/auth/kubernetes/config",
        json={
            "kubernetes_host": standin.info["url"],
            "kubernetes_ca_cert": standin.info["ca_pem"],
            "token_reviewer_jwt": standin.info["reviewer_jwt"],
            "pem_keys": [standin.info["rsa_public_pem"]],
        },
    )
    # Stored trimmed, as OpenBao does (a comma-string-slice field).
    assert k8s.read_config()["pem_keys"] == [standin.info["rsa_public_pem"].strip()]
    assert hvac.Client(url=server.url).auth.kubernetes.login(
        role="web", jwt=standin.sa("web")["jwt"]
    )["auth"]["metadata"]["service_account_name"] == "web"
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=server.url).auth.kubernetes.login(
            role="web", jwt=standin.sa("worker")["jwt"]
        )


def test_tokens_create_lookup_renew_revoke(server):
    root = server.client()
    tok = root.auth.token
    root.sys.create_or_update_policy(
        name="py-tok", policy='path "auth/token/create" { capabilities = ["update"] }'
    )
    parent = tok.create(policies=["py-tok"], ttl="1h", meta={"app": "py"})["auth"]
    assert parent["client_token"].startswith("s.") and len(parent["client_token"]) == 26
    look = tok.lookup(token=parent["client_token"])["data"]
    assert look["accessor"] == parent["accessor"]
    assert look["meta"] == {"app": "py"} and look["creation_ttl"] == 3600
    by_accessor = tok.lookup_accessor(accessor=parent["accessor"])["data"]
    assert by_accessor["id"] == "" and by_accessor["accessor"] == parent["accessor"]
    assert parent["accessor"] in tok.list_accessors()["data"]["keys"]
    assert tok.renew(token=parent["client_token"], increment="10m")["auth"]["lease_duration"] == 600

    # A child dies with its parent; an orphan does not.
    as_parent = server.client(token=parent["client_token"])
    child = as_parent.auth.token.create(ttl="5m")["auth"]
    orphan = root.auth.token.create_orphan(ttl="5m")["auth"]
    assert tok.lookup(token=orphan["client_token"])["data"]["orphan"] is True
    tok.revoke(token=parent["client_token"])
    for gone in (parent, child):
        with pytest.raises(hvac.exceptions.Forbidden, match="bad token"):
            tok.lookup(token=gone["client_token"])
    assert tok.lookup(token=orphan["client_token"])["data"]["ttl"] > 0
    tok.revoke_accessor(accessor=orphan["accessor"])
    with pytest.raises(hvac.exceptions.Forbidden):
        tok.lookup(token=orphan["client_token"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        tok.create(ttl="not-a-duration")


def test_policies(server):
    root = server.client()
    root.sys.create_or_update_policy(
        name="py-app", policy={"path": {"secret/data/py/*": {"capabilities": ["read", "list"]}}}
    )
    assert "py-app" in root.sys.list_policies()["data"]["policies"]
    rules = root.sys.read_policy(name="py-app")["data"]["rules"]
    assert "secret/data/py/*" in rules
    root.secrets.kv.v2.create_or_update_secret(path="py/x", secret={"a": "1"})
    limited = server.client(token=root.auth.token.create(policies=["py-app"])["auth"]["client_token"])
    assert limited.secrets.kv.v2.read_secret_version(path="py/x", raise_on_deleted_version=True)[
        "data"
    ]["data"] == {"a": "1"}
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.secrets.kv.v2.create_or_update_secret(path="py/x", secret={"a": "2"})
    # A policy change applies to existing tokens at once.
    root.sys.create_or_update_policy(
        name="py-app", policy='path "secret/data/py/*" { capabilities = ["create", "update", "read"] }'
    )
    limited.secrets.kv.v2.create_or_update_secret(path="py/x", secret={"a": "2"})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="failed to parse policy"):
        root.sys.create_or_update_policy(name="broken", policy='path "x" { capabilities = ')
    with pytest.raises(hvac.exceptions.InvalidRequest, match='cannot delete "root" policy'):
        root.sys.delete_policy(name="root")
    root.sys.delete_policy(name="py-app")
    assert "py-app" not in root.sys.list_policies()["data"]["policies"]
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.secrets.kv.v2.read_secret_version(path="py/x", raise_on_deleted_version=True)


def test_leases_on_database_credentials(server):
    dbname = "sr_hvac_lease_" + secrets.token_hex(4)
    _psql(PG_URL, f"CREATE DATABASE {dbname}")
    try:
        root = server.client()
        db = setup_pg_engine(root, "leasedb", dbname)
        issued = [db.generate_credentials(name="ro", mount_point="leasedb") for _ in range(3)]
        users = [c["data"]["username"] for c in issued]
        count = lambda: _psql(  # noqa: E731
            PG_URL, "SELECT count(*) FROM pg_roles WHERE rolname IN (%s)" % ",".join(f"'{u}'" for u in users)
        )
        assert count() == "3"
        listed = root.sys.list_leases(prefix="leasedb/creds/ro/")["data"]["keys"]
        assert sorted(listed) == sorted(c["lease_id"].rpartition("/")[2] for c in issued)

        first = issued[0]["lease_id"]
        info = root.sys.read_lease(lease_id=first)["data"]
        assert info["id"] == first and info["renewable"] is True
        assert 3590 <= info["ttl"] <= 3600 and info["issue_time"].endswith("Z")
        renewed = root.sys.renew_lease(lease_id=first, increment=7200)
        assert renewed["lease_id"] == first and renewed["lease_duration"] == 7200
        # Past the role's max_ttl the renewal is capped there.
        capped = root.sys.renew_lease(lease_id=first, increment=10 * 86400)
        assert 86390 <= capped["lease_duration"] <= 86400

        root.sys.revoke_lease(lease_id=first)
        assert count() == "2"
        with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid lease"):
            root.sys.read_lease(lease_id=first)
        root.sys.revoke_prefix(prefix="leasedb/creds/ro")
        assert count() == "0"
        with pytest.raises(hvac.exceptions.InvalidPath):
            root.sys.list_leases(prefix="leasedb/creds/ro/")
        root.sys.disable_secrets_engine(path="leasedb")
    finally:
        _psql(PG_URL, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def _entries(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _entries_when(path, pred, what):
    deadline = time.monotonic() + 10
    while True:
        got = _entries(path)
        if pred(got):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{path}: {what} not logged within 10 s ({len(got)} entries)")
        time.sleep(0.025)


def test_audit_devices(tmp_path):
    cfg_log = tmp_path / "cfg.log"
    api_log = tmp_path / "api.log"
    hcl = tmp_path / "audit.hcl"
    hcl.write_text(
        "unsafe_allow_api_audit_creation = true\n"
        f'audit "file" "cfgfile" {{\n  options = {{ file_path = "{cfg_log}" }}\n}}\n'
    )
    s = DevServer(f"-config={hcl}")
    try:
        root = s.client()
        with pytest.raises(hvac.exceptions.InvalidRequest, match="file_path is required"):
            root.sys.enable_audit_device(device_type="file", path="bad", options={})
        root.sys.enable_audit_device(
            device_type="file", path="py", description="hvac", options={"file_path": str(api_log)}
        )
        devices = root.sys.list_enabled_audit_devices()["data"]
        assert sorted(devices) == ["cfgfile/", "py/"]
        assert devices["py/"]["options"] == {"file_path": str(api_log)}
        assert devices["py/"]["description"] == "hvac"

        root.secrets.kv.v2.create_or_update_secret(path="audited", secret={"pw": "hunter2-py"})
        root.secrets.kv.v2.read_secret_version(path="audited", raise_on_deleted_version=True)
        for device, log in (("cfgfile", cfg_log), ("py", api_log)):

            def is_read(e):
                return (
                    e["type"] == "response"
                    and e["request"]["path"] == "secret/data/audited"
                    and e["request"]["operation"] == "read"
                )

            got = _entries_when(log, lambda es: any(is_read(e) for e in es), "the KV read")
            raw = log.read_text()
            assert "hunter2-py" not in raw and s.root_token not in raw
            pw_hash = root.sys.calculate_hash(path=device, input_to_hash="hunter2-py")["data"]["hash"]
            token_hash = root.sys.calculate_hash(path=device, input_to_hash=s.root_token)["data"]["hash"]
            assert pw_hash.startswith("hmac-sha256:") and len(pw_hash) == 12 + 64
            write = next(
                e
                for e in got
                if e["type"] == "request"
                and e["request"]["path"] == "secret/data/audited"
                and e["request"]["operation"] == "create"
            )
            assert write["request"]["data"]["data"]["pw"] == pw_hash
            assert write["request"]["client_token"] == token_hash
            assert write["auth"]["client_token"] == token_hash
            read = next(e for e in got if is_read(e))
            assert read["response"]["data"]["data"]["pw"] == pw_hash
            assert read["request"]["id"] == next(
                e["request"]["id"] for e in got if e["type"] == "request" and is_read(dict(e, type="response"))
            )

        with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot disable configuration-managed"):
            root.sys.disable_audit_device(path="cfgfile")
        root.sys.disable_audit_device(path="py")
        assert sorted(root.sys.list_enabled_audit_devices()["data"]) == ["cfgfile/"]
        with pytest.raises(hvac.exceptions.InvalidRequest, match='unknown audit backend "py/"'):
            root.sys.calculate_hash(path="py", input_to_hash="x")
    finally:
        assert s.stop() == 0
