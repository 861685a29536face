//! `switchboard ua` over TLS, WS and WSS: the binary answering on
//! 127.0.0.1 port 0 and the binary calling it, with a CA and a server
//! certificate generated here and handed over as PEM files.
//!
//! Every process is killed when its test ends and waited for with a
//! deadline, so a failure cannot hang the run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

mod common;
use common::answer;

/// `switchboard ua call ARGS --count 10`: (succeeded, failed, exit
/// success).
fn call(args: &[&str]) -> (u32, u32, bool) {
    let mut all = args.to_vec();
    all.extend(["--count", "10", "--rate", "100"]);
    common::call(&all, DEADLINE)
}

/// A CA and a server certificate for 127.0.0.1 and localhost, written as
/// PEM files into a directory removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let pki =
            sip_testkit::pki::TestPki::new("Switchboard ua test CA", &["127.0.0.1", "localhost"])
                .unwrap();
        let dir =
            std::env::temp_dir().join(format!("switchboard-ua-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    fn ca(&self) -> String {
        self.path("ca.pem")
    }

    /// `--cert FILE --key FILE` for `ua answer`.
    fn server_args(&self) -> [String; 4] {
        [
            "--cert".to_owned(),
            self.path("cert.pem"),
            "--key".to_owned(),
            self.path("key.pem"),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn ten_calls_over_tls() {
    let pki = Pki::new("tls");
    let (_uas, token, addr) = answer("tls", &strs(&pki.server_args()));
    assert_eq!(token, "TLS");
    let ca = pki.ca();
    // The transport from the URI (RFC 3261 §19.1.1: transport=tls)...
    let to = format!("sip:service@{addr};transport=tls");
    assert_eq!(
        call(&["--to", &to, "--ca", &ca]),
        (10, 0, true),
        "sip: with transport=tls"
    );
    // ...or from --transport with a sips: URI (§26.2.2).
    let to = format!("sips:service@{addr}");
    assert_eq!(
        call(&["--to", &to, "--transport", "tls", "--ca", &ca]),
        (10, 0, true),
        "sips:"
    );
}

#[test]
fn ten_calls_over_ws() {
    let (_uas, token, addr) = answer("ws", &[]);
    assert_eq!(token, "WS");
    let to = format!("sip:service@{addr};transport=ws");
    assert_eq!(call(&["--to", &to, "--transport", "ws"]), (10, 0, true));
}

#[test]
fn ten_calls_over_wss() {
    let pki = Pki::new("wss");
    let (_uas, token, addr) = answer("wss", &strs(&pki.server_args()));
    assert_eq!(token, "WSS");
    // RFC 7118 §5.2: a sips: URI with transport=ws is WSS.
    let to = format!("sips:service@{addr};transport=ws");
    assert_eq!(
        call(&["--to", &to, "--transport", "wss", "--ca", &pki.ca()]),
        (10, 0, true)
    );
}

/// Fails with a message, no calls attempted.
fn refused(args: &[&str], expected: &str) {
    let mut cmd = common::switchboard();
    cmd.args(args);
    let out = common::run(cmd, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        stderr.contains(expected),
        "{args:?}: expected {expected:?} in {stderr:?}"
    );
}

#[test]
fn untrusted_server_and_missing_certificates_are_refused() {
    let pki = Pki::new("refused");
    let other = Pki::new("other");
    let (_uas, _, addr) = answer("tls", &strs(&pki.server_args()));
    let to = format!("sips:service@{addr}");
    // A CA that did not sign the server's certificate: the handshake fails.
    refused(
        &["ua", "call", "--to", &to, "--ca", &other.ca()],
        "connecting to TLS:",
    );
    refused(&["ua", "call", "--to", &to], "--ca FILE");
    refused(
        &["ua", "call", "--to", &to, "--transport", "ws"],
        "but --transport is WS",
    );
    refused(
        &[
            "ua",
            "answer",
            "--listen",
            "127.0.0.1:0",
            "--transport",
            "tls",
        ],
        "--cert FILE and --key FILE",
    );
    let missing = pki.path("nowhere.pem");
    refused(
        &[
            "ua",
            "answer",
            "--listen",
            "127.0.0.1:0",
            "--transport",
            "tls",
            "--cert",
            &missing,
            "--key",
            &missing,
        ],
        "reading",
    );
}
