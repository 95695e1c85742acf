#!/usr/bin/env bash
# PKI issue over HTTP, interleaved A/B: one or more `strongroom server -dev` binaries and
# OpenBao's `bao server -dev`, all started once on loopback with the same PKI setup as
# bench/compare.sh (an EC root, role `bench`: EC P-256 keys, 1h TTL, certificates stored), then
# ROUNDS rounds of `wrk POST /v1/pki/issue/bench` against each server in turn (the order
# rotates every round, so a drift in the machine's load does not favour one server). Prints
# every run, then per server the median requests/s and its ratio to OpenBao's median, with the
# load average before and after. The servers idle while another is measured.
#
# Usage: bench/pki_ab.sh [name=/path/to/strongroom ...]
#        (default: strongroom=$CARGO_TARGET_DIR/release/strongroom; build it first with
#        cargo build --release -p strongroom-server --bins)
# Environment: ROUNDS=5 DURATION=10s CONNECTIONS=32 THREADS=2 BAO=/usr/local/bin/bao
#              PORT_BASE=18500 (loopback ports PORT_BASE, PORT_BASE+1, ...)
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT_BASE=${PORT_BASE:-18500}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
BAO=${BAO:-$(command -v bao || echo /usr/local/bin/bao)}

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

NAMES=()
URLS=()
if [ $# -eq 0 ]; then set -- "strongroom=$TARGET_DIR/release/strongroom"; fi
port=$PORT_BASE
for spec in "$@"; do
    name=${spec%%=*}
    bin=${spec#*=}
    [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
    "$bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
        -log-level=warn >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
    URLS+=("http://127.0.0.1:$port")
    port=$((port + 1))
done
"$BAO" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
    -log-level=warn >"$WORK/bao.log" 2>&1 &
PIDS+=("$!")
NAMES+=("openbao")
URLS+=("http://127.0.0.1:$port")

cat >"$WORK/issue.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"common_name":"svc.bench.example.com"}'
wrk.headers["X-Vault-Token"] = "root"
wrk.headers["Content-Type"] = "application/json"
LUA

for url in "${URLS[@]}"; do
    for _ in $(seq 1 200); do
        curl -sf -o /dev/null "$url/v1/sys/health" && break
        sleep 0.1
    done
    h=(-sf -o /dev/null -H "X-Vault-Token: root")
    curl "${h[@]}" -X POST "$url/v1/sys/mounts/pki" -d '{"type":"pki","config":{"max_lease_ttl":"87600h"}}'
    curl "${h[@]}" -X POST "$url/v1/pki/root/generate/internal" -d '{"common_name":"Bench Root","key_type":"ec","ttl":"8760h"}'
    curl "${h[@]}" -X POST "$url/v1/pki/roles/bench" -d '{"allowed_domains":"bench.example.com","allow_subdomains":true,"key_type":"ec","key_bits":256,"ttl":"1h"}'
    curl -sf -H "X-Vault-Token: root" -X POST "$url/v1/pki/issue/bench" \
        -d '{"common_name":"svc.bench.example.com"}' | grep -q 'BEGIN EC PRIVATE KEY'
done

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, $(nproc) CPUs; load average before: $(load)"
n=${#URLS[@]}
for round in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
        i=$(((k + round) % n))
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/issue.lua" "${URLS[$i]}/v1/pki/issue/bench")
        if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "non-2xx answers" >&2; exit 1; fi
        rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
        echo "round $round ${NAMES[$i]} $rps req/s (load $(load))"
        echo "$rps" >>"$WORK/rps.${NAMES[$i]}"
    done
done
echo "load average after: $(load)"
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
bao_med=$(median "$WORK/rps.openbao")
echo
echo "| server | median req/s | runs | vs OpenBao |"
echo "|---|---:|---|---:|"
for name in "${NAMES[@]}"; do
    med=$(median "$WORK/rps.$name")
    runs=$(paste -sd, "$WORK/rps.$name")
    printf '| %s | %s | %s | %.2fx |\n' "$name" "$med" "$runs" "$(echo "$med / $bao_med" | bc -l)"
done
