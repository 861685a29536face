//! Starts a sprayer from a config file and runs until Ctrl-C.
//!
//! ```text
//! cargo run -p sprayer --example sprayer -- sprayer.toml
//! ```
//! (see docs/SPRAYER.md for the file). Logs go to stderr; `RUST_LOG=debug`
//! shows every flow.

use std::path::PathBuf;

use sprayer::{Proto, Sprayer, SprayerConfig};
use tracing::{error, info};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        error!("usage: sprayer <sprayer.toml>");
        return std::process::ExitCode::from(2);
    };
    let config = match SprayerConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let services: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    let sprayer = match Sprayer::start(config).await {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for name in &services {
        for proto in [Proto::Udp, Proto::Tcp] {
            if let Some(addr) = sprayer.local_addr(name, proto) {
                info!(service = %name, %proto, %addr, "listening");
            }
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        error!("cannot wait for Ctrl-C: {e}");
    }
    info!("metrics at exit:\n{}", sprayer.metrics_text());
    sprayer.shutdown().await;
    std::process::ExitCode::SUCCESS
}
