#!/usr/bin/env python3
"""Database engine side by side: `strongroom server -dev` and `bao server -dev` on loopback,
against the same PostgreSQL, MariaDB and Redis (issue 22's figures).

For each database: N credentials issued (8 at a time), then one `sys/leases/revoke-prefix` of
all of them, timed (leases/s); the users are then counted in the database (none may be left).
For PostgreSQL also the issue rate at 1 and 8 requests in flight. Revocation uses the given
statement of the issue (`DROP ROLE IF EXISTS` / `DROP USER IF EXISTS`); Redis has none.

Usage: bench/compare_db.py [--n 700] [--strongroom target/release/strongroom] [--bao bao]
       [--servers strongroom,openbao]
Environment: STRONGROOM_TEST_POSTGRES_URL, STRONGROOM_TEST_MYSQL_URL, STRONGROOM_TEST_REDIS_URL
(host and port are taken from them; PostgreSQL trust auth, MariaDB root without password).
Prints a Markdown table.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_parts(env, default):
    u = urllib.parse.urlparse(os.environ.get(env, default))
    return u.hostname or "127.0.0.1", u.port


PG = url_parts("STRONGROOM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
MY = url_parts("STRONGROOM_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
RD = url_parts("STRONGROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379")


class Server:
    def __init__(self, name, argv):
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv + ["server", "-dev", "-dev-root-token-id=root",
                    f"-dev-listen-address=127.0.0.1:{self.port}", "-log-level=warn"],
            stdout=self.log, stderr=self.log)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/v1/sys/health", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        sys.exit(f"{name} did not come up")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/v1/" + path, data=data, method=method,
                                     headers={"X-Vault-Token": "root"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                raw = r.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            sys.exit(f"{self.name}: {method} {path}: {e.code} {e.read().decode()[:500]}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def psql(db, sql):
    return subprocess.run(["psql", "-h", PG[0], "-p", str(PG[1] or 5432), "-U", "postgres",
                           "-d", db, "-Atqc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def mysql(sql):
    return subprocess.run(["mysql", "-h", MY[0], "-P", str(MY[1] or 3306), "-uroot", "-N",
                           "-e", sql], check=True, capture_output=True, text=True).stdout.strip()


def redis(*args):
    return subprocess.run(["redis-cli", "-h", RD[0], "-p", str(RD[1] or 6379), *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def issue(srv, role, n, inflight):
    """n credentials, `inflight` at a time; returns (seconds, usernames)."""
    t = time.perf_counter()
    with ThreadPoolExecutor(inflight) as pool:
        out = list(pool.map(lambda _: srv.call("GET", f"database/creds/{role}")["data"]["username"],
                            range(n)))
    return time.perf_counter() - t, out


def revoke(srv, role):
    t = time.perf_counter()
    srv.call("PUT", f"sys/leases/revoke-prefix/database/creds/{role}")
    return time.perf_counter() - t


def run(srv, n, rows):
    srv.call("POST", "sys/mounts/database", {"type": "database"})
    tag = uuid.uuid4().hex[:8]
    # PostgreSQL: a fresh database.
    db = f"sr_cmpdb_{tag}"
    psql("postgres", f"CREATE DATABASE {db}")
    try:
        srv.call("POST", "database/config/pg", {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{PG[0]}:{PG[1] or 5432}/{db}",
            "username": "postgres", "password": "unused", "allowed_roles": "*",
            "verify_connection": False})
        srv.call("POST", "database/roles/pg", {
            "db_name": "pg", "default_ttl": "1h",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "revocation_statements": "DROP ROLE IF EXISTS \"{{name}}\";"})
        for c in (1, 8):
            secs, _ = issue(srv, "pg", 200, c)
            rows.append((srv.name, f"PostgreSQL creds issue, {c} in flight", f"{200 / secs:.0f}/s"))
        revoke(srv, "pg")
        secs, users = issue(srv, "pg", n, 8)
        secs = revoke(srv, "pg")
        left = psql("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = ANY(ARRAY[" +
                    ",".join("'" + u + "'" for u in users) + "])")
        rows.append((srv.name, f"PostgreSQL revoke-prefix of {n} leases",
                     f"{n / secs:.0f} leases/s ({left} users left)"))
    finally:
        psql("postgres", f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        psql("postgres", f"DROP DATABASE IF EXISTS {db}")
    # MariaDB.
    srv.call("POST", "database/config/my", {
        "plugin_name": "mysql-database-plugin",
        "connection_url": f"{{{{username}}}}:{{{{password}}}}@tcp({MY[0]}:{MY[1] or 3306})/",
        "username": "root", "password": "", "allowed_roles": "*", "verify_connection": False})
    srv.call("POST", "database/roles/my", {
        "db_name": "my", "default_ttl": "1h",
        "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        "revocation_statements": "DROP USER IF EXISTS '{{name}}'@'%';"})
    secs, users = issue(srv, "my", n, 8)
    secs = revoke(srv, "my")
    left = mysql("SELECT count(*) FROM mysql.user WHERE User IN (" +
                 ",".join("'" + u + "'" for u in users) + ")")
    rows.append((srv.name, f"MariaDB revoke-prefix of {n} leases",
                 f"{n / secs:.0f} leases/s ({left} users left)"))
    # Redis: an admin user of our own (OpenBao's plugin needs a password).
    admin, password = f"cmpdb_admin_{tag}", uuid.uuid4().hex
    redis("ACL", "SETUSER", admin, "on", f">{password}", "~*", "&*", "+@all")
    try:
        srv.call("POST", "database/config/rd", {
            "plugin_name": "redis-database-plugin", "host": RD[0], "port": RD[1] or 6379,
            "username": admin, "password": password, "allowed_roles": "*",
            "verify_connection": False})
        srv.call("POST", "database/roles/rd", {
            "db_name": "rd", "default_ttl": "1h",
            "creation_statements": json.dumps([f"~cmpdb{tag}:*", "+get"])})
        secs, users = issue(srv, "rd", n, 8)
        secs = revoke(srv, "rd")
        acl = set(redis("ACL", "USERS").split())
        left = sum(1 for u in users if u in acl)
        rows.append((srv.name, f"Redis revoke-prefix of {n} leases",
                     f"{n / secs:.0f} leases/s ({left} users left)"))
    finally:
        redis("ACL", "DELUSER", admin)


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--n", type=int, default=700)
    ap.add_argument("--strongroom", default=os.path.join(root, "target/release/strongroom"))
    ap.add_argument("--bao", default="bao")
    ap.add_argument("--servers", default="strongroom,openbao")
    a = ap.parse_args()
    rows = []
    servers = (("strongroom", [a.strongroom]), ("openbao", [a.bao]))
    for name, argv in (s for s in servers if s[0] in a.servers.split(",")):
        srv = Server(name, argv)
        try:
            run(srv, a.n, rows)
        finally:
            srv.stop()
    print(f"\n{os.cpu_count()} CPUs; issue: 200 credentials each; revoke: {a.n} leases\n")
    print("| server | workload | rate |\n|---|---|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
