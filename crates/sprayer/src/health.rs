//! Health of the edges: the rise/fall counter and the HTTP probe.
//!
//! The probe is one `GET /_sb/health HTTP/1.1` written by hand on a fresh
//! TCP connection (docs/CLUSTER.md): a `200` status line is up; any other
//! status, a malformed answer, a refused connection or no status line within
//! the timeout is a failure. Only the status line is read.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Counts consecutive results; flips after `fall` failures (up -> down) or
/// `rise` successes (down -> up). Edges start up: a sprayer takes traffic
/// from its first second, and a dead edge is out after `fall` probes.
#[derive(Debug, Clone)]
pub(crate) struct RiseFall {
    up: bool,
    streak: u32,
    rise: u32,
    fall: u32,
}

impl RiseFall {
    pub(crate) fn new(rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            up: true,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    /// Records one probe result; returns the new state when it flipped.
    pub(crate) fn record(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            // A result agreeing with the state resets the opposite streak.
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak >= needed {
            self.up = !self.up;
            self.streak = 0;
            Some(self.up)
        } else {
            None
        }
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeFailure {
    /// No connection or no status line in time: the edge is unreachable.
    Unreachable(String),
    /// The edge answered, not 200 (draining, overloaded, broken).
    Status(u16),
    /// The answer was not an HTTP status line.
    Garbage,
}

impl ProbeFailure {
    /// An unreachable edge is dead; one that answers is alive but refusing
    /// new work (its existing TCP connections are left to finish).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, ProbeFailure::Unreachable(_))
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeFailure::Unreachable(why) => write!(f, "unreachable: {why}"),
            ProbeFailure::Status(s) => write!(f, "status {s}"),
            ProbeFailure::Garbage => f.write_str("not an HTTP answer"),
        }
    }
}

/// The longest status line read.
const MAX_STATUS_LINE: usize = 1024;

/// One health probe of `addr` within `timeout`.
pub(crate) async fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(timeout, probe_inner(addr)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeFailure::Unreachable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

async fn probe_inner(addr: SocketAddr) -> Result<(), ProbeFailure> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| ProbeFailure::Unreachable(e.to_string()))?;
    let _ = s.set_nodelay(true);
    let req = format!(
        "GET /_sb/health HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: switchboard-sprayer\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| ProbeFailure::Unreachable(e.to_string()))?;
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0usize;
    loop {
        let Some(free) = buf.get_mut(len..) else {
            return Err(ProbeFailure::Garbage);
        };
        if free.is_empty() {
            return Err(ProbeFailure::Garbage);
        }
        let n = s
            .read(free)
            .await
            .map_err(|e| ProbeFailure::Unreachable(e.to_string()))?;
        if n == 0 {
            return Err(ProbeFailure::Unreachable(
                "connection closed before a status line".into(),
            ));
        }
        len += n;
        let got = buf.get(..len).unwrap_or_default();
        if let Some(end) = got.windows(2).position(|w| w == b"\r\n") {
            return status_ok(got.get(..end).unwrap_or_default());
        }
    }
}

/// `HTTP/1.x 200 ...` is up.
fn status_ok(line: &[u8]) -> Result<(), ProbeFailure> {
    let line = std::str::from_utf8(line).map_err(|_| ProbeFailure::Garbage)?;
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(ProbeFailure::Garbage);
    }
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or(ProbeFailure::Garbage)?;
    if code == 200 {
        Ok(())
    } else {
        Err(ProbeFailure::Status(code))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn falls_after_n_failures_rises_after_m_successes() {
        let mut c = RiseFall::new(3, 2);
        assert!(c.is_up());
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None, "a success resets the fall streak");
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(false));
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(false), None, "a failure resets the rise streak");
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(true));
        assert_eq!(c.record(true), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_ok(b"HTTP/1.1 200 OK"), Ok(()));
        assert_eq!(status_ok(b"HTTP/1.0 200"), Ok(()));
        assert_eq!(
            status_ok(b"HTTP/1.1 503 Service Unavailable"),
            Err(ProbeFailure::Status(503))
        );
        assert_eq!(status_ok(b"SIP/2.0 200 OK"), Err(ProbeFailure::Garbage));
        assert_eq!(status_ok(b"HTTP/1.1 abc"), Err(ProbeFailure::Garbage));
        assert_eq!(status_ok(b"\xff\xfe"), Err(ProbeFailure::Garbage));
    }

    #[tokio::test]
    async fn probe_of_a_closed_port_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = probe(addr, Duration::from_secs(2)).await;
        assert!(r.unwrap_err().is_unreachable());
    }

    #[tokio::test]
    async fn probe_of_a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            // Hold the connection open, answer nothing.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let r = probe(addr, Duration::from_millis(100)).await;
        assert!(r.unwrap_err().is_unreachable());
        hold.abort();
    }

    #[tokio::test]
    async fn probe_reads_a_split_status_line() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 512];
            let _ = s.read(&mut req).await.unwrap();
            s.write_all(b"HTTP/1.1 2").await.unwrap();
            s.flush().await.unwrap();
            tokio::task::yield_now().await;
            s.write_all(b"00 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        assert_eq!(probe(addr, Duration::from_secs(2)).await, Ok(()));
        srv.await.unwrap();
    }
}
