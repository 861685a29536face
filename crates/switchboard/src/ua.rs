//! `switchboard ua`: a small user agent for smoke tests and interop.
//!
//! * `answer`: answers every INVITE with 200 and an SDP body, waits for the
//!   ACK and the BYE; answers OPTIONS and MESSAGE with 200.
//! * `call`: places calls (INVITE, ACK, hold, BYE) at a rate and counts how
//!   many completed.
//!
//! # Transports
//! UDP, TCP, TLS, WS and WSS (RFC 7118), named in URIs as RFC 3261 §19.1
//! and RFC 7118 §5.2 do: `sip:u@h:p` (UDP unless told otherwise),
//! `sip:u@h:p;transport=tcp`, `sips:u@h:p` or `sip:u@h:p;transport=tls`
//! (TLS), `sip:u@h:p;transport=ws` (WS), `sips:u@h:p;transport=ws` (WSS).
//! Via carries the transport token (`SIP/2.0/TLS`, `SIP/2.0/WS`,
//! `SIP/2.0/WSS`, §18.1.1, RFC 7118 §5.3).
//!
//! The answering side listens on its transport (TLS and WSS with a PEM
//! certificate and key) and puts that address in Contact, as a `sips:` URI
//! when the request came to one (§12.1.1) and always for WSS. The calling
//! side listens on UDP and TCP only: over TLS, WS and WSS it connects out
//! (it has no certificate, and a WebSocket client cannot be reached), so its
//! Via and Contact carry an `.invalid` host (RFC 7118 §5) and everything
//! comes back over the connection it opened (§18.2.2). It verifies a TLS or
//! WSS server against a CA certificate given as PEM, by the URI's host name
//! when it has one (RFC 5922 §7), else by its IP address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sip_message::headers::CSeq;
use sip_message::{
    Host, Method, Peer, RequestBuilder, ResponseBuilder, SipMessage, SipUri, TransportKind, Uri,
};
use sip_proto::{Dialog, DialogId};
use sip_stack::{ClientEvent, Stack, StackConfig, StackEvent, StackHandle};
use sip_transport::{TlsClient, TlsServer, TransportConfig};

/// Which transport the UA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (`sips:`, or `;transport=tls`).
    Tls,
    /// WebSocket (RFC 7118, `;transport=ws`).
    Ws,
    /// Secure WebSocket (`sips:` with `;transport=ws`).
    Wss,
}

impl Transport {
    fn kind(self) -> TransportKind {
        match self {
            Transport::Udp => TransportKind::Udp,
            Transport::Tcp => TransportKind::Tcp,
            Transport::Tls => TransportKind::Tls,
            Transport::Ws => TransportKind::Ws,
            Transport::Wss => TransportKind::Wss,
        }
    }

    /// TLS underneath: a certificate to serve, a CA to verify with.
    fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// Whether the calling side listens, or only connects out.
    fn caller_listens(self) -> bool {
        matches!(self, Transport::Udp | Transport::Tcp)
    }

    /// The port of a URI that names none (§19.1.2: 5061 for TLS).
    fn default_port(self) -> u16 {
        if self.is_secure() { 5061 } else { 5060 }
    }

    /// The transport a SIP URI asks for (§19.1.1, §26.2.2, RFC 7118 §5.2),
    /// or `None` when it names none. `transport=wss` is not in RFC 7118
    /// but is common enough to accept.
    fn of_uri(sip: &SipUri<'_>) -> anyhow::Result<Option<Transport>> {
        let param = sip.transport().map(str::to_ascii_lowercase);
        Ok(match (sip.is_secure(), param.as_deref()) {
            (false, None) => None,
            (false, Some("udp")) => Some(Transport::Udp),
            (false, Some("tcp")) => Some(Transport::Tcp),
            (true, None | Some("tcp" | "tls")) | (false, Some("tls")) => Some(Transport::Tls),
            (false, Some("ws")) => Some(Transport::Ws),
            (true, Some("ws" | "wss")) | (false, Some("wss")) => Some(Transport::Wss),
            (true, Some("udp")) => bail!("a sips: URI cannot be reached over UDP"),
            (_, Some(other)) => bail!("unsupported transport={other}"),
        })
    }
}

