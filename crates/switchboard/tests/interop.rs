//! Interop on real sockets with real peers: `switchboard ua` against itself
//! and against SIPp (Debian `sip-tester`), over UDP and TCP, and with 10% of
//! the packets lost (SIPp's `-lost`, and a lossy UDP relay for our UAC).
//!
//! Every process is started on 127.0.0.1 with an ephemeral port where the
//! tool allows it, killed when the test ends, and waited for with a
//! deadline, so a failure cannot hang the run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output};

use sip_testkit::process::Proc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(90);

mod common;

/// Runs a command to completion with a deadline; returns its output.
fn run(cmd: Command) -> Output {
    common::run(cmd, DEADLINE)
}

/// Starts `switchboard ua answer` on an ephemeral port and returns it with
/// the address it reports.
fn answer(transport: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let (proc, _, addr) = common::answer(transport, extra);
    (proc, addr)
}

/// `switchboard ua call`: returns (succeeded, failed, exit success).
fn call(to: &str, transport: &str, count: u32, rate: u32, hold_ms: u32) -> (u32, u32, bool) {
    let (count, rate, hold) = (count.to_string(), rate.to_string(), hold_ms.to_string());
    common::call(
        &[
            "--to",
            to,
            "--transport",
            transport,
            "--count",
            &count,
            "--rate",
            &rate,
            "--hold",
            &hold,
        ],
        DEADLINE,
    )
}

/// SIPp's final statistics: (successful, failed) calls.
fn sipp_counts(stdout: &str) -> (u32, u32) {
    sip_testkit::sipp::counts(stdout)
        .unwrap_or_else(|| panic!("no call counts in SIPp output:\n{stdout}"))
}

fn sipp() -> Command {
    sip_testkit::sipp::command()
}

fn free_port(tcp: bool) -> u16 {
    sip_testkit::sipp::free_port(tcp)
}

/// Starts SIPp's built-in `uas` in the background, killed on drop.
fn sipp_uas(port: u16, tcp: bool, count: u32, extra: &[&str]) -> sip_testkit::sipp::Background {
    let mut cmd = sipp();
    cmd.args([
        "-sn",
        "uas",
        "-p",
        &port.to_string(),
        "-m",
        &count.to_string(),
    ]);
    if tcp {
        cmd.args(["-t", "t1"]);
    }
    cmd.args(extra);
    sip_testkit::sipp::background(cmd).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn our_uac_calls_our_uas_over_udp_and_tcp() {
    for transport in ["udp", "tcp"] {
        let (_uas, addr) = answer(transport, &[]);
        let to = if transport == "tcp" {
            format!("sip:service@{addr};transport=tcp")
        } else {
            format!("sip:service@{addr}")
        };
        let (ok, failed, success) = call(&to, transport, 20, 100, 10);
        assert_eq!((ok, failed, success), (20, 0, true), "{transport}");
    }
}

#[test]
fn sipp_uac_calls_our_uas_over_udp_and_tcp() {
    for (transport, sipp_t) in [("udp", "u1"), ("tcp", "t1")] {
        let (_uas, addr) = answer(transport, &[]);
        let mut cmd = sipp();
        cmd.args(["-sn", "uac", &addr.to_string(), "-p", "0", "-t", sipp_t])
            .args(["-m", "50", "-r", "50", "-d", "50"]);
        let out = run(cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(sipp_counts(&text), (50, 0), "{transport}:\n{text}");
        assert!(
            out.status.success(),
            "{transport}: SIPp exit {:?}",
            out.status
        );
    }
}

#[test]
fn our_uac_calls_sipp_uas_over_udp_and_tcp() {
    for (transport, tcp) in [("udp", false), ("tcp", true)] {
        let port = free_port(tcp);
        let _uas = sipp_uas(port, tcp, 20, &[]);
        let to = if tcp {
            format!("sip:service@127.0.0.1:{port};transport=tcp")
        } else {
            format!("sip:service@127.0.0.1:{port}")
        };
        let (ok, failed, success) = call(&to, transport, 20, 50, 20);
        assert_eq!((ok, failed, success), (20, 0, true), "{transport}");
    }
}

#[test]
fn our_uas_absorbs_retransmissions_when_sipp_loses_ten_percent() {
    let (_uas, addr) = answer("udp", &[]);
    let mut cmd = sipp();
    cmd.args(["-sn", "uac", &addr.to_string(), "-p", "0"])
        .args(["-m", "100", "-r", "50", "-d", "50", "-lost", "10"]);
    let out = run(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(sipp_counts(&text), (100, 0), "{text}");
}

/// A UDP relay that drops a seeded share of the datagrams in each
/// direction: the caller talks to the front socket; the relay talks to the
/// UAS from its own inner socket, and the UAS answers that socket (the
/// caller's Via has `rport`).
struct LossyRelay {
    front: UdpSocket,
    inner: UdpSocket,
}

impl LossyRelay {
    fn bind() -> LossyRelay {
        LossyRelay {
            front: UdpSocket::bind("127.0.0.1:0").unwrap(),
            inner: UdpSocket::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn front_addr(&self) -> SocketAddr {
        self.front.local_addr().unwrap()
    }

    /// Starts relaying to `back`, dropping `loss_percent` of the datagrams.
    fn start(self, back: SocketAddr, loss_percent: u64) {
        let drop_it = move |seed: &mut u64| {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (*seed >> 33) % 100 < loss_percent
        };
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (front, inner) = (self.front, self.inner);
        let (front2, inner2, client2) = (
            front.try_clone().unwrap(),
            inner.try_clone().unwrap(),
            Arc::clone(&client),
        );
        thread::spawn(move || {
            let mut seed = 1;
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = front2.recv_from(&mut buf) {
                *client2.lock().unwrap() = Some(from);
                if !drop_it(&mut seed) {
                    let _ = inner2.send_to(&buf[..n], back);
                }
            }
        });
        thread::spawn(move || {
            let mut seed = 2;
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, _)) = inner.recv_from(&mut buf) {
                let to = *client.lock().unwrap();
                if let Some(to) = to
                    && !drop_it(&mut seed)
                {
                    let _ = front.send_to(&buf[..n], to);
                }
            }
        });
    }
}

#[test]
fn our_uac_and_uas_complete_every_call_through_ten_percent_loss() {
    let relay = LossyRelay::bind();
    let front = relay.front_addr();
    // The UAS advertises the relay in its Contact, so the ACK and the BYE
    // cross the lossy relay too.
    let (_uas, uas_addr) = answer("udp", &["--advertise", &front.to_string()]);
    relay.start(uas_addr, 10);
    let (ok, failed, success) = call(&format!("sip:service@{front}"), "udp", 100, 50, 50);
    assert_eq!((ok, failed, success), (100, 0, true));
}
