//! Integration tests of the async stack: two real [`Stack`]s on loopback
//! (127.0.0.1 and ::1, port 0) talking over UDP, TCP, TLS, WS and WSS.
//!
//! Every wait on the network is bounded by [`within`], so a failure fails
//! the test instead of hanging it; nothing sleeps where an event can be
//! awaited.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sip_message::headers::{CSeq, CallId, To, Via};
use sip_message::{Method, Peer, RequestBuilder, ResponseBuilder, SipMessage, TransportKind, Uri};
use sip_proto::{Dialog, DialogId, DialogState, IdGenerator, Timers};
use sip_stack::{
    ClientEvent, ClientTransaction, ServerTransaction, Stack, StackConfig, StackEvent, StackHandle,
};
use sip_transport::{TlsClient, TlsServer, TransportConfig};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

const V4: &str = "127.0.0.1:0";
const V6: &str = "[::1]:0";

fn any(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

// ---- certificates -----------------------------------------------------------

/// A CA and a server certificate for 127.0.0.1, ::1 and localhost, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn new_pki() -> Pki {
    let p = sip_testkit::pki::TestPki::loopback("Switchboard stack test CA").unwrap();
    Pki {
        ca_pem: p.ca_pem,
        cert_pem: p.cert_pem,
        key_pem: p.key_pem,
    }
}

impl Pki {
    fn server(&self) -> TlsServer {
        TlsServer::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    fn client(&self) -> TlsClient {
        TlsClient::from_ca_pem(self.ca_pem.as_bytes()).unwrap()
    }
}

// ---- stacks and messages ----------------------------------------------------

fn config(transport: TransportConfig) -> StackConfig {
    StackConfig {
        transport,
        shards: 2,
        ..StackConfig::default()
    }
}

/// Listens on `addr` with one transport (a certificate for the secure ones).
fn listening(kind: TransportKind, addr: &str, pki: Option<&Pki>) -> TransportConfig {
    let addr = any(addr);
    let mut t = TransportConfig::default();
    match kind {
        TransportKind::Udp => t.udp.push(addr),
        TransportKind::Tcp => t.tcp.push(addr),
        TransportKind::Tls => t.tls.push((addr, pki.unwrap().server())),
        TransportKind::Ws => t.ws.push(addr),
        TransportKind::Wss => t.wss.push((addr, pki.unwrap().server())),
    }
    t
}

async fn start(transport: TransportConfig) -> Stack {
    Stack::start(config(transport)).await.unwrap()
}

/// The URI `sip:{user}@{addr}` with the transport parameter RFC 3261
/// §19.1.1 and RFC 7118 §5.2 prescribe (`sips:` for TLS and WSS).
fn uri(user: &str, kind: TransportKind, addr: &str) -> String {
    match kind {
        TransportKind::Udp => format!("sip:{user}@{addr}"),
        TransportKind::Tcp => format!("sip:{user}@{addr};transport=tcp"),
        TransportKind::Tls => format!("sips:{user}@{addr}"),
        TransportKind::Ws => format!("sip:{user}@{addr};transport=ws"),
        TransportKind::Wss => format!("sips:{user}@{addr};transport=ws"),
    }
}

/// A UA on one stack: where it says it is (Via sent-by, Contact).
#[derive(Clone)]
struct Ua {
    handle: StackHandle,
    kind: TransportKind,
    /// The Via sent-by and Contact host: the listening address, or an
    /// `.invalid` name for a UA that only connects out (RFC 7118 §5).
    sent_by: String,
    user: &'static str,
}

impl Ua {
    fn new(stack: &Stack, kind: TransportKind, user: &'static str) -> Ua {
        let handle = stack.handle();
        let sent_by = match handle.local_addr(kind) {
            Some(a) => a.to_string(),
            None => format!("{user}.invalid"),
        };
        Ua {
            handle,
            kind,
            sent_by,
            user,
        }
    }

    fn via(&self) -> String {
        format!(
            "SIP/2.0/{} {};rport;branch={}",
            self.kind,
            self.sent_by,
            self.handle.branch()
        )
    }

    fn contact(&self) -> String {
        format!("<{}>", uri(self.user, self.kind, &self.sent_by))
    }

    /// A request outside a dialog to `target`.
    fn request(&self, method: Method<'_>, target: &str, call_id: &str) -> SipMessage {
        let host = self.sent_by.clone();
        let mut b = RequestBuilder::new(method, target)
            .unwrap()
            .header("Via", &self.via())
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!("<sip:{}@{host}>;tag={}", self.user, self.handle.tag()),
            )
            .header("To", &format!("<{target}>"))
            .header("Call-ID", call_id)
            .header("CSeq", &format!("1 {method}"));
        if method == Method::Invite {
            b = b.header("Contact", &self.contact());
        }
        b.build().unwrap()
    }

    fn call_id(&self) -> String {
        self.handle.call_id("test.invalid")
    }
}

fn peer(kind: TransportKind, addr: SocketAddr) -> Peer {
    Peer {
        transport: kind,
        addr,
    }
}

/// Where a URI with an IP host points, over `kind`.
fn uri_peer(uri: &str, kind: TransportKind) -> Peer {
    let parsed = Uri::parse(uri).unwrap();
    let sip = parsed.as_sip().unwrap();
    let ip: IpAddr = sip
        .host_str()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .unwrap();
    peer(kind, SocketAddr::new(ip, sip.port().unwrap()))
}

