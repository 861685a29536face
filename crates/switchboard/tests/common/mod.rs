//! Helpers shared by the tests of the `switchboard` binary: starting it,
//! running it with a deadline, reading `ua` banners and counts, and the
//! SIPp scenarios in `tests/scenarios`.

#![allow(dead_code, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;
use std::time::Instant;

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

/// A scratch directory for the config files, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sb-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(crate) fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.0.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends one request from a fresh UDP socket (LOCAL replaced by its
/// address) and returns the final response's text.
pub(crate) fn transact(to: SocketAddr, request: &str) -> String {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let msg = request.replace("LOCAL", &sock.local_addr().unwrap().to_string());
    sock.send_to(msg.as_bytes(), to).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("no response within 5 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

/// One HTTP/1.1 request; returns (status, whole response text).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cookie = cookie.map_or_else(String::new, |c| format!("Cookie: SBSESSION={c}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{cookie}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// A JSON string member of an HTTP response body (`"name":"value"`).
pub(crate) fn json_str(text: &str, name: &str) -> Option<String> {
    let at = text.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let rest = text.get(at..)?;
    Some(rest.get(..rest.find('"')?)?.to_owned())
}

pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The value of a metric line `name{labels} value` (the first match).
pub(crate) fn metric(text: &str, name_and_labels: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `f` every 50 ms until it returns Some, for at most `limit`.
pub(crate) fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a server whose config names ports picked just before it starts:
/// another test may take such a port in between, and the server then exits
/// at once; `attempt` picks new ports and writes a new config each time (5
/// tries). Returns the process, its banner and what `attempt` returned.
pub(crate) fn start_with_ports<T>(
    what: &str,
    mut attempt: impl FnMut() -> (Command, T),
) -> (Proc, String, T) {
    let mut last = String::new();
    for _ in 0..5 {
        let (cmd, data) = attempt();
        match sip_testkit::process::spawn_with_banner(cmd, Duration::from_secs(20)) {
            Ok((proc, line)) => return (proc, line, data),
            Err(e) => last = e.to_string(),
        }
    }
    panic!("{what} did not start in 5 attempts: {last}");
}
