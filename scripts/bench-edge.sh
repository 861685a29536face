#!/usr/bin/env bash
# Benchmark (not a test): the edge (`switchboard edge`, stateless, Call-ID
# rendezvous hashing) in front of the harness's two SIPp UAS backends as
# its containers, against Kamailio's stateless dispatcher (Call-ID hash,
# PROXY=kamailio-stateless), same run, same harness (../shared/bench: SIPp
# bench-uac.xml, INVITE, 100, 180, 200, ACK, PAUSE_MS hold, BYE, 200).
#
# One difference in the message path: Kamailio record-routes, so the UAC's
# ACK and BYE carry a Route to it; the edge does not Record-Route itself (the
# containers stamp the cluster's address; a SIPp UAS does not), so the ACK
# and BYE reach it only because SIPp sends every message to its remote
# address, and it hashes them by Call-ID to the same backend. Both forward
# all seven messages of a call.
#
#   scripts/bench-edge.sh fixed     # RATE (1000) cps for DURATION (15) s, REPS (3) times, interleaved
#   scripts/bench-edge.sh max       # highest clean CPS of each
#   scripts/bench-edge.sh all
#   scripts/bench-edge.sh floor     # the floor: examples/floor_relay (no SIP work) at RATE, REPS times
#
# SB: the switchboard binary (default /tmp/sb-bench/switchboard); UDP_THREADS:
# the edge's [listen] udp_threads (default: unset, one per core); FLOOR: the
# floor_relay binary (default $CARGO_TARGET_DIR or target/release/examples).
#
# The edge's containers are node a and b, sip = the BACKENDS, no http (so
# the probes are SIP OPTIONS, which the harness UAS answers with -aa).
# Environment as in bench-proxy.sh; the same quiet gate before every run.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BENCH="${BENCH:-$(cd "$HERE/../../shared/bench" && pwd)}"
SB="${SB:-/tmp/sb-bench/switchboard}"; export SB
RATE="${RATE:-1000}"; DURATION="${DURATION:-15}"; REPS="${REPS:-3}"
STEP_DURATION="${STEP_DURATION:-10}"
export PAUSE_MS="${PAUSE_MS:-500}"
# Ports of their own (not the harness defaults 5060/5070/5071/5072/5090):
# another benchmark on the shared machine that starts between two steps of
# a search then makes the step wait (run-cps.sh's quiet wait, QUIET_WAIT_S)
# instead of failing on a port in use.
PORT_BASE="${PORT_BASE:-5160}"
TARGET_KAM="127.0.0.1:$PORT_BASE"
TARGET_OURS="127.0.0.1:$((PORT_BASE + 10))"
export BACKENDS="${BACKENDS:-127.0.0.1:$((PORT_BASE + 11)) 127.0.0.1:$((PORT_BASE + 12))}"
export UAC_PORT="${UAC_PORT:-$((PORT_BASE + 30))}"
export QUIET_WAIT_S="${QUIET_WAIT_S:-300}"
# The harness gives SIPp fixed media ports (UAS 16010/16020, UAC 16100)
# whatever the SIP ports; a UAC on a port another run's UAC holds fails
# every call. The last -mp wins: ours is PORT_BASE + 11000. (The two UAS
# cannot be told apart through EXTRA_UAS_ARGS, so theirs stay.)
export EXTRA_UAC_ARGS="${EXTRA_UAC_ARGS:--mp $((PORT_BASE + 11000))}"

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

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

