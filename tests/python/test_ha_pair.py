"""High availability on PostgreSQL, side by side: two `strongroom server` processes on one
database with `ha_enabled = "true"`, and (when `BAO_BIN` is set) two `bao server` processes on
another, driven with the same requests. `sys/leader` and `sys/health` must answer alike on the
active node, on the standby and on a sealed node, and `sys/ha-status` must list both nodes alike:
status, keys and values (times, addresses and cluster ids differ by nature and are compared by
shape or against each side's own config).

Needs PostgreSQL at STRONGROOM_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432); each side
gets a database of its own, dropped at the end.
"""

import os
import secrets
import socket
import subprocess
import time

import pytest

from security_pair import _free_port, raw_call
from test_hvac import PG_URL, _psql

HA_STANZA = """
storage "postgresql" {{
  connection_url = "{db_url}"
  ha_enabled     = "true"
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable     = true
}}
api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "https://127.0.0.1:{cport}"
disable_mlock = true
log_level     = "warn"
"""


class Node:
    """One server process (`binary server -config`) on its own loopback port."""

    def __init__(self, binary, workdir, db_url, name):
        self.port, self.cport = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cluster_addr = f"https://127.0.0.1:{self.cport}"
        cfg = os.path.join(workdir, f"{name}.hcl")
        with open(cfg, "w") as f:
            f.write(HA_STANZA.format(db_url=db_url, port=self.port, cport=self.cport))
        self.proc = subprocess.Popen(
            [binary, "server", "-config", cfg],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while True:
            try:
                status, _, _ = raw_call(self.url, "GET", "sys/seal-status", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"{binary} server -config {cfg} did not start")
            time.sleep(0.2)

    def call(self, method, path, body=None, token=None):
        return raw_call(self.url, method, path, body, token)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_active(node, deadline_s=30):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        status, body, _ = node.call("GET", "sys/leader")
        if status == 200 and body.get("is_self"):
            return body
        time.sleep(0.2)
    pytest.fail(f"{node.url} did not become the active node")


def observe(binary, workdir, side):
    """Start two HA nodes, initialise, unseal the first, wait until it leads, unseal the second;
    return what every probe answered ({probe: (status, body)}) and the nodes' addresses."""
    dbname = f"sr_ha_pair_{side}_{secrets.token_hex(4)}"
    _psql(PG_URL, f"CREATE DATABASE {dbname}")
    base = PG_URL.rpartition("/")[0]
    db_url = f"{base}/{dbname}?sslmode=disable"
    nodes = []
    try:
        nodes = [Node(binary, workdir, db_url, f"{side}{i}") for i in range(2)]
        a, b = nodes
        out = {}
        out["sealed leader"] = a.call("GET", "sys/leader")
        status, init, text = a.call(
            "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}
        )
        assert status == 200, text
        key = init["keys"][0]
        status, body, text = a.call("PUT", "sys/unseal", {"key": key})
        assert status == 200 and body["sealed"] is False, text
        wait_active(a)
        # The second node was started before the store was initialised: its unseal works.
        status, body, text = b.call("PUT", "sys/unseal", {"key": key})
        assert status == 200 and body["sealed"] is False, text
        time.sleep(1.5)
        for who, node in (("active", a), ("standby", b)):
            out[f"{who} leader"] = node.call("GET", "sys/leader")
            for q in ("", "?standbyok=true", "?perfstandbyok=true", "?standbycode=299"):
                out[f"{who} health{q}"] = node.call("GET", f"sys/health{q}")
        # `sys/ha-status` (`bao operator members`) lists the standby once it has checked in:
        # ask until both nodes show (OpenBao's standbys echo every few seconds).
        deadline = time.time() + 20
        while True:
            members = {who: node.call("GET", "sys/ha-status", token=init["root_token"]) for who, node in (("active", a), ("standby", b))}
            if all(st == 200 and len(body["data"]["nodes"]) == 2 for st, body, _ in members.values()):
                break
            assert time.time() < deadline, members
            time.sleep(0.5)
        for who, answer in members.items():
            out[f"{who} ha-status"] = answer
        return out, a, b
    finally:
        for n in nodes:
            n.stop()
        _psql(PG_URL, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def normalise(probe, body, a, b):
    """Replace what differs by nature with a marker naming what it must be."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for k in ("server_time_utc", "cluster_name", "cluster_id"):
        if k in body:
            assert body[k], (probe, k)
            body[k] = "<set>"
    if "active_time" in body:
        assert body["active_time"].endswith("Z") and "T" in body["active_time"], body
        body["active_time"] = "<time>"
    if "leader_address" in body:
        assert body["leader_address"] == a.url, (probe, body)
        body["leader_address"] = "<active api_addr>"
    if "nodes" in (body.get("data") or {}):
        # The envelope's ids differ by nature; OpenBao copies `data` to the top level here.
        assert body["nodes"] == body["data"]["nodes"], (probe, body)
        nodes = []
        by_url = {a.url: a, b.url: b}
        for n in body["data"]["nodes"]:
            n = dict(n)
            node = by_url.get(n["api_address"])
            assert node is not None, (probe, n)
            assert n["hostname"] == socket.gethostname(), (probe, n)
            assert n["cluster_address"] == node.cluster_addr, (probe, n)
            assert n["active_node"] == (node is a), (probe, n)
            if n["last_echo"] is not None:
                assert "T" in n["last_echo"] and n["last_echo"].endswith("Z"), (probe, n)
                n["last_echo"] = "<time>"
            n["hostname"] = "<host>"
            n["api_address"] = n["cluster_address"] = "<its own>"
            nodes.append(n)
        # The active node first (both list it so; the standbys' order is not part of the API).
        nodes.sort(key=lambda n: not n["active_node"])
        return {"nodes": nodes}
    if "leader_cluster_address" in body:
        assert body["leader_cluster_address"] == a.cluster_addr, (probe, body)
        body["leader_cluster_address"] = "<active cluster_addr>"
    return body


EXPECTED = {
    "sealed leader": (503, {"errors": ["Vault is sealed"]}),
    "active leader": (
        200,
        {
            "ha_enabled": True,
            "is_self": True,
            "active_time": "<time>",
            "leader_address": "<active api_addr>",
            "leader_cluster_address": "<active cluster_addr>",
        },
    ),
    "standby leader": (
        200,
        {
            "ha_enabled": True,
            "is_self": False,
            "leader_address": "<active api_addr>",
            "leader_cluster_address": "<active cluster_addr>",
        },
    ),
}


MEMBERS = {
    "nodes": [
        {"hostname": "<host>", "api_address": "<its own>", "cluster_address": "<its own>", "active_node": True, "last_echo": None, "version": "2.7.2"},
        {"hostname": "<host>", "api_address": "<its own>", "cluster_address": "<its own>", "active_node": False, "last_echo": "<time>", "version": "2.7.2"},
    ]
}
EXPECTED["active ha-status"] = (200, MEMBERS)
EXPECTED["standby ha-status"] = (200, MEMBERS)


def health(standby):
    return {
        "initialized": True,
        "sealed": False,
        "standby": standby,
        "replication_performance_mode": "primary",
        "replication_dr_mode": "disabled",
        "server_time_utc": "<set>",
        "version": "2.7.2",
        "cluster_name": "<set>",
        "cluster_id": "<set>",
    }


for q, code in (("", 200), ("?standbyok=true", 200), ("?perfstandbyok=true", 200), ("?standbycode=299", 200)):
    EXPECTED[f"active health{q}"] = (code, health(False))
for q, code in (("", 429), ("?standbyok=true", 200), ("?perfstandbyok=true", 429), ("?standbycode=299", 299)):
    EXPECTED[f"standby health{q}"] = (code, health(True))


def test_leader_and_health_of_an_ha_pair_match_openbao(tmp_path):
    sides = {"strongroom": os.environ.get("STRONGROOM_BIN")}
    if not sides["strongroom"]:
        pytest.fail("STRONGROOM_BIN is not set: run scripts/test-python.sh")
    if os.environ.get("BAO_BIN"):
        sides["openbao"] = os.environ["BAO_BIN"]
    for side, binary in sides.items():
        out, a, b = observe(binary, str(tmp_path), side)
        for probe, (status, body, text) in out.items():
            got = (status, normalise(probe, body, a, b))
            assert got == EXPECTED[probe], f"{side}: {probe}: {status} {text}"
            # Key order too: clients that print the JSON show it.
            if isinstance(body, dict):
                assert list(got[1]) == list(EXPECTED[probe][1]), f"{side}: {probe}: {text}"