fn response(req: &SipMessage, status: u16, tag: Option<&str>, contact: Option<&str>) -> SipMessage {
    let mut b = ResponseBuilder::for_request(req, status, tag).unwrap();
    if let Some(c) = contact {
        b = b.header("Contact", c);
    }
    b.build().unwrap()
}

fn call_id_of(msg: &SipMessage) -> String {
    msg.typed::<CallId<'_>>().unwrap().unwrap().0.to_owned()
}

fn cseq_of(msg: &SipMessage) -> u32 {
    msg.typed::<CSeq<'_>>().unwrap().unwrap().seq
}

/// The next request the stack hands up (ACKs and strays are not expected).
async fn next_request(stack: &mut Stack) -> ServerTransaction {
    match within("a request", stack.next_event()).await {
        Some(StackEvent::Request(tx)) => tx,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// The next response of a client transaction, skipping 100 Trying.
async fn next_response(tx: &mut ClientTransaction) -> SipMessage {
    loop {
        match within("a response", tx.next()).await {
            Some(ClientEvent::Response(r)) if r.status() == Some(100) => {}
            Some(ClientEvent::Response(r)) => return r,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

// ---- OPTIONS over every transport ---------------------------------------------

/// The client sends OPTIONS; the server sees it arrive over `kind` and
/// answers 200; the client sees the 200, and on a reliable transport the
/// transaction ends at once (timer K is zero, §17.1.2.2).
async fn options_round_trip(server: TransportConfig, client: TransportConfig, kind: TransportKind) {
    let mut server = start(server).await;
    let client = start(client).await;
    let server_addr = server.handle().local_addr(kind).unwrap();
    let ua = Ua::new(&client, kind, "alice");
    let target = uri("service", kind, &server_addr.to_string());
    let options = ua.request(Method::Options, &target, &ua.call_id());
    let mut ctx = within(
        "send_request",
        ua.handle.send_request(options, peer(kind, server_addr)),
    )
    .await
    .unwrap();

    let stx = next_request(&mut server).await;
    assert_eq!(stx.request().method(), Some(Method::Options));
    assert_eq!(stx.source().transport, kind);
    // §18.2.1: the server recorded where the request came from.
    let via: Via<'_> = stx.request().typed().unwrap().unwrap();
    assert!(via.received().is_some(), "received stamped: {kind}");
    stx.respond(response(stx.request(), 200, Some("srv"), None));

    let ok = next_response(&mut ctx).await;
    assert_eq!(ok.status(), Some(200), "{kind}");
    assert_eq!(
        ok.typed::<To<'_>>().unwrap().unwrap().tag(),
        Some("srv"),
        "{kind}"
    );
    if kind.is_reliable() {
        assert_eq!(within("the end", ctx.next()).await, None, "{kind}");
    }
}

#[tokio::test]
async fn options_over_udp() {
    let t = || listening(TransportKind::Udp, V4, None);
    within("the test", options_round_trip(t(), t(), TransportKind::Udp)).await;
}

#[tokio::test]
async fn options_over_tcp() {
    let t = || listening(TransportKind::Tcp, V4, None);
    within("the test", options_round_trip(t(), t(), TransportKind::Tcp)).await;
}

#[tokio::test]
async fn options_over_tls_verified_by_a_generated_ca() {
    let pki = new_pki();
    let server = listening(TransportKind::Tls, V4, Some(&pki));
    let client = TransportConfig {
        tls_client: Some(pki.client()),
        ..TransportConfig::default()
    };
    within(
        "the test",
        options_round_trip(server, client, TransportKind::Tls),
    )
    .await;
}

#[tokio::test]
async fn options_over_ws() {
    let server = listening(TransportKind::Ws, V4, None);
    within(
        "the test",
        options_round_trip(server, TransportConfig::default(), TransportKind::Ws),
    )
    .await;
}

#[tokio::test]
async fn options_over_wss() {
    let pki = new_pki();
    let server = listening(TransportKind::Wss, V4, Some(&pki));
    let client = TransportConfig {
        tls_client: Some(pki.client()),
        ..TransportConfig::default()
    };
    within(
        "the test",
        options_round_trip(server, client, TransportKind::Wss),
    )
    .await;
}

#[tokio::test]
async fn options_over_ipv6_udp_tcp_and_tls() {
    for kind in [TransportKind::Udp, TransportKind::Tcp] {
        let t = || listening(kind, V6, None);
        within("the test", options_round_trip(t(), t(), kind)).await;
    }
    // The certificate names ::1; the client verifies the IP address.
    let pki = new_pki();
    let server = listening(TransportKind::Tls, V6, Some(&pki));
    let client = TransportConfig {
        tls_client: Some(pki.client()),
        ..TransportConfig::default()
    };
    within(
        "the test",
        options_round_trip(server, client, TransportKind::Tls),
    )
    .await;
}

#[tokio::test]
async fn tls_to_a_server_the_client_does_not_trust_is_a_transport_error() {
    let (pki, other) = (new_pki(), new_pki());
    let server = start(listening(TransportKind::Tls, V4, Some(&pki))).await;
    let client = start(TransportConfig {
        tls_client: Some(other.client()),
        ..TransportConfig::default()
    })
    .await;
    let addr = server.handle().local_addr(TransportKind::Tls).unwrap();
    let ua = Ua::new(&client, TransportKind::Tls, "alice");
    let options = ua.request(
        Method::Options,
        &uri("service", TransportKind::Tls, &addr.to_string()),
        &ua.call_id(),
    );
    let mut tx = within(
        "send_request",
        ua.handle
            .send_request(options, peer(TransportKind::Tls, addr)),
    )
    .await
    .unwrap();
    assert_eq!(
        within("the failure", tx.next()).await,
        Some(ClientEvent::TransportError)
    );
    assert_eq!(within("the end", tx.next()).await, None);
}

// ---- INVITE dialogs -----------------------------------------------------------

/// INVITE -> 180 -> 200 -> ACK -> BYE -> 200, both sides keeping a dialog.
async fn invite_dialog(kind: TransportKind) {
    let mut uas_stack = start(listening(kind, V4, None)).await;
    let uac_stack = start(listening(kind, V4, None)).await;
    let uas = Ua::new(&uas_stack, kind, "bob");
    let uac = Ua::new(&uac_stack, kind, "alice");
    let uas_addr = uas.handle.local_addr(kind).unwrap();

    // UAC: the INVITE.
    let invite = uac.request(
        Method::Invite,
        &uri("bob", kind, &uas_addr.to_string()),
        &uac.call_id(),
    );
    let mut ctx = within(
        "send_request",
        uac.handle
            .send_request(invite.clone(), peer(kind, uas_addr)),
    )
    .await
    .unwrap();

    // UAS: 180 then 200, in an early then confirmed dialog (§12.1.1).
    let stx = next_request(&mut uas_stack).await;
    assert_eq!(stx.request().method(), Some(Method::Invite));
    let tag = uas.handle.tag();
    let mut uas_dialog = Dialog::uas(stx.request(), &tag, true).unwrap();
    assert_eq!(uas_dialog.state(), DialogState::Early);
    assert_eq!(uas_dialog.remote_target(), uri("alice", kind, &uac.sent_by));
    stx.respond(response(
        stx.request(),
        180,
        Some(&tag),
        Some(&uas.contact()),
    ));

    // UAC: the 180 makes an early dialog (§12.1.2).
    let ringing = next_response(&mut ctx).await;
    assert_eq!(ringing.status(), Some(180));
    let mut uac_dialog = Dialog::uac(&invite, &ringing).unwrap();
    assert_eq!(uac_dialog.state(), DialogState::Early);

    stx.respond(response(
        stx.request(),
        200,
        Some(&tag),
        Some(&uas.contact()),
    ));
    uas_dialog.answered(200);
    assert_eq!(uas_dialog.state(), DialogState::Confirmed);

    // UAC: the 200 confirms it; the ACK goes end to end (§13.2.2.4).
    let ok = next_response(&mut ctx).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        DialogId::of_response(&ok).as_ref(),
        Some(uac_dialog.id()),
        "same dialog as the 180"
    );
    uac_dialog.on_response(Method::Invite, &ok);
    assert_eq!(uac_dialog.state(), DialogState::Confirmed);
    assert_eq!(uac_dialog.remote_target(), uri("bob", kind, &uas.sent_by));
    assert_eq!(uac_dialog.id().call_id, uas_dialog.id().call_id);
    assert_eq!(uac_dialog.id().local_tag, uas_dialog.id().remote_tag);
    assert_eq!(uac_dialog.id().remote_tag, uas_dialog.id().local_tag);

    let ack = uac_dialog
        .ack(cseq_of(&invite), &uac.via())
        .unwrap()
        .build()
        .unwrap();
    let next_hop = uri_peer(&uac_dialog.next_hop(), kind);
    assert_eq!(next_hop, peer(kind, uas_addr));
    uac.handle.send_stateless(&ack, next_hop);

    // UAS: the ACK matched the 2xx it sent.
    match within("the ACK", uas_stack.next_event()).await {
        Some(StackEvent::Ack {
            request,
            source,
            acknowledged,
        }) => {
            assert!(acknowledged, "the ACK matched our 2xx");
            assert_eq!(source.transport, kind);
            assert_eq!(request.method(), Some(Method::Ack));
            assert_eq!(
                DialogId::of_request(&request).as_ref(),
                Some(uas_dialog.id())
            );
            uas_dialog.on_request(&request).unwrap();
        }
        other => panic!("expected the ACK, got {other:?}"),
    }

    // UAC: BYE in the dialog.
    let mut ids = IdGenerator::new(7);
    let bye = uac_dialog
        .request(Method::Bye, &uac.via(), None, &mut ids)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(cseq_of(&bye), cseq_of(&invite) + 1);
    let mut bye_tx = within("send BYE", uac.handle.send_request(bye, next_hop))
        .await
        .unwrap();

    let stx = next_request(&mut uas_stack).await;
    assert_eq!(stx.request().method(), Some(Method::Bye));
    assert_eq!(
        DialogId::of_request(stx.request()).as_ref(),
        Some(uas_dialog.id())
    );
    uas_dialog.on_request(stx.request()).unwrap();
    assert_eq!(uas_dialog.state(), DialogState::Terminated);
    stx.respond(response(stx.request(), 200, None, None));

    let ok = next_response(&mut bye_tx).await;
    assert_eq!(ok.status(), Some(200));
    uac_dialog.on_response(Method::Bye, &ok);
    uac_dialog.terminate();
    assert_eq!(uac_dialog.state(), DialogState::Terminated);
}

#[tokio::test]
async fn invite_ringing_ok_ack_bye_over_udp() {
    within("the test", invite_dialog(TransportKind::Udp)).await;
}

#[tokio::test]
async fn invite_ringing_ok_ack_bye_over_tcp() {
    within("the test", invite_dialog(TransportKind::Tcp)).await;
}

// ---- CANCEL -------------------------------------------------------------------

/// The UAC cancels after the 180; the UAS hears of it and answers 487;
/// the UAC sees the 487.
async fn cancel_after_ringing(kind: TransportKind) {
    let mut uas_stack = start(listening(kind, V4, None)).await;
    let uac_stack = start(listening(kind, V4, None)).await;
    let uas = Ua::new(&uas_stack, kind, "bob");
    let uac = Ua::new(&uac_stack, kind, "alice");
    let uas_addr = uas.handle.local_addr(kind).unwrap();
    let invite = uac.request(
        Method::Invite,
        &uri("bob", kind, &uas_addr.to_string()),
        &uac.call_id(),
    );
    let mut ctx = within(
        "send_request",
        uac.handle.send_request(invite, peer(kind, uas_addr)),
    )
    .await
    .unwrap();

    let mut stx = next_request(&mut uas_stack).await;
    let tag = uas.handle.tag();
    stx.respond(response(
        stx.request(),
        180,
        Some(&tag),
        Some(&uas.contact()),
    ));
    assert_eq!(next_response(&mut ctx).await.status(), Some(180));

    ctx.cancel();
    within("cancelled()", stx.cancelled()).await;
    stx.respond(response(stx.request(), 487, Some(&tag), None));

    let terminated = next_response(&mut ctx).await;
    assert_eq!(terminated.status(), Some(487), "{kind}");
    // The CANCEL and the ACK for the 487 are the endpoints' business:
    // the UAS's transaction user hears of neither.
    if kind.is_reliable() {
        // Timer D is zero on reliable transports: the transaction ends.
        assert_eq!(within("the end", ctx.next()).await, None);
    }
}

#[tokio::test]
async fn cancel_after_ringing_over_udp() {
    within("the test", cancel_after_ringing(TransportKind::Udp)).await;
}

#[tokio::test]
async fn cancel_after_ringing_over_tcp() {
    within("the test", cancel_after_ringing(TransportKind::Tcp)).await;
}

/// §9.1: a CANCEL asked for before any provisional waits for one; the
/// UAS stack's own 100 Trying (§17.2.1, after 200 ms) lets it go.
#[tokio::test]
async fn cancel_before_any_provisional_leaves_with_the_100() {
    within("the test", async {
        let kind = TransportKind::Udp;
        let mut uas_stack = start(listening(kind, V4, None)).await;
        let uac_stack = start(listening(kind, V4, None)).await;
        let uac = Ua::new(&uac_stack, kind, "alice");
        let uas_addr = uas_stack.handle().local_addr(kind).unwrap();
        let invite = uac.request(
            Method::Invite,
            &uri("bob", kind, &uas_addr.to_string()),
            &uac.call_id(),
        );
        let mut ctx = uac
            .handle
            .send_request(invite, peer(kind, uas_addr))
            .await
            .unwrap();
        ctx.cancel();
        let mut stx = next_request(&mut uas_stack).await;
        // The TU stays silent; the stack's 100 Trying releases the CANCEL.
        within("cancelled()", stx.cancelled()).await;
        stx.respond(response(stx.request(), 487, Some("b"), None));
        assert_eq!(next_response(&mut ctx).await.status(), Some(487));
    })
    .await;
}

/// A raw UDP socket as the UAS, to see what the UAC stack sends: the
/// CANCEL (§9.1) after the 180, and the ACK for the 487 (§17.1.1.3), both
/// with the INVITE's branch.
/// A UAC stack whose INVITE went to a raw UDP socket playing the UAS.
struct RawUas {
    raw: UdpSocket,
    raw_addr: SocketAddr,
    uac_stack: Stack,
    /// The INVITE as sent, its client transaction, and as received.
    invite: SipMessage,
    ctx: ClientTransaction,
    got: SipMessage,
    /// Where the UAC stack sent it from.
    from: SocketAddr,
}

async fn invite_to_raw_uas() -> RawUas {
    request_to_raw_uas(Method::Invite).await
}

async fn request_to_raw_uas(method: Method<'static>) -> RawUas {
    let raw = UdpSocket::bind(any(V4)).await.unwrap();
    let raw_addr = raw.local_addr().unwrap();
    let uac_stack = start(listening(TransportKind::Udp, V4, None)).await;
    let uac = Ua::new(&uac_stack, TransportKind::Udp, "alice");
    let invite = uac.request(
        method,
        &uri("bob", TransportKind::Udp, &raw_addr.to_string()),
        &uac.call_id(),
    );
    let ctx = uac
        .handle
        .send_request(invite.clone(), peer(TransportKind::Udp, raw_addr))
        .await
        .unwrap();
    let (got, from) = recv_raw(&raw).await;
    RawUas {
        raw,
        raw_addr,
        uac_stack,
        invite,
        ctx,
        got,
        from,
    }
}

/// The next datagram on a raw socket, parsed, and where it came from.
async fn recv_raw(raw: &UdpSocket) -> (SipMessage, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (n, from) = raw.recv_from(&mut buf).await.unwrap();
    (
        SipMessage::parse(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap(),
        from,
    )
}

#[tokio::test]
async fn uac_stack_sends_cancel_and_acks_the_487() {
    within("the test", async {
        let RawUas {
            raw,
            uac_stack: _uac_stack,
            invite,
            mut ctx,
            got,
            from,
            ..
        } = invite_to_raw_uas().await;
        let branch = invite
            .typed::<Via<'_>>()
            .unwrap()
            .unwrap()
            .branch()
            .unwrap()
            .to_owned();
        let recv = || recv_raw(&raw);
        assert_eq!(got.method(), Some(Method::Invite));
        let ringing = response(&got, 180, Some("raw"), Some("<sip:bob@192.0.2.9>"));
        raw.send_to(&ringing.message_bytes(), from).await.unwrap();
        assert_eq!(next_response(&mut ctx).await.status(), Some(180));

        ctx.cancel();
        let (cancel, _) = recv().await;
        assert_eq!(cancel.method(), Some(Method::Cancel));
        let via: Via<'_> = cancel.typed().unwrap().unwrap();
        assert_eq!(via.branch(), Some(branch.as_str()), "§9.1: same branch");
        assert_eq!(cseq_of(&cancel), cseq_of(&invite));
        raw.send_to(
            &response(&cancel, 200, Some("raw"), None).message_bytes(),
            from,
        )
        .await
        .unwrap();
        raw.send_to(
            &response(&got, 487, Some("raw"), None).message_bytes(),
            from,
        )
        .await
        .unwrap();
        assert_eq!(next_response(&mut ctx).await.status(), Some(487));

        let (ack, _) = recv().await;
        assert_eq!(ack.method(), Some(Method::Ack));
        let via: Via<'_> = ack.typed().unwrap().unwrap();
        assert_eq!(via.branch(), Some(branch.as_str()), "§17.1.1.3");
        let cseq: CSeq<'_> = ack.typed().unwrap().unwrap();
        assert_eq!((cseq.seq, cseq.method), (cseq_of(&invite), Method::Ack));
        assert_eq!(
            ack.typed::<To<'_>>().unwrap().unwrap().tag(),
            Some("raw"),
            "To of the response"
        );
    })
    .await;
}

/// RFC 6026: an INVITE client transaction in Accepted hands every 2xx to
/// the transaction user; once the user dropped its handle (a proxy whose
/// request context ended), a 2xx comes as a late response, with where it
/// came from, and nothing else does.
#[tokio::test]
async fn a_2xx_for_a_dropped_transaction_comes_as_a_late_response() {
    within("the test", async {
        let RawUas {
            raw,
            raw_addr,
            mut uac_stack,
            mut ctx,
            got,
            from,
            ..
        } = invite_to_raw_uas().await;
        let ok = response(&got, 200, Some("raw"), Some("<sip:bob@192.0.2.9>"));
        raw.send_to(&ok.message_bytes(), from).await.unwrap();
        assert_eq!(next_response(&mut ctx).await.status(), Some(200));
        drop(ctx);
        // A 2xx from another fork, then a retransmission of the first.
        let fork = response(&got, 200, Some("fork"), Some("<sip:bob@192.0.2.10>"));
        raw.send_to(&fork.message_bytes(), from).await.unwrap();
        raw.send_to(&ok.message_bytes(), from).await.unwrap();
        for tag in ["fork", "raw"] {
            match within("a late 2xx", uac_stack.next_event()).await {
                Some(StackEvent::LateResponse { response, source }) => {
                    assert_eq!(response.status(), Some(200));
                    assert_eq!(response.to_tag(), Some(tag));
                    assert_eq!(source, peer(TransportKind::Udp, raw_addr));
                }
                other => panic!("expected a late 2xx, got {other:?}"),
            }
        }
    })
    .await;
}

/// Only a 2xx to an INVITE goes on after the transaction user let go
/// (§16.7 step 5): a late 200 to a MESSAGE whose handle was dropped (a
/// proxy branch that timed out and was answered 408 upstream) is absorbed.
#[tokio::test]
async fn a_late_2xx_to_a_dropped_non_invite_is_not_a_stray() {
    within("the test", async {
        let RawUas {
            raw,
            mut uac_stack,
            ctx,
            got,
            from,
            ..
        } = request_to_raw_uas(Method::Message).await;
        drop(ctx);
        let ok = response(&got, 200, Some("late"), None);
        raw.send_to(&ok.message_bytes(), from).await.unwrap();
        // Then a response that matches nothing (another branch): the next
        // event is that one, not the late 200.
        let unmatched = String::from_utf8_lossy(&ok.message_bytes())
            .replacen("branch=", "branch=z9hG4bKother", 1)
            .replace("tag=late", "tag=other");
        raw.send_to(unmatched.as_bytes(), from).await.unwrap();
        match within("the unmatched response", uac_stack.next_event()).await {
            Some(StackEvent::StrayResponse { response, .. }) => {
                assert_eq!(response.to_tag(), Some("other"));
            }
            other => panic!("expected the unmatched response, got {other:?}"),
        }
    })
    .await;
}

/// `StackConfig::relays`: a retransmission that a second relay (a
/// cluster's other edge) carries with the trusted sent-by gets the
/// response there, over real sockets; one with another sent-by is
/// answered where the first copy came from.
#[tokio::test]
async fn a_retransmission_through_another_relay_is_answered_there() {
    within("the test", async {
        let mut uas = Stack::start(StackConfig {
            relays: vec!["192.0.2.50:5060".to_owned()],
            ..config(listening(TransportKind::Udp, V4, None))
        })
        .await
        .unwrap();
        let addr = uas.handle().local_addr(TransportKind::Udp).unwrap();
        let edge1 = UdpSocket::bind(any(V4)).await.unwrap();
        let edge2 = UdpSocket::bind(any(V4)).await.unwrap();
        let request = |sent_by: &str, branch: &str| {
            format!(
                "OPTIONS sip:bob@{addr} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {sent_by};branch={branch};rport\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-phone\r\n\
                 Max-Forwards: 69\r\nFrom: <sip:alice@192.0.2.1>;tag=a\r\n\
                 To: <sip:bob@{addr}>\r\nCall-ID: relay-{branch}\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        for (sent_by, moves) in [("192.0.2.50:5060", true), ("192.0.2.51:5060", false)] {
            let branch = format!("z9hG4bK-sb{}", u8::from(moves));
            let req = request(sent_by, &branch);
            edge1.send_to(req.as_bytes(), addr).await.unwrap();
            let tx = next_request(&mut uas).await;
            tx.respond(response(tx.request(), 200, Some("b"), None));
            let (first, _) = recv_raw(&edge1).await;
            assert_eq!(first.status(), Some(200));
            // The copy through the other edge.
            edge2.send_to(req.as_bytes(), addr).await.unwrap();
            let (again, _) = if moves {
                recv_raw(&edge2).await
            } else {
                recv_raw(&edge1).await
            };
            assert_eq!(again.status(), Some(200), "{sent_by}");
            assert_eq!(again.top_branch(), Some(branch.as_str()));
        }
    })
    .await;
}

// ---- failures -----------------------------------------------------------------

/// Timer values that make timers B and F fire after 640 ms.
fn fast_timers() -> Timers {
    Timers {
        t1: Duration::from_millis(10),
        ..Timers::default()
    }
}

/// An address where nothing listens (bound, then released).
async fn dead_udp_addr() -> SocketAddr {
    UdpSocket::bind(any(V4))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn udp_request_to_nobody_times_out() {
    within("the test", async {
        let stack = Stack::start(StackConfig {
            timers: fast_timers(),
            ..config(listening(TransportKind::Udp, V4, None))
        })
        .await
        .unwrap();
        let ua = Ua::new(&stack, TransportKind::Udp, "alice");
        let dead = dead_udp_addr().await;
        let target = uri("nobody", TransportKind::Udp, &dead.to_string());
        // Timer F (non-INVITE) and timer B (INVITE).
        for method in [Method::Options, Method::Invite] {
            let req = ua.request(method, &target, &ua.call_id());
            let mut tx = ua
                .handle
                .send_request(req, peer(TransportKind::Udp, dead))
                .await
                .unwrap();
            let started = tokio::time::Instant::now();
            assert_eq!(
                tx.next().await,
                Some(ClientEvent::Timeout),
                "{method}: 408 by timer"
            );
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(600) && took < Duration::from_secs(3),
                "{method}: 64*T1 is 640 ms, took {took:?}"
            );
            assert_eq!(tx.next().await, None, "{method}: the transaction ended");
        }
    })
    .await;
}

#[tokio::test]
async fn tcp_connect_failure_is_a_transport_error() {
    within("the test", async {
        let stack = start(TransportConfig::default()).await;
        let ua = Ua::new(&stack, TransportKind::Tcp, "alice");
        let dead = {
            let l = std::net::TcpListener::bind(any(V4)).unwrap();
            l.local_addr().unwrap()
        };
        let target = uri("nobody", TransportKind::Tcp, &dead.to_string());
        for method in [Method::Options, Method::Invite] {
            let req = ua.request(method, &target, &ua.call_id());
            let mut tx = ua
                .handle
                .send_request(req, peer(TransportKind::Tcp, dead))
                .await
                .unwrap();
            assert_eq!(
                tx.next().await,
                Some(ClientEvent::TransportError),
                "{method}: 503 by transport"
            );
            assert_eq!(tx.next().await, None, "{method}: the transaction ended");
        }
    })
    .await;
}

#[tokio::test]
async fn malformed_request_gets_a_400_naming_the_header() {
    within("the test", async {
        let mut stack = start(listening(TransportKind::Udp, V4, None)).await;
        let addr = stack.handle().local_addr(TransportKind::Udp).unwrap();
        let raw = UdpSocket::bind(any(V4)).await.unwrap();
        let from = raw.local_addr().unwrap();
        let options = |branch: &str, call_id: &str| {
            format!(
                "OPTIONS sip:service@{addr} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {from};rport;branch=z9hG4bK{branch}\r\n\
                 Max-Forwards: 70\r\n\
                 To: <sip:service@{addr}>\r\n\
                 From: <sip:alice@{from}>;tag=1928301774\r\n\
                 {call_id}\
                 CSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        raw.send_to(options("bad", "").as_bytes(), addr)
            .await
            .unwrap();
        let mut buf = vec![0u8; 65_535];
        let (n, src) = raw.recv_from(&mut buf).await.unwrap();
        assert_eq!(src, addr, "answered from the socket it arrived on");
        let answer = SipMessage::parse(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
        assert_eq!(answer.status(), Some(400));
        let reason = answer.reason().unwrap();
        assert!(reason.contains("Call-ID"), "reason names it: {reason:?}");
        let via: Via<'_> = answer.typed().unwrap().unwrap();
        assert_eq!(via.branch(), Some("z9hG4bKbad"), "the request's Via");

        // The transaction user never saw it: the first request it hears
        // of is the next, valid one.
        raw.send_to(options("good", "Call-ID: good\r\n").as_bytes(), addr)
            .await
            .unwrap();
        let tx = next_request(&mut stack).await;
        assert_eq!(call_id_of(tx.request()), "good");
    })
    .await;
}

/// §18.1.2: a response that matches no client transaction is handed up
/// as a stray (nobody forwards it, RFC 6026 §8.9; a UA may log it).
#[tokio::test]
async fn response_matching_no_transaction_is_a_stray() {
    within("the test", async {
        let mut stack = start(listening(TransportKind::Udp, V4, None)).await;
        let addr = stack.handle().local_addr(TransportKind::Udp).unwrap();
        let raw = UdpSocket::bind(any(V4)).await.unwrap();
        let stray = format!(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP {addr};branch=z9hG4bKnobody\r\n\
             To: <sip:bob@{addr}>;tag=b\r\n\
             From: <sip:alice@{addr}>;tag=a\r\n\
             Call-ID: stray\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        raw.send_to(stray.as_bytes(), addr).await.unwrap();
        match within("the stray", stack.next_event()).await {
            Some(StackEvent::StrayResponse { response, source }) => {
                assert_eq!(response.status(), Some(200));
                assert_eq!(call_id_of(&response), "stray");
                assert_eq!(source.addr, raw.local_addr().unwrap());
            }
            other => panic!("expected a stray response, got {other:?}"),
        }
    })
    .await;
}

// ---- load ---------------------------------------------------------------------

/// Answers INVITEs with 200 and BYEs with 200 until `calls` BYEs have been
/// answered and `calls` calls acknowledged; returns how many calls were
/// acknowledged.
async fn answer_calls(mut stack: Stack, ua: Ua, calls: usize) -> usize {
    let mut byes = 0;
    let mut acked = std::collections::HashSet::new();
    while byes < calls || acked.len() < calls {
        match stack.next_event().await {
            Some(StackEvent::Request(tx)) => {
                let req = tx.request();
                let r = match req.method() {
                    Some(Method::Invite) => {
                        let tag = ua.handle.tag();
                        response(req, 200, Some(&tag), Some(&ua.contact()))
                    }
                    Some(Method::Bye) => {
                        byes += 1;
                        response(req, 200, None, None)
                    }
                    _ => response(req, 405, Some("x"), None),
                };
                tx.respond(r);
            }
            Some(StackEvent::Ack {
                acknowledged,
                request,
                ..
            }) => {
                assert!(acknowledged, "the ACK matched a 2xx of ours");
                acked.insert(call_id_of(&request));
            }
            Some(_) => {}
            None => break,
        }
    }
    acked.len()
}

/// One whole call: INVITE, 200, ACK, BYE, 200. A burst of datagrams can
/// overflow a socket's receive buffer on loopback, so this UAC does what
/// §13.2.2.4 asks: every retransmitted 2xx gets the ACK again.
async fn one_call(ua: Ua, target: String, to: Peer) {
    let invite = ua.request(Method::Invite, &target, &ua.call_id());
    let mut tx = ua.handle.send_request(invite.clone(), to).await.unwrap();
    let ok = next_response(&mut tx).await;
    assert_eq!(ok.status(), Some(200));
    let mut dialog = Dialog::uac(&invite, &ok).unwrap();
    let ack = dialog
        .ack(cseq_of(&invite), &ua.via())
        .unwrap()
        .build()
        .unwrap();
    let hop = uri_peer(&dialog.next_hop(), ua.kind);
    ua.handle.send_stateless(&ack, hop);
    let handle = ua.handle.clone();
    tokio::spawn(async move {
        while let Some(ClientEvent::Response(r)) = tx.next().await {
            if r.status().is_some_and(|s| (200..300).contains(&s)) {
                handle.send_stateless(&ack, hop);
            }
        }
    });
    let mut ids = IdGenerator::new(1);
    let bye = dialog
        .request(Method::Bye, &ua.via(), None, &mut ids)
        .unwrap()
        .build()
        .unwrap();
    let mut tx = ua.handle.send_request(bye, hop).await.unwrap();
    assert_eq!(next_response(&mut tx).await.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_over_four_shards() {
    const CALLS: usize = 200;
    // Longer than `within`: a lost datagram costs a retransmission (T1).
    let test = async {
        let four = |t| StackConfig {
            shards: 4,
            ..config(t)
        };
        let uas_stack = Stack::start(four(listening(TransportKind::Udp, V4, None)))
            .await
            .unwrap();
        let uac_stack = Stack::start(four(listening(TransportKind::Udp, V4, None)))
            .await
            .unwrap();
        let uas = Ua::new(&uas_stack, TransportKind::Udp, "bob");
        let uac = Ua::new(&uac_stack, TransportKind::Udp, "alice");
        let uas_addr = uas.handle.local_addr(TransportKind::Udp).unwrap();
        let answering = tokio::spawn(answer_calls(uas_stack, uas, CALLS));

        let target = uri("bob", TransportKind::Udp, &uas_addr.to_string());
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..CALLS {
            calls.spawn(one_call(
                uac.clone(),
                target.clone(),
                peer(TransportKind::Udp, uas_addr),
            ));
        }
        let mut done = 0;
        while let Some(r) = calls.join_next().await {
            r.unwrap();
            done += 1;
        }
        assert_eq!(done, CALLS);
        assert_eq!(within("the UAS", answering).await.unwrap(), CALLS);
        drop(uac_stack);
    };
    tokio::time::timeout(Duration::from_secs(12), test)
        .await
        .expect("200 calls within 12 s");
}

// ---- robustness ---------------------------------------------------------------

/// §13.3.1.4: a 2xx never acknowledged within 64*T1 is reported, so the
/// UAS can end the session with a BYE.
#[tokio::test]
async fn unacknowledged_2xx_is_reported() {
    within("the test", async {
        let mut uas_stack = Stack::start(StackConfig {
            timers: fast_timers(),
            ..config(listening(TransportKind::Udp, V4, None))
        })
        .await
        .unwrap();
        let uac_stack = start(listening(TransportKind::Udp, V4, None)).await;
        let uas = Ua::new(&uas_stack, TransportKind::Udp, "bob");
        let uac = Ua::new(&uac_stack, TransportKind::Udp, "alice");
        let uas_addr = uas.handle.local_addr(TransportKind::Udp).unwrap();
        let call_id = uac.call_id();
        let invite = uac.request(
            Method::Invite,
            &uri("bob", TransportKind::Udp, &uas_addr.to_string()),
            &call_id,
        );
        let mut ctx = uac
            .handle
            .send_request(invite, peer(TransportKind::Udp, uas_addr))
            .await
            .unwrap();
        let stx = next_request(&mut uas_stack).await;
        stx.respond(response(
            stx.request(),
            200,
            Some("b"),
            Some(&uas.contact()),
        ));
        assert_eq!(next_response(&mut ctx).await.status(), Some(200));
        // No ACK: the 2xx is retransmitted, then given up on.
        match within("AckTimeout", uas_stack.next_event()).await {
            Some(StackEvent::AckTimeout { request }) => {
                assert_eq!(request.method(), Some(Method::Invite));
                assert_eq!(call_id_of(&request), call_id);
            }
            other => panic!("expected AckTimeout, got {other:?}"),
        }
    })
    .await;
}

/// A TLS server that accepts the TCP connection and never answers the
/// ClientHello stalls the handshake until `handshake_timeout`. Meanwhile
/// the shard must keep serving its other transactions.
#[tokio::test]

async fn a_stalled_connect_does_not_block_the_shard() {
    within("the test", async {
        let pki = new_pki();
        let silent = tokio::net::TcpListener::bind(any(V4)).await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let mut server = start(listening(TransportKind::Udp, V4, None)).await;
        let server_addr = server.handle().local_addr(TransportKind::Udp).unwrap();
        let client = Stack::start(StackConfig {
            shards: 1,
            ..config(TransportConfig {
                tls_client: Some(pki.client()),
                ..listening(TransportKind::Udp, V4, None)
            })
        })
        .await
        .unwrap();
        let tls = Ua::new(&client, TransportKind::Tls, "alice");
        let udp = Ua::new(&client, TransportKind::Udp, "alice");

        let stalled = tls.request(
            Method::Options,
            &uri("silent", TransportKind::Tls, &silent_addr.to_string()),
            &tls.call_id(),
        );
        let _stalled = tls
            .handle
            .send_request(stalled, peer(TransportKind::Tls, silent_addr))
            .await
            .unwrap();

        let options = udp.request(
            Method::Options,
            &uri("service", TransportKind::Udp, &server_addr.to_string()),
            &udp.call_id(),
        );
        let quick = async {
            let mut tx = udp
                .handle
                .send_request(options, peer(TransportKind::Udp, server_addr))
                .await
                .unwrap();
            let stx = next_request(&mut server).await;
            stx.respond(response(stx.request(), 200, Some("s"), None));
            next_response(&mut tx).await
        };
        let ok = tokio::time::timeout(Duration::from_secs(2), quick)
            .await
            .expect("the UDP transaction was held up by the stalled connect");
        assert_eq!(ok.status(), Some(200));
        drop(silent);
    })
    .await;
}

/// A transaction user that drops an INVITE's handle without a final
/// answer leaves the caller ringing forever: after a provisional the
/// INVITE client transaction has no timer (§17.1.1.2), and the server
/// transaction has none in Proceeding. The handle should answer 500 when
/// dropped unanswered (as DESIGN.md's application handles do).
#[tokio::test]

async fn dropping_an_unanswered_invite_answers_500() {
    within("the test", async {
        let mut uas_stack = start(listening(TransportKind::Tcp, V4, None)).await;
        let uac_stack = start(listening(TransportKind::Tcp, V4, None)).await;
        let uac = Ua::new(&uac_stack, TransportKind::Tcp, "alice");
        let uas_addr = uas_stack.handle().local_addr(TransportKind::Tcp).unwrap();
        let invite = uac.request(
            Method::Invite,
            &uri("bob", TransportKind::Tcp, &uas_addr.to_string()),
            &uac.call_id(),
        );
        let mut ctx = uac
            .handle
            .send_request(invite, peer(TransportKind::Tcp, uas_addr))
            .await
            .unwrap();
        let stx = next_request(&mut uas_stack).await;
        stx.respond(response(stx.request(), 180, Some("b"), None));
        drop(stx);
        assert_eq!(next_response(&mut ctx).await.status(), Some(180));
        let last = next_response(&mut ctx).await;
        assert_eq!(last.status(), Some(500));
    })
    .await;
}
