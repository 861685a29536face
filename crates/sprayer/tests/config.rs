//! Config files on disk: errors name the file, the line and the field; a
//! good file starts a sprayer whose port-0 services resolve.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use sprayer::{Proto, Sprayer, SprayerConfig};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sprayer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = "\
[[service]]
name = \"sip\"
listen = \"127.0.0.1:0\"
protocols = [\"udp\", \"tcp\"]
target = \"sip\"

[[service]]
name = \"http\"
listen = \"127.0.0.1:0\"
protocols = [\"tcp\"]
target = \"http\"

[health]
interval_ms = 500
timeout_ms = 300
fall = 2
rise = 2

[udp]
idle_timeout_s = 120
max_flows = 100000

[[edges]]
name = \"e1\"
sip = \"127.0.0.1:5070\"
http = \"127.0.0.1:8081\"
";

#[tokio::test]
async fn a_good_file_starts_a_sprayer() {
    let path = write("good.toml", GOOD);
    let cfg = SprayerConfig::load(&path).unwrap();
    let s = Sprayer::start(cfg).await.unwrap();
    let udp = s.local_addr("sip", Proto::Udp).unwrap();
    assert_ne!(udp.port(), 0);
    assert_eq!(s.local_addr("sip", Proto::Tcp).unwrap().port(), udp.port());
    assert!(s.local_addr("http", Proto::Tcp).is_some());
    assert!(s.local_addr("nope", Proto::Tcp).is_none());
    assert!(s.metrics_text().contains("sprayer_edge_up{edge=\"e1\"}"));
    s.shutdown().await;
}

#[test]
fn errors_name_file_line_and_field() {
    let cases = [
        (
            "unknown.toml",
            GOOD.replace("rise = 2", "rise = 2\nrisen = 3"),
            18,
            "health.risen",
        ),
        (
            "addr.toml",
            GOOD.replace("127.0.0.1:8081", "localhost"),
            26,
            "edges[0].http",
        ),
        (
            "zero.toml",
            GOOD.replace("timeout_ms = 300", "timeout_ms = 0"),
            15,
            "health.timeout_ms",
        ),
        (
            "type.toml",
            GOOD.replace("max_flows = 100000", "max_flows = \"many\""),
            21,
            "udp.max_flows",
        ),
        (
            "name.toml",
            GOOD.replace("name = \"e1\"", "name = \"e 1\""),
            24,
            "edges[0].name",
        ),
    ];
    for (file, text, line, field) in cases {
        let path = write(file, &text);
        let e = SprayerConfig::load(&path).unwrap_err();
        assert_eq!(e.file, path, "{e}");
        assert_eq!(e.line, Some(line), "{e}");
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}:", path.display())),
            "{shown}"
        );
        assert!(shown.contains(&format!("field {field}")), "{shown}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let e = SprayerConfig::load(std::path::Path::new("/nonexistent/sprayer.toml")).unwrap_err();
    assert!(
        e.to_string().starts_with("/nonexistent/sprayer.toml"),
        "{e}"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = GOOD.replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1);
    let cfg = SprayerConfig::load(&write("taken.toml", &text)).unwrap();
    let e = Sprayer::start(cfg).await.unwrap_err();
    assert!(
        matches!(
            e,
            sprayer::SprayerError::Bind {
                proto: Proto::Udp,
                ..
            }
        ),
        "{e}"
    );
}

/// Every ```toml block of docs/SPRAYER.md is a valid config.
#[test]
fn the_documented_configs_parse() {
    let doc = include_str!("../../../docs/SPRAYER.md");
    let mut blocks = 0;
    let mut rest = doc;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed block");
        let src = config_file::ConfigSource::from_text("SPRAYER.md", &body[..end]);
        let cfg =
            SprayerConfig::from_source(&src).unwrap_or_else(|e| panic!("block {blocks}: {e}"));
        assert!(!cfg.services.is_empty());
        blocks += 1;
        rest = &body[end + 3..];
    }
    assert_eq!(blocks, 2, "the reference and the HA example");
}
