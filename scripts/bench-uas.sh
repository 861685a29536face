#!/usr/bin/env bash
# Benchmark (not a test): how many calls per second our answering UAS takes
# with no failed call and no retransmission, and its CPU per call, next to
# SIPp's own UAS in the same run. Drives the team harness in ../shared/bench
# (SIPp bench-uac.xml: INVITE, 100, 180, 200, ACK, PAUSE_MS hold, BYE, 200);
# both UASes send the same messages (`ua answer --ring` adds the 100 and 180).
#
#   scripts/bench-uas.sh                 # both targets, max clean CPS + fixed-rate CPU
#   RATE=500 DURATION=20 scripts/bench-uas.sh fixed
#
# Results go to $OUTDIR (default /tmp/sipbench/uas-<time>); copy the summary
# into docs/BENCHMARKS.md with the date and the exact command.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${BENCH:-$(cd ../shared/bench && pwd)}"
OUT="${OUTDIR:-/tmp/sipbench/uas-$(date +%Y%m%d-%H%M%S)}"
RATE="${RATE:-500}"; DURATION="${DURATION:-20}"
export PAUSE_MS="${PAUSE_MS:-500}"
mkdir -p "$OUT"

cargo build --release -q -p switchboard
SB="${CARGO_TARGET_DIR:-$PWD/target}/release/switchboard"
SIPP_UAS=127.0.0.1:5071
OUR_UAS=127.0.0.1:5075
ours() {
  START_BACKENDS=0 PROXY=custom LABEL=switchboard-uas \
    PROXY_START="$SB ua answer --ring --listen \$BENCH_TARGET" "$@"
}
sipp_uas() { BACKENDS="$SIPP_UAS" LABEL=sipp-uas "$@"; }

fixed() {
  echo "== fixed rate $RATE cps for $DURATION s"
  sipp_uas env OUTDIR="$OUT/fixed-sipp" "$BENCH/run-cps.sh" "$SIPP_UAS" "$RATE" "$DURATION" | grep -E '^RESULT' || true
  ours env OUTDIR="$OUT/fixed-switchboard" "$BENCH/run-cps.sh" "$OUR_UAS" "$RATE" "$DURATION" | grep -E '^RESULT' || true
}

maxcps() {
  echo "== highest clean call rate"
  sipp_uas env OUTDIR="$OUT/max-sipp" STEP_DURATION="${STEP_DURATION:-10}" \
    "$BENCH/find-max-cps.sh" "$SIPP_UAS" | grep -E '^MAXCPS' || true
  ours env OUTDIR="$OUT/max-switchboard" STEP_DURATION="${STEP_DURATION:-10}" \
    "$BENCH/find-max-cps.sh" "$OUR_UAS" | grep -E '^MAXCPS' || true
}

case "${1:-all}" in
  fixed) fixed ;;
  max) maxcps ;;
  all) fixed; maxcps ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
echo "results in $OUT"
