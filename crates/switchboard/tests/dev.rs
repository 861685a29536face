//! `switchboard dev`, the whole local cluster (sprayer, two edges, three
//! containers, shared memory store), driven by SIPp through the sprayer's
//! address over UDP and TCP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use sip_testkit::process::Proc;
use sip_testkit::sipp;

mod common;
use common::scenario;

/// Starts the cluster on ephemeral ports; returns it with the sprayer's
/// SIP and HTTP addresses.
fn dev() -> (Proc, SocketAddr, SocketAddr) {
    dev_with(&[])
}

fn dev_with(extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let mut cmd = common::switchboard();
    cmd.args(["dev", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(extra);
    let (proc, line) = sip_testkit::process::spawn_with_banner(cmd, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("dev did not start: {e}"));
    // "switchboard dev ready: SIP udp+tcp A HTTP B"
    let words: Vec<&str> = line.split_whitespace().collect();
    let sip = words[5].parse().unwrap_or_else(|_| panic!("{line:?}"));
    let http = words[7].parse().unwrap_or_else(|_| panic!("{line:?}"));
    (proc, sip, http)
}

fn calls(
    to: SocketAddr,
    service: &str,
    scenario_args: &[&str],
    transport: &str,
    n: u32,
) -> (u32, u32, String) {
    let mut cmd = sipp::command();
    cmd.args(scenario_args)
        .args([&to.to_string(), "-s", service, "-p", "0", "-t", transport])
        .args(["-m", &n.to_string(), "-r", "20", "-d", "100"]);
    let out =
        sip_testkit::process::run(cmd, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (ok, failed) = sipp::counts(&text).unwrap_or_else(|| panic!("no counts:\n{text}"));
    (ok, failed, text)
}

#[test]
fn dev_runs_on_a_redis_store() {
    let redis = session_store::testing::RedisServer::start();
    let (_dev, sip, _http) = dev_with(&["--store", &redis.url()]);
    let rr = scenario("uac-rr.xml");
    let (ok, failed, text) = calls(sip, "answer", &["-sf", &rr], "u1", 20);
    assert_eq!((ok, failed), (20, 0), "{text}");
}

#[test]
fn calls_reach_the_answer_service_through_sprayer_and_edges_over_udp_and_tcp() {
    let (_dev, sip, _http) = dev();
    let rr = scenario("uac-rr.xml");
    for t in ["u1", "t1"] {
        let (ok, failed, text) = calls(sip, "answer", &["-sf", &rr], t, 30);
        assert_eq!((ok, failed), (30, 0), "{t}:\n{text}");
    }
    // SIPp's built-in uac sends its BYE to the first address, not to our
    // Contact: the Call-ID affinity and the container's dialog index still
    // find the call.
    let (ok, failed, text) = calls(sip, "answer", &["-sn", "uac"], "u1", 20);
    assert_eq!((ok, failed), (20, 0), "{text}");
}

#[test]
fn a_registered_sipp_is_called_through_the_cluster() {
    let (_dev, sip, http) = dev();
    let uas_port = sipp::free_port(false);
    let mut uas = sipp::command();
    uas.args([
        "-sf",
        &scenario("uas-rr.xml"),
        "-p",
        &uas_port.to_string(),
        "-m",
        "40",
    ]);
    let _uas = sipp::background(uas).unwrap();
    // REGISTER through the sprayer (it lands on some container; the
    // containers share the store). With `rport` (RFC 3581) the response
    // comes back the way the request went: through the sprayer.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let reg = format!(
        "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-devreg;rport\r\n\
         From: <sip:service@{sip}>;tag=r\r\nTo: <sip:service@{sip}>\r\nCall-ID: devreg@test\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:service@127.0.0.1:{uas_port}>\r\nExpires: 600\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(reg.as_bytes(), sip).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    let r = String::from_utf8_lossy(&buf[..n]);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(from, sip, "the response comes from the sprayer's address");

    // Callers over UDP and over TCP (the proxy bridges to the UDP callee);
    // ACK and BYE follow the Record-Route token back through the cluster.
    for t in ["u1", "t1"] {
        let (ok, failed, text) = calls(sip, "service", &["-sf", &scenario("uac-rr.xml")], t, 20);
        assert_eq!((ok, failed), (20, 0), "{t}:\n{text}");
    }

    // The edges' health route, through the sprayer's HTTP port.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /_sb/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}
