//! `switchboard`: the command line of the Switchboard SIP platform.
//!
//! Subcommands: `dev` (a whole local cluster), `container`, `edge`,
//! `sprayer`, `check-config`, and `inspect` (decode one raw SIP message).

// A command-line tool prints to its terminal; the libraries never do.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's malloc, for the servers' resident memory:
/// a burst of calls fills the heap with transactions that end 32 s later,
/// and glibc kept those pages (10,000 held proxied calls showed 11 KiB of
/// RSS each, most of it freed transactions); jemalloc hands freed pages
/// back within seconds (3.6 KiB each, docs/BENCHMARKS.md). CPU per call
/// was the same within the runs' spread. (mimalloc was tried too: it
/// moved the proxy's time into page faults, 17% against 14% of a core.)
/// Its options (a background purging thread, one-second decay) are
/// compiled in from `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's statistics, for the container's `/_sb/metrics`.
fn jemalloc_stats() -> Option<container::HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot taken when the epoch advances.
    epoch::advance().ok()?;
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.ok().and_then(|v| u64::try_from(v).ok());
    Some(container::HeapStats {
        allocated: read(stats::allocated::read())?,
        active: read(stats::active::read())?,
        resident: read(stats::resident::read())?,
        mapped: read(stats::mapped::read())?,
    })
}

mod inspect;
mod servers;
mod ua;

/// Switchboard: a SIP + HTTP application platform.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole local cluster (sprayer, two edges, three containers, the
    /// sample applications, memory store) on loopback.
    Dev {
        /// The sprayer's SIP address (UDP and TCP): what phones dial.
        #[arg(long, default_value = "127.0.0.1:5060")]
        sip: SocketAddr,
        /// The sprayer's HTTP address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// How many edges.
        #[arg(long, default_value_t = 2)]
        edges: usize,
        /// How many containers.
        #[arg(long, default_value_t = 3)]
        containers: usize,
        /// The session store the containers share: `memory` (in this
        /// process) or a Redis URL (`redis://127.0.0.1:6379`, see
        /// docs/SESSION-STORE.md).
        #[arg(long, default_value = "memory")]
        store: String,
    },
    /// Run one application container: from a TOML config, or (without
    /// one) the development default on --listen: registrar and proxy for
    /// any domain, the test service at user `answer`, memory store.
    Container {
        /// The container's TOML configuration.
        #[arg(long, conflicts_with = "listen")]
        config: Option<PathBuf>,
        /// SIP address (UDP and TCP) of the development default.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// HTTP address of the development default (default: any port).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Node id of the development default.
        #[arg(long, default_value = "c1")]
        node: String,
    },
    /// Run one edge proxy.
    Edge {
        /// The edge's TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the L4 sprayer.
    Sprayer {
        /// The sprayer's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// Serve `/_sb/metrics` (Prometheus text) and `/_sb/health` on
        /// this address (for monitoring; keep it off the public network).
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Validate a configuration file and report every error with its path.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// A small SIP user agent for smoke tests and interop.
    Ua {
        #[command(subcommand)]
        command: UaCommand,
    },
    /// Decode one raw SIP message (from FILE, or `-` for stdin), print its
    /// start line and routing headers as JSON, or the validation error with
    /// the status a server would answer. Exit 0 when valid, 1 when not.
    Inspect {
        /// The file holding the message bytes, or `-` for standard input.
        file: String,
        /// Validate as a forwarding proxy (routing headers only) instead of a UAS.
        #[arg(long)]
        forward: bool,
        /// Treat the bytes as framed from a stream (Content-Length mandatory).
        #[arg(long)]
        stream: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UaCommand {
    /// Answer every INVITE with 200 and SDP, then wait for ACK and BYE;
    /// answer OPTIONS and MESSAGE with 200. Runs until Ctrl-C.
    Answer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5060")]
        listen: SocketAddr,
        /// Transport.
        #[arg(long, value_enum, default_value = "udp")]
        transport: ua::Transport,
        /// Address to advertise in Contact instead of the listening one
        /// (the public address in front of a NAT or a relay).
        #[arg(long)]
        advertise: Option<SocketAddr>,
        /// Send 100 Trying and 180 Ringing before the 200, as a phone (and
        /// the SIPp UAS of the benchmark harness) does.
        #[arg(long)]
        ring: bool,
        /// The certificate chain to serve TLS and WSS with (PEM, leaf
        /// first).
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// The private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
    },
    /// Place calls and print how many succeeded and failed; exit 0 only if
    /// every call succeeded.
    Call {
        /// The SIP URI to call, e.g. sip:service@127.0.0.1:5060,
        /// sip:service@127.0.0.1:5061;transport=tls (or sips:...),
        /// sip:service@127.0.0.1:8080;transport=ws, sips:...;transport=ws.
        #[arg(long)]
        to: String,
        /// Local address to bind (UDP and TCP; over TLS, WS and WSS the
        /// caller only connects out).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Transport [default: the one --to names, else udp].
        #[arg(long, value_enum)]
        transport: Option<ua::Transport>,
        /// The CA certificate (PEM) that TLS and WSS servers are verified
        /// against.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// How many calls.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Calls per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// How long each call is held before the BYE, in milliseconds.
        #[arg(long, default_value_t = 0)]
        hold: u64,
    },
}

fn run_ua(command: UaCommand) -> ExitCode {
    // The UA runs on one thread, stack included (see ua::config).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard ua: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match command {
            UaCommand::Answer {
                listen,
                transport,
                advertise,
                ring,
                cert,
                key,
            } => {
                let cert = cert.zip(key).map(|(cert, key)| ua::CertFiles { cert, key });
                ua::answer(listen, transport, advertise, ring, cert.as_ref())
                    .await
                    .map(|()| true)
            }
            UaCommand::Call {
                to,
                listen,
                transport,
                ca,
                count,
                rate,
                hold,
            } => {
                let stats = ua::call(
                    &to,
                    listen,
                    transport,
                    ca.as_deref(),
                    count,
                    rate,
                    Duration::from_millis(hold),
                )
                .await?;
                println!(
                    "calls: {count} succeeded: {} failed: {}",
                    stats.succeeded, stats.failed
                );
                Ok(stats.failed == 0 && stats.succeeded == count)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("switchboard ua: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    container::report_heap(jemalloc_stats);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Ua { command } => run_ua(command),
        Command::Dev {
            sip,
            http,
            edges,
            containers,
            store,
        } => servers::dev(sip, http, edges, containers, &store),
        Command::Container {
            config,
            listen,
            http,
            node,
        } => servers::container(config, listen, http, &node),
        Command::Edge { config } => servers::edge(config),
        Command::Sprayer { config, metrics } => servers::sprayer(config, metrics),
        Command::CheckConfig { file } => servers::check_config(&file),
        Command::Inspect {
            file,
            forward,
            stream,
        } => {
            let bytes = match read_input(&file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("switchboard inspect: cannot read {file}: {e}");
                    return ExitCode::from(2);
                }
            };
            let report = inspect::inspect(bytes.into(), forward, stream);
            println!("{}", report.json);
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(file)
    }
}

#[cfg(test)]
mod tests {
    /// The options of `.cargo/config.toml` reached jemalloc's build (a
    /// build from outside the workspace would miss them).
    #[test]
    fn jemalloc_is_built_with_the_workspace_options() {
        assert_eq!(tikv_jemalloc_ctl::opt::background_thread::read(), Ok(true));
    }
}
