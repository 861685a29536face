//! Helpers shared by the tests of the `switchboard` binary: starting it,
//! running it with a deadline, reading `ua` banners and counts, and the
//! SIPp scenarios in `tests/scenarios`.

#![allow(dead_code, clippy::panic)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use sip_testkit::process::Proc;

/// The binary under test.
pub(crate) fn switchboard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

/// Runs a command to completion within `deadline`; returns its output.
pub(crate) fn run(cmd: Command, deadline: Duration) -> Output {
    sip_testkit::process::run(cmd, deadline).unwrap_or_else(|e| panic!("{e}"))
}

/// The path of a SIPp scenario in `tests/scenarios`.
pub(crate) fn scenario(name: &str) -> String {
    format!("{}/tests/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Starts `switchboard ua answer --listen 127.0.0.1:0 --transport T EXTRA`;
/// returns it with the transport token and address of its banner
/// (`switchboard ua answering on TLS:127.0.0.1:PORT`).
pub(crate) fn answer(transport: &str, extra: &[&str]) -> (Proc, String, SocketAddr) {
    let mut cmd = switchboard();
    cmd.args([
        "ua",
        "answer",
        "--listen",
        "127.0.0.1:0",
        "--transport",
        transport,
    ])
    .args(extra);
    let (proc, line) = sip_testkit::process::spawn_with_banner(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("ua answer did not start: {e}"));
    let (token, addr) = line
        .trim()
        .strip_prefix("switchboard ua answering on ")
        .and_then(|rest| rest.split_once(':'))
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"));
    let addr = addr
        .parse()
        .unwrap_or_else(|_| panic!("unexpected banner {line:?}"));
    (proc, token.to_owned(), addr)
}

/// `switchboard ua call ARGS`: (succeeded, failed, exit success).
pub(crate) fn call(args: &[&str], deadline: Duration) -> (u32, u32, bool) {
    let mut cmd = switchboard();
    cmd.args(["ua", "call"]).args(args);
    let out = run(cmd, deadline);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u32 {
        text.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no {name} in {text:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    (field("succeeded:"), field("failed:"), out.status.success())
}
