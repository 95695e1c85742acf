#!/usr/bin/env python3
"""Figures for `strongroom agent` against a real `strongroom server -dev` on loopback
(issue 19's closing note). Measures, never asserts:

1. An agent with 100 templates over 20 leased secrets (database credentials from the local
   PostgreSQL, 20 roles, default_ttl 60 s): its resident memory (VmRSS, and the peak VmHWM)
   once every file is written and after the first renewals, and the requests the server
   received (its audit log) while the agent was rendering, between renewals, and for the
   renewals themselves.
2. KV change -> rewritten file: with `static_secret_render_interval`, the time from the
   write's answer to the file showing the new value, over several writes at random moments.

Usage: bench/agent.py [--bin target/release/strongroom] [--agent-bin target/release/strongroom-agent]
                      [--interval 2] [--trials 10]
The server is always `--bin`; the agent is `--agent-bin` when given (the agent-only binary the
injector runs, `strongroom-agent -config=...`), else `--bin agent`.
Environment: STRONGROOM_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres;
trust auth: the engine's admin connection uses it). Build first: cargo build --release -p
strongroom-server --bins. Prints a Markdown table.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_URL = os.environ.get("STRONGROOM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
SECRETS = 20
TEMPLATES = 100
TTL = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(addr, method, path, body=None, token="root"):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method)
    req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def audit_requests(path):
    """(time, path) of every request entry in the audit log so far."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("type") == "request":
                out.append((e.get("time", ""), e["request"].get("path", "")))
    return out


def start_server(bin_path, work):
    port = free_port()
    audit = os.path.join(work, "audit.log")
    cfg = os.path.join(work, "server.hcl")
    with open(cfg, "w") as f:
        f.write(f'audit "file" "bench" {{\n  options {{\n    file_path = "{audit}"\n  }}\n}}\n')
    proc = subprocess.Popen(
        [bin_path, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}",
         f"-config={cfg}", "-log-level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"))
    addr = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, addr, audit
        except OSError:
            time.sleep(0.05)
    sys.exit("the server did not start")


