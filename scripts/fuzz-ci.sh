#!/usr/bin/env bash
# The fuzz step of CI (issue 21 item 1): builds the fuzz targets of fuzz/ with cargo-fuzz on
# the nightly toolchain into target/fuzz (apart from the stable builds), then runs each target
# for STRONGROOM_FUZZ_SECS seconds (default 60), two at a time, from its committed seed corpus
# (fuzz/corpus/<target>; what a run finds goes to target/fuzz/corpus/<target>, not into the
# repository). Any crash, out-of-memory or timeout fails the step; the input that caused it is
# kept under target/fuzz/artifacts/<target>/ and printed. See docs/fuzzing.md.
# Usage: scripts/fuzz-ci.sh [build]   (build: build the targets and stop)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${STRONGROOM_FUZZ_SECS:-60}"
JOBS="${STRONGROOM_FUZZ_JOBS:-2}"
# One input may take seconds when it generates an RSA key; a hang is far beyond that.
TIMEOUT="${STRONGROOM_FUZZ_TIMEOUT:-25}"
RSS_MB="${STRONGROOM_FUZZ_RSS_MB:-2048}"
TARGET_DIR="target/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "the nightly toolchain is needed for cargo fuzz (rustup toolchain install nightly)" >&2
  exit 1
fi

start=$(date +%s)
# No sanitizer: the crates are safe Rust (unsafe is denied), so AddressSanitizer would find
# nothing a panic does not; without it the build and each run are several times faster.
# Debug assertions and overflow checks stay on (cargo fuzz's default).
cargo +nightly fuzz build --sanitizer none --target-dir "$TARGET_DIR"
built=$(date +%s)
echo "fuzz targets built in $((built - start)) s"
# `fuzz-ci.sh build` only builds (test-all.sh does that in the background, while the tests
# run); the run then finds the targets up to date.
if [ "${1:-}" = build ]; then exit 0; fi

bin_dir="$TARGET_DIR/x86_64-unknown-linux-gnu/release"
mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p "$TARGET_DIR/logs"

run_target() {
  local t="$1"
  local work="$TARGET_DIR/corpus/$t" artifacts="$TARGET_DIR/artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  # New inputs go to the scratch corpus (first directory); the seeds are read, not written.
  local rc=0
  "$bin_dir/$t" "$work" "fuzz/corpus/$t" \
    -max_total_time="$SECS" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
    -artifact_prefix="$artifacts" -print_final_stats=1 \
    >"$TARGET_DIR/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$TARGET_DIR/logs/$t.rc"
}

rm -f "$TARGET_DIR"/logs/*.rc
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "== fuzz $t (${SECS} s)"
  run_target "$t" &
  running=$((running + 1))
done
wait

failed=()
for t in "${targets[@]}"; do
  if [ "$(cat "$TARGET_DIR/logs/$t.rc" 2>/dev/null || echo missing)" != 0 ]; then
    failed+=("$t")
  fi
done

for t in "${targets[@]}"; do
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$TARGET_DIR/logs/$t.log" | grep -o '[0-9]*$' || true)
  echo "fuzz $t: ${runs:-?} inputs in ${SECS} s"
done
if [ "${#failed[@]}" -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "== fuzz target $t FAILED; the end of its log:" >&2
    tail -n 40 "$TARGET_DIR/logs/$t.log" >&2
    echo "inputs kept in $TARGET_DIR/artifacts/$t/:" >&2
    ls -l "$TARGET_DIR/artifacts/$t/" >&2 || true
    # The input itself, in base64, so that it can be replayed from the CI log alone
    # (base64 -d > input; cargo +nightly fuzz run ... <target> input).
    for f in "$TARGET_DIR/artifacts/$t/"*; do
      [ -f "$f" ] || continue
      echo "-- $(basename "$f") (base64):" >&2
      head -c 65536 "$f" | base64 >&2
    done
  done
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash, out-of-memory or timeout ($(( $(date +%s) - start )) s in all)"
