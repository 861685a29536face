//! `switchboard ua`: a small user agent for smoke tests and interop.
//!
//! * `answer`: answers every INVITE with 200 and an SDP body, waits for the
//!   ACK and the BYE; answers OPTIONS and MESSAGE with 200.
//! * `call`: places calls (INVITE, ACK, hold, BYE) at a rate and counts how
//!   many completed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use sip_message::headers::CSeq;
use sip_message::{Method, Peer, RequestBuilder, ResponseBuilder, SipMessage, TransportKind, Uri};
use sip_proto::{Dialog, DialogId};
use sip_stack::{ClientEvent, Stack, StackConfig, StackEvent, StackHandle};
use sip_transport::TransportConfig;

/// Which transport the UA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    fn kind(self) -> TransportKind {
        match self {
            Transport::Udp => TransportKind::Udp,
            Transport::Tcp => TransportKind::Tcp,
        }
    }
}

fn config(listen: SocketAddr, transport: Transport) -> StackConfig {
    let mut t = TransportConfig::default();
    match transport {
        Transport::Udp => t.udp.push(listen),
        Transport::Tcp => t.tcp.push(listen),
    }
    StackConfig {
        transport: t,
        shards: 1,
        ..StackConfig::default()
    }
}

fn sdp(ip: IpAddr, port: u16) -> Bytes {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    Bytes::from(format!(
        "v=0\r\no=switchboard 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ))
}

/// Runs the answering UA until interrupted.
pub(crate) async fn answer(
    listen: SocketAddr,
    transport: Transport,
    advertise: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let mut stack = Stack::start(config(listen, transport)).await?;
    let handle = stack.handle();
    let local = handle
        .local_addr(transport.kind())
        .context("no local address")?;
    println!("switchboard ua answering on {}:{local}", transport.kind());
    let mut dialogs: HashMap<DialogId, Dialog> = HashMap::new();
    let contact = format!(
        "<sip:ua@{}>",
        host_port(advertise.unwrap_or(local), transport)
    );
    loop {
        let event = tokio::select! {
            e = stack.next_event() => e,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else { break };
        if let StackEvent::Request(tx) = event {
            let req = tx.request();
            let tag = handle.tag();
            let response = match req.method() {
                Some(Method::Invite) => {
                    match DialogId::of_request(req) {
                        // A re-INVITE: accept it in its dialog.
                        Some(id) if dialogs.contains_key(&id) => {
                            ResponseBuilder::for_request(req, 200, None)?
                                .header("Contact", &contact)
                                .body("application/sdp", sdp(local.ip(), 40000))
                                .build()?
                        }
                        Some(_) => ResponseBuilder::for_request(req, 481, None)?.build()?,
                        None => {
                            let dialog = Dialog::uas(req, &tag, false)?;
                            dialogs.insert(dialog.id().clone(), dialog);
                            ResponseBuilder::for_request(req, 200, Some(&tag))?
                                .header("Contact", &contact)
                                .body("application/sdp", sdp(local.ip(), 40000))
                                .build()?
                        }
                    }
                }
                Some(Method::Bye) => match DialogId::of_request(req) {
                    Some(id) if dialogs.remove(&id).is_some() => {
                        ResponseBuilder::for_request(req, 200, None)?.build()?
                    }
                    _ => ResponseBuilder::for_request(req, 481, None)?.build()?,
                },
                Some(Method::Options | Method::Message | Method::Info | Method::Update) => {
                    ResponseBuilder::for_request(req, 200, Some(&tag))?.build()?
                }
                Some(Method::Register) => {
                    ResponseBuilder::for_request(req, 200, Some(&tag))?.build()?
                }
                _ => ResponseBuilder::for_request(req, 405, Some(&tag))?
                    .header(
                        "Allow",
                        "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE",
                    )
                    .build()?,
            };
            tx.respond(response);
        }
    }
    Ok(())
}

fn host_port(addr: SocketAddr, transport: Transport) -> String {
    let t = match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    };
    format!("{addr}{t}")
}

/// Where a SIP URI with an IP host points (RFC 3263 resolution by DNS is
/// left to the servers; the test UA takes literal addresses and names that
/// resolve through the system resolver).
async fn resolve(uri: &str, transport: Transport) -> anyhow::Result<Peer> {
    let parsed = Uri::parse(uri).map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
    let sip = parsed
        .as_sip()
        .context("only sip: and sips: URIs can be called")?;
    let port = sip.port().unwrap_or(5060);
    let host = sip
        .host_str()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .with_context(|| format!("{host} does not resolve"))?;
    Ok(Peer {
        transport: transport.kind(),
        addr,
    })
}

/// What `call` reports.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
}

/// Places `count` calls to `to` at `rate` calls per second, each held for
/// `hold` before the BYE.
pub(crate) async fn call(
    to: &str,
    listen: SocketAddr,
    transport: Transport,
    count: u64,
    rate: f64,
    hold: Duration,
) -> anyhow::Result<CallStats> {
    if rate <= 0.0 || !rate.is_finite() {
        bail!("--rate must be a positive number of calls per second");
    }
    let mut stack = Stack::start(config(listen, transport)).await?;
    let handle = stack.handle();
    let peer = resolve(to, transport).await?;
    let local = handle
        .local_addr(transport.kind())
        .context("no local address")?;
    // Drain stack events (stray responses, requests from the far end).
    tokio::spawn(async move {
        while let Some(e) = stack.next_event().await {
            if let StackEvent::Request(tx) = e {
                let r =
                    ResponseBuilder::for_request(tx.request(), 481, None).and_then(|b| b.build());
                if let Ok(r) = r {
                    tx.respond(r);
                }
            }
        }
    });
    let succeeded = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..count {
        ticker.tick().await;
        let handle = handle.clone();
        let to = to.to_owned();
        let (ok, ko) = (Arc::clone(&succeeded), Arc::clone(&failed));
        calls.spawn(async move {
            match one_call(&handle, &to, peer, local, transport, hold, n).await {
                Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(call = n, error = format!("{e:#}"), "call failed");
                    ko.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }
    while calls.join_next().await.is_some() {}
    Ok(CallStats {
        succeeded: succeeded.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    })
}

fn via(handle: &StackHandle, local: SocketAddr, transport: Transport) -> String {
    format!(
        "SIP/2.0/{} {local};branch={};rport",
        transport.kind(),
        handle.branch()
    )
}

/// Waits for the final response of a client transaction.
async fn final_response(tx: &mut sip_stack::ClientTransaction) -> anyhow::Result<SipMessage> {
    loop {
        match tx.next().await {
            Some(ClientEvent::Response(r)) if r.status().is_some_and(|s| s >= 200) => return Ok(r),
            Some(ClientEvent::Response(_)) => {}
            Some(ClientEvent::Timeout) => bail!("timeout"),
            Some(ClientEvent::TransportError) => bail!("transport error"),
            Some(_) => {}
            None => bail!("transaction ended without a final response"),
        }
    }
}

async fn one_call(
    handle: &StackHandle,
    to: &str,
    peer: Peer,
    local: SocketAddr,
    transport: Transport,
    hold: Duration,
    n: u64,
) -> anyhow::Result<()> {
    let host = local.ip().to_string();
    let call_id = handle.call_id(&host);
    let tag = handle.tag();
    let contact = format!("<sip:ua@{}>", host_port(local, transport));
    let invite = RequestBuilder::new(Method::Invite, to)?
        .header("Via", &via(handle, local, transport))
        .header("Max-Forwards", "70")
        .header("From", &format!("<sip:ua{n}@{host}>;tag={tag}"))
        .header("To", &format!("<{to}>"))
        .header("Call-ID", &call_id)
        .header("CSeq", "1 INVITE")
        .header("Contact", &contact)
        .body("application/sdp", sdp(local.ip(), 30000))
        .build()?;
    let mut tx = handle.send_request(invite.clone(), peer).await?;
    let ok = final_response(&mut tx).await.context("INVITE")?;
    let status = ok.status().unwrap_or(0);
    if !(200..300).contains(&status) {
        bail!("INVITE answered {status}");
    }
    let mut dialog = Dialog::uac(&invite, &ok)?;
    let cseq = invite
        .typed::<CSeq<'_>>()
        .and_then(Result::ok)
        .map_or(1, |c| c.seq);
    // §13.2.2.4: the ACK for a 2xx goes end to end, outside the transaction.
    let ack = dialog.ack(cseq, &via(handle, local, transport))?.build()?;
    let next_hop = resolve(&dialog.next_hop(), transport).await.unwrap_or(peer);
    handle.send_stateless(&ack, next_hop);
    // Answer 2xx retransmissions with the same ACK until the transaction ends.
    let (h2, ack2) = (handle.clone(), ack.clone());
    tokio::spawn(async move {
        while let Some(ev) = tx.next().await {
            if let ClientEvent::Response(r) = ev
                && r.status().is_some_and(|s| (200..300).contains(&s))
            {
                h2.send_stateless(&ack2, next_hop);
            }
        }
    });
    tokio::time::sleep(hold).await;
    let mut ids = sip_proto::IdGenerator::new(n);
    let bye = dialog
        .request(Method::Bye, &via(handle, local, transport), None, &mut ids)?
        .build()?;
    let mut tx = handle.send_request(bye, next_hop).await?;
    let r = final_response(&mut tx).await.context("BYE")?;
    dialog.terminate();
    match r.status() {
        Some(200..=299) => Ok(()),
        other => bail!("BYE answered {other:?}"),
    }
}