def write_agent(work, name, templates, extra=""):
    token_file = os.path.join(work, "root-token")
    with open(token_file, "w") as f:
        f.write("root")
    lines = [f"exit_after_auth = false\n{extra}\n",
             'auto_auth {\n  method "token_file" {\n    config = {\n'
             f'      token_file_path = "{token_file}"\n    }}\n  }}\n}}\n']
    for dest, contents in templates:
        lines.append(f"template {{\n  destination = {json.dumps(dest)}\n  contents = {json.dumps(contents)}\n}}\n")
    path = os.path.join(work, f"{name}.hcl")
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def start_agent(agent_cmd, addr, config, work, name):
    env = dict(os.environ, VAULT_ADDR=addr, BAO_ADDR=addr)
    return subprocess.Popen(agent_cmd + [f"-config={config}", "-log-level=warn"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{name}.log"), "w"))


def wait_files(paths, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the agent exited with {proc.returncode}")
        if all(os.path.exists(p) and os.path.getsize(p) > 0 for p in paths):
            return
        time.sleep(0.01)
    sys.exit("the agent did not write every file in time")


def leased(bin_path, agent_cmd, work, rows):
    proc, addr, audit = start_server(bin_path, work)
    agent = None
    prefix = f"benchagent{random.randrange(10**6)}"
    try:
        api(addr, "POST", "sys/mounts/database", {"type": "database"})
        u = urllib.parse.urlparse(PG_URL)
        api(addr, "POST", "database/config/pg", {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{u.hostname}:{u.port or 5432}{u.path}",
            "username": u.username or "postgres", "password": "unused-trust-auth",
            "allowed_roles": "*", "verify_connection": True,
            "username_template": prefix + '_{{.RoleName}}_{{random 8}}'})
        create = 'CREATE ROLE "{{name}}" WITH LOGIN PASSWORD \'{{password}}\' VALID UNTIL \'{{expiration}}\';'
        for i in range(SECRETS):
            api(addr, "POST", f"database/roles/r{i}", {"db_name": "pg", "creation_statements": create,
                                                      "default_ttl": TTL, "max_ttl": 3600})
        os.makedirs(os.path.join(work, "out"))
        files = [os.path.join(work, "out", f"t{i:03}.txt") for i in range(TEMPLATES)]
        templates = [(files[i], f'{{{{ with secret "database/creds/r{i % SECRETS}" }}}}'
                      f'user={{{{ .Data.username }}}} password={{{{ .Data.password }}}} #{i}{{{{ end }}}}')
                     for i in range(TEMPLATES)]
        config = write_agent(work, "leased", templates)
        before = len(audit_requests(audit))
        t0 = time.monotonic()
        agent = start_agent(agent_cmd, addr, config, work, "leased")
        wait_files(files, agent)
        rendered = time.monotonic() - t0
        time.sleep(1)  # let the last writes settle
        mem_rendered = rss_kib(agent.pid)
        at_render = audit_requests(audit)[before:]
        # Between renewals: the leases are renewed at 2/3 of 60 s; watch until just before.
        quiet_from = len(audit_requests(audit))
        quiet_start = time.monotonic()
        time.sleep(max(0.0, t0 + TTL * 2 / 3 - 3 - time.monotonic()))
        quiet = audit_requests(audit)[quiet_from:]
        quiet_secs = time.monotonic() - quiet_start
        # The renewals.
        renew_from = len(audit_requests(audit))
        time.sleep(10)
        renewals = audit_requests(audit)[renew_from:]
        mem_after = rss_kib(agent.pid)
        rows.append(("agent files written (100 templates, 20 leases), from start", f"{rendered * 1000:.0f} ms"))
        rows.append(("requests while rendering (login/lookup + creds)",
                     f"{len(at_render)} ({summary(at_render)})"))
        rows.append((f"requests between renewals ({quiet_secs:.0f} s window)", f"{len(quiet)} ({summary(quiet)})"))
        rows.append(("requests at the first renewal (10 s window)", f"{len(renewals)} ({summary(renewals)})"))
        rows.append(("agent RSS after rendering (VmRSS / VmHWM)",
                     f"{mem_rendered['VmRSS'] / 1024:.1f} / {mem_rendered['VmHWM'] / 1024:.1f} MiB"))
        rows.append(("agent RSS after the renewals (VmRSS / VmHWM)",
                     f"{mem_after['VmRSS'] / 1024:.1f} / {mem_after['VmHWM'] / 1024:.1f} MiB"))
        rows.append(("of which anonymous (heap, stacks) / file-backed (the binary's pages)",
                     f"{mem_after['RssAnon'] / 1024:.1f} / {mem_after['RssFile'] / 1024:.1f} MiB"))
    finally:
        if agent and agent.poll() is None:
            agent.terminate()
            agent.wait(timeout=15)
        try:
            api(addr, "POST", "sys/leases/revoke-prefix/database/creds", {})
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            left = subprocess.run(["psql", PG_URL, "-Atc", f"SELECT count(*) FROM pg_roles WHERE rolname LIKE '{prefix}%'"],
                                  capture_output=True, text=True).stdout.strip()
            if left not in ("0", ""):
                subprocess.run(["psql", PG_URL, "-qc",
                                f"DO $$DECLARE r text; BEGIN FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE '{prefix}%' LOOP EXECUTE format('DROP ROLE %I', r); END LOOP; END$$"],
                               capture_output=True)
                print(f"note: {left} database users were left after the revoke and were dropped", file=sys.stderr)


def summary(entries):
    counts = {}
    for _, p in entries:
        key = p.split("/")[0] + "/" + p.split("/")[1] if "/" in p else p
        if p.startswith("sys/leases/renew"):
            key = "sys/leases/renew"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) or "none"


def kv_latency(bin_path, agent_cmd, work, interval, trials, rows):
    proc, addr, _ = start_server(bin_path, work)
    agent = None
    try:
        api(addr, "POST", "secret/data/app", {"data": {"v": "0"}})
        dest = os.path.join(work, "kv.txt")
        config = write_agent(work, "kv", [(dest, '{{ with secret "secret/data/app" }}{{ .Data.data.v }}{{ end }}')],
                             f'template_config {{\n  static_secret_render_interval = "{interval}s"\n}}\n')
        agent = start_agent(agent_cmd, addr, config, work, "kv")
        wait_files([dest], agent)
        lat = []
        for n in range(1, trials + 1):
            time.sleep(random.uniform(0, interval))
            api(addr, "POST", "secret/data/app", {"data": {"v": str(n)}})
            t0 = time.monotonic()
            while True:
                with open(dest) as f:
                    if f.read() == str(n):
                        break
                if time.monotonic() - t0 > interval * 3 + 5:
                    sys.exit("the file was not rewritten")
                time.sleep(0.001)
            lat.append(time.monotonic() - t0)
        lat.sort()
        rows.append((f"KV change -> file, interval {interval} s ({trials} writes at random moments)",
                     f"median {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms "
                     f"(bound: interval + 100 ms = {interval * 1000 + 100} ms)"))
    finally:
        if agent and agent.poll() is None:
            agent.terminate()
            agent.wait(timeout=15)
        proc.terminate()
        proc.wait(timeout=15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                  "release", "strongroom"))
    ap.add_argument("--agent-bin", default=None,
                    help="agent-only binary (strongroom-agent); default: `--bin agent`")
    ap.add_argument("--interval", type=int, default=2)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--skip-leased", action="store_true")
    a = ap.parse_args()
    agent_cmd = [a.agent_bin] if a.agent_bin else [a.bin, "agent"]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        if not a.skip_leased:
            os.makedirs(os.path.join(work, "leased"))
            leased(a.bin, agent_cmd, os.path.join(work, "leased"), rows)
        os.makedirs(os.path.join(work, "kv"))
        kv_latency(a.bin, agent_cmd, os.path.join(work, "kv"), a.interval, a.trials, rows)
    print(f"server: {a.bin}; agent: {' '.join(agent_cmd)}\n")
    print("| figure | measured |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
