//! Two stacks on loopback: one answers, the other sends an OPTIONS over UDP
//! and prints the answer.
//!
//! `cargo run -p sip-stack --example options_ping`

#![allow(clippy::print_stdout)]

use sip_message::{Method, Peer, RequestBuilder, ResponseBuilder, TransportKind};
use sip_stack::{ClientEvent, Stack, StackConfig, StackEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let any_port = "127.0.0.1:0".parse()?;
    let config = || StackConfig {
        shards: 1,
        dedicated_threads: false,
        ..StackConfig::udp(any_port)
    };
    let mut server = Stack::start(config()).await?;
    let server_addr = server
        .handle()
        .local_addr(TransportKind::Udp)
        .ok_or("no address")?;
    tokio::spawn(async move {
        while let Some(StackEvent::Request(tx)) = server.next_event().await {
            let tag = "srv";
            if let Ok(ok) =
                ResponseBuilder::for_request(tx.request(), 200, Some(tag)).and_then(|b| {
                    b.header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
                        .build()
                })
            {
                tx.respond(ok);
            }
        }
    });

    let client = Stack::start(config()).await?;
    let handle = client.handle();
    let me = handle.local_addr(TransportKind::Udp).ok_or("no address")?;
    let options = RequestBuilder::new(Method::Options, &format!("sip:ping@{server_addr}"))?
        .header(
            "Via",
            &format!("SIP/2.0/UDP {me};branch={};rport", handle.branch()),
        )
        .header("Max-Forwards", "70")
        .header("From", &format!("<sip:example@{me}>;tag={}", handle.tag()))
        .header("To", &format!("<sip:ping@{server_addr}>"))
        .header("Call-ID", &handle.call_id(&me.ip().to_string()))
        .header("CSeq", "1 OPTIONS")
        .build()?;
    println!("{}", options.start_line_str());
    let peer = Peer {
        transport: TransportKind::Udp,
        addr: server_addr,
    };
    let mut tx = handle.send_request(options, peer).await?;
    match tx.next().await {
        Some(ClientEvent::Response(r)) => println!("{}", r.start_line_str()),
        other => println!("no answer: {other:?}"),
    }
    Ok(())
}
