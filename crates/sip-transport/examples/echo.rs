//! An OPTIONS responder, and a client that pings it over UDP, TCP and WS.
//!
//! `cargo run -p sip-transport --example echo` binds a responder on
//! 127.0.0.1 (ephemeral ports), sends it one OPTIONS per transport, prints
//! each answer with its round-trip time, and exits.
//!
//! `cargo run -p sip-transport --example echo -- 127.0.0.1:5060` runs only
//! the responder, on UDP and TCP at that address, until interrupted: point
//! SIPp or sipsak at it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::headers::Via;
use sip_message::{Method, Peer, ResponseBuilder, SipMessage, TransportKind};
use sip_transport::{Incoming, TransportConfig, Transports, response_peer, via_stamp};
use tokio::sync::mpsc;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    match std::env::args().nth(1) {
        Some(addr) => serve_forever(addr.parse()?).await,
        None => demo().await,
    }
}

/// Answers every request: 200 to OPTIONS, 501 to anything else but ACK.
async fn respond(server: Transports, mut rx: mpsc::Receiver<Incoming>) {
    while let Some(incoming) = rx.recv().await {
        if let Err(e) = answer(&server, &incoming).await {
            eprintln!("cannot answer {}: {e}", incoming.source);
        }
    }
}

async fn answer(server: &Transports, incoming: &Incoming) -> Result<(), Error> {
    let request = &incoming.message;
    let Some(method) = request.method() else {
        return Ok(()); // a response: nothing to do
    };
    if method == Method::Ack {
        return Ok(());
    }
    let Some(Ok(via)) = request.typed::<Via<'_>>() else {
        return Ok(()); // no usable Via: nowhere to answer (RFC 3261 §8.2.6.2)
    };
    let to = response_peer(&via, incoming.source);
    // RFC 3261 §18.2.1, RFC 3581 §4: note where the request really came from.
    let stamped = match via_stamp(&via, incoming.source) {
        Some(stamp) => {
            let mut edit = request.edit();
            edit.via_received(&stamp.received.to_string(), stamp.rport)?;
            SipMessage::parse(edit.to_bytes())?
        }
        None => request.clone(),
    };
    let code = if method == Method::Options { 200 } else { 501 };
    let response = ResponseBuilder::for_request(&stamped, code, Some("echo1"))?
        .header("Allow", "OPTIONS, ACK")
        .build()?;
    server
        .send_from(incoming.local, to, response.message_bytes())
        .await?;
    Ok(())
}

async fn serve_forever(addr: SocketAddr) -> Result<(), Error> {
    let (server, rx) = Transports::bind(TransportConfig {
        udp: vec![addr],
        tcp: vec![addr],
        ..TransportConfig::default()
    })
    .await?;
    for local in server.local_addrs() {
        println!("answering OPTIONS on {local}");
    }
    tokio::select! {
        () = respond(server.clone(), rx) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    server.shutdown().await;
    Ok(())
}

fn options(transport: TransportKind, to: SocketAddr, seq: u32) -> Bytes {
    Bytes::from(format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1;rport;branch=z9hG4bK-echo-{seq}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{to}>\r\n\
         From: <sip:echo@127.0.0.1>;tag=e{seq}\r\n\
         Call-ID: echo-{seq}@127.0.0.1\r\n\
         CSeq: {seq} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

async fn demo() -> Result<(), Error> {
    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    let (server, server_rx) = Transports::bind(TransportConfig {
        udp: vec![loopback],
        tcp: vec![loopback],
        ws: vec![loopback],
        ..TransportConfig::default()
    })
    .await?;
    tokio::spawn(respond(server.clone(), server_rx));
    let (client, mut client_rx) = Transports::bind(TransportConfig {
        udp: vec![loopback],
        ..TransportConfig::default()
    })
    .await?;

    for (seq, transport) in [TransportKind::Udp, TransportKind::Tcp, TransportKind::Ws]
        .into_iter()
        .zip(1..)
        .map(|(t, s)| (s, t))
    {
        let Some(addr) = server.local_addr(transport) else {
            continue;
        };
        let peer = Peer { transport, addr };
        let start = Instant::now();
        client.send(peer, options(transport, addr, seq)).await?;
        let reply = tokio::time::timeout(Duration::from_secs(5), client_rx.recv())
            .await?
            .ok_or("client closed")?;
        let via = reply.message.header(sip_message::HeaderName::Via);
        println!(
            "{peer}: {} in {:?}\n    Via: {}",
            reply.message.start_line_str(),
            start.elapsed(),
            via.and_then(|v| v.value().ok()).unwrap_or("-"),
        );
    }
    client.shutdown().await;
    server.shutdown().await;
    Ok(())
}
