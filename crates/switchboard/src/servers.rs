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

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("switchboard {what}: {e}");
    ExitCode::from(2)
}

/// `switchboard edge --config FILE`.
pub(crate) fn edge(config: PathBuf) -> ExitCode {
    let cfg = match edge::EdgeConfig::load(&config) {
        Ok(c) => c,
        Err(e) => return fail("edge", e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail("edge", e),
    };
    rt.block_on(async move {
        let node = cfg.node.clone();
        let e = match edge::Edge::start(cfg).await {
            Ok(e) => e,
            Err(err) => return fail("edge", err),
        };
        let addr = |t| {
            e.sip_addr(t)
                .map_or_else(|| "-".to_owned(), |a: SocketAddr| a.to_string())
        };
        println!(
            "switchboard edge {node} on SIP udp:{} tcp:{} HTTP {}",
            addr(TransportKind::Udp),
            addr(TransportKind::Tcp),
            e.http_addr()
        );
        shutdown_signal().await;
        e.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// `switchboard sprayer --config FILE [--metrics ADDR]`.
pub(crate) fn sprayer(config: PathBuf, metrics: Option<SocketAddr>) -> ExitCode {
    let cfg = match sprayer::SprayerConfig::load(&config) {
        Ok(c) => c,
        Err(e) => return fail("sprayer", e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail("sprayer", e),
    };
    rt.block_on(async move {
        let names: Vec<String> = cfg.services.iter().map(|s| s.name.clone()).collect();
        let s = match sprayer::Sprayer::start(cfg).await {
            Ok(s) => s,
            Err(err) => return fail("sprayer", err),
        };
        let mut line = String::from("switchboard sprayer on");
        for n in &names {
            for p in [sprayer::Proto::Udp, sprayer::Proto::Tcp] {
                if let Some(a) = s.local_addr(n, p) {
                    line.push_str(&format!(" {n}/{p:?}:{a}").to_lowercase());
                }
            }
        }
        let s = std::sync::Arc::new(s);
        let mut server = None;
        if let Some(addr) = metrics {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(err) => return fail("sprayer", format!("metrics address {addr}: {err}")),
            };
            if let Ok(a) = listener.local_addr() {
                line.push_str(&format!(" metrics:{a}"));
            }
            let for_metrics = std::sync::Arc::clone(&s);
            let app = axum::Router::new()
                .route("/_sb/health", axum::routing::get(|| async { "ok" }))
                .route(
                    "/_sb/metrics",
                    axum::routing::get(move || {
                        let s = std::sync::Arc::clone(&for_metrics);
                        async move { s.metrics_text() }
                    }),
                );
            server = Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        println!("{line}");
        shutdown_signal().await;
        if let Some(task) = server {
            task.abort();
            let _ = task.await;
        }
        if let Ok(s) = std::sync::Arc::try_unwrap(s) {
            s.shutdown().await;
        }
        ExitCode::SUCCESS
    })
}

/// `switchboard check-config FILE`: the kind of file is told by what it
/// holds (`[[service]]`: a sprayer; `[[containers]]`: an edge; else a
/// container).
pub(crate) fn check_config(file: &std::path::Path) -> ExitCode {
    let src = match config_file::ConfigSource::read(file) {
        Ok(s) => s,
        Err(e) => return fail("check-config", e),
    };
    let text = src.text();
    let has = |table: &str| text.lines().any(|l| l.trim_start().starts_with(table));
    let (kind, result) = if has("[[service]]") {
        (
            "sprayer",
            sprayer::SprayerConfig::from_source(&src).map(|_| ()),
        )
    } else if has("[[containers]]") {
        ("edge", edge::EdgeConfig::from_source(&src).map(|_| ()))
    } else {
        (
            "container",
            container::ContainerConfig::from_source(&src).map(|_| ()),
        )
    };
    match result {
        Ok(()) => {
            println!("{}: a valid {kind} config", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (an edge listens on one
/// port for both, as the sprayer expects).
fn free_udp_tcp_port() -> std::io::Result<u16> {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no port free for both UDP and TCP",
    ))
}

/// `switchboard dev`: a sprayer, `edges` edges and `containers` containers
/// with the built-in applications, sharing one store (memory, or Redis
/// when `store` is a Redis URL), in this process.
pub(crate) fn dev(
    sip: SocketAddr,
    http: SocketAddr,
    edges: usize,
    containers: usize,
    store: &str,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail("dev", e),
    };
    rt.block_on(async move {
        match run_dev(sip, http, edges.max(1), containers.max(1), store).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail("dev", e),
        }
    })
}

async fn run_dev(
    sip: SocketAddr,
    http: SocketAddr,
    n_edges: usize,
    n_containers: usize,
    store_url: &str,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // 1. The sprayer first (no edges yet): its address is the public one.
    let sprayer_text = format!(
        "[[service]]\nname = \"sip\"\nlisten = \"{sip}\"\nprotocols = [\"udp\", \"tcp\"]\ntarget = \"sip\"\n\n\
         [[service]]\nname = \"http\"\nlisten = \"{http}\"\nprotocols = [\"tcp\"]\ntarget = \"http\"\n"
    );
    let src = config_file::ConfigSource::from_text("(dev sprayer)", sprayer_text);
    let spr = sprayer::Sprayer::start(sprayer::SprayerConfig::from_source(&src)?)
        .await
        .context("sprayer")?;
    let public_sip = spr
        .local_addr("sip", sprayer::Proto::Udp)
        .context("the sprayer has no SIP address")?;
    let public_http = spr
        .local_addr("http", sprayer::Proto::Tcp)
        .context("the sprayer has no HTTP address")?;
    // 2. Containers, sharing one store.
    let store = session_store::Store::open(store_url)
        .await
        .with_context(|| format!("session store {store_url}"))?;
    let mut cs = Vec::new();
    for i in 1..=n_containers {
        let mut cfg =
            container::ContainerConfig::development(&format!("c{i}"), "127.0.0.1:0".parse()?);
        cfg.public = Some(public_sip.to_string());
        cfg.listen.tcp.clear();
        cfg.shards = Some(1);
        let c = container::Container::start_with_store(cfg, store.clone())
            .await
            .with_context(|| format!("container c{i}"))?;
        cs.push((format!("c{i}"), c));
    }
    // 3. Edges in front of them.
    let mut es = Vec::new();
    for j in 1..=n_edges {
        let port = free_udp_tcp_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Written as an edge config file would be, so the dev cluster uses
        // exactly what `switchboard edge --config` reads.
        let mut text = format!(
            "node = \"e{j}\"\npublic = \"{public_sip}\"\n\n[listen]\nudp = [\"{addr}\"]\n\
             tcp = [\"{addr}\"]\nhttp = \"127.0.0.1:0\"\n\n[health]\ninterval_ms = 500\n\
             timeout_ms = 300\nrise = 2\nfall = 2\n"
        );
        for (node, c) in &cs {
            let sip = c.sip_addr(TransportKind::Udp).unwrap_or(addr);
            text.push_str(&format!(
                "\n[[containers]]\nnode = \"{node}\"\nsip = \"{sip}\"\nhttp = \"{}\"\n",
                c.http_addr()
            ));
        }
        let src = config_file::ConfigSource::from_text(format!("(dev edge e{j})"), text);
        let cfg = edge::EdgeConfig::from_source(&src)?;
        let e = edge::Edge::start(cfg)
            .await
            .with_context(|| format!("edge e{j}"))?;
        es.push((format!("e{j}"), addr, e));
    }
    spr.set_edges(
        es.iter()
            .map(|(name, addr, e)| sprayer::EdgeSpec {
                name: name.clone(),
                sip: *addr,
                http: e.http_addr(),
            })
            .collect(),
    );
    println!("switchboard dev ready: SIP udp+tcp {public_sip} HTTP {public_http}");
    println!("  sprayer  SIP {public_sip} (UDP, TCP), HTTP {public_http}");
    println!("  store    {} ({store_url})", store.kind());
    for (name, addr, e) in &es {
        println!(
            "  edge {name}  SIP {addr} (UDP, TCP), HTTP {}",
            e.http_addr()
        );
    }
    for (name, c) in &cs {
        let a = c
            .sip_addr(TransportKind::Udp)
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        println!("  container {name}  SIP {a}, HTTP {}", c.http_addr());
    }
    println!(
        "Point a softphone at {public_sip}: register as any user, call another registered user,"
    );
    println!("or call sip:answer@{public_sip} (the test service answers). SIPp:");
    println!("  sipp -sn uac {public_sip} -s answer -m 10");
    println!("Ctrl-C stops everything.");
    shutdown_signal().await;
    spr.shutdown().await;
    for (_, _, e) in es {
        e.shutdown().await;
    }
    for (_, c) in cs {
        c.shutdown();
    }
    Ok(())
}
