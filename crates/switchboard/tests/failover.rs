//! Calls that survive the death of their container (issue 6): three
//! `switchboard container` processes on one real Redis, one `switchboard
//! edge` in front that learns them from their announcements in Redis, SIPp placing held calls: calls the answering service
//! takes, and B2BUA calls to a SIPp callee registered through the edge.
//! The container holding the most calls is killed with SIGKILL while they
//! are held; every call must still complete its re-INVITE and its BYE
//! through a survivor, which loads the session from Redis, and the B2BUA
//! calls' other legs get their re-INVITE and BYE from the survivor.
//!
//! The containers send their own requests (leg B) through the edge, as a
//! cluster does (docs/CLUSTER.md): the callee sees the cluster's address
//! for the whole call, whichever container speaks. (SIPp, like many UAs,
//! keeps sending a call's messages to the address the call came from.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use session_store::testing::RedisServer;
use sip_testkit::process::{Proc, spawn_with_banner};
use sip_testkit::sipp;

mod common;
use common::{Scratch, http, http_get, json_str, metric, transact, wait_for};

const CALLS: u32 = 30;
const B2BUA_CALLS: u32 = 20;
const HTTP_SESSIONS: u32 = 9;

struct Node {
    name: String,
    proc: Option<Proc>,
    http: SocketAddr,
}

fn start_container(dir: &Scratch, name: &str, public: SocketAddr, store: &str) -> Node {
    let (proc, _banner, http) = common::start_with_ports(name, || {
        let udp = sipp::free_port(false);
        let http = sipp::free_port(true);
        let cfg = dir.write(
            &format!("{name}.toml"),
            &format!(
                "node = \"{name}\"\npublic = \"{public}\"\nedges = [\"{public}\"]\nstore = \"{store}\"\n\n\
                 [listen]\nudp = [\"127.0.0.1:{udp}\"]\nhttp = \"127.0.0.1:{http}\"\n\n\
                 [apps]\nanswer = true\nring = true\n"
            ),
        );
        let mut cmd = common::switchboard();
        cmd.arg("container").arg("--config").arg(&cfg);
        (cmd, http)
    });
    Node {
        name: name.to_owned(),
        proc: Some(proc),
        http: format!("127.0.0.1:{http}").parse().unwrap(),
    }
}

/// The edge takes its containers from their announcements in Redis
/// (`members`), not from a static list.
fn start_edge(dir: &Scratch, sip: SocketAddr, members: &str) -> (Proc, SocketAddr) {
    let (proc, _banner, http) = common::start_with_ports("edge", || {
        let http = sipp::free_port(true);
        let text = format!(
            "node = \"e1\"\npublic = \"{sip}\"\nmembers = \"{members}\"\nmembers_interval_ms = 200\n\n\
             [listen]\nudp = [\"{sip}\"]\nhttp = \"127.0.0.1:{http}\"\n\n\
             [health]\ninterval_ms = 200\ntimeout_ms = 200\nrise = 2\nfall = 2\n"
        );
        let cfg = dir.write("edge.toml", &text);
        let mut cmd = common::switchboard();
        cmd.arg("edge").arg("--config").arg(&cfg);
        (cmd, http)
    });
    (proc, format!("127.0.0.1:{http}").parse().unwrap())
}

fn sessions(node: &Node) -> Option<u64> {
    let m = http_get(node.http, "/_sb/metrics")?;
    metric(
        &m,
        &format!("sb_container_sessions{{node=\"{}\"}}", node.name),
    )
}

/// ACKs for 2xx the node received (calls confirmed).
fn acks(node: &Node) -> Option<u64> {
    let m = http_get(node.http, "/_sb/metrics")?;
    metric(
        &m,
        &format!("sb_container_acks_total{{node=\"{}\"}}", node.name),
    )
}

fn loaded(node: &Node) -> u64 {
    let m = http_get(node.http, "/_sb/metrics").unwrap_or_default();
    metric(
        &m,
        &format!(
            "sb_container_sessions_loaded_total{{node=\"{}\"}}",
            node.name
        ),
    )
    .unwrap_or(0)
}

/// Redis, three containers on it (c1, c2, c3) and an edge that learns
/// them from Redis, once the edge sees all three announced and up.
fn cluster_on_redis(
    name: &str,
) -> (
    RedisServer,
    Scratch,
    SocketAddr,
    Vec<Node>,
    Proc,
    SocketAddr,
) {
    let redis = RedisServer::start();
    let store = redis.url();
    let dir = Scratch::new(name);
    let edge_sip: SocketAddr = format!("127.0.0.1:{}", sipp::free_port(false))
        .parse()
        .unwrap();
    let nodes: Vec<Node> = ["c1", "c2", "c3"]
        .iter()
        .map(|name| start_container(&dir, name, edge_sip, &store))
        .collect();
    let (edge, edge_http) = start_edge(&dir, edge_sip, &store);
    wait_for(
        "the edge sees three containers up",
        Duration::from_secs(20),
        || {
            let m = http_get(edge_http, "/_sb/metrics")?;
            (metric(&m, "sb_edge_members_announced") == Some(3)
                && ["c1", "c2", "c3"].iter().all(|n| {
                    metric(
                        &m,
                        &format!("sb_edge_container_state{{node=\"{n}\",state=\"up\"}}"),
                    ) == Some(1)
                }))
            .then_some(())
        },
    );
    (redis, dir, edge_sip, nodes, edge, edge_http)
}

