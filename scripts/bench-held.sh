#!/usr/bin/env bash
# Benchmark (not a test): memory per held call in the container, through
# the proxy application and through the B2BUA (issue 4: under 4 KiB).
#
#   scripts/bench-held.sh proxy     # CALLS (10000) at RATE (500) cps, held HOLD_MS (90000)
#   scripts/bench-held.sh b2bua
#   scripts/bench-held.sh both
#
# Starts two SIPp UAS (the harness's bench-uas.xml on BACKENDS), the
# container (with the wrapper of bench-proxy.sh or bench-b2bua.sh, memory
# store, SHARDS shards), and one SIPp UAC (bench-uac.xml, -m CALLS -r RATE
# -l CALLS+1000 -d HOLD_MS). It samples the container's VmRSS (and VmHWM)
# from /proc/PID/status, and the live application sessions and jemalloc's
# allocated / active / resident heap from /_sb/metrics every SAMPLE_S (5)
# s. Setup ends at CALLS/RATE s; RFC 3261 keeps every INVITE transaction 64*T1 = 32 s after its final response
# (Timers L and M), so the "held" sample is taken at setup end + 35 s, when
# every call is still up (the first BYE leaves at HOLD_MS) and no INVITE
# transaction is left. Everything started is stopped by pid; every process
# runs under `timeout`. Same quiet gate as the other bench scripts.
# MEDIA_BASE (16000) and UAC_PORT (5090) move the SIPp media and UAC ports
# (to run beside another benchmark on the default ones).
# WARMUP=1 (the default) runs the same burst with 1 s calls first and
# waits for it to end: "per call" is then (held - before) over a process
# that has seen such a burst; per_call_cold_bytes counts from the fresh
# process (the burst's lasting growth included). WARMUP=0 skips it.
# SIP_T1_MS=50 runs the container with that T1 (transactions then linger
# 3.2 s), to tell the held calls' memory from their transactions'.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BENCH="${BENCH:-$(cd "$HERE/../../shared/bench" && pwd)}"
SB="${SB:-/tmp/sb-bench/switchboard}"; export SB
CALLS="${CALLS:-10000}"; RATE="${RATE:-500}"; HOLD_MS="${HOLD_MS:-90000}"
SAMPLE_S="${SAMPLE_S:-5}"; SHARDS="${SHARDS:-1}"; export SHARDS
MEDIA_BASE="${MEDIA_BASE:-16000}"; UAC_PORT="${UAC_PORT:-5090}"
WARMUP="${WARMUP:-1}"
BACKENDS="${BACKENDS:-127.0.0.1:5071 127.0.0.1:5072}"; export BACKENDS
TARGET=127.0.0.1:5080
PIDS=()

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

