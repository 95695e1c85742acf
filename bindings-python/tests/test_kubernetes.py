"""Kubernetes login through the binding, against the Kubernetes API stand-in (a real HTTPS
server speaking TokenReview, with RS256/ES256 service-account JWTs; core/tests/k8s_standin,
built as the `k8s_standin` example). STRONGROOM_K8S_STANDIN_BIN names the binary
(scripts/test-python.sh builds it); without it the test fails, it does not skip."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from typing import Any, Iterator

import pytest

import strongroom
import strongroom.aio
from conftest import root_token


@pytest.fixture
def standin() -> Iterator[dict[str, Any]]:
    binary = os.environ.get("STRONGROOM_K8S_STANDIN_BIN")
    if not binary:
        pytest.fail("STRONGROOM_K8S_STANDIN_BIN is not set: run scripts/test-python.sh")
    # It exits when its stdin closes.
    proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    out = proc.stdout
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(out.readline()))
    reader.start()
    reader.join(timeout=60)
    if not line or not line[0]:
        proc.kill()
        pytest.fail("the Kubernetes API stand-in printed nothing within 60 s")
    try:
        yield json.loads(line[0])
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=15) == 0


def account(info: dict[str, Any], name: str) -> str:
    jwt = next(a["jwt"] for a in info["service_accounts"] if a["name"] == name)
    assert isinstance(jwt, str)
    return jwt


def configure(root: strongroom.Client, info: dict[str, Any]) -> None:
    root.sys().enable_auth("kubernetes", "kubernetes")
    root.request(
        "write",
        "auth/kubernetes/config",
        {"kubernetes_host": info["url"], "kubernetes_ca_cert": info["ca_pem"], "token_reviewer_jwt": info["reviewer_jwt"]},
    )
    root.sys().write_policy("api-secrets", 'path "secret/data/production/api-service" { capabilities = ["read"] }')
    root.request(
        "write",
        "auth/kubernetes/role/api-service",
        {
            "bound_service_account_names": "api-service-sa",
            "bound_service_account_namespaces": "production",
            "policies": "api-secrets",
            "ttl": "1h",
        },
    )
    root.kv().put("production/api-service", {"api_key": "sk_live_xxxxx"})


def test_login_kubernetes_blocking(standin: dict[str, Any], sr: strongroom.Strongroom, root: strongroom.Client) -> None:
    configure(root, standin)
    app = sr.login_kubernetes("kubernetes", "api-service", strongroom.Secret(account(standin, "api-service-sa")))
    info = app.token().lookup_self()
    assert info["path"] == "auth/kubernetes/login"
    assert info["policies"] == ["api-secrets", "default"]
    assert info["meta"]["service_account_namespace"] == "production"
    got = app.kv().get("production/api-service")
    assert got is not None and got.data == {"api_key": "sk_live_xxxxx"}
    with pytest.raises(strongroom.PermissionDenied):
        app.kv().get("production/other")
    # An account of another namespace is refused, with the method's text; no token is made.
    with pytest.raises(strongroom.StrongroomError, match="not authorized"):
        sr.login_kubernetes("kubernetes", "api-service", account(standin, "intruder"))
    with pytest.raises(strongroom.StrongroomError):
        sr.login_kubernetes("kubernetes", "api-service", "not-a-jwt")


def test_login_kubernetes_asyncio(standin: dict[str, Any]) -> None:
    async def main() -> None:
        async with await strongroom.aio.Strongroom.open(strongroom.Config.dev()) as sr:
            root = sr.client(root_token(sr))
            await root.sys().enable_auth("kubernetes", "kubernetes")
            await root.request(
                "write",
                "auth/kubernetes/config",
                {"kubernetes_host": standin["url"], "kubernetes_ca_cert": standin["ca_pem"], "token_reviewer_jwt": standin["reviewer_jwt"]},
            )
            await root.request(
                "write",
                "auth/kubernetes/role/web",
                {"bound_service_account_names": "web", "bound_service_account_namespaces": "apps", "policies": "default"},
            )
            app = await sr.login_kubernetes("kubernetes", "web", account(standin, "web"))
            info = await app.token().lookup_self()
            assert info["meta"]["service_account_name"] == "web"

    asyncio.run(main())
