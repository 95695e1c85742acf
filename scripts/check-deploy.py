#!/usr/bin/env python3
"""Checks deploy/kubernetes/ against the binary it deploys (scripts/test-deploy.sh runs it,
after kubernetes-validate has checked the manifests against the Kubernetes schemas).

- The injector: the Deployment's arguments are the ones `strongroom injector` takes (the real
  binary is started with them, only the listen address and the certificate paths swapped for
  local ones); the webhook's service, port and path lead to the container port the binary
  listens on and a path it serves; the certificate made by injector-tls.sh is trusted through
  the webhook's caBundle for the Service's DNS name, as the API server will check it; the
  seed's annotated pod (examples/api-service.yaml) comes back with a JSONPatch that adds the
  agent with the manifest's image and server address.
- The server: the ConfigMap's server.hcl starts the real `strongroom server` on a fresh
  PostgreSQL database (the URL from BAO_PG_CONNECTION_URL, as the StatefulSet passes it), the
  probes answer as the StatefulSet expects (uninitialised: alive, not ready), the store is
  initialised with one key share, and two replicas started with the unseal key in the seal
  stanza's file unseal themselves and share the data.

Prints `deploy: N passed, 0 failed` at the end; any failed check stops it with a message.
"""

import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy", "kubernetes")
BIN = os.environ.get("STRONGROOM_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "strongroom"
)
PG_URL = os.environ.get("STRONGROOM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

passed = 0


def check(cond, message):
    global passed
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        print(f"deploy: {passed} passed, 1 failed")
        sys.exit(1)
    passed += 1


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(documents, kind, name):
    for d in documents:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    check(False, f"no {kind} {name}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            check(False, f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    check(False, f"{what} did not listen on {port}")


def flags(args):
    out = {}
    for a in args:
        m = re.fullmatch(r"-{1,2}([a-z-]+)=(.*)", a)
        check(m is not None, f"argument `{a}` is not -name=value")
        out[m.group(1)] = m.group(2)
    return out


def port_of(container, name):
    for p in container.get("ports", []):
        if p.get("name") == name:
            return p["containerPort"]
    check(False, f"container {container['name']} has no port named {name}")


def api(url, method="GET", body=None, token=None, context=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, raw.decode(errors="replace")


def check_injector(tmp):
    manifests = docs(os.path.join(DEPLOY, "20-injector.yaml"))
    deployment = find(manifests, "Deployment", "strongroom-injector")
    service = find(manifests, "Service", "strongroom-injector")
    webhook = find(manifests, "MutatingWebhookConfiguration", "strongroom-injector")["webhooks"][0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    check(container["args"][0] == "injector", "the injector container runs `strongroom injector`")
    f = flags(container["args"][1:])
    help_text = subprocess.run([BIN, "injector", "-h"], capture_output=True, text=True, check=True).stdout
    for name in f:
        check(f"-{name}=" in help_text, f"`strongroom injector -h` lists -{name}")
    listen_port = int(f["listen"].rsplit(":", 1)[1])
    check(port_of(container, "https") == listen_port, "containerPort https is the -listen port")
    svc_port = service["spec"]["ports"][0]
    check(svc_port["targetPort"] == "https", "the Service targets the https port")
    cc = webhook["clientConfig"]["service"]
    check(
        (cc["name"], cc["namespace"]) == (service["metadata"]["name"], service["metadata"]["namespace"]),
        "the webhook calls the injector's Service",
    )
    check(cc["port"] == svc_port["port"], "the webhook calls the Service's port")
    check(webhook["admissionReviewVersions"] == ["v1"], "AdmissionReview v1 (what the injector answers)")
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"]
    mount = container["volumeMounts"][0]["mountPath"]
    check(f["tls-cert-file"] == f"{mount}/tls.crt" and f["tls-key-file"] == f"{mount}/tls.key",
          "the TLS flags name the mounted Secret's files")

    # The certificate script, as an operator runs it.
    out = os.path.join(tmp, "tls")
    subprocess.run([os.path.join(DEPLOY, "injector-tls.sh"), out], check=True, capture_output=True)
    filled = docs(os.path.join(out, "20-injector.yaml"))
    secret = find(docs(os.path.join(out, "15-injector-tls.yaml")), "Secret", volume)
    ca_bundle = find(filled, "MutatingWebhookConfiguration", "strongroom-injector")["webhooks"][0]["clientConfig"]["caBundle"]
    ca_pem = base64.b64decode(ca_bundle).decode()
    check("BEGIN CERTIFICATE" in ca_pem, "injector-tls.sh filled the caBundle with a PEM certificate")
    with open(os.path.join(out, "ca.crt")) as fh:
        check(fh.read() == ca_pem, "the caBundle is the CA that signed the certificate")
    for key in ("tls.crt", "tls.key"):
        with open(os.path.join(tmp, key), "wb") as fh:
            fh.write(base64.b64decode(secret["data"][key]))

    port = free_port()
    args = dict(f, listen=f"127.0.0.1:{port}",
                **{"tls-cert-file": os.path.join(tmp, "tls.crt"), "tls-key-file": os.path.join(tmp, "tls.key")})
    proc = subprocess.Popen([BIN, "injector"] + [f"-{k}={v}" for k, v in args.items()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "strongroom injector")
        # The API server's view: the Service DNS name, verified against the caBundle.
        ctx = ssl.create_default_context(cadata=ca_pem)
        host = f"{cc['name']}.{cc['namespace']}.svc"

        class ServiceConnection(http.client.HTTPSConnection):
            """Connects to 127.0.0.1 but verifies (and sends SNI for) the Service's name."""

            def connect(self):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                self.sock = ctx.wrap_socket(sock, server_hostname=host)

        def call(path, method="GET", body=None):
            c = ServiceConnection(host, port, context=ctx, timeout=10)
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            c.close()
            return r.status, raw

        probe = container["readinessProbe"]["httpGet"]
        check(probe["port"] == "https" and probe["scheme"] == "HTTPS", "the probes use the TLS port")
        status, _ = call(probe["path"])
        check(status == 200, f"readiness path {probe['path']} answers 200 (got {status})")

        app = find(docs(os.path.join(DEPLOY, "examples", "api-service.yaml")), "Deployment", "api-service")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": app["spec"]["template"]["metadata"],
               "spec": app["spec"]["template"]["spec"]}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "7e4a", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "operation": "CREATE", "namespace": "production", "object": pod}}
        status, raw = call(cc["path"], "POST", review)
        check(status == 200, f"POST {cc['path']} answers 200 (got {status})")
        answer = json.loads(raw)["response"]
        check(answer["uid"] == "7e4a" and answer["allowed"] is True, f"the seed's pod is admitted: {answer}")
        check(answer.get("patchType") == "JSONPatch", "with a JSONPatch")
        patch = json.loads(base64.b64decode(answer["patch"]))
        added = [op["value"] for op in patch if op["path"] in ("/spec/initContainers", "/spec/containers/-")]
        agents = [c for v in added for c in (v if isinstance(v, list) else [v])]
        check({c["name"] for c in agents} == {"vault-agent-init", "vault-agent"}, "init container and sidecar added")
        for c in agents:
            check(c["image"] == f["agent-image"], "the agent runs the -agent-image image")
            config = base64.b64decode(c["env"][0]["value"]).decode()
            check(f'address = "{f["vault-address"]}"' in config, "the agent talks to -vault-address")
            check('role = "api-service"' in config and "/vault/secrets/config" in config,
                  "the agent config carries the seed's role and file")
        # Kubernetes stops a pod with SIGTERM.
        proc.terminate()
        check(proc.wait(timeout=10) == 0, f"the injector exits 0 on SIGTERM (got {proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def psql(sql):
    subprocess.run(["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True)


def check_server(tmp):
    manifests = docs(os.path.join(DEPLOY, "10-server.yaml"))
    config_map = find(manifests, "ConfigMap", "strongroom-config")
    sts = find(manifests, "StatefulSet", "strongroom")
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    check(sts["spec"]["replicas"] >= 3, "three replicas or more")
    pdb = find(manifests, "PodDisruptionBudget", "strongroom")
    check(pdb["spec"]["minAvailable"] < sts["spec"]["replicas"], "the PDB lets a drain proceed")
    check(pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"], "the PDB selects the replicas")
    binding = find(manifests, "ClusterRoleBinding", "strongroom-server-auth-delegator")
    check(binding["roleRef"]["name"] == "system:auth-delegator"
          and binding["subjects"][0]["name"] == pod["serviceAccountName"],
          "the server's service account may create TokenReviews")
    check(container["args"][0] == "server", "the container runs `strongroom server`")
    f = flags(container["args"][1:])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_vol = next(n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "strongroom-config")
    check(f["config"] == f"{mounts[config_vol]}/server.hcl", "-config names the mounted ConfigMap's file")
    hcl = config_map["data"]["server.hcl"]
    env = {e["name"] for e in container["env"]}
    check("BAO_PG_CONNECTION_URL" in env or "connection_url" in hcl, "the storage URL reaches the server")
    listen = re.search(r'address\s*=\s*"([^"]+)"', hcl).group(1)
    check(port_of(container, "http") == int(listen.rsplit(":", 1)[1]), "containerPort http is the listener's port")
    seal_path = re.search(r'seal "file" \{\s*path\s*=\s*"([^"]+)"', hcl).group(1)
    unseal_vol = next(n for n, v in volumes.items() if "secret" in v and v["secret"]["secretName"] == "strongroom-unseal")
    check(os.path.dirname(seal_path) == mounts[unseal_vol]
          and volumes[unseal_vol]["secret"]["items"][0]["path"] == os.path.basename(seal_path),
          "the seal stanza's file is the mounted unseal Secret's key")

    # The config as the replicas read it: only local addresses and paths swapped in.
    db = f"strongroom_deploy_{uuid.uuid4().hex[:12]}"
    psql(f'CREATE DATABASE "{db}"')
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + db
        key_file = os.path.join(tmp, "unseal", "key")
        os.makedirs(os.path.dirname(key_file))
        replicas = []

        def start(name):
            port = free_port()
            text = hcl.replace(f'"{listen}"', f'"127.0.0.1:{port}"').replace(f'"{seal_path}"', f'"{key_file}"')
            path = os.path.join(tmp, f"{name}.hcl")
            with open(path, "w") as fh:
                fh.write(text)
            log = open(os.path.join(tmp, f"{name}.log"), "w+")
            proc = subprocess.Popen([BIN, "server", f"-config={path}"], env=dict(os.environ, BAO_PG_CONNECTION_URL=url),
                                    stdout=log, stderr=subprocess.STDOUT)
            replicas.append(proc)
            wait_port(port, proc, f"strongroom server ({name})")
            return f"http://127.0.0.1:{port}", proc, log

        def probe(addr, which):
            return api(addr + container[which]["httpGet"]["path"])[0]

        a, proc_a, log_a = start("first")
        check(probe(a, "livenessProbe") in (200, 204) and probe(a, "readinessProbe") == 501,
              "uninitialised: alive, not ready")
        log_a.seek(0)
        ignored = re.findall(r'option `([a-z_]+)` is accepted and ignored', log_a.read())
        check(set(ignored) <= {"table", "ha_enabled"}, f"no storage option ignored but table/ha_enabled: {ignored}")
        status, init = api(a + "/v1/sys/init", "PUT", {"secret_shares": 1, "secret_threshold": 1})
        check(status == 200 and len(init["keys_base64"]) == 1, f"initialised with one key share: {status}")
        root = init["root_token"]
        with open(key_file, "w") as fh:
            fh.write(init["keys_base64"][0])
        os.chmod(key_file, 0o400)
        proc_a.terminate()
        check(proc_a.wait(timeout=15) == 0, f"the server exits 0 on SIGTERM (got {proc_a.returncode})")
        # A rollout restart: each replica unseals itself from the mounted key.
        a, _, _ = start("replica-0")
        b, _, _ = start("replica-1")
        for addr in (a, b):
            check(probe(addr, "readinessProbe") == 200 and probe(addr, "livenessProbe") == 200,
                  f"{addr} unsealed itself at start and is ready")
        status, _ = api(a + "/v1/sys/mounts/secret", "POST", {"type": "kv", "options": {"version": "2"}}, root)
        check(status == 204, f"secret/ mounted on replica 0 ({status})")
        status, _ = api(a + "/v1/secret/data/production/api-service", "POST",
                         {"data": {"database_url": "postgresql://user:pass@db:5432/app", "api_key": "sk_live_xxxxx"}}, root)
        check(status == 200, f"the seed's secret written on replica 0 ({status})")
        status, body = api(b + "/v1/secret/data/production/api-service", token=root)
        check(status == 200 and body["data"]["data"]["api_key"] == "sk_live_xxxxx",
              f"replica 1 reads what replica 0 wrote ({status})")
    finally:
        for p in replicas:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=15)
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main():
    if not os.path.exists(BIN):
        check(False, f"{BIN} is missing: cargo build -p strongroom-server")
    with tempfile.TemporaryDirectory() as tmp:
        check_injector(tmp)
        check_server(tmp)
    print(f"deploy: {passed} passed, 0 failed")


if __name__ == "__main__":
    main()
