//! Starts an edge from a config file and runs until Ctrl-C.
//!
//! `cargo run -p edge --example edge -- edge.toml` (see docs/EDGE.md for the
//! file; the containers it names should be running).

use std::io::Write;
use std::path::PathBuf;

use sip_message::TransportKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1).map(PathBuf::from) else {
        writeln!(std::io::stderr(), "usage: edge <edge.toml>")?;
        std::process::exit(2);
    };
    let config = edge::EdgeConfig::load(&path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let edge = edge::Edge::start(config).await?;
        let mut out = std::io::stdout();
        for t in [
            TransportKind::Udp,
            TransportKind::Tcp,
            TransportKind::Tls,
            TransportKind::Ws,
            TransportKind::Wss,
        ] {
            if let Some(addr) = edge.sip_addr(t) {
                writeln!(out, "SIP {t} on {addr}")?;
            }
        }
        writeln!(
            out,
            "HTTP on {} (health: /_sb/health, metrics: /_sb/metrics)",
            edge.http_addr()
        )?;
        wait_for_ctrl_c().await;
        edge.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

async fn wait_for_ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling on this platform: run until killed.
        std::future::pending::<()>().await;
    }
}
