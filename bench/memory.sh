#!/usr/bin/env bash
# Server memory against the amount of data: `strongroom server` (release) on a SQLite store,
# N token leases created over HTTP, then all revoked with one revoke-prefix. Prints RSS when
# empty, after the creates, after the revocation (and how long it took), as a Markdown table.
#
# Usage: bench/memory.sh            Environment: TOKENS=100000 CLIENTS=8 PORT=18600
#                                   NO_BUILD=1 (use the release binary as it is)
#                                   SR=<binary> (another build, e.g. one without mimalloc)
#                                   WRAP="heaptrack -o /tmp/sr" (run the server under a tool)
#                                   HOLD=60 (keep the server up this long at the end, to look)
#                                   PERF=/tmp/revoke.data (`perf record -g` of the server
#                                   during the revocation only)
#
# The server's CPU seconds (utime + stime) over the creates and over the revocation are
# printed beside the wall times: on a shared machine they are the fairer figure.
#
# Besides VmRSS it prints the resident memory split as the kernel counts it: RssAnon (the
# heap: what the allocator holds) and RssFile (file pages mapped in, e.g. SQLite's mmap of
# the database), so a figure can be told apart from the page cache it maps.
set -euo pipefail

TOKENS=${TOKENS:-100000}
CLIENTS=${CLIENTS:-8}
PORT=${PORT:-18600}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
WORK=$(mktemp -d)
SR_PID=
cleanup() {
    [ -n "$SR_PID" ] && { kill "$SR_PID" 2>/dev/null || true; wait "$SR_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { echo "==> $*" >&2; }

if [ -z "${NO_BUILD:-}" ]; then
    say "building strongroom (release)"
    (cd "$ROOT_DIR" && CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --release -p strongroom-server --bin strongroom)
fi
SR=${SR:-$TARGET_DIR/release/strongroom}

cat >"$WORK/server.hcl" <<EOF
storage "sqlite" { path = "$WORK/strongroom.db" }
listener "tcp" {
  address     = "127.0.0.1:$PORT"
  tls_disable = true
}
EOF
${WRAP:-} "$SR" server -config "$WORK/server.hcl" -log-level=warn >"$WORK/server.log" 2>&1 &
SR_PID=$!

python3 - "$PORT" "$TOKENS" "$CLIENTS" "$SR_PID" <<'EOF' || { echo "the server log:" >&2; cat "$WORK/server.log" >&2; exit 1; }
import http.client, json, os, signal, subprocess, sys, threading, time

port, total, clients, pid = (int(a) for a in sys.argv[1:5])

def server_pid():
    # Under a wrapper (heaptrack, valgrind) the server is the wrapper's descendant.
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    return kids[-1] if kids and WRAPPED else pid

WRAPPED = bool(os.environ.get("WRAP"))

def rss():
    """VmRSS, RssAnon and RssFile in MiB."""
    out = {}
    with open(f"/proc/{server_pid()}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
    if "VmRSS" not in out:
        raise SystemExit("server is gone")
    return out

def cpu():
    """User + system CPU seconds of the server so far (/proc/<pid>/stat utime + stime)."""
    with open(f"/proc/{server_pid()}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def show(r):
    return f"{r['VmRSS']:.1f} MiB"

def split(r):
    return f"{r.get('RssAnon', 0):.1f} / {r.get('RssFile', 0):.1f}"

def call(conn, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None

for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/v1/sys/health")
        c.getresponse().read()
        break
    except OSError:
        time.sleep(0.1)
def fresh():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=600)
init = call(fresh(), "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
call(fresh(), "PUT", "/v1/sys/unseal", {"key": init["keys"][0]})
root = init["root_token"]
time.sleep(1)
empty = rss()

per = total // clients
def worker():
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(per):
        call(conn, "POST", "/v1/auth/token/create", {"policies": ["default"], "ttl": "768h"}, root)
threads = [threading.Thread(target=worker) for _ in range(clients)]
t0 = time.monotonic()
c0 = cpu()
for t in threads: t.start()
for t in threads: t.join()
created = time.monotonic() - t0
created_cpu = cpu() - c0
time.sleep(1)
full = rss()

load_before = load()
perf = None
if os.environ.get("PERF"):
    perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", os.environ["PERF"],
                             "-p", str(server_pid())], stderr=subprocess.DEVNULL)
    time.sleep(1)
t0 = time.monotonic()
c0 = cpu()
call(fresh(), "PUT", "/v1/sys/leases/revoke-prefix/auth/token/create", {"sync": True}, root)
revoked = time.monotonic() - t0
revoked_cpu = cpu() - c0
if perf:
    perf.send_signal(signal.SIGINT)
    perf.wait()
load_after = load()
c = fresh()
c.request("LIST", "/v1/sys/leases/lookup/auth/token/create/", headers={"X-Vault-Token": root})
r = c.getresponse()
body = r.read()
left = len(json.loads(body)["data"]["keys"]) if r.status == 200 else 0
if left:
    raise SystemExit(f"{left} leases left after revoke-prefix")
time.sleep(2)
after = rss()
n = per * clients
print()
print(f"{n:,} token leases over HTTP on SQLite, {clients} clients")
print()
print("| RSS empty | RSS with the leases | RSS after revoking them all | create rate (server CPU per create) | revoke-prefix time | revoke-prefix server CPU |")
print("|---:|---:|---:|---:|---:|---:|")
print(f"| {show(empty)} | {show(full)} | {show(after)} | {n / created:,.0f}/s ({created_cpu / n * 1e6:,.0f} µs) "
      f"| {revoked:.2f} s ({n / revoked:,.0f}/s) | {revoked_cpu:.2f} s ({revoked_cpu / n * 1e6:,.0f} µs per lease) |")
print()
print(f"RssAnon / RssFile (MiB): empty {split(empty)}, with the leases {split(full)}, after {split(after)}")
print(f"load average (1/5/15 min) before the revocation {load_before}, after it {load_after}")
hold = int(os.environ.get("HOLD", "0"))
if hold:
    sys.stdout.flush()
    print(f"holding the server (pid {server_pid()}) for {hold} s", file=sys.stderr, flush=True)
    time.sleep(hold)
EOF
