#!/usr/bin/env bash
# Server CPU per request, interleaved A/B: one or more `strongroom server -dev` binaries, each
# started twice on loopback (once as is, once with a file audit device), with the setup of
# bench/floor.sh (transit key `bench`, KV v2 `secret/data/bench`). Then ROUNDS rounds: every
# point against every server in turn, the order rotating every round so a drift in the
# machine's load favours no one. CPU is the server process's user + system time
# (/proc/PID/stat) over the run divided by the requests wrk completed. The servers idle while
# another is measured. Prints every run, then the median per server and point, and the audit's
# cost (audited minus unaudited median) per binary.
#
# Points: transit encrypt of 64 random bytes, a KV v2 read (with and without audit), token
# create (`{"policies":["default"],"ttl":"1h"}`, without audit).
#
# Usage: bench/cpu_ab.sh name=/path/to/strongroom [name=/path/to/other ...]
# Environment: ROUNDS=3 DURATION=5s CONNECTIONS=32 THREADS=2 PORT_BASE=18600
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT_BASE=${PORT_BASE:-18600}
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
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install $tool)" >&2; exit 1; }
done
[ $# -gt 0 ] || { echo "usage: $0 name=/path/to/strongroom ..." >&2; exit 2; }

PLAINTEXT=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(64)).decode())')
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
lua token POST '{"policies":["default"],"ttl":"1h"}'
echo 'unsafe_allow_api_audit_creation = true' >"$WORK/audit.hcl"

NAMES=()
URLS=()
SPIDS=()
port=$PORT_BASE
for spec in "$@"; do
    name=${spec%%=*}
    bin=${spec#*=}
    [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
    for audited in "" "+audit"; do
        "$bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
            -log-level=warn -config "$WORK/audit.hcl" >"$WORK/$name$audited.log" 2>&1 &
        PIDS+=("$!")
        SPIDS+=("$!")
        NAMES+=("$name$audited")
        URLS+=("http://127.0.0.1:$port")
        port=$((port + 1))
    done
done

n=${#URLS[@]}
for i in $(seq 0 $((n - 1))); do
    url=${URLS[$i]}
    for _ in $(seq 1 200); do
        curl -sf -o /dev/null "$url/v1/sys/health" && break
        sleep 0.1
    done
    h=(-sf -o /dev/null -H "X-Vault-Token: root")
    curl "${h[@]}" -X POST "$url/v1/sys/mounts/transit" -d '{"type":"transit"}'
    curl "${h[@]}" -X POST "$url/v1/transit/keys/bench" -d '{"type":"aes256-gcm96"}'
    curl "${h[@]}" -X POST "$url/v1/secret/data/bench" \
        -d '{"data":{"username":"app","password":"correct-horse-battery-staple"}}'
    if [[ ${NAMES[$i]} == *+audit ]]; then
        curl "${h[@]}" -X POST "$url/v1/sys/audit/file" \
            -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$WORK/audit-$i.log\"}}"
    fi
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RESULTS=$WORK/results
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, $(nproc) CPUs; load average before: $(load)"
for round in $(seq 1 "$ROUNDS"); do
    for point in encrypt read token; do
        for k in $(seq 0 $((n - 1))); do
            i=$(((k + round) % n))
            name=${NAMES[$i]}
            # Token create is measured without audit only.
            if [ "$point" = token ] && [[ $name == *+audit ]]; then continue; fi
            case $point in
                encrypt) path=/v1/transit/encrypt/bench ;;
                read) path=/v1/secret/data/bench ;;
                token) path=/v1/auth/token/create ;;
            esac
            pid=${SPIDS[$i]}
            before=$(cpu_ticks "$pid")
            out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/$point.lua" "${URLS[$i]}$path")
            after=$(cpu_ticks "$pid")
            if echo "$out" | grep -q "Non-2xx"; then
                echo "$out" >&2
                echo "non-2xx answers from $name ($point)" >&2
                exit 1
            fi
            echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
hz, before, after = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
name, point, rnd = sys.argv[4:7]
n = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(rnd, name, point, n, f"{(after - before) / hz * 1e6 / n:.1f}", f"{rps:.0f}")
' "$(getconf CLK_TCK)" "$before" "$after" "$name" "$point" "$round" | tee -a "$RESULTS"
        done
    done
done
echo "load average after: $(load)"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for _, name, point, _, cpu, rps in rows:
    med.setdefault((name, point), []).append((float(cpu), float(rps)))
print()
print("| server | point | CPU µs/req (median) | runs | req/s (median) |")
print("|---|---|---:|---|---:|")
for (name, point), v in med.items():
    cpus = [c for c, _ in v]
    print(f"| {name} | {point} | {statistics.median(cpus):.1f} | {', '.join(f'{c:.1f}' for c in cpus)} "
          f"| {statistics.median(r for _, r in v):,.0f} |")
print()
names = sorted({n for n, _ in med if not n.endswith("+audit")})
for name in names:
    for point in ("encrypt", "read"):
        a, p = med.get((name + "+audit", point)), med.get((name, point))
        if a and p:
            d = statistics.median(c for c, _ in a) - statistics.median(c for c, _ in p)
            print(f"{name}: audit adds {d:.1f} µs per {point} request")
PY
