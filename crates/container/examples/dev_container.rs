//! A container with the development default (registrar, proxy to
//! registered users, test service at user `answer`, memory store) on the
//! address given, until Ctrl-C.
//!
//! ```sh
//! cargo run -p container --example dev_container -- 127.0.0.1:5080
//! sipp -sn uac 127.0.0.1:5080 -s answer -m 10
//! ```

#![allow(clippy::print_stdout)]

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5080".into())
        .parse()?;
    let c =
        container::Container::start(container::ContainerConfig::development("c1", addr)).await?;
    println!(
        "container c1: SIP {:?}, HTTP {} (/_sb/health, /_sb/metrics)",
        c.sip_addr(sip_message::TransportKind::Udp),
        c.http_addr()
    );
    tokio::signal::ctrl_c().await?;
    c.shutdown();
    Ok(())
}
