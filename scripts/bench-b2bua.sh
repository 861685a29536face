#!/usr/bin/env bash
# Benchmark (not a test): the container's B2BUA service with the memory
# store and with the Redis store, and Kamailio's stateful proxy (t_relay) as
# the nearest peer (the harness has no B2BUA), same run, same harness
# (../shared/bench: SIPp bench-uac.xml, INVITE, 100, 180, 200, ACK,
# PAUSE_MS hold, BYE, 200).
#
# The UAC calls `b2bua-bob` (EXTRA_UAC_ARGS="-s b2bua-bob"). The wrapper that
# runs the container (`serve`) first registers bob at the first backend
# (REGISTER To <sip:bob@TARGET>, Contact <sip:bob@127.0.0.1:5071>, Expires
# 3600), so leg B of every call goes to that SIPp UAS. Leg A is answered by
# the B2BUA itself.
#
#   scripts/bench-b2bua.sh fixed    # RATE (1000) cps for DURATION (15) s, REPS (3) times, interleaved
#   scripts/bench-b2bua.sh max      # highest clean CPS: memory store, Redis store
#   scripts/bench-b2bua.sh all
#
# Redis: the script starts its own `redis-server --port REDIS_PORT (6391)
# --save '' --appendonly no` and stops it (by pid) at the end; its CPU is
# reported as `redis` next to the container's (CPU_PIDS). Store round trips
# per call come from `INFO commandstats` (reset before each fixed run) over
# the successful calls. Environment as in bench-proxy.sh (SB, SHARDS, OUTDIR);
# the same quiet gate before every run; SKIP_KAM=1 (fixed: ours only).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BENCH="${BENCH:-$(cd "$HERE/../../shared/bench" && pwd)}"
SB="${SB:-/tmp/sb-bench/switchboard}"; export SB
RATE="${RATE:-1000}"; DURATION="${DURATION:-15}"; REPS="${REPS:-3}"
STEP_DURATION="${STEP_DURATION:-10}"; SHARDS="${SHARDS:-1}"
REDIS_PORT="${REDIS_PORT:-6391}"
export PAUSE_MS="${PAUSE_MS:-500}"
TARGET_KAM=127.0.0.1:5060
TARGET_OURS=127.0.0.1:5080
REDIS_PID=""

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

# REGISTER bob (To sip:bob@TARGET) with CONTACT; retries until a 200.
register() {  # TARGET CONTACT_HOSTPORT
  python3 - "$1" "$2" <<'EOF'
import socket, sys, time, uuid
target, contact = sys.argv[1], sys.argv[2]
host, port = target.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); s.settimeout(0.5)
lp = s.getsockname()[1]
for _ in range(40):
    cid = uuid.uuid4().hex
    msg = (f"REGISTER sip:{target} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK{cid[:16]};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:bob@{target}>;tag={cid[:8]}\r\n"
           f"To: <sip:bob@{target}>\r\nCall-ID: {cid}\r\nCSeq: 1 REGISTER\r\n"
           f"Contact: <sip:bob@{contact}>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), (host, int(port)))
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        continue
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    print("REGISTER ->", line, file=sys.stderr)
    if " 200 " in line:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
EOF
}

# PROXY_START: the container (B2BUA + registrar only) as a child, bob
# registered, then wait; TERM from the harness stops the child.
serve() {  # STORE
  local store="$1" dir first child
  dir="$(mktemp -d /tmp/sb-bench-b2bua.XXXXXX)"
  first="${BACKENDS%% *}"
  cat > "$dir/container.toml" <<EOF
node = "bench"
store = "$store"
shards = $SHARDS

[listen]
udp = ["$BENCH_TARGET"]
http = "127.0.0.1:0"

[apps]
registrar = true
proxy = false
answer = false
b2bua = true
EOF
  # SIP_T1_MS: a shorter T1 (finished transactions linger 64*T1)
  [ -z "${SIP_T1_MS:-}" ] || printf '\n[sip]\nt1_ms = %s\n' "$SIP_T1_MS" >> "$dir/container.toml"
  cat "$dir/container.toml" >&2
  "$SB" container --config "$dir/container.toml" &
  child=$!
  trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' TERM INT
  for _ in $(seq 1 50); do
    ss -Hlun "src $BENCH_TARGET" | grep -q . && break; sleep 0.1
  done
  register "$BENCH_TARGET" "$first" || { echo "REGISTER failed" >&2; kill -TERM $child; exit 1; }
  wait $child
}

start_redis() {
  ss -Hltn "src 127.0.0.1:$REDIS_PORT" | grep -q . && { echo "port $REDIS_PORT in use" >&2; exit 1; }
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    > "$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  log "redis-server pid $REDIS_PID on $REDIS_PORT"
}
stop_redis() {
  [ -n "$REDIS_PID" ] || return 0
  kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=""
}