serve() {
  local dir i=0 hp names=(a b c d)
  dir="$(mktemp -d /tmp/sb-bench-edge.XXXXXX)"
  {
    echo "node = \"bench-edge\""
    echo "public = \"$BENCH_TARGET\""
    echo
    echo "[listen]"
    echo "udp = [\"$BENCH_TARGET\"]"
    [ -z "${UDP_THREADS:-}" ] || echo "udp_threads = $UDP_THREADS"
    echo "http = \"127.0.0.1:0\""
    echo
    echo "# One SIPp socket sends every call: no per-source admission limit."
    echo "[limits]"
    echo "per_source_rps = 0"
    for hp in $BACKENDS; do
      echo
      echo "[[containers]]"
      echo "node = \"${names[$i]}\""
      echo "sip = \"$hp\""
      i=$((i + 1))
    done
  } > "$dir/edge.toml"
  cat "$dir/edge.toml" >&2
  exec "$SB" edge --config "$dir/edge.toml"
}

ours() { PROXY=custom LABEL=switchboard-edge PROXY_START="$HERE/bench-edge.sh serve" "$@"; }
kam() { PROXY=kamailio-stateless LABEL=kamailio-stateless "$@"; }
FLOOR="${FLOOR:-${CARGO_TARGET_DIR:-$HERE/../target}/release/examples/floor_relay}"
flr() { PROXY=custom LABEL=floor-relay PROXY_START="$FLOOR \$BENCH_TARGET \$BACKENDS" "$@"; }

# One fixed-rate run after the gate; again (at most twice) when it did not
# start or another job's CPU contaminated it.
run_fixed() {  # WHO DIR TARGET
  local who="$1" dir="$2" target="$3" try d res
  for try in 0 1 2; do
    d="$dir"; [ "$try" = 0 ] || d="$dir-retry$try"
    gate
    res="$("$who" env OUTDIR="$d" "$BENCH/run-cps.sh" "$target" "$RATE" "$DURATION" | grep -E '^RESULT')"
    echo "${res:-NORESULT $d}" | tee -a "$OUT/summary.txt"
    case "$res" in ""|*contaminated=1*) log "run $d: no result or contaminated" ;; *) return 0 ;; esac
  done
}

fixed() {
  local r
  for r in $(seq 1 "$REPS"); do
    run_fixed kam "$OUT/fixed-kamailio-$r" "$TARGET_KAM"
    run_fixed ours "$OUT/fixed-edge-$r" "$TARGET_OURS"
  done
}

floor() {  # the relay that does no SIP work, interleaved with our edge
  local r
  for r in $(seq 1 "$REPS"); do
    run_fixed flr "$OUT/floor-$r" "$TARGET_OURS"
    run_fixed ours "$OUT/floor-edge-$r" "$TARGET_OURS"
  done
}

maxcps() {  # MAX_TARGETS="kamailio edge" (default both)
  local t
  for t in ${MAX_TARGETS:-kamailio edge}; do
    gate
    case "$t" in
      kamailio) kam env OUTDIR="$OUT/max-kamailio" STEP_DURATION="$STEP_DURATION" START_RATE="${START_RATE:-1000}" \
                  GROWTH="${GROWTH:-1.5}" "$BENCH/find-max-cps.sh" "$TARGET_KAM" ;;
      edge) ours env OUTDIR="$OUT/max-edge" STEP_DURATION="$STEP_DURATION" START_RATE="${START_RATE:-1000}" \
              GROWTH="${GROWTH:-1.5}" "$BENCH/find-max-cps.sh" "$TARGET_OURS" ;;
    esac | grep -E '^MAXCPS' | tee -a "$OUT/summary.txt"
  done
}

MODE="${1:-all}"
case "$MODE" in
  serve) serve ;;
  max|fixed|all|floor)
    [ -x "$SB" ] || { echo "no switchboard binary at $SB" >&2; exit 2; }
    [ "$MODE" != floor ] || [ -x "$FLOOR" ] || {
      echo "no floor_relay at $FLOOR (cargo build --release -p edge --example floor_relay)" >&2; exit 2; }
    OUT="${OUTDIR:-/tmp/sipbench/edge-$(date -u +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
    case "$MODE" in max) maxcps ;; fixed) fixed ;; floor) floor ;; all) fixed; maxcps ;; esac
    echo "results in $OUT" ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac
