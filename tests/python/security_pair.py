"""The security probe's harness: the same raw HTTP requests sent to `strongroom server -dev`
and, where the OpenBao binary is present (`BAO_BIN`, installed by scripts/test-python.sh), to
`bao server -dev`, so a probe asserts our outcome and that OpenBao's is the same.

A probe is written once, as an attacker with a limited token would send it:

    pair.setup("PUT", "sys/policies/acl/lim", {"policy": HCL})   # root, both servers, must be 2xx
    tok = pair.token(policies=["lim"])                            # one limited token per server
    pair.expect(403, "PUT", "sys/policies/acl/ST-PROTECTED", {...}, token=tok)

Nothing here is a mock: both sides are the real servers over real sockets.
"""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from test_hvac import DevServer


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_call(addr, method, path, body=None, token=None, headers=None, timeout=30):
    """One request; returns (status, parsed JSON body or None, raw text). Never raises on an
    HTTP error status: the status is what a probe compares."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["X-Vault-Token"] = token
    hdrs.update(headers or {})
    req = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return status, parsed, text


class BaoDev:
    """`bao server -dev` as a child process, on its own loopback port; `extra_args` go to the
    server (`-config=...` for listener options)."""

    def __init__(self, root_token, *extra_args):
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.root_token = root_token
        self.proc = subprocess.Popen(
            [
                os.environ["BAO_BIN"],
                "server",
                "-dev",
                f"-dev-root-token-id={root_token}",
                f"-dev-listen-address=127.0.0.1:{port}",
                *extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/v1/sys/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    pytest.fail("bao server -dev did not start")
                time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Pair:
    """Strongroom (always) and OpenBao (when `BAO_BIN` is set), driven with the same requests."""

    def __init__(self, *extra_args):
        self.sides = {}
        sr = DevServer(*extra_args)
        self.sides["strongroom"] = (sr.url, sr.root_token, sr)
        if os.environ.get("BAO_BIN"):
            bao = BaoDev(sr.root_token)
            self.sides["openbao"] = (bao.url, bao.root_token, bao)

    @property
    def strongroom_url(self):
        return self.sides["strongroom"][0]

    def stop(self):
        for _, _, proc in self.sides.values():
            proc.stop()

    def call(self, side, method, path, body=None, token=None, headers=None):
        """One request to one side. `token` is a per-side dict, a plain string, or None for
        the side's root token; pass token="" for no token at all."""
        url, root, _ = self.sides[side]
        if isinstance(token, dict):
            token = token[side]
        elif token is None:
            token = root
        return raw_call(url, method, path, body, token or None, headers)

    def both(self, method, path, body=None, token=None, headers=None):
        """The same request to every side: {side: (status, json, text)}."""
        return {s: self.call(s, method, path, body, token, headers) for s in self.sides}

    def setup(self, method, path, body=None):
        """A root request on every side that must succeed (2xx)."""
        for side, (status, _, text) in self.both(method, path, body).items():
            assert 200 <= status < 300, f"setup {method} {path} on {side}: {status} {text}"

    def token(self, **fields):
        """A token created by root with `fields` (policies, ttl, num_uses, type, ...) on every
        side: {side: token}."""
        out = {}
        for side in self.sides:
            status, body, text = self.call(side, "POST", "auth/token/create", fields)
            assert status == 200, f"token create on {side}: {status} {text}"
            out[side] = body["auth"]["client_token"]
        return out

    def expect(self, status, method, path, body=None, token=None, headers=None):
        """Send to every side and assert each answers `status` (an int, or a set of accepted
        ints). Returns {side: (status, json, text)} for further checks."""
        accepted = {status} if isinstance(status, int) else set(status)
        got = self.both(method, path, body, token, headers)
        wrong = {s: (st, text[:300]) for s, (st, _, text) in got.items() if st not in accepted}
        assert not wrong, f"{method} {path}: wanted {sorted(accepted)}, got {wrong}"
        return got

    def same(self, method, path, body=None, token=None, headers=None):
        """Send to every side and assert all answer the same status; returns our status."""
        got = self.both(method, path, body, token, headers)
        statuses = {s: st for s, (st, _, _) in got.items()}
        assert len(set(statuses.values())) == 1, (
            f"{method} {path}: sides differ: "
            + ", ".join(f"{s}={st} {got[s][2][:200]}" for s, st in statuses.items())
        )
        return statuses["strongroom"]


def quote(name):
    """A name as a path segment, percent-encoded (spaces become %20)."""
    return urllib.parse.quote(name, safe="")
