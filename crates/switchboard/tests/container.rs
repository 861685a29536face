//! The container over real sockets, with real peers: `switchboard
//! container` (the development default), SIPp as caller and callee, and
//! plain UDP sockets for REGISTER and for requests a test must look at
//! byte by byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use sip_testkit::process::Proc;
use sip_testkit::sipp;

const DEADLINE: Duration = Duration::from_secs(90);

mod common;
use common::{http_get, metric, scenario};

/// Starts `switchboard container --listen 127.0.0.1:0`; returns it with
/// its UDP SIP address and HTTP address.
fn container() -> (Proc, SocketAddr, SocketAddr) {
    let mut cmd = common::switchboard();
    cmd.args(["container", "--listen", "127.0.0.1:0"]);
    let (proc, line) = sip_testkit::process::spawn_with_banner(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("container did not start: {e}"));
    // "switchboard container c1 on SIP udp:A tcp:B HTTP C"
    let word = |prefix: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in banner {line:?}"))
    };
    let udp = word("udp:");
    let http: SocketAddr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP address in {line:?}"));
    (proc, udp, http)
}

/// Starts `switchboard container --config` with `body` (listen and node
/// added); returns it with its UDP SIP address. The file is removed once
/// the container has read it.
fn container_with_config(body: &str) -> (Proc, SocketAddr) {
    // Port 0: the container binds a free port itself and prints it, so no
    // other test can take it in between.
    let path = std::env::temp_dir().join(format!(
        "sb-container-{}-{}.toml",
        std::process::id(),
        sipp::free_port(true)
    ));
    std::fs::write(
        &path,
        format!(
            "node = \"c1\"\n{body}\n[listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let mut cmd = common::switchboard();
    cmd.arg("container").arg("--config").arg(&path);
    let (proc, line) = sip_testkit::process::spawn_with_banner(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("container did not start: {e}"));
    let _ = std::fs::remove_file(&path);
    // "switchboard container c1 on SIP udp:A tcp:B HTTP C"
    let udp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("udp:"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no udp address in banner {line:?}"));
    (proc, udp)
}

/// Sends one request from a fresh UDP socket and returns the final
/// response's text.
fn transact(to: SocketAddr, request: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let msg = request
        .replace("LOCAL", &local.to_string())
        .replace("TARGET", &to.to_string());
    sock.send_to(msg.as_bytes(), to).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("no response within 5 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status: u16 = text[8..11].parse().unwrap();
        if status >= 200 {
            return text;
        }
    }
}

fn register(container: SocketAddr, user: &str, contact: &str, expires: u32, cseq: u32) -> String {
    let contact = if contact == "*" {
        "*".to_owned()
    } else {
        format!("<{contact}>")
    };
    transact(
        container,
        &format!(
            "REGISTER sip:TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-reg{cseq}-{user}\r\n\
             From: <sip:{user}@TARGET>;tag=r1\r\nTo: <sip:{user}@TARGET>\r\nCall-ID: reg-{user}@test\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    )
}

/// SIPp calling `service` at `to` with a scenario of tests/scenarios:
/// `calls` calls at `rate` a second, each held `hold_ms`.
fn uac(
    to: SocketAddr,
    scenario_file: &str,
    service: &str,
    calls: u32,
    rate: u32,
    hold_ms: u32,
) -> (u32, u32, String) {
    let mut cmd = sipp::command();
    cmd.args([
        "-sf",
        &scenario(scenario_file),
        &to.to_string(),
        "-s",
        service,
    ])
    .args(["-p", "0", "-m", &calls.to_string(), "-r", &rate.to_string()])
    .args(["-d", &hold_ms.to_string()]);
    sipp_run(cmd)
}

/// A SIPp UAS on `port` running a scenario of tests/scenarios for `calls`
/// calls, in the foreground of a thread: its counts prove what it got.
fn uas_thread(
    scenario_file: &str,
    port: u16,
    calls: u32,
) -> std::thread::JoinHandle<(u32, u32, String)> {
    let mut cmd = sipp::command();
    cmd.args(["-sf", &scenario(scenario_file), "-p", &port.to_string()])
        .args(["-m", &calls.to_string()]);
    std::thread::spawn(move || sipp_run(cmd))
}

fn sipp_run(cmd: Command) -> (u32, u32, String) {
    let out = sip_testkit::process::run(cmd, DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (ok, failed) = sipp::counts(&text).unwrap_or_else(|| panic!("no counts:\n{text}"));
    (ok, failed, text)
}

#[test]
fn a_b2bua_call_relays_re_invite_and_bye_to_the_other_leg() {
    let (_c, addr, _http) = container();
    let uas_port = sipp::free_port(false);
    let mut uas = sipp::command();
    uas.args([
        "-sf",
        &scenario("uas-reinvite.xml"),
        "-p",
        &uas_port.to_string(),
        "-m",
        "10",
    ]);
    // In the foreground (a thread): its count proves leg B got its
    // re-INVITE and its BYE.
    let uas = std::thread::spawn(move || sipp_run(uas));
    let ok = register(
        addr,
        "bob",
        &format!("sip:bob@127.0.0.1:{uas_port}"),
        600,
        1,
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let (ok, failed, text) = uac(addr, "uac-reinvite.xml", "b2bua-bob", 10, 10, 200);
    assert_eq!((ok, failed), (10, 0), "caller (leg A):\n{text}");
    let (ok, failed, text) = uas.join().unwrap();
    assert_eq!((ok, failed), (10, 0), "callee (leg B):\n{text}");
    // Unregistered callee: 404 with a reason.
    let invite = "INVITE sip:b2bua-nobody@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-b2b404\r\n\
        From: <sip:a@LOCAL>;tag=a\r\nTo: <sip:b2bua-nobody@TARGET>\r\nCall-ID: b2b404@test\r\n\
        CSeq: 1 INVITE\r\nContact: <sip:a@LOCAL>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = transact(addr, invite);
    assert!(
        r.starts_with("SIP/2.0 404 Not Found (no registered contact)"),
        "{r}"
    );
}

#[test]
fn digest_authentication_challenges_register_and_invite_and_sipp_answers() {
    let (_c, addr) = container_with_config(
        "[auth]\nrealm = \"switchboard.test\"\nsecret = \"a secret the whole cluster shares\"\n\
         algorithms = [\"MD5\"]\ncheck_uri = false\n\
         users = { sipp = \"sipp-secret\", alice = \"wonderland\" }\n",
    );
    // No credentials: 407 with a challenge for the realm.
    let invite = "INVITE sip:answer@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-auth1\r\n\
        From: <sip:alice@LOCAL>;tag=a\r\nTo: <sip:answer@TARGET>\r\nCall-ID: auth1@test\r\n\
        CSeq: 1 INVITE\r\nContact: <sip:alice@LOCAL>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = transact(addr, invite);
    assert!(
        r.starts_with("SIP/2.0 407 Proxy Authentication Required\r\n"),
        "{r}"
    );
    assert!(
        r.contains("Proxy-Authenticate: Digest realm=\"switchboard.test\""),
        "{r}"
    );
    // A REGISTER without credentials: 401.
    let r = register(addr, "alice", "sip:alice@127.0.0.1:5999", 600, 1);
    assert!(r.starts_with("SIP/2.0 401 Unauthorized\r\n"), "{r}");
    assert!(
        r.contains("WWW-Authenticate: Digest realm=\"switchboard.test\""),
        "{r}"
    );
    // SIPp answers both challenges (MD5, qop=auth; SIPp 3.6 computes its
    // INVITE answer for uri=sip:HOST:PORT, hence check_uri = false).
    let mut reg = sipp::command();
    reg.args(["-sf", &scenario("reg-auth.xml"), &addr.to_string()])
        .args(["-p", "0", "-m", "5", "-r", "10"]);
    let (ok, failed, text) = sipp_run(reg);
    assert_eq!((ok, failed), (5, 0), "REGISTER:\n{text}");
    let mut uac = sipp::command();
    uac.args(["-sf", &scenario("uac-auth.xml"), &addr.to_string()])
        .args([
            "-s", "answer", "-p", "0", "-m", "10", "-r", "10", "-d", "100",
        ]);
    let (ok, failed, text) = sipp_run(uac);
    assert_eq!((ok, failed), (10, 0), "INVITE:\n{text}");
}

#[test]
fn the_proxy_dispatches_unregistered_users_over_its_static_routes() {
    let uas_port = sipp::free_port(false);
    let dead = sipp::free_port(false);
    // Two next hops; one answers nothing (port closed): calls that hash
    // to it fail over to the other.
    let (_c, addr) = container_with_config(&format!(
        "[apps]\nproxy_routes = [\"sip:127.0.0.1:{dead}\", \"sip:127.0.0.1:{uas_port}\"]\n"
    ));
    let mut uas = sipp::command();
    uas.args(["-sf", &scenario("uas-rr.xml"), "-p", &uas_port.to_string()])
        .args(["-m", "10"]);
    let uas = std::thread::spawn(move || sipp_run(uas));
    let (ok, failed, text) = uac(addr, "uac-rr.xml", "anyone", 10, 10, 100);
    assert_eq!((ok, failed), (10, 0), "{text}");
    let (ok, failed, text) = uas.join().unwrap();
    assert_eq!((ok, failed), (10, 0), "{text}");
}

#[test]
fn a_dar_file_composes_screening_before_the_answering_service() {
    let dar = std::env::temp_dir().join(format!("sb-dar-{}.dar", std::process::id()));
    std::fs::write(
        &dar,
        "# screening first, then the answering service\n\
         INVITE: (\"answer\", \"DAR:To\", \"TERMINATING\", \"\", \"NO_ROUTE\", \"1\"), \
         (\"screening\", \"DAR:From\", \"ORIGINATING\", \"\", \"NO_ROUTE\", \"0\")\n",
    )
    .unwrap();
    let (_c, addr) = container_with_config(&format!(
        "[apps]\nscreening = [\"*@blocked.example\"]\nrouter = \"{}\"\n",
        dar.display()
    ));
    let _ = std::fs::remove_file(&dar);
    // A blocked caller: the first application of the chain declines.
    let invite = "INVITE sip:anyone@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-dar1\r\n\
        From: <sip:mallory@blocked.example>;tag=m\r\nTo: <sip:anyone@TARGET>\r\nCall-ID: dar1@test\r\n\
        CSeq: 1 INVITE\r\nContact: <sip:m@LOCAL>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = transact(addr, invite);
    assert!(
        r.starts_with("SIP/2.0 603 Decline (caller screened)"),
        "{r}"
    );
    // Anyone else: on to the answering service (whatever the user: the
    // chain, not the user rule, decides), with BYE in its session.
    let (ok, failed, text) = uac(addr, "uac-rr.xml", "someone", 10, 10, 100);
    assert_eq!((ok, failed), (10, 0), "{text}");
}

#[test]
fn the_b2bua_answers_a_challenge_from_leg_b_with_its_credentials() {
    let (_c, addr) = container_with_config(
        "[apps]\nb2bua_credentials = { user = \"trunk\", password = \"trunk-secret\" }\n",
    );
    let uas_port = sipp::free_port(false);
    let uas = uas_thread("uas-challenge.xml", uas_port, 5);
    let ok = register(
        addr,
        "carrier",
        &format!("sip:carrier@127.0.0.1:{uas_port}"),
        600,
        1,
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let (ok, failed, text) = uac(addr, "uac-rr.xml", "b2bua-carrier", 5, 5, 100);
    assert_eq!((ok, failed), (5, 0), "caller:\n{text}");
    let (ok, failed, text) = uas.join().unwrap();
    assert_eq!((ok, failed), (5, 0), "challenging callee:\n{text}");
}

#[test]
fn the_answering_service_sends_a_reliable_180_and_waits_for_its_prack() {
    let (_c, addr, _http) = container();
    let (ok, failed, text) = uac(addr, "uac-100rel.xml", "answer", 10, 10, 100);
    assert_eq!((ok, failed), (10, 0), "{text}");
    // A PRACK for no reliable provisional: 481.
    let prack = "PRACK sip:answer@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-pr1\r\n\
        From: <sip:a@LOCAL>;tag=a\r\nTo: <sip:answer@TARGET>;tag=x\r\nCall-ID: nopr@test\r\n\
        CSeq: 2 PRACK\r\nRAck: 7 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = transact(addr, prack);
    assert!(r.starts_with("SIP/2.0 481 "), "{r}");
}

#[test]
fn register_then_call_a_registered_sipp_through_the_proxy() {
    let (_c, addr, _http) = container();
    let uas_port = sipp::free_port(false);
    let mut uas = sipp::command();
    uas.args([
        "-sf",
        &scenario("uas-rr.xml"),
        "-p",
        &uas_port.to_string(),
        "-m",
        "20",
    ]);
    let _uas = sipp::background(uas).unwrap();

    let ok = register(
        addr,
        "service",
        &format!("sip:service@127.0.0.1:{uas_port}"),
        600,
        1,
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        ok.contains(&format!("<sip:service@127.0.0.1:{uas_port}>;expires=")),
        "{ok}"
    );

    let (ok, failed, text) = uac(addr, "uac-rr.xml", "service", 20, 20, 200);
    assert_eq!((ok, failed), (20, 0), "{text}");
}

#[test]
fn registrar_rules() {
    let (_c, addr, _http) = container();
    // Too brief: 423 with Min-Expires.
    let r = register(addr, "alice", "sip:alice@127.0.0.1:5999", 10, 1);
    assert!(r.starts_with("SIP/2.0 423"), "{r}");
    assert!(r.contains("Min-Expires: 60"), "{r}");
    // Two contacts, then an out-of-order CSeq, then `*`.
    let r = register(addr, "alice", "sip:alice@127.0.0.1:5998", 300, 2);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let r = register(addr, "alice", "sip:alice@127.0.0.1:5997", 300, 3);
    assert_eq!(r.matches("Contact:").count(), 2, "{r}");
    let r = register(addr, "alice", "sip:alice@127.0.0.1:5997", 300, 3);
    assert!(r.starts_with("SIP/2.0 500"), "out of order: {r}");
    let r = register(addr, "alice", "*", 0, 4);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(r.matches("Contact:").count(), 0, "{r}");
    let r = register(addr, "alice", "*", 300, 5);
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    // An unregistered user: 404.
    let r = transact(
        addr,
        "MESSAGE sip:nobody@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-m1\r\n\
         From: <sip:a@LOCAL>;tag=m\r\nTo: <sip:nobody@TARGET>\r\nCall-ID: m1@test\r\nCSeq: 1 MESSAGE\r\n\
         Max-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert!(r.starts_with("SIP/2.0 404"), "{r}");
}

#[test]
fn the_answer_service_takes_calls_and_unknown_methods_get_501() {
    let (_c, addr, http) = container();
    let (ok, failed, text) = uac(addr, "uac-rr.xml", "answer", 10, 10, 100);
    assert_eq!((ok, failed), (10, 0), "{text}");

    // Each confirmed call counts once in sb_container_acks_total, however
    // many copies of its ACK arrive.
    let head = |method: &str, cseq: u32, branch: &str, to: &str| {
        format!(
            "{method} sip:answer@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch={branch};rport\r\n\
             From: <sip:a@LOCAL>;tag=k\r\nTo: {to}\r\nCall-ID: acks@test\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:a@LOCAL>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let ok = transact(
        addr,
        &head("INVITE", 1, "z9hG4bK-k1", "<sip:answer@TARGET>"),
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let to = ok
        .lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap()
        .to_owned();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ack = head("ACK", 1, "z9hG4bK-k2", &to)
        .replace("LOCAL", &sock.local_addr().unwrap().to_string())
        .replace("TARGET", &addr.to_string());
    sock.send_to(ack.as_bytes(), addr).unwrap();
    sock.send_to(ack.as_bytes(), addr).unwrap();
    // The BYE (same Call-ID, so after both ACKs) ends the call.
    let bye = transact(addr, &head("BYE", 2, "z9hG4bK-k3", &to));
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    let m = http_get(http, "/_sb/metrics").unwrap();
    assert_eq!(
        metric(&m, "sb_container_acks_total{node=\"c1\"}"),
        Some(11),
        "ten SIPp calls and this one: {m}"
    );

    let r = transact(
        addr,
        "FOO sip:answer@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-f1\r\n\
         From: <sip:a@LOCAL>;tag=f\r\nTo: <sip:answer@TARGET>\r\nCall-ID: f1@test\r\nCSeq: 1 FOO\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("SIP/2.0 501"), "{r}");
    let r = transact(
        addr,
        "SUBSCRIBE sip:answer@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-s1\r\n\
         From: <sip:a@LOCAL>;tag=s\r\nTo: <sip:answer@TARGET>\r\nCall-ID: s1@test\r\nCSeq: 1 SUBSCRIBE\r\n\
         Event: presence\r\nContact: <sip:a@LOCAL>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("SIP/2.0 405"), "{r}");
    assert!(r.contains("Allow: "), "{r}");
    // OPTIONS to the server itself.
    let r = transact(
        addr,
        "OPTIONS sip:TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-o1\r\n\
         From: <sip:a@LOCAL>;tag=o\r\nTo: <sip:TARGET>\r\nCall-ID: o1@test\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    // A request inside no dialog of ours: 481.
    let r = transact(
        addr,
        "BYE sip:answer@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-b1\r\n\
         From: <sip:a@LOCAL>;tag=b\r\nTo: <sip:answer@TARGET>;tag=x\r\nCall-ID: b1@test\r\nCSeq: 2 BYE\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("SIP/2.0 481"), "{r}");
}

#[test]
fn cancel_before_answer_gives_487_and_max_forwards_zero_gives_483() {
    let (_c, addr, _http) = container();
    // A registered contact that never answers: the proxy's branch waits.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let r = register(addr, "bob", &format!("sip:bob@127.0.0.1:{port}"), 600, 1);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let head = format!(
        "sip:bob@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-inv1\r\n\
         From: <sip:a@{local}>;tag=i\r\nTo: <sip:bob@{addr}>\r\nCall-ID: inv1@test\r\n"
    );
    let invite = format!(
        "INVITE {head}CSeq: 1 INVITE\r\nContact: <sip:a@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), addr).unwrap();
    // Wait until the INVITE reached the callee, then answer it 180 so the
    // proxy can CANCEL the branch.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = silent.recv_from(&mut buf).unwrap();
    let fwd = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(fwd.starts_with("INVITE sip:bob@127.0.0.1"), "{fwd}");
    assert!(fwd.contains("Record-Route: <sip:"), "{fwd}");
    assert!(fwd.contains("Max-Forwards: 69"), "{fwd}");
    let ringing = ringing_for(&fwd);
    silent.send_to(ringing.as_bytes(), from).unwrap();

    let cancel =
        format!("CANCEL {head}CSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    sock.send_to(cancel.as_bytes(), addr).unwrap();
    // The callee sees the CANCEL; it answers 200 and 487.
    let cancel_in = loop {
        let (n, _) = silent.recv_from(&mut buf).unwrap();
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if t.starts_with("CANCEL") {
            break t;
        }
    };
    silent
        .send_to(reply(&cancel_in, "200 OK", "").as_bytes(), from)
        .unwrap();
    silent
        .send_to(
            reply(&fwd, "487 Request Terminated", ";tag=callee").as_bytes(),
            from,
        )
        .unwrap();
    // The caller: 200 for the CANCEL, 487 for the INVITE.
    let mut got = Vec::new();
    while !(got.iter().any(|s: &String| s.starts_with("SIP/2.0 487"))
        && got.iter().any(|s| s.contains("CSeq: 1 CANCEL")))
    {
        let (n, _) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("responses to CANCEL and INVITE: {e}; got {got:#?}"));
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        got.iter()
            .any(|s| s.starts_with("SIP/2.0 200") && s.contains("CSeq: 1 CANCEL")),
        "{got:?}"
    );

    // Max-Forwards: 0 -> 483.
    let r = transact(
        addr,
        "MESSAGE sip:bob@TARGET SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-mf0\r\n\
         From: <sip:a@LOCAL>;tag=m\r\nTo: <sip:bob@TARGET>\r\nCall-ID: mf0@test\r\nCSeq: 1 MESSAGE\r\n\
         Max-Forwards: 0\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("SIP/2.0 483"), "{r}");
}

/// A response to `request` (its Via, From, To, Call-ID, CSeq).
fn reply(request: &str, status: &str, to_tag: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.split("\r\n").skip(1) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            out.push_str(to_tag);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn ringing_for(invite: &str) -> String {
    reply(invite, "180 Ringing", ";tag=callee")
}

#[test]
fn health_and_metrics_on_the_http_port() {
    let (_c, _addr, http) = container();
    let get = |path: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let h = get("/_sb/health");
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok"), "{h}");
    let m = get("/_sb/metrics");
    assert!(m.contains("sb_container_sessions{node=\"c1\"} 0"), "{m}");
    assert!(
        m.contains("# TYPE sb_container_requests_total counter"),
        "{m}"
    );
    // jemalloc's statistics: live bytes sit in active pages, which are
    // mapped.
    let gauge = |name: &str| -> u64 {
        let prefix = format!("sb_heap_{name}_bytes{{node=\"c1\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {m}"))
    };
    let (allocated, active, mapped) = (gauge("allocated"), gauge("active"), gauge("mapped"));
    assert!(
        0 < allocated && allocated <= active && active <= mapped,
        "{m}"
    );
    assert!(gauge("resident") <= mapped, "{m}");
}