cleanup() {
  local i p
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    p="${PIDS[$i]}"
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
sessions() {  # HTTP_ADDR
  curl -s --max-time 1 "http://$1/_sb/metrics" | awk '/^sb_container_sessions[ {]/ {s += $NF} END {print s + 0}'
}
heap_kib() {  # HTTP_ADDR: jemalloc's allocated, active and resident KiB, tab-separated
  curl -s --max-time 1 "http://$1/_sb/metrics" | awk '
    /^sb_heap_allocated_bytes/ {a = $NF} /^sb_heap_active_bytes/ {c = $NF} /^sb_heap_resident_bytes/ {r = $NF}
    END {printf "%d\t%d\t%d", a / 1024, c / 1024, r / 1024}'
}

run() {  # proxy|b2bua
  local kind="$1" out i=0 hp wrapper cpid http t0 setup_end held_at t rss start_rss held_rss sess uac
  local cold_rss cold_heap start_heap held_heap=""
  out="$OUT/held-$kind"; mkdir -p "$out"
  gate
  for hp in $BACKENDS; do
    i=$((i + 1))
    timeout -k 5 400 sipp -sf "$BENCH/scenarios/bench-uas.xml" -i "${hp%:*}" -p "${hp##*:}" \
      -mi "${hp%:*}" -mp $((MEDIA_BASE + 10 * i)) -aa -nostdin -buff_size 4194304 \
      -trace_stat -stf "$out/uas$i.csv" -fd 5 < /dev/null > "$out/uas$i.out" 2>&1 &
    PIDS+=("$!")
  done
  if [ "$kind" = proxy ]; then wrapper="$HERE/bench-proxy.sh serve $SHARDS"
  else wrapper="$HERE/bench-b2bua.sh serve memory"; fi
  BENCH_TARGET="$TARGET" timeout -k 5 400 $wrapper < /dev/null > "$out/container.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 100); do ss -Hlun "src $TARGET" | grep -q . && break; sleep 0.1; done
  sleep 2
  cpid="$(pgrep -n -x switchboard -P "$(pgrep -d, -P "${PIDS[-1]}")" 2>/dev/null || true)"
  [ -n "$cpid" ] || cpid="$(pgrep -n -x switchboard -P "${PIDS[-1]}")"
  [ -n "$cpid" ] || { log "no container process"; cat "$out/container.log"; return 1; }
  http="$(sed -n 's/.* HTTP \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$out/container.log" | head -1)"
  cold_rss="$(rss_kib "$cpid")"; cold_heap="$(heap_kib "$http")"
  log "$kind: container pid $cpid, http $http, RSS before calls $cold_rss KiB"
  if [ "$WARMUP" = 1 ]; then
    # The same burst, each call held 1 s, then 35 s for its transactions
    # (BYE included) to end: the maps, queues and allocator pages the burst
    # grows stay with the process, so what the held calls add next is
    # what a held call costs a server that has seen such a burst.
    timeout -k 5 $((CALLS / RATE + 120)) sipp "$TARGET" -sf "$BENCH/scenarios/bench-uac.xml" \
      -i 127.0.0.1 -p "$UAC_PORT" -mi 127.0.0.1 -mp $((MEDIA_BASE + 100)) -r "$RATE" -rp 1000 -m "$CALLS" -l $((CALLS + 1000)) \
      -d 1000 -recv_timeout 10000 -timeout $((CALLS / RATE + 60))s -nostdin -buff_size 4194304 \
      $([ "$kind" = b2bua ] && echo "-s b2bua-bob") < /dev/null > "$out/warmup.out" 2>&1
    log "$kind: warm-up burst done (sipp exit $?), waiting 35 s"
    sleep 35
  fi
  start_rss="$(rss_kib "$cpid")"; start_heap="$(heap_kib "$http")"
  log "$kind: RSS before the held calls $start_rss KiB (sessions $(sessions "$http"))"
  uac=(timeout -k 5 $((CALLS / RATE + HOLD_MS / 1000 + 90)) sipp "$TARGET" -sf "$BENCH/scenarios/bench-uac.xml"
       -i 127.0.0.1 -p "$UAC_PORT" -mi 127.0.0.1 -mp $((MEDIA_BASE + 100)) -r "$RATE" -rp 1000 -m "$CALLS" -l $((CALLS + 1000))
       -d "$HOLD_MS" -recv_timeout 10000 -timeout $((CALLS / RATE + HOLD_MS / 1000 + 60))s -nostdin
       -buff_size 4194304 -trace_stat -stf "$out/uac.csv" -fd 5)
  [ "$kind" = b2bua ] && uac+=(-s b2bua-bob)
  "${uac[@]}" < /dev/null > "$out/uac.out" 2>&1 &
  local uac_pid=$!; PIDS+=("$uac_pid")
  t0=$(date +%s)
  setup_end=$((CALLS / RATE)); held_at=$((setup_end + 35))
  printf 't_s\trss_kib\thwm_kib\tsessions\theap_allocated_kib\theap_active_kib\theap_resident_kib\n' > "$out/rss.tsv"
  printf '%s\t%s\t%s\t%s\t%s\n' 0 "$start_rss" "$(hwm_kib "$cpid")" "$(sessions "$http")" "$(heap_kib "$http")" >> "$out/rss.tsv"
  held_rss=""
  while kill -0 "$uac_pid" 2>/dev/null; do
    sleep "$SAMPLE_S"
    t=$(( $(date +%s) - t0 ))
    rss="$(rss_kib "$cpid")"; sess="$(sessions "$http")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$rss" "$(hwm_kib "$cpid")" "$sess" "$(heap_kib "$http")" >> "$out/rss.tsv"
    if [ -z "$held_rss" ] && [ "$t" -ge "$held_at" ]; then
      held_rss="$rss"; held_heap="$(heap_kib "$http")"
      log "$kind: held sample at +${t}s: RSS $rss KiB, sessions $sess"
      printf '%s\t%s\t%s\n' "$t" "$rss" "$sess" > "$out/held.txt"
    fi
  done
  wait "$uac_pid"; local rc=$?
  # after the last BYE: transactions of the BYEs linger 32 s too
  sleep 35
  rss="$(rss_kib "$cpid")"; sess="$(sessions "$http")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$(( $(date +%s) - t0 ))" "$rss" "$(hwm_kib "$cpid")" "$sess" "$(heap_kib "$http")" >> "$out/rss.tsv"
  local ok fail
  ok="$(python3 - "$out/uac.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
h, last = rows[0], rows[-1]
print(last[h.index("SuccessfulCall(C)")], last[h.index("FailedCall(C)")])
EOF
)"
  log "$kind: uac exit $rc, successful/failed calls: $ok"
  per() { awk -v a="$1" -v b="$2" -v n="$CALLS" 'BEGIN{if (a != "" && b != "") printf "%.0f", (b - a) * 1024 / n}'; }
  echo "HELD kind=$kind shards=$SHARDS calls=$CALLS rate=$RATE hold_ms=$HOLD_MS warmup=$WARMUP uac_exit=$rc ok_failed=\"$ok\"" \
       "rss_cold_kib=$cold_rss rss_before_kib=$start_rss rss_held_kib=$held_rss hwm_kib=$(hwm_kib "$cpid") rss_after_kib=$rss sessions_after=$sess" \
       "heap_alloc_active_resident_kib: cold=${cold_heap//$'\t'/\/} before=${start_heap//$'\t'/\/} held=${held_heap//$'\t'/\/}" \
       "per_call_bytes=$(per "$start_rss" "$held_rss") per_call_cold_bytes=$(per "$cold_rss" "$held_rss")" \
       "per_call_heap_allocated_bytes=$(per "$(cut -f1 <<< "$start_heap")" "$(cut -f1 <<< "$held_heap")")" \
       | tee -a "$OUT/summary.txt"
  column -t "$out/rss.tsv" >&2
  cleanup
}

MODE="${1:-both}"
[ -x "$SB" ] || { echo "no switchboard binary at $SB" >&2; exit 2; }
OUT="${OUTDIR:-/tmp/sipbench/held-$(date -u +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
case "$MODE" in
  proxy|b2bua) run "$MODE" ;;
  both) run proxy; run b2bua ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
echo "results in $OUT"
