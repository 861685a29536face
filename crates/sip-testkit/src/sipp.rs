//! Driving SIPp (Debian `sip-tester`) from tests: the command line every
//! test uses, its final counts, a background instance killed on drop, and
//! a free port for a peer that cannot bind port 0 and report it.

use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use crate::process::{ProcessError, run};

/// `sipp -i 127.0.0.1 -nostdin -timeout 60s -timeout_error`: every test
/// run is bounded in time.
#[must_use]
pub fn command() -> Command {
    let mut c = Command::new("sipp");
    c.args([
        "-i",
        "127.0.0.1",
        "-nostdin",
        "-timeout",
        "60s",
        "-timeout_error",
    ]);
    c
}

/// SIPp's final statistics: (successful, failed) calls, cumulative column;
/// `None` when the output has no statistics.
#[must_use]
pub fn counts(stdout: &str) -> Option<(u32, u32)> {
    let count = |label: &str| -> Option<u32> {
        stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|c| c.trim().parse().ok())
    };
    Some((count("Successful call")?, count("Failed call")?))
}

/// A free port on 127.0.0.1 (UDP or TCP).
#[must_use]
pub fn free_port(tcp: bool) -> u16 {
    let port = if tcp {
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
    } else {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    port.map_or(0, |a| a.port())
}

/// A SIPp running in the background (`-bg`), killed (by pid) on drop.
#[derive(Debug)]
pub struct Background(u32);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

/// Why a background SIPp did not start.
#[derive(Debug, thiserror::Error)]
pub enum SippError {
    /// The command failed or hung.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// It printed no pid.
    #[error("SIPp did not start: {0}")]
    NoPid(String),
}

/// Starts `cmd` (a SIPp command line) with `-bg`; returns once its socket
/// is bound (SIPp's `-bg` returns after binding).
pub fn background(mut cmd: Command) -> Result<Background, SippError> {
    cmd.arg("-bg");
    let out = run(cmd, Duration::from_secs(30))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("PID=[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|p| p.parse().ok())
        .map(Background)
        .ok_or(SippError::NoPid(text))
}
