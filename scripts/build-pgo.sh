#!/usr/bin/env bash
# A profile-guided (PGO) release build of the switchboard binary.
#
#   scripts/build-pgo.sh [OUT]      # OUT default /tmp/sb-pgo/switchboard
#
# 1. builds the release binary instrumented (`-Cprofile-generate`);
# 2. trains it on the benchmark workloads, real SIPp calls through real
#    sockets (../shared/bench): the proxy application (scripts/bench-proxy.sh
#    fixed) and the B2BUA with the memory and the Redis store
#    (scripts/bench-b2bua.sh fixed), TRAIN_RATE cps (1000) for TRAIN_DURATION
#    s (10) each; the container writes its profile when it exits on SIGTERM;
# 3. merges the profiles (`llvm-profdata` from rustup's `llvm-tools`
#    component, which matches rustc's LLVM; installed when missing);
# 4. builds the release binary again with `-Cprofile-use` and copies it to
#    OUT (the merged profile next to it).
#
# The code is the same; only its layout and inlining follow the measured
# hot paths (which branches are taken, which functions are hot), which is
# what the instruction cache needs (docs/BENCHMARKS.md, "Profile-guided
# build"). Needs what the benchmarks need (sip-tester, redis-server, the
# harness in ../shared/bench). Takes about 6 minutes on 2 cores.
#
# Environment: PGO_TARGET (cargo target dir, default /work/target-pgo),
# TRAIN_RATE, TRAIN_DURATION, GATE (0 skips the quiet-machine wait).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="${1:-/tmp/sb-pgo/switchboard}"
TARGET="${PGO_TARGET:-/work/target-pgo}"
DATA="$TARGET/pgo-data"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

SYSROOT="$(rustc --print sysroot)"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
PROFDATA="$SYSROOT/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
  log "installing rustup component llvm-tools (llvm-profdata)"
  rustup component add llvm-tools
fi

rm -rf "$DATA"; mkdir -p "$DATA" "$(dirname "$OUT")"
log "1/4 instrumented build"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" RUSTFLAGS="-Cprofile-generate=$DATA" \
  cargo build --release --locked -p switchboard)
mkdir -p "$TARGET/pgo-bin"
cp "$TARGET/release/switchboard" "$TARGET/pgo-bin/switchboard-instrumented"
rm -f "$DATA"/*.profraw   # the build scripts' own runs were instrumented too

log "2/4 training"
TRAIN_OUT="$(mktemp -d /tmp/sb-pgo-train.XXXXXX)"
common=(SB="$TARGET/pgo-bin/switchboard-instrumented" RATE="${TRAIN_RATE:-1000}"
  DURATION="${TRAIN_DURATION:-10}" REPS=1 SKIP_KAM=1 GATE="${GATE:-1}")
env "${common[@]}" SHARDS_LIST=1 OUTDIR="$TRAIN_OUT/proxy" "$HERE/bench-proxy.sh" fixed
env "${common[@]}" OUTDIR="$TRAIN_OUT/b2bua" "$HERE/bench-b2bua.sh" fixed
ls "$DATA"/*.profraw > /dev/null 2>&1 || { echo "no profile written in $DATA" >&2; exit 1; }
grep -h '^RESULT' "$TRAIN_OUT"/*/summary.txt >&2 || true

log "3/4 merging $(ls "$DATA"/*.profraw | wc -l) profiles"
"$PROFDATA" merge -o "$DATA/merged.profdata" "$DATA"/*.profraw

log "4/4 optimised build"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" RUSTFLAGS="-Cprofile-use=$DATA/merged.profdata" \
  cargo build --release --locked -p switchboard)
cp "$TARGET/release/switchboard" "$OUT"
cp "$DATA/merged.profdata" "$(dirname "$OUT")/"
log "built $OUT"
