"""Side-by-side probes of what a client without privileges can make the server hold (issue
#23, items 4 and 7): metrics series from invented paths, JSON bodies past the listener's
complexity limits, and connections that send half a request. Each probe runs against
`strongroom server -dev` and, where BAO_BIN is set, `bao server -dev`, and asserts the same
outcome unless a comment says why we are stricter.

The listener-limit probes add a second listener from a config file (`-config`) to both
servers, with OpenBao's option names and short timeouts so each takes about a second.
"""

import json
import os
import re
import socket
import time
import urllib.request

import pytest

from security_pair import BaoDev, Pair, _free_port, raw_call
from test_hvac import DevServer

TOO_MANY_STRINGS = "refused JSON input due to high complexity: exceeded maximum number of strings"
TOO_MUCH_MEMORY = (
    "refused JSON input due to high complexity: exceeded maximum estimated memory limits"
)

LIMITED_LISTENER = """
listener "tcp" {{
  address = "127.0.0.1:{port}"
  tls_disable = true
  http_read_header_timeout = "1s"
  http_read_timeout = "2s"
  max_request_json_strings = 10
  max_request_json_memory = 2000
}}
listener "tcp" {{
  address = "127.0.0.1:{write_port}"
  tls_disable = true
  http_write_timeout = "1s"
}}
"""


@pytest.fixture(scope="module")
def pair():
    p = Pair()
    yield p
    p.stop()


def strings_body(keys):
    return {"data": {f"k{i}": "v" for i in range(keys)}}


def metrics_text(url):
    """`sys/metrics` without a token (the -dev listeners of both servers allow it)."""
    with urllib.request.urlopen(f"{url}/v1/sys/metrics", timeout=30) as r:
        assert r.status == 200
        return r.read().decode()


def test_invented_paths_add_nothing_to_the_metrics(pair):
    for side in pair.sides:
        metrics_text(pair.sides[side][0])
    before = metrics_text(pair.strongroom_url)
    for i in range(300):
        pair.expect(403, "GET", f"rnd-{i}-probe/x", token="")
    for side, (url, _, _) in pair.sides.items():
        text = metrics_text(url)
        assert "rnd-" not in text, f"{side} shows an invented path in its metrics"
    # Ours keeps the same series (counted as mount "unknown"); OpenBao's in-memory sink also
    # reports runtime figures whose size moves, so only ours is measured.
    after = metrics_text(pair.strongroom_url)
    assert len(after) < len(before) + 1024, (len(before), len(after))


def test_existing_mounts_show_to_unauthenticated_readers_and_removed_ones_go(pair):
    # OpenBao labels its route metrics (`vault.route.<op>.<mount>-`) with existing mounts and
    # serves them to anyone when `unauthenticated_metrics_access` is set: so do we.
    pair.setup("POST", "sys/mounts/probe-team", {"type": "kv", "options": {"version": "1"}})
    pair.setup("PUT", "probe-team/k", {"v": "1"})
    pair.expect(200, "GET", "probe-team/k")
    for side, (url, _, _) in pair.sides.items():
        text = metrics_text(url)
        if side == "openbao" and "probe-team" not in text:
            # OpenBao's in-memory sink serves only the current 10 s interval: when the
            # requests above fell in the previous one, one more lands in this one.
            pair.call(side, "GET", "probe-team/k")
            text = metrics_text(url)
        assert "probe-team" in text, side
    pair.setup("DELETE", "sys/mounts/probe-team")
    # Ours drops a removed mount's series when the metrics are read; OpenBao's in-memory sink
    # keeps the last interval's figures for a minute, so only ours is checked.
    assert "probe-team" not in metrics_text(pair.strongroom_url)


def test_json_string_count_default_limit(pair):
    # "data" + 499 keys + 499 values = 999 strings; one key more is 1001, over 1000.
    pair.expect(200, "POST", "secret/data/strings-ok", strings_body(499))
    got = pair.expect(400, "POST", "secret/data/strings-many", strings_body(500))
    for side, (_, body, _) in got.items():
        assert body == {"errors": [TOO_MANY_STRINGS]}, side
    pair.expect(404, "GET", "secret/data/strings-many")


def test_json_limits_apply_before_authentication(pair):
    for path in ["auth/userpass/login/bob", "auth/token/create"]:
        got = pair.expect(400, "POST", path, strings_body(2000), token="")
        for side, (_, body, _) in got.items():
            assert body == {"errors": [TOO_MANY_STRINGS]}, (side, path)


