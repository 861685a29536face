#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the
# tests need when missing, then format, lint, unit + integration + doc tests,
# and the fuzz corpus replay (part of the sip-message tests).
#
#   ./scripts/test.sh            # everything
#   SKIP_LINT=1 ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests drive as real peers. Installed only when missing.
# sip-tester: SIPp, the interop peer of crates/switchboard/tests/interop.rs.
# redis-server: the session-store tests start their own server.
# baresip: a real softphone, registering and calling through the container
# (crates/switchboard/tests/softphone.rs).
PACKAGES=(sip-tester redis-server baresip)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ -z "${SKIP_LINT:-}" ]; then
  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy (all targets, warnings are errors)"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

log "sans-IO check: the protocol core links no runtime, socket or randomness crate"
for crate in sip-message sip-proto; do
  forbidden=$(cargo tree -p "$crate" -e normal --prefix none --locked 2>/dev/null \
    | grep -E '^(tokio|mio|socket2|async-std|smol|rand|getrandom|libc) ' || true)
  if [ -n "$forbidden" ]; then
    echo "$crate must stay sans-IO, but depends on:"; echo "$forbidden"; exit 1
  fi
done
echo "sip-message and sip-proto: no runtime, socket or randomness dependency"

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
log "doc tests"
cargo test --workspace --doc --locked

log "all tests passed"
