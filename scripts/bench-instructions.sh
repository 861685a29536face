#!/usr/bin/env bash
# Benchmark (not a test): user-space instructions (and, with
# TOOL=cachegrind, simulated cache misses) per proxied call, counted by
# valgrind, so that builds and peers compare without this VM's run-to-run
# noise. Each count is the difference between a run of 2N calls and a run
# of N calls, over N: start-up and the idle work of equal stretches cancel.
#
#   scripts/bench-instructions.sh inprocess           # sip-app's proxy_call bench (N=1000 calls)
#   scripts/bench-instructions.sh ours BINARY         # switchboard container, the proxy app, SIPp through ../shared/bench
#   scripts/bench-instructions.sh kamailio            # Kamailio's stateful t_relay, same harness, every process summed
#
# Environment: TOOL (callgrind | cachegrind: adds --cache-sim=yes and
# prints every event), N (in-process calls, 1000), RATE (real servers'
# call rate, 50: valgrind keeps up), OUTDIR. The real-server runs are
# 20 s and 40 s of SIPp calls at RATE through `bench-proxy.sh fixed`
# (ours) or the harness's `run-cps.sh` (Kamailio). memcpy's `rep movsb`
# threshold is raised (GLIBC_TUNABLES) so a large copy is counted by its
# vector loop, not once per byte.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BENCH="${BENCH:-$(cd "$ROOT/../shared/bench" && pwd)}"
TOOL="${TOOL:-callgrind}"
N="${N:-1000}"
RATE="${RATE:-50}"
OUT="${OUTDIR:-/tmp/sipbench/instructions-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
chmod 777 "$OUT"   # Kamailio's workers drop privileges and write here too
TUNABLES="glibc.cpu.x86_rep_movsb_threshold=4294967295"
case "$TOOL" in
  callgrind) VG=(valgrind --tool=callgrind) ;;
  cachegrind) VG=(valgrind --tool=cachegrind --cache-sim=yes) ;;
  *) echo "TOOL must be callgrind or cachegrind" >&2; exit 2 ;;
esac
out_flag() { echo "--$TOOL-out-file=$1"; }

# Sums the `summary:` lines of valgrind output files (one per process),
# event by event.
sum_files() {
  awk '/^events:/ && !ev {ev = $0} /^summary:/ {for (i = 2; i <= NF; i++) s[i] += $i; n = NF}
       END {printf "%s\n", ev; for (i = 2; i <= n; i++) printf "%d ", s[i]; printf "\n"}' "$@"
}

# Prints each event per call: (files of the 2N run - files of the N run) / calls.
per_call() {  # CALLS GLOB_SMALL GLOB_LARGE
  local calls="$1"
  paste <(sum_files $2) <(sum_files $3) | awk -v c="$calls" '
    NR == 1 {split($0, h, /[ \t]+/); next}
    {n = NF / 2; for (i = 1; i <= n; i++) printf "%s %.0f per call\n", h[i + 1], ($(i + n) - $i) / c}'
}

case "${1:-}" in
  inprocess)
    (cd "$ROOT" && cargo bench -p sip-app --bench proxy_call --no-run) >&2 || exit 1
    bin="$(ls -t "$ROOT"/target/release/deps/proxy_call-* | grep -v '\.d$' | head -1)"
    for calls in "$N" $((2 * N)); do
      GLIBC_TUNABLES="$TUNABLES" PROXY_CALLS="$calls" \
        "${VG[@]}" "$(out_flag "$OUT/inprocess.$calls.out")" "$bin" > "$OUT/inprocess.$calls.log" 2>&1
    done
    per_call "$N" "$OUT/inprocess.$N.out" "$OUT/inprocess.$((2 * N)).out"
    ;;
  ours)
    sb="${2:?usage: bench-instructions.sh ours BINARY}"
    wrap="$OUT/switchboard-under-valgrind"
    cat > "$wrap" <<EOF
#!/bin/sh
exec env GLIBC_TUNABLES=$TUNABLES ${VG[*]} $(out_flag "$OUT/ours.\$DUR.out") $sb "\$@"
EOF
    chmod +x "$wrap"
    for d in 20 40; do
      DUR=$d OUTDIR="$OUT/ours-$d" SB="$wrap" RATE="$RATE" DURATION=$d REPS=1 SHARDS_LIST=1 \
        SKIP_KAM=1 PROXY_WARMUP=8 "$HERE/bench-proxy.sh" fixed > "$OUT/ours-$d.log" 2>&1
      grep -ho "calls_success=[0-9]* calls_failed=[0-9]*" "$OUT/ours-$d/summary.txt"
    done
    per_call $((20 * RATE)) "$OUT/ours.20.out" "$OUT/ours.40.out"
    ;;
  kamailio)
    wrap="$OUT/kamailio-under-valgrind"
    cat > "$wrap" <<EOF
#!/bin/sh
exec ${VG[*]} --trace-children=yes $(out_flag "$OUT/kam.\$DUR.%p.out") kamailio "\$@"
EOF
    chmod +x "$wrap"
    for d in 20 40; do
      (cd "$BENCH" && DUR=$d KAMAILIO="$wrap" KAM_SHM_MB=256 PROXY=kamailio-stateful LABEL=kamailio-valgrind \
        PROXY_WARMUP=20 OUTDIR="$OUT/kam-$d" ./run-cps.sh 127.0.0.1:5060 "$RATE" "$d") > "$OUT/kam-$d.log" 2>&1
      grep -ho "calls_success=[0-9]* calls_failed=[0-9]*" "$OUT/kam-$d.log" | tail -1
    done
    per_call $((20 * RATE)) "$OUT/kam.20.*.out" "$OUT/kam.40.*.out"
    ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
echo "results in $OUT" >&2
