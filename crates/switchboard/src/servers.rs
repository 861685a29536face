//! `switchboard container | edge | sprayer | dev | check-config`: the
//! servers, each run until Ctrl-C (or SIGTERM).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use sip_message::TransportKind;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `switchboard container`.
pub(crate) fn container(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http: Option<SocketAddr>,
    node: &str,
) -> ExitCode {
    let cfg = match (config, listen) {
        (Some(path), _) => match container::ContainerConfig::load(&path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("switchboard container: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(addr)) => {
            let mut c = container::ContainerConfig::development(node, addr);
            if let Some(h) = http {
                c.listen.http = h;
            }
            c
        }
        (None, None) => {
            eprintln!("switchboard container: give --config FILE or --listen ADDR");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard container: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let c = match container::Container::start(cfg.clone()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("switchboard container: {e}");
                return ExitCode::from(2);
            }
        };
        let addr = |t| {
            c.sip_addr(t)
                .map_or_else(|| "-".to_owned(), |a: SocketAddr| a.to_string())
        };
        println!(
            "switchboard container {} on SIP udp:{} tcp:{} HTTP {}",
            cfg.node,
            addr(TransportKind::Udp),
            addr(TransportKind::Tcp),
            c.http_addr()
        );
        shutdown_signal().await;
        c.shutdown();
        ExitCode::SUCCESS
    })
}