/// A URI for `user` at `host_port` reached over `transport`; `sips` asks
/// for the `sips:` form of TLS (§19.1, RFC 7118 §5.2: WSS is always
/// `sips:` with `transport=ws`).
fn sip_uri(user: &str, host_port: &str, transport: Transport, sips: bool) -> String {
    match (transport, sips) {
        (Transport::Udp, _) => format!("sip:{user}@{host_port}"),
        (Transport::Tcp, _) => format!("sip:{user}@{host_port};transport=tcp"),
        (Transport::Tls, true) => format!("sips:{user}@{host_port}"),
        (Transport::Tls, false) => format!("sip:{user}@{host_port};transport=tls"),
        (Transport::Ws, _) => format!("sip:{user}@{host_port};transport=ws"),
        (Transport::Wss, _) => format!("sips:{user}@{host_port};transport=ws"),
    }
}

/// An IP address as a URI host: IPv6 in brackets (RFC 5118 §4.1).
fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// The certificate chain and private key the answering side serves TLS
/// and WSS with: PEM files.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    /// The certificate chain, leaf first.
    pub(crate) cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) key: PathBuf,
}

fn stack_config(transport: TransportConfig) -> StackConfig {
    StackConfig {
        transport,
        shards: 1,
        // One thread for the whole UA: no message crosses threads.
        dedicated_threads: false,
        ..StackConfig::default()
    }
}

/// What the answering side binds: `listen` on its transport.
fn answer_config(
    listen: SocketAddr,
    transport: Transport,
    cert: Option<&CertFiles>,
) -> anyhow::Result<StackConfig> {
    if cert.is_some() && !transport.is_secure() {
        bail!("--cert and --key are for --transport tls and wss");
    }
    let server = || -> anyhow::Result<TlsServer> {
        let files = cert.context("--transport tls and wss need --cert FILE and --key FILE")?;
        TlsServer::from_pem_files(&files.cert, &files.key).with_context(|| {
            format!(
                "reading {} and {}",
                files.cert.display(),
                files.key.display()
            )
        })
    };
    let mut t = TransportConfig::default();
    match transport {
        Transport::Udp => t.udp.push(listen),
        Transport::Tcp => t.tcp.push(listen),
        Transport::Tls => t.tls.push((listen, server()?)),
        Transport::Ws => t.ws.push(listen),
        Transport::Wss => t.wss.push((listen, server()?)),
    }
    Ok(stack_config(t))
}

/// What the calling side binds: `listen` for UDP and TCP, nothing for the
/// others (it connects out); a CA to verify TLS and WSS servers with.
fn call_config(
    listen: SocketAddr,
    transport: Transport,
    ca: Option<&Path>,
) -> anyhow::Result<StackConfig> {
    let mut t = TransportConfig::default();
    match transport {
        Transport::Udp => t.udp.push(listen),
        Transport::Tcp => t.tcp.push(listen),
        Transport::Tls | Transport::Ws | Transport::Wss => {}
    }
    match (transport.is_secure(), ca) {
        (true, Some(ca)) => {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let client = TlsClient::from_ca_pem(&pem)
                .with_context(|| format!("reading CA certificates from {}", ca.display()))?;
            t.tls_client = Some(client);
        }
        (true, None) => bail!(
            "--transport tls and wss need --ca FILE, the PEM certificate of the CA that \
             signed the server's (system roots are not loaded)"
        ),
        (false, Some(_)) => bail!("--ca is for --transport tls and wss"),
        (false, None) => {}
    }
    Ok(stack_config(t))
}