def test_json_memory_default_limit(pair):
    # 1.5 million numbers at 24 estimated bytes each is past 32.5 MiB in a 3 MB body.
    body = ('{"data":{"a":[' + "1," * 1_500_000 + "1]}}").encode()
    got = pair.expect(400, "POST", "secret/data/numbers", body)
    for side, (_, parsed, _) in got.items():
        assert parsed == {"errors": [TOO_MUCH_MEMORY]}, side


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """{side: (limited listener url, root token, write-limited listener url)}."""
    sides, procs = {}, []

    def config(name):
        port, write_port = _free_port(), _free_port()
        cfg = tmp_path_factory.mktemp(name) / "listener.hcl"
        cfg.write_text(LIMITED_LISTENER.format(port=port, write_port=write_port))
        return cfg, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{write_port}"

    cfg, url, write_url = config("sr")
    sr = DevServer(f"-config={cfg}")
    procs.append(sr)
    sides["strongroom"] = (url, sr.root_token, write_url)
    if os.environ.get("BAO_BIN"):
        cfg, url, write_url = config("bao")
        procs.append(BaoDev(sr.root_token, f"-config={cfg}"))
        sides["openbao"] = (url, sr.root_token, write_url)
    yield sides
    for p in procs:
        p.stop()


def test_listener_json_limits(limited):
    cases = [
        (strings_body(10), TOO_MANY_STRINGS),
        ({"data": {"a": [1] * 200}}, TOO_MUCH_MEMORY),
        # Deep nesting runs into the memory estimate first.
        (('{"data":{"a":' + "[" * 600 + "1" + "]" * 600 + "}}").encode(), TOO_MUCH_MEMORY),
    ]
    for side, (url, root, _) in limited.items():
        for body, message in cases:
            status, parsed, text = raw_call(url, "POST", "secret/data/limited", body, root)
            assert (status, parsed) == (400, {"errors": [message]}), (side, text)
        status, _, text = raw_call(url, "POST", "secret/data/limited", {"data": {"a": "b"}}, root)
        assert status == 200, (side, text)


def read_until_closed(sock, limit=8):
    """What the server sends until it closes the connection, and how long that took."""
    sock.settimeout(limit)
    started, got = time.time(), b""
    while True:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            pytest.fail(f"connection still open after {limit}s; got {got!r}")
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got.decode(errors="replace"), time.time() - started


def test_half_sent_requests_are_cut_off(limited):
    half_body = (
        b"PUT /v1/secret/data/slow HTTP/1.1\r\nHost: x\r\nX-Vault-Token: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\":"
    )
    for side, (url, root, _) in limited.items():
        host, port = url.removeprefix("http://").split(":")
        # Nothing, then half a header: closed after http_read_header_timeout, no answer.
        for sent in [b"", b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n"]:
            with socket.create_connection((host, int(port))) as s:
                s.sendall(sent)
                got, took = read_until_closed(s)
            assert got == "", (side, sent, got)
            assert 0.8 <= took < 5, (side, sent, took)
        # Half a body: 500 with Go's read error after http_read_timeout, then closed.
        with socket.create_connection((host, int(port))) as s:
            s.sendall(half_body % root.encode())
            got, took = read_until_closed(s)
        assert got.startswith("HTTP/1.1 500"), (side, got)
        assert "connection: close" in got.lower(), (side, got)
        body = json.loads(got.split("\r\n\r\n", 1)[1])
        assert re.fullmatch(
            r"read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: i/o timeout", body["errors"][0]
        ), (side, body)
        assert 1.5 <= took < 6, (side, took)
        status, _, _ = raw_call(url, "GET", "secret/data/slow", token=root)
        assert status == 404, side


def test_a_client_that_stops_reading_is_cut_off(limited):
    # OpenBao's http_write_timeout is one deadline for the whole response; ours bounds each
    # stalled write (a slow but steady reader is served). A client that stops reading is cut
    # off by both.
    value = "x" * (6 * 1024 * 1024)
    for side, (_, root, url) in limited.items():
        status, _, text = raw_call(url, "POST", "secret/data/big", {"data": {"v": value}}, root)
        assert status == 200, (side, text[:200])
        host, port = url.removeprefix("http://").split(":")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        with s:
            s.sendall(
                b"GET /v1/secret/data/big HTTP/1.1\r\nHost: x\r\nX-Vault-Token: %s\r\n\r\n"
                % root.encode()
            )
            s.settimeout(30)
            first = s.recv(1)
            assert first == b"H", side
            time.sleep(2.5)
            got, _ = read_until_closed(s, limit=15)
        assert len(got) + 1 < len(value), (side, len(got))