ours() {  # memory|redis cmd...
  local kind="$1" store=memory extra=""; shift
  if [ "$kind" = redis ]; then store="redis://127.0.0.1:$REDIS_PORT"; extra="redis=$REDIS_PID"; fi
  PROXY=custom LABEL="switchboard-b2bua-$kind" PROXY_WARMUP=2 EXTRA_UAC_ARGS="-s b2bua-bob" \
    CPU_PIDS="$extra" SHARDS="$SHARDS" PROXY_START="$HERE/bench-b2bua.sh serve $store" "$@"
}
kam() { PROXY=kamailio-stateful LABEL=kamailio-stateful "$@"; }

# store commands per successful call of the run in DIR
round_trips() {  # DIR
  local dir="$1" ok
  redis-cli -p "$REDIS_PORT" info commandstats > "$dir/redis-commandstats.txt"
  ok="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["calls_success"])' "$dir/result.json" 2>/dev/null)"
  python3 - "$dir/redis-commandstats.txt" "${ok:-0}" <<'EOF' | tee -a "$OUT/summary.txt"
import re, sys
calls, total = {}, 0
for line in open(sys.argv[1]):
    m = re.match(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", line)
    if m and m.group(1) not in ("info", "config", "ping", "command", "client", "hello"):
        calls[m.group(1)] = int(m.group(2)); total += int(m.group(2))
ok = int(sys.argv[2]) or 1
print("STORE calls_ok=%s commands=%d per_call=%.2f %s" % (sys.argv[2], total, total / ok,
      " ".join("%s=%.2f" % (k, v / ok) for k, v in sorted(calls.items()))))
EOF
}

ours_memory() { ours memory "$@"; }
ours_redis() { ours redis "$@"; }

# One fixed-rate run after the gate; again (at most twice) when it did not
# start or another job's CPU contaminated it.
run_fixed() {  # WHO DIR TARGET
  local who="$1" dir="$2" target="$3" try d res
  for try in 0 1 2; do
    d="$dir"; [ "$try" = 0 ] || d="$dir-retry$try"
    gate
    [ "$who" = ours_redis ] && redis-cli -p "$REDIS_PORT" config resetstat > /dev/null
    res="$("$who" env OUTDIR="$d" "$BENCH/run-cps.sh" "$target" "$RATE" "$DURATION" | grep -E '^RESULT')"
    echo "${res:-NORESULT $d}" | tee -a "$OUT/summary.txt"
    [ "$who" = ours_redis ] && [ -n "$res" ] && round_trips "$d"
    case "$res" in ""|*contaminated=1*) log "run $d: no result or contaminated" ;; *) return 0 ;; esac
  done
}

fixed() {
  local r
  for r in $(seq 1 "$REPS"); do
    [ "${SKIP_KAM:-0}" = 1 ] || run_fixed kam "$OUT/fixed-kamailio-$r" "$TARGET_KAM"
    run_fixed ours_memory "$OUT/fixed-memory-$r" "$TARGET_OURS"
    run_fixed ours_redis "$OUT/fixed-redis-$r" "$TARGET_OURS"
  done
}

maxcps() {
  gate; ours memory env OUTDIR="$OUT/max-memory" STEP_DURATION="$STEP_DURATION" START_RATE="${START_RATE:-1000}" GROWTH="${GROWTH:-1.5}" \
    "$BENCH/find-max-cps.sh" "$TARGET_OURS" | grep -E '^MAXCPS' | tee -a "$OUT/summary.txt"
  gate; ours redis env OUTDIR="$OUT/max-redis" STEP_DURATION="$STEP_DURATION" START_RATE="${START_RATE:-1000}" GROWTH="${GROWTH:-1.5}" \
    "$BENCH/find-max-cps.sh" "$TARGET_OURS" | grep -E '^MAXCPS' | tee -a "$OUT/summary.txt"
}

MODE="${1:-all}"
case "$MODE" in
  serve) serve "${2:-memory}" ;;
  register) register "$2" "$3" ;;
  max|fixed|all)
    [ -x "$SB" ] || { echo "no switchboard binary at $SB" >&2; exit 2; }
    OUT="${OUTDIR:-/tmp/sipbench/b2bua-$(date -u +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
    start_redis; trap stop_redis EXIT
    case "$MODE" in max) maxcps ;; fixed) fixed ;; all) fixed; maxcps ;; esac
    echo "results in $OUT" ;;
  *) sed -n '2,24p' "$0"; exit 2 ;;
esac