/// Runs the answering UA until interrupted.
pub(crate) async fn answer(
    listen: SocketAddr,
    transport: Transport,
    advertise: Option<SocketAddr>,
    ring: bool,
    cert: Option<&CertFiles>,
) -> anyhow::Result<()> {
    let mut stack = Stack::start(answer_config(listen, transport, cert)?).await?;
    let handle = stack.handle();
    let local = handle
        .local_addr(transport.kind())
        .context("no local address")?;
    println!("switchboard ua answering on {}:{local}", transport.kind());
    let mut dialogs: HashMap<DialogId, Dialog> = HashMap::new();
    let host_port = advertise.unwrap_or(local).to_string();
    loop {
        let event = tokio::select! {
            e = stack.next_event() => e,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else { break };
        if let StackEvent::Request(tx) = event {
            let req = tx.request();
            let tag = handle.tag();
            // §12.1.1: a request to a sips: URI gets a sips: Contact.
            let sips = req
                .request_uri()
                .and_then(|u| u.as_sip().map(SipUri::is_secure))
                .unwrap_or(false);
            let contact = format!("<{}>", sip_uri("ua", &host_port, transport, sips));
            let response = match req.method() {
                Some(Method::Invite) => {
                    match DialogId::of_request(req) {
                        // A re-INVITE: accept it in its dialog.
                        Some(id) if dialogs.contains_key(&id) => {
                            ResponseBuilder::for_request(req, 200, None)?
                                .header("Contact", &contact)
                                .body(
                                    "application/sdp",
                                    container::apps::answer::sdp(local.ip(), 40000),
                                )
                                .build()?
                        }
                        Some(_) => ResponseBuilder::for_request(req, 481, None)?.build()?,
                        None => {
                            let dialog = Dialog::uas(req, &tag, false)?;
                            dialogs.insert(dialog.id().clone(), dialog);
                            if ring {
                                tx.respond(ResponseBuilder::for_request(req, 100, None)?.build()?);
                                tx.respond(
                                    ResponseBuilder::for_request(req, 180, Some(&tag))?
                                        .header("Contact", &contact)
                                        .build()?,
                                );
                            }
                            ResponseBuilder::for_request(req, 200, Some(&tag))?
                                .header("Contact", &contact)
                                .body(
                                    "application/sdp",
                                    container::apps::answer::sdp(local.ip(), 40000),
                                )
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

/// Where a SIP URI points over `transport` (RFC 3263 resolution by DNS is
/// left to the servers; the test UA takes literal addresses and names that
/// resolve through the system resolver).
async fn resolve(uri: &str, transport: Transport) -> anyhow::Result<Peer> {
    let parsed = Uri::parse(uri).map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
    let sip = parsed
        .as_sip()
        .context("only sip: and sips: URIs can be called")?;
    let port = sip.port().unwrap_or(transport.default_port());
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

/// The URI to call, as far as choosing a transport goes.
struct Target {
    transport: Transport,
    /// A `sips:` URI: our Contact must be one too (§8.1.1.8).
    sips: bool,
    /// The host name a TLS server's certificate must carry; `None` for an
    /// IP address (then the address is verified).
    server_name: Option<String>,
}

impl Target {
    /// The transport is what the URI names, else `flag`, else UDP; when
    /// both name one they must agree.
    fn parse(to: &str, flag: Option<Transport>) -> anyhow::Result<Target> {
        let parsed = Uri::parse(to).map_err(|e| anyhow::anyhow!("{to}: {e}"))?;
        let sip = parsed
            .as_sip()
            .context("only sip: and sips: URIs can be called")?;
        let named = Transport::of_uri(sip).with_context(|| to.to_owned())?;
        let transport = match (named, flag) {
            (Some(n), Some(f)) if n != f => bail!(
                "{to} is reached over {} but --transport is {}",
                n.kind(),
                f.kind()
            ),
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => Transport::Udp,
        };
        let server_name = match sip.host() {
            Host::Domain(d) => Some(d.to_owned()),
            Host::Ipv4(_) | Host::Ipv6(_) => None,
        };
        Ok(Target {
            transport,
            sips: sip.is_secure(),
            server_name,
        })
    }
}

/// How the calling UA names itself in what it sends.
#[derive(Debug, Clone)]
struct Caller {
    transport: Transport,
    /// Via sent-by: the listening address, or an `.invalid` host.
    sent_by: String,
    /// The host of From and Call-ID.
    host: String,
    /// The Contact header value.
    contact: String,
    /// The address in the SDP.
    media: IpAddr,
}

impl Caller {
    fn new(
        handle: &StackHandle,
        transport: Transport,
        listen: SocketAddr,
        sips: bool,
    ) -> anyhow::Result<Caller> {
        let (sent_by, host) = if transport.caller_listens() {
            let local = handle
                .local_addr(transport.kind())
                .context("no local address")?;
            (local.to_string(), uri_host(local.ip()))
        } else {
            // RFC 7118 §5: a UA that cannot be reached at an address of its
            // own says so with an invalid domain; everything comes back over
            // the connection it opens.
            let host = format!("{}.invalid", handle.tag());
            (host.clone(), host)
        };
        let contact = format!("<{}>", sip_uri("ua", &sent_by, transport, sips));
        Ok(Caller {
            transport,
            sent_by,
            host,
            contact,
            media: listen.ip(),
        })
    }

    fn via(&self, handle: &StackHandle) -> String {
        format!(
            "SIP/2.0/{} {};branch={};rport",
            self.transport.kind(),
            self.sent_by,
            handle.branch()
        )
    }
}

/// What `call` reports.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
}

/// Places `count` calls to `to` at `rate` calls per second, each held for
/// `hold` before the BYE. The transport is the one `to` names, else
/// `transport`, else UDP; `ca` verifies TLS and WSS servers.
pub(crate) async fn call(
    to: &str,
    listen: SocketAddr,
    transport: Option<Transport>,
    ca: Option<&Path>,
    count: u64,
    rate: f64,
    hold: Duration,
) -> anyhow::Result<CallStats> {
    if rate <= 0.0 || !rate.is_finite() {
        bail!("--rate must be a positive number of calls per second");
    }
    let target = Target::parse(to, transport)?;
    let transport = target.transport;
    let mut stack = Stack::start(call_config(listen, transport, ca)?).await?;
    let handle = stack.handle();
    let peer = resolve(to, transport).await?;
    if transport != Transport::Udp {
        // One connection up front, verified by the URI's host name when it
        // has one (RFC 5922 §7): a bad certificate fails here, once, and
        // every call reuses the connection.
        handle
            .transports()
            .connect(peer, target.server_name.as_deref())
            .await
            .with_context(|| format!("connecting to {peer}"))?;
    }
    let me = Arc::new(Caller::new(&handle, transport, listen, target.sips)?);
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
        let me = Arc::clone(&me);
        let (ok, ko) = (Arc::clone(&succeeded), Arc::clone(&failed));
        calls.spawn(async move {
            match one_call(&handle, &me, &to, peer, hold, n).await {
                Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(call = n, error = format!("{e:#}"), "call failed");
                    ko.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }
    while calls.join_next().await.is_some() {}
    // Close connections cleanly (TLS close_notify, WebSocket Close), but
    // do not wait long for a peer that does not answer.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        handle.transports().clone().shutdown(),
    )
    .await;
    Ok(CallStats {
        succeeded: succeeded.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    })
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
    me: &Caller,
    to: &str,
    peer: Peer,
    hold: Duration,
    n: u64,
) -> anyhow::Result<()> {
    let host = &me.host;
    let call_id = handle.call_id(host);
    let tag = handle.tag();
    let invite = RequestBuilder::new(Method::Invite, to)?
        .header("Via", &me.via(handle))
        .header("Max-Forwards", "70")
        .header("From", &format!("<sip:ua{n}@{host}>;tag={tag}"))
        .header("To", &format!("<{to}>"))
        .header("Call-ID", &call_id)
        .header("CSeq", "1 INVITE")
        .header("Contact", &me.contact)
        .body(
            "application/sdp",
            container::apps::answer::sdp(me.media, 30000),
        )
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
    let ack = dialog.ack(cseq, &me.via(handle))?.build()?;
    let next_hop = resolve(&dialog.next_hop(), me.transport)
        .await
        .unwrap_or(peer);
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
        .request(Method::Bye, &me.via(handle), None, &mut ids)?
        .build()?;
    let mut tx = handle.send_request(bye, next_hop).await?;
    let r = final_response(&mut tx).await.context("BYE")?;
    dialog.terminate();
    match r.status() {
        Some(200..=299) => Ok(()),
        other => bail!("BYE answered {other:?}"),
    }
}
