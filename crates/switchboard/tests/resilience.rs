//! Killing servers under load (issue 5): a sprayer, two edges and two
//! containers as separate processes, SIPp calling through the sprayer with
//! one socket per call (so calls spread over both edges).
//!
//! * An edge killed with SIGKILL during the load fails no call: the
//!   sprayer takes it out within its health time and the UDP
//!   retransmissions of the calls it carried reach the other edge.
//! * A container killed with SIGKILL: new calls succeed again within the
//!   edges' detection time; the calls that failed in between are counted
//!   and reported.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration;

use sip_testkit::process::Proc;
use sip_testkit::sipp;

mod common;
use common::{Scratch, http_get, metric, scenario, wait_for};

struct Cluster {
    sip: SocketAddr,
    /// (name, process, HTTP address)
    edges: Vec<(String, Option<Proc>, SocketAddr)>,
    /// (name, process, HTTP address)
    containers: Vec<(String, Option<Proc>, SocketAddr)>,
    _sprayer: Proc,
    /// The sprayer's /_sb/metrics address.
    sprayer_metrics: SocketAddr,
    _dir: Scratch,
}

fn command(args: &[&str], cfg: &std::path::Path) -> std::process::Command {
    let mut cmd = common::switchboard();
    cmd.args(args).arg(cfg);
    cmd
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_udp_tcp_port() -> u16 {
    for _ in 0..100 {
        let p = sipp::free_port(false);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// The sprayer on a free SIP port; edges and containers behind it.
fn cluster(name: &str) -> Cluster {
    let dir = Scratch::new(name);
    let sip = addr(sipp::free_port(false));
    let sprayer_http = addr(sipp::free_port(true));
    let mut containers = Vec::new();
    for c in ["c1", "c2"] {
        let (proc, _, (udp, http)) = common::start_with_ports(c, || {
            let udp = addr(sipp::free_port(false));
            let http = addr(sipp::free_port(true));
            let cfg = dir.write(
                &format!("{c}.toml"),
                &format!(
                    "node = \"{c}\"\npublic = \"{sip}\"\n[listen]\nudp = [\"{udp}\"]\nhttp = \"{http}\"\n"
                ),
            );
            (command(&["container", "--config"], &cfg), (udp, http))
        });
        containers.push((c.to_owned(), Some(proc), http));
        // The edges need the containers' SIP addresses too.
        dir.write(&format!("{c}.sip"), &udp.to_string());
    }
    let mut edges = Vec::new();
    for e in ["e1", "e2"] {
        let (proc, _, (port, http)) = common::start_with_ports(e, || {
            let port = free_udp_tcp_port();
            let http = addr(sipp::free_port(true));
            let mut text = format!(
                "node = \"{e}\"\npublic = \"{sip}\"\n[listen]\nudp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n\
                 http = \"{http}\"\n[health]\ninterval_ms = 200\ntimeout_ms = 200\nrise = 2\nfall = 2\n"
            );
            for (c, _, c_http) in &containers {
                let c_sip = std::fs::read_to_string(dir.0.join(format!("{c}.sip"))).unwrap();
                text.push_str(&format!(
                    "[[containers]]\nnode = \"{c}\"\nsip = \"{c_sip}\"\nhttp = \"{c_http}\"\n"
                ));
            }
            let cfg = dir.write(&format!("{e}.toml"), &text);
            (command(&["edge", "--config"], &cfg), (port, http))
        });
        edges.push((e.to_owned(), Some(proc), http));
        dir.write(&format!("{e}.sip"), &format!("127.0.0.1:{port}"));
    }
    let mut text = format!(
        "[[service]]\nname = \"sip\"\nlisten = \"{sip}\"\nprotocols = [\"udp\"]\ntarget = \"sip\"\n\n\
         [[service]]\nname = \"http\"\nlisten = \"{sprayer_http}\"\nprotocols = [\"tcp\"]\ntarget = \"http\"\n\n\
         [health]\ninterval_ms = 200\ntimeout_ms = 200\nfall = 2\nrise = 2\n"
    );
    for (e, _, e_http) in &edges {
        let e_sip = std::fs::read_to_string(dir.0.join(format!("{e}.sip"))).unwrap();
        text.push_str(&format!(
            "\n[[edges]]\nname = \"{e}\"\nsip = \"{e_sip}\"\nhttp = \"{e_http}\"\n"
        ));
    }
    let cfg = dir.write("sprayer.toml", &text);
    let (sprayer, _, metrics) = common::start_with_ports("sprayer", || {
        let metrics = addr(sipp::free_port(true));
        (
            command(
                &["sprayer", "--metrics", &metrics.to_string(), "--config"],
                &cfg,
            ),
            metrics,
        )
    });
    let cl = Cluster {
        sip,
        edges,
        containers,
        _sprayer: sprayer,
        sprayer_metrics: metrics,
        _dir: dir,
    };
    // Every edge sees both containers up.
    for (_, _, e_http) in &cl.edges {
        let e_http = *e_http;
        wait_for(
            "the edges see the containers",
            Duration::from_secs(20),
            || {
                let m = http_get(e_http, "/_sb/metrics")?;
                ["c1", "c2"]
                    .iter()
                    .all(|c| {
                        metric(
                            &m,
                            &format!("sb_edge_container_state{{node=\"{c}\",state=\"up\"}}"),
                        ) == Some(1)
                    })
                    .then_some(())
            },
        );
    }
    cl
}

/// Runs SIPp calls through the sprayer in a thread: (ok, failed, output).
fn load(sip: SocketAddr, calls: u32, rate: u32) -> std::thread::JoinHandle<(u32, u32, String)> {
    std::thread::spawn(move || {
        let mut cmd = sipp::command();
        cmd.args(["-sf", &scenario("uac-rr.xml"), &sip.to_string()])
            .args(["-s", "answer", "-t", "un", "-max_socket", "1000", "-p", "0"])
            .args([
                "-m",
                &calls.to_string(),
                "-r",
                &rate.to_string(),
                "-d",
                "300",
            ]);
        let out = common::run(cmd, Duration::from_secs(120));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (ok, failed) = sipp::counts(&text).unwrap_or_else(|| panic!("no counts:\n{text}"));
        (ok, failed, text)
    })
}

fn kill(p: &mut Option<Proc>) {
    let mut p = p.take().unwrap();
    p.0.kill().unwrap();
    p.0.wait().unwrap();
}

#[test]
fn killing_an_edge_under_load_fails_no_call() {
    let mut cl = cluster("kill-edge");
    let sip = cl.sip;
    let runner = load(sip, 300, 50);
    // Once both edges carry calls, kill one.
    let received = |http: SocketAddr| {
        http_get(http, "/_sb/metrics").and_then(|m| metric(&m, "sb_edge_sip_received_total"))
    };
    let (e1, e2) = (cl.edges[0].2, cl.edges[1].2);
    let before = wait_for("both edges carry calls", Duration::from_secs(20), || {
        let (a, b) = (received(e1)?, received(e2)?);
        (a >= 300 && b >= 300).then_some((a, b))
    });
    kill(&mut cl.edges[0].1);
    let (ok, failed, text) = runner.join().unwrap();
    let e2_after = received(e2).unwrap_or(0);
    eprintln!(
        "edge e1 killed (SIGKILL) after {} messages through it ({} through e2); e2 then carried {} more; calls: {ok} completed, {failed} failed",
        before.0,
        before.1,
        e2_after - before.1
    );
    assert_eq!((ok, failed), (300, 0), "{text}");
    // The sprayer's view, on its metrics port: e1 down, e2 up.
    let m = http_get(cl.sprayer_metrics, "/_sb/metrics").unwrap();
    assert!(
        m.contains("sprayer_edge_up{edge=\"e1\"} 0")
            && m.contains("sprayer_edge_up{edge=\"e2\"} 1"),
        "{m}"
    );
}

#[test]
fn killing_a_container_under_load_recovers_within_the_detection_time() {
    let mut cl = cluster("kill-container");
    let sip = cl.sip;
    let runner = load(sip, 300, 50);
    let c1 = cl.containers[0].2;
    wait_for("c1 takes calls", Duration::from_secs(20), || {
        let m = http_get(c1, "/_sb/metrics")?;
        (metric(&m, "sb_container_sessions_created_total")? >= 20).then_some(())
    });
    kill(&mut cl.containers[0].1);
    let (ok, failed, text) = runner.join().unwrap();
    eprintln!(
        "container c1 killed (SIGKILL; memory store, so its calls in progress are lost): \
         {ok} calls completed, {failed} failed"
    );
    assert_eq!(ok + failed, 300, "{text}");
    // After the detection time, every new call succeeds.
    let after = load(sip, 100, 50);
    let (ok, failed, text) = after.join().unwrap();
    eprintln!("after detection: {ok} of 100 new calls completed, {failed} failed");
    assert_eq!((ok, failed), (100, 0), "{text}");
}

/// Converged (issue 5): a SIP call enters through edge e1, an HTTP request
/// naming the call's session (the token of its Contact) through edge e2;
/// both reach the container that holds the session, which shows the HTTP
/// side what the SIP side wrote.
#[test]
fn a_sip_dialog_and_an_http_request_of_one_session_meet_through_different_edges() {
    let cl = cluster("converged");
    let e1_sip: SocketAddr = std::fs::read_to_string(cl._dir.0.join("e1.sip"))
        .unwrap()
        .parse()
        .unwrap();
    let e2_http = cl.edges[1].2;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:answer@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cv1;rport\r\n\
         From: <sip:dave@{me}>;tag=dv\r\nTo: <sip:answer@{}>\r\nCall-ID: converged@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:dave@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        cl.sip, cl.sip
    );
    sock.send_to(invite.as_bytes(), e1_sip).unwrap();
    let mut buf = vec![0u8; 65536];
    let ok = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer within 5 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            break text;
        }
    };
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let token = ok
        .split("sbt=")
        .nth(1)
        .and_then(|t| t.split([';', '>']).next())
        .unwrap()
        .to_owned();
    let (status, body) = common::http(
        e2_http,
        "GET",
        &format!("/answer/session?sbt={token}"),
        None,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let node = token.split('.').next().unwrap();
    assert_eq!(
        common::json_str(&body, "node").as_deref(),
        Some(node),
        "{body}"
    );
    assert!(
        body.contains(&format!("\"caller\":\"sip:dave@{me}\"")),
        "{body}"
    );
}
