#!/usr/bin/env bash
# Benchmark (not a test): the container's proxy application as a
# record-routing stateful proxy in front of the harness's two SIPp UAS
# backends, against Kamailio's stateful t_relay (PROXY=kamailio-stateful),
# same run, same harness (../shared/bench: SIPp bench-uac.xml, INVITE, 100,
# 180, 200, ACK, PAUSE_MS hold, BYE, 200; Record-Route, so ACK and BYE come
# back through the proxy).
#
#   scripts/bench-proxy.sh max            # highest clean CPS: kamailio, ours with 1 and 2 shards
#   scripts/bench-proxy.sh fixed          # CPU per call at RATE cps (default 1000) for DURATION s, REPS times, interleaved
#   scripts/bench-proxy.sh all            # both
#
# Environment: SB (the switchboard binary, default /tmp/sb-bench/switchboard,
# built once with CARGO_TARGET_DIR=/work/target-bench cargo build --release
# -p switchboard and copied there), RATE, DURATION, REPS, STEP_DURATION,
# SHARDS_LIST ("1 2"), OUTDIR, SKIP_KAM=1 (fixed: ours only, for A/B runs of two builds). Before every run the script waits (20 s
# polls, at most 15 min) until no sipp or kamailio it did not start is
# running and the 1-minute load average is below 1.0.
#
# Internal: `bench-proxy.sh serve SHARDS` is the PROXY_START command: it
# writes the container config from BENCH_TARGET and BACKENDS and execs the
# container in the foreground (the harness measures and stops that pid).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BENCH="${BENCH:-$(cd "$HERE/../../shared/bench" && pwd)}"
SB="${SB:-/tmp/sb-bench/switchboard}"; export SB
RATE="${RATE:-1000}"; DURATION="${DURATION:-15}"; REPS="${REPS:-3}"
STEP_DURATION="${STEP_DURATION:-10}"; SHARDS_LIST="${SHARDS_LIST:-1 2}"
export PAUSE_MS="${PAUSE_MS:-500}"
TARGET_KAM=127.0.0.1:5060
TARGET_OURS=127.0.0.1:5080

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# The machine rule: no foreign sipp/kamailio, 1-minute load below 1.0.
gate() {
  local waited=0 load foreign
  [ "${GATE:-1}" = 1 ] || return 0   # GATE=0: smoke runs only
  while :; do
    load="$(cut -d' ' -f1 /proc/loadavg)"
    foreign="$(pgrep -x 'sipp|kamailio' | tr '\n' ' ')"
    if [ -z "$foreign" ] && awk -v l="$load" 'BEGIN{exit !(l < 1.0)}'; then
      log "gate: quiet (load $load) after ${waited}s"; return 0
    fi
    if [ "$waited" -ge 900 ]; then
      log "gate: NOT quiet after 15 min (load $load, foreign pids: $foreign); measuring anyway"
      return 0
    fi
    sleep 20; waited=$((waited + 20))
  done
}

serve() {  # SHARDS
  local shards="$1" dir routes="" hp
  dir="$(mktemp -d /tmp/sb-bench-proxy.XXXXXX)"
  for hp in $BACKENDS; do routes="$routes${routes:+, }\"sip:$hp\""; done
  cat > "$dir/container.toml" <<EOF
node = "bench"
store = "memory"
shards = $shards

[listen]
udp = ["$BENCH_TARGET"]
http = "127.0.0.1:0"

[apps]
registrar = false
proxy = true
answer = false
b2bua = false
proxy_routes = [$routes]
EOF
  # SIP_T1_MS: a shorter T1 (finished transactions linger 64*T1)
  [ -z "${SIP_T1_MS:-}" ] || printf '\n[sip]\nt1_ms = %s\n' "$SIP_T1_MS" >> "$dir/container.toml"
  cat "$dir/container.toml" >&2
  exec "$SB" container --config "$dir/container.toml"
}

ours() {  # SHARDS cmd...
  local shards="$1"; shift
  PROXY=custom LABEL="switchboard-proxy-s$shards" PROXY_START="$HERE/bench-proxy.sh serve $shards" "$@"
}
kam() { PROXY=kamailio-stateful LABEL=kamailio-stateful "$@"; }

maxcps() {
  local s
  gate; kam env OUTDIR="$OUT/max-kamailio" STEP_DURATION="$STEP_DURATION" START_RATE="${START_RATE:-1000}" GROWTH="${GROWTH:-1.5}" \
    "$BENCH/find-max-cps.sh" "$TARGET_KAM" | grep -E '^MAXCPS' | tee -a "$OUT/summary.txt"
  for s in $SHARDS_LIST; do
    gate; ours "$s" env OUTDIR="$OUT/max-proxy-s$s" STEP_DURATION="$STEP_DURATION" START_RATE="${START_RATE:-1000}" GROWTH="${GROWTH:-1.5}" \
      "$BENCH/find-max-cps.sh" "$TARGET_OURS" | grep -E '^MAXCPS' | tee -a "$OUT/summary.txt"
  done
}

fixed() {
  local r s
  for r in $(seq 1 "$REPS"); do
    [ "${SKIP_KAM:-0}" = 1 ] || { gate; kam env OUTDIR="$OUT/fixed-kamailio-$r" "$BENCH/run-cps.sh" "$TARGET_KAM" "$RATE" "$DURATION" \
      | grep -E '^RESULT' | tee -a "$OUT/summary.txt"; }
    for s in $SHARDS_LIST; do
      gate; ours "$s" env OUTDIR="$OUT/fixed-proxy-s$s-$r" "$BENCH/run-cps.sh" "$TARGET_OURS" "$RATE" "$DURATION" \
        | grep -E '^RESULT' | tee -a "$OUT/summary.txt"
    done
  done
}

MODE="${1:-all}"
case "$MODE" in
  serve) serve "${2:-1}" ;;
  max|fixed|all)
    [ -x "$SB" ] || { echo "no switchboard binary at $SB" >&2; exit 2; }
    OUT="${OUTDIR:-/tmp/sipbench/proxy-$(date -u +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
    case "$MODE" in max) maxcps ;; fixed) fixed ;; all) fixed; maxcps ;; esac
    echo "results in $OUT" ;;
  *) sed -n '2,23p' "$0"; exit 2 ;;
esac
