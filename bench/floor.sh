#!/usr/bin/env bash
# The HTTP floor: server CPU per request of `strongroom server -dev` (release) against the
# smallest server on the same stack (server/examples/http_floor.rs: tokio, axum-server,
# HTTP/1, mimalloc) answering a fixed JSON body of the same size, under the same wrk load.
# CPU is the server process's user + system time (/proc/PID/stat) over the run divided by the
# requests wrk completed, so the figure does not depend on how much CPU wrk itself takes.
#
# Points: transit encrypt of 64 random bytes, a KV v2 read, a transit batch of 100 x 64 B
# (per item), with and without a file audit device, and token create.
#
# Usage: bench/floor.sh        Environment: DURATION=10s CONNECTIONS=32 THREADS=2 PORT=18500
#                              NO_BUILD=1 (use the release binaries as they are)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18500}
FLOOR_PORT=$((PORT + 1))
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { echo "==> $*" >&2; }
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install $tool)" >&2; exit 1; }
done

if [ -z "${NO_BUILD:-}" ]; then
    say "building strongroom and the floor server (release)"
    (cd "$ROOT_DIR" && CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --release -p strongroom-server \
        --bin strongroom --example http_floor)
fi
SR=$TARGET_DIR/release/strongroom
FLOOR=$TARGET_DIR/release/examples/http_floor
URL=http://127.0.0.1:$PORT
FURL=http://127.0.0.1:$FLOOR_PORT

PLAINTEXT=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(64)).decode())')
BATCH=$(python3 -c '
import base64, json, os
print(json.dumps({"batch_input": [{"plaintext": base64.b64encode(os.urandom(64)).decode()} for _ in range(100)]}))')
lua() { # name method body
    {
        echo "wrk.method = \"$2\""
        [ -n "$3" ] && printf 'wrk.body = [[%s]]\n' "$3"
        echo 'wrk.headers["X-Vault-Token"] = "root"'
        echo 'wrk.headers["Content-Type"] = "application/json"'
    } >"$WORK/$1.lua"
}
lua encrypt POST "{\"plaintext\":\"$PLAINTEXT\"}"
lua read GET ""
lua batch POST "$BATCH"
lua token POST '{"policies":["default"],"ttl":"1h"}'

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME URL LUA PID -> "requests cpu_us_per_request rps"
run() {
    local url=$2 lua=$3 pid=$4 before after out
    before=$(cpu_ticks "$pid")
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$lua" "$url")
    after=$(cpu_ticks "$pid")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out" >&2
        echo "non-2xx answers during the $1 run" >&2
        exit 1
    fi
    echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
hz, before, after = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
n = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(n, f"{(after - before) / hz * 1e6 / n:.1f}", f"{rps:.0f}")
' "$(getconf CLK_TCK)" "$before" "$after"
}

wait_up() {
    for _ in $(seq 1 200); do
        if curl -s -o /dev/null "$1/v1/sys/health"; then return 0; fi
        sleep 0.1
    done
    echo "server at $1 did not come up" >&2
    exit 1
}

start_floor() { # body bytes
    "$FLOOR" "127.0.0.1:$FLOOR_PORT" "$1" &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    wait_up "$FURL"
}
stop_floor() { kill "$FLOOR_PID"; wait "$FLOOR_PID" 2>/dev/null || true; }

say "starting strongroom server -dev on $URL"
# OpenBao refuses audit devices over the API unless the config allows it.
echo 'unsafe_allow_api_audit_creation = true' >"$WORK/audit.hcl"
"$SR" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$PORT" -log-level=warn \
    -config "$WORK/audit.hcl" >"$WORK/strongroom.log" 2>&1 &
SR_PID=$!
PIDS+=("$SR_PID")
wait_up "$URL"
h=(-sf -H "X-Vault-Token: root")
curl "${h[@]}" -o /dev/null -X POST "$URL/v1/sys/mounts/transit" -d '{"type":"transit"}'
curl "${h[@]}" -o /dev/null -X POST "$URL/v1/transit/keys/bench" -d '{"type":"aes256-gcm96"}'
curl "${h[@]}" -o /dev/null -X POST "$URL/v1/secret/data/bench" \
    -d '{"data":{"username":"app","password":"correct-horse-battery-staple"}}'
size() { curl "${h[@]}" -o /dev/null -w '%{size_download}' "$@"; }
ENC_SIZE=$(size -X POST "$URL/v1/transit/encrypt/bench" -d "{\"plaintext\":\"$PLAINTEXT\"}")
READ_SIZE=$(size "$URL/v1/secret/data/bench")
BATCH_SIZE=$(size -X POST "$URL/v1/transit/encrypt/bench" -d "$BATCH")

TABLE=$WORK/table
point() { # label sr_lua floor_size sr_path [per]
    local label=$1 l=$2 fsize=$3 path=$4 per=${5:-1} sr fl
    say "$label"
    sr=$(run "$label" "$URL$path" "$WORK/$l.lua" "$SR_PID")
    start_floor "$fsize"
    fl=$(run "$label floor" "$FURL$path" "$WORK/$l.lua" "$FLOOR_PID")
    stop_floor
    read -r _ scpu srps <<<"$sr"
    read -r _ fcpu frps <<<"$fl"
    python3 -c '
import sys
label, scpu, srps, fcpu, frps, per = sys.argv[1:]
scpu, fcpu, per = float(scpu), float(fcpu), int(per)
extra = f" ({scpu / per:.2f} us per item)" if per > 1 else ""
print(f"| {label} | {int(srps):,} | {scpu:.1f}{extra} | {int(frps):,} | {fcpu:.1f} | {scpu / fcpu:.2f}x |")
' "$label" "$scpu" "$srps" "$fcpu" "$frps" "$per" | tee -a "$TABLE" >&2
}

point "transit encrypt 64 B" encrypt "$ENC_SIZE" /v1/transit/encrypt/bench
point "KV v2 read" read "$READ_SIZE" /v1/secret/data/bench
point "transit batch 100 x 64 B" batch "$BATCH_SIZE" /v1/transit/encrypt/bench 100
TOKEN_SIZE=$(size -X POST "$URL/v1/auth/token/create" -d '{"policies":["default"],"ttl":"1h"}')
point "token create" token "$TOKEN_SIZE" /v1/auth/token/create

say "enabling a file audit device"
curl "${h[@]}" -o /dev/null -X POST "$URL/v1/sys/audit/file" \
    -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$WORK/audit.log\"}}"
point "audited transit encrypt 64 B" encrypt "$ENC_SIZE" /v1/transit/encrypt/bench
point "audited KV v2 read" read "$READ_SIZE" /v1/secret/data/bench

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) CPUs, $(uname -sr); server CPU per request"
echo
echo "| point | strongroom req/s | strongroom CPU µs/req | floor req/s | floor CPU µs/req | ratio |"
echo "|---|---:|---:|---:|---:|---:|"
cat "$TABLE"