#[test]
fn held_calls_survive_a_kill_9_of_their_container() {
    let (_redis, _dir, edge_sip, mut nodes, _edge, edge_http) = cluster_on_redis("failover");

    // Converged: a SIP call to the answering service, then an HTTP request
    // naming the call's session (the token of its Contact) through the
    // edge's HTTP port: the same container serves it and sees what the SIP
    // side wrote.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:answer@{edge_sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-conv1;rport\r\n\
         From: <sip:carol@{me}>;tag=cv\r\nTo: <sip:answer@{edge_sip}>\r\nCall-ID: conv@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:carol@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), edge_sip).unwrap();
    let mut buf = vec![0u8; 65536];
    let ok = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer within 5 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            break text;
        }
    };
    let field = |text: &str, name: &str| -> String {
        text.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l[name.len() + 1..].trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let to = field(&ok, "to");
    let contact = field(&ok, "contact");
    let target = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let token = target
        .split("sbt=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             From: <sip:carol@{me}>;tag=cv\r\nTo: {to}\r\nCall-ID: conv@test\r\n\
             CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sock.send_to(in_dialog("ACK", 1, "z9hG4bK-conv2").as_bytes(), edge_sip)
        .unwrap();
    let (status, body) = http(
        edge_http,
        "GET",
        &format!("/answer/session?sbt={token}"),
        None,
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_str(&body, "session").as_deref(),
        Some(token.as_str()),
        "{body}"
    );
    let owner = token.split('.').next().unwrap();
    assert_eq!(
        json_str(&body, "node").as_deref(),
        Some(owner),
        "SIP and HTTP meet on one container: {body}"
    );
    assert!(
        body.contains("\"calls\":1") && body.contains(&format!("\"caller\":\"sip:carol@{me}\"")),
        "{body}"
    );
    sock.send_to(in_dialog("BYE", 2, "z9hG4bK-conv3").as_bytes(), edge_sip)
        .unwrap();
    let bye = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("a BYE answer within 5 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("CSeq: 2 BYE") {
            break text;
        }
    };
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    wait_for(
        "the converged call's session ends",
        Duration::from_secs(10),
        || nodes.iter().all(|n| sessions(n) == Some(0)).then_some(()),
    );

    // HTTP sessions: created through the edge, each with an attribute.
    let web: Vec<(String, String)> = (0..HTTP_SESSIONS)
        .map(|i| {
            let (status, body) = http(
                edge_http,
                "POST",
                "/answer/session",
                None,
                &format!("{{\"n\":{i}}}"),
            );
            assert_eq!(status, 200, "{body}");
            assert!(
                body.contains("Set-Cookie: SBSESSION=") || body.contains("set-cookie: SBSESSION="),
                "{body}"
            );
            (
                json_str(&body, "session").unwrap(),
                json_str(&body, "node").unwrap(),
            )
        })
        .collect();

    // The B2BUA callee: SIPp registered as bob through the edge.
    let uas_port = sipp::free_port(false);
    let mut uas = sipp::command();
    uas.args(["-sf", &common::scenario("uas-reinvite.xml")])
        .args(["-p", &uas_port.to_string(), "-m", &B2BUA_CALLS.to_string()]);
    let uas_thread = std::thread::spawn(move || {
        let out = common::run(uas, Duration::from_secs(90));
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    let reg = transact(
        edge_sip,
        &format!(
            "REGISTER sip:{edge_sip} SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-fo-reg\r\n\
             From: <sip:bob@{edge_sip}>;tag=r1\r\nTo: <sip:bob@{edge_sip}>\r\nCall-ID: fo-reg@test\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:bob@127.0.0.1:{uas_port}>\r\nExpires: 600\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    assert!(reg.starts_with("SIP/2.0 200"), "{reg}");

    // SIPp: held calls (6 s each), each with a re-INVITE and a BYE after
    // the hold, all through the edge: CALLS to the answering service,
    // B2BUA_CALLS back to back to bob.
    let b2bua_thread = std::thread::spawn(move || {
        let mut cmd = sipp::command();
        cmd.args(["-sf", &common::scenario("uac-reinvite.xml")])
            .args(["-s", "b2bua-bob", "-t", "u1", "-p", "0"])
            .args(["-m", &B2BUA_CALLS.to_string(), "-r", "20", "-d", "6000"])
            .arg(edge_sip.to_string());
        let out = common::run(cmd, Duration::from_secs(90));
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    let sipp_thread = std::thread::spawn(move || {
        let mut cmd = sipp::command();
        cmd.args(["-sf", &common::scenario("uac-reinvite.xml")])
            .args(["-s", "answer", "-t", "u1", "-p", "0"])
            .args(["-m", &CALLS.to_string(), "-r", "30", "-d", "6000"])
            .arg(edge_sip.to_string());
        let out = common::run(cmd, Duration::from_secs(90));
        String::from_utf8_lossy(&out.stdout).into_owned()
    });

    // Every call is up and held (its session exists and the caller's ACK
    // arrived: a call still ringing when its container dies is lost, as
    // its transactions are): find the container holding the most. The
    // converged call above was ACKed too.
    let held: Vec<u64> = wait_for("all calls answered", Duration::from_secs(20), || {
        let acks: Option<u64> = nodes.iter().map(acks).sum();
        if acks? < u64::from(1 + CALLS + B2BUA_CALLS) {
            return None;
        }
        let counts: Option<Vec<u64>> = nodes.iter().map(sessions).collect();
        counts.filter(|c| c.iter().sum::<u64>() == u64::from(CALLS + B2BUA_CALLS + HTTP_SESSIONS))
    });
    let victim = (0..nodes.len()).max_by_key(|&i| held[i]).unwrap();
    let victim_calls = held[victim];
    assert!(victim_calls > 0);
    let mut proc = nodes[victim].proc.take().unwrap();
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    eprintln!(
        "held calls per container {:?}; killed {} (SIGKILL) holding {victim_calls}",
        held, nodes[victim].name
    );

    let out = sipp_thread.join().unwrap();
    let (ok, failed) = sipp::counts(&out).unwrap_or_else(|| panic!("no SIPp counts:\n{out}"));
    eprintln!(
        "callers of the answering service: {ok} completed (re-INVITE and BYE answered 200), {failed} failed"
    );
    assert_eq!(
        (ok, failed),
        (CALLS, 0),
        "every held call completes:\n{out}"
    );
    let out = b2bua_thread.join().unwrap();
    let (ok, failed) = sipp::counts(&out).unwrap_or_else(|| panic!("no SIPp counts:\n{out}"));
    eprintln!("B2BUA callers (leg A): {ok} completed, {failed} failed");
    assert_eq!(
        (ok, failed),
        (B2BUA_CALLS, 0),
        "every B2BUA call completes:\n{out}"
    );
    let out = uas_thread.join().unwrap();
    let (ok, failed) = sipp::counts(&out).unwrap_or_else(|| panic!("no SIPp counts:\n{out}"));
    eprintln!("B2BUA callee (leg B): {ok} calls got their re-INVITE and BYE, {failed} failed");
    assert_eq!(
        (ok, failed),
        (B2BUA_CALLS, 0),
        "every leg B gets its re-INVITE and BYE:\n{out}"
    );
    // Every HTTP session answers with its attribute, from a survivor.
    let dead = nodes[victim].name.clone();
    let mut moved = 0;
    for (i, (id, node)) in web.iter().enumerate() {
        let (status, body) = http(edge_http, "GET", "/answer/session", Some(id), "");
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(&format!("\"n\":{i}")),
            "session {id} kept its attribute: {body}"
        );
        let now_on = json_str(&body, "node").unwrap();
        assert_ne!(now_on, dead, "{body}");
        if *node == dead {
            moved += 1;
        } else {
            assert_eq!(&now_on, node, "a live owner keeps its session");
        }
    }
    eprintln!(
        "HTTP sessions: {HTTP_SESSIONS}, {moved} of them on the killed container, all read back from survivors"
    );
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.proc.is_some()).collect();
    let taken_over: u64 = survivors.iter().map(|n| loaded(n)).sum();
    eprintln!("sessions taken over from Redis by the survivors: {taken_over}");
    assert_eq!(
        taken_over, victim_calls,
        "each of the dead container's sessions was loaded once, by one survivor"
    );
    // The dead container's announcement lapsed: the edge's view lost it.
    wait_for(
        "the dead container leaves the membership",
        Duration::from_secs(15),
        || {
            let m = http_get(edge_http, "/_sb/metrics")?;
            (metric(&m, "sb_edge_members_announced") == Some(2)).then_some(())
        },
    );
    // The calls ended: the survivors hold the HTTP sessions only (they
    // end when they expire).
    wait_for(
        "the survivors' call sessions end",
        Duration::from_secs(10),
        || {
            let held: Option<u64> = survivors.iter().map(|n| sessions(n)).sum();
            (held == Some(u64::from(HTTP_SESSIONS))).then_some(())
        },
    );
}

/// Redis stopped (SIGKILL) while a container runs: what needs the store is
/// answered 503 with a reason instead of a promise the container cannot
/// keep, and the container recovers by itself when Redis is back.
#[test]
fn a_redis_outage_gives_503_and_the_container_recovers() {
    let mut redis = RedisServer::start();
    let dir = Scratch::new("redis-outage");
    let udp = sipp::free_port(false);
    let http = sipp::free_port(true);
    let cfg = dir.write(
        "c1.toml",
        &format!(
            "node = \"c1\"\nstore = \"{}?timeout_ms=300\"\n\n[listen]\nudp = [\"127.0.0.1:{udp}\"]\n\
             http = \"127.0.0.1:{http}\"\n",
            redis.url()
        ),
    );
    let mut cmd = common::switchboard();
    cmd.arg("container").arg("--config").arg(&cfg);
    let (_c, _banner) = spawn_with_banner(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("container did not start: {e}"));
    let addr: SocketAddr = format!("127.0.0.1:{udp}").parse().unwrap();
    let invite = |n: u32| {
        transact(
            addr,
            &format!(
                "INVITE sip:answer@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-ro{n}\r\n\
                 From: <sip:a@LOCAL>;tag=ro{n}\r\nTo: <sip:answer@{addr}>\r\nCall-ID: ro{n}@test\r\n\
                 CSeq: 1 INVITE\r\nContact: <sip:a@LOCAL>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ),
        )
    };
    assert!(invite(1).starts_with("SIP/2.0 200"));
    redis.stop();
    let r = invite(2);
    assert!(
        r.starts_with("SIP/2.0 503 Session Store Unavailable"),
        "{r}"
    );
    redis.restart();
    // Back without a restart of the container (bounded retries).
    let mut n = 3;
    wait_for("the container recovers", Duration::from_secs(20), || {
        n += 1;
        invite(n).starts_with("SIP/2.0 200").then_some(())
    });
}

/// An application timer set through HTTP on one container, which is then
/// killed before the timer is due: a survivor takes the timer from Redis
/// and fires it exactly once (the answering service's timer sends a
/// MESSAGE naming the node that fired it).
#[test]
fn a_timer_set_before_the_kill_fires_once_on_a_survivor() {
    let (_redis, _dir, _edge_sip, mut nodes, _edge, edge_http) = cluster_on_redis("timer-failover");
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let probe_addr = probe.local_addr().unwrap();
    let (status, body) = http(
        edge_http,
        "POST",
        "/answer/timer",
        None,
        &format!("{{\"delay_ms\":1500,\"notify\":\"sip:probe@{probe_addr}\"}}"),
    );
    assert_eq!(status, 200, "{body}");
    let owner = json_str(&body, "node").unwrap();
    let session = json_str(&body, "session").unwrap();
    let victim = nodes.iter().position(|n| n.name == owner).unwrap();
    let mut proc = nodes[victim].proc.take().unwrap();
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();

    // Collect MESSAGEs for a while after the first: one firing (one
    // Call-ID; retransmissions of it are answered and counted once).
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut firings: Vec<(String, String)> = Vec::new();
    let start = Instant::now();
    let mut first_at = None;
    while start.elapsed() < Duration::from_secs(15)
        && first_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(4))
    {
        let Ok((n, from)) = probe.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("MESSAGE ") {
            continue;
        }
        // 200 OK back along the Vias.
        let mut reply = String::from("SIP/2.0 200 OK\r\n");
        for l in text.lines() {
            let lower = l.to_ascii_lowercase();
            if ["via:", "from:", "to:", "call-id:", "cseq:"]
                .iter()
                .any(|h| lower.starts_with(h))
            {
                reply.push_str(l);
                if lower.starts_with("to:") && !lower.contains("tag=") {
                    reply.push_str(";tag=probe");
                }
                reply.push_str("\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        probe.send_to(reply.as_bytes(), from).unwrap();
        let call_id = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap_or("")
            .to_owned();
        let said = text.rsplit("\r\n\r\n").next().unwrap_or("").to_owned();
        if !firings.iter().any(|(c, _)| *c == call_id) {
            firings.push((call_id, said));
            first_at.get_or_insert_with(Instant::now);
        }
    }
    eprintln!("timer set on {owner} (killed); firings: {firings:?}");
    assert_eq!(
        firings.len(),
        1,
        "the timer fired exactly once: {firings:?}"
    );
    let said = &firings[0].1;
    assert!(
        said.starts_with(&format!("timer notify of session {session} fired on c")),
        "{said}"
    );
    assert!(!said.ends_with(&owner), "fired on a survivor: {said}");
}
