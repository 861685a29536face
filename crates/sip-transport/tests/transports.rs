//! Integration tests on real loopback sockets (127.0.0.1 and ::1, port 0).
//! Every await that waits on the network is under a timeout, so a failure
//! fails the test instead of hanging it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sip_message::headers::Via;
use sip_message::{Peer, ResponseBuilder, TransportKind};
use sip_transport::{
    Incoming, TlsClient, TlsServer, TransportConfig, TransportError, TransportLimits, Transports,
    response_peer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

const WAIT: Duration = Duration::from_secs(5);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn any(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

const V4: &str = "127.0.0.1";
const V6: &str = "[::1]";

fn peer(transport: TransportKind, addr: SocketAddr) -> Peer {
    Peer { transport, addr }
}

/// A request from `from` (its Via sent-by), with Content-Length.
fn request(method: &str, transport: TransportKind, from: SocketAddr, call_id: &str) -> String {
    format!(
        "{method} sip:service@example.com SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {from};rport;branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:service@example.com>\r\n\
         From: <sip:alice@example.com>;tag=1928301774\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn call_id(incoming: &Incoming) -> String {
    let h = incoming
        .message
        .header(sip_message::HeaderName::CallId)
        .unwrap();
    h.value().unwrap().to_owned()
}

/// A 200 for `incoming`, sent where RFC 3261 §18.2.2 / RFC 3581 say.
async fn answer(transports: &Transports, incoming: &Incoming) {
    let response = ResponseBuilder::for_request(&incoming.message, 200, Some("srv1"))
        .unwrap()
        .build()
        .unwrap();
    let via: Via<'_> = incoming.message.typed().unwrap().unwrap();
    let to = response_peer(&via, incoming.source);
    within(
        "send",
        transports.send_from(incoming.local, to, response.message_bytes()),
    )
    .await
    .unwrap();
}

async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    within("an incoming message", rx.recv())
        .await
        .expect("channel open")
}

async fn bind(config: TransportConfig) -> (Transports, mpsc::Receiver<Incoming>) {
    Transports::bind(config).await.unwrap()
}

/// Reads until EOF (or a reset): the server closed the connection.
async fn expect_closed(stream: &mut TcpStream) {
    // EOF or a reset: either way the server closed it.
    let mut sink = Vec::new();
    let _ = within("the server to close", stream.read_to_end(&mut sink)).await;
}

// ---- UDP ------------------------------------------------------------------

#[tokio::test]
async fn udp_round_trip() {
    let config = || TransportConfig {
        udp: vec![any(V4)],
        ..TransportConfig::default()
    };
    let (a, mut a_rx) = bind(config()).await;
    let (b, mut b_rx) = bind(config()).await;
    let a_addr = a.local_addr(TransportKind::Udp).unwrap();
    let b_addr = b.local_addr(TransportKind::Udp).unwrap();
    assert_ne!(a_addr.port(), 0, "port 0 resolved");

    let req = request("OPTIONS", TransportKind::Udp, b_addr, "udp1");
    b.send(peer(TransportKind::Udp, a_addr), req.into())
        .await
        .unwrap();
    let got = recv(&mut a_rx).await;
    assert_eq!(got.source, peer(TransportKind::Udp, b_addr));
    assert_eq!(got.local, peer(TransportKind::Udp, a_addr));
    assert_eq!(call_id(&got), "udp1");

    answer(&a, &got).await;
    let resp = recv(&mut b_rx).await;
    assert_eq!(resp.message.status(), Some(200));
    assert_eq!(resp.source, peer(TransportKind::Udp, a_addr));
}

#[tokio::test]
async fn udp_enforces_max_message_size() {
    let mut limits = TransportLimits::default();
    limits.message.max_message_size = 600;
    let (a, mut a_rx) = bind(TransportConfig {
        udp: vec![any(V4)],
        limits,
        ..TransportConfig::default()
    })
    .await;
    let a_addr = a.local_addr(TransportKind::Udp).unwrap();
    let raw = UdpSocket::bind(any(V4)).await.unwrap();
    let from = raw.local_addr().unwrap();

    let big = request("MESSAGE", TransportKind::Udp, from, "big").replace(
        "Content-Length: 0\r\n",
        &format!("X-Pad: {}\r\n", "x".repeat(800)),
    );
    raw.send_to(big.as_bytes(), a_addr).await.unwrap();
    raw.send_to(b"this is not SIP\r\n\r\n", a_addr)
        .await
        .unwrap();
    let small = request("MESSAGE", TransportKind::Udp, from, "small");
    raw.send_to(small.as_bytes(), a_addr).await.unwrap();
    let got = recv(&mut a_rx).await;
    assert_eq!(call_id(&got), "small", "oversized and malformed dropped");

    let err = a
        .send(peer(TransportKind::Udp, from), Bytes::from(big))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::MessageTooLarge { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn udp_reuse_port_lets_two_sockets_share_a_port() {
    let (a, _a_rx) = bind(TransportConfig {
        udp: vec![any(V4)],
        reuse_port: true,
        ..TransportConfig::default()
    })
    .await;
    let port = a.local_addr(TransportKind::Udp).unwrap();
    let (b, _b_rx) = bind(TransportConfig {
        udp: vec![port],
        reuse_port: true,
        ..TransportConfig::default()
    })
    .await;
    assert_eq!(b.local_addr(TransportKind::Udp), Some(port));
    let err = Transports::bind(TransportConfig {
        udp: vec![port],
        ..TransportConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, TransportError::Bind { .. }), "{err}");
}

// ---- TCP ------------------------------------------------------------------

fn tcp_server(limits: TransportLimits) -> TransportConfig {
    TransportConfig {
        tcp: vec![any(V4)],
        limits,
        ..TransportConfig::default()
    }
}

#[tokio::test]
async fn tcp_round_trip_reuses_one_connection() {
    let (a, mut a_rx) = bind(tcp_server(TransportLimits::default())).await;
    // B listens nowhere: everything it receives comes over its own connection.
    let (b, mut b_rx) = bind(TransportConfig::default()).await;
    let a_peer = peer(
        TransportKind::Tcp,
        a.local_addr(TransportKind::Tcp).unwrap(),
    );

    let invite = request("INVITE", TransportKind::Tcp, any(V4), "tcp1");
    within("send", b.send(a_peer, invite.into())).await.unwrap();
    let got = recv(&mut a_rx).await;
    assert_eq!(got.source.transport, TransportKind::Tcp);
    assert_eq!(got.local, a_peer);

    // The response goes back over the inbound connection (§18.2.2).
    answer(&a, &got).await;
    let resp = recv(&mut b_rx).await;
    assert_eq!(resp.message.status(), Some(200));
    assert_eq!(resp.source, a_peer);

    // A later request from A (the BYE) to the same peer: same connection.
    let bye = request("BYE", TransportKind::Tcp, a_peer.addr, "tcp1");
    within("send", a.send(got.source, bye.into()))
        .await
        .unwrap();
    let bye = recv(&mut b_rx).await;
    assert_eq!(bye.message.method().unwrap().as_str(), "BYE");

    // And B's next request too.
    let ack = request("ACK", TransportKind::Tcp, any(V4), "tcp1");
    within("send", b.send(a_peer, ack.into())).await.unwrap();
    let ack = recv(&mut a_rx).await;
    assert_eq!(ack.source, got.source, "same connection, same source");

    assert_eq!(a.connections(), vec![got.source], "one accepted connection");
    assert_eq!(b.connections(), vec![a_peer], "one outbound connection");
}

#[tokio::test]
async fn tcp_answers_ping_with_pong() {
    let (a, _a_rx) = bind(tcp_server(TransportLimits::default())).await;
    let mut raw = TcpStream::connect(a.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    raw.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    within("the pong", raw.read_exact(&mut pong)).await.unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[tokio::test]
async fn tcp_frames_a_message_written_one_byte_at_a_time() {
    let (a, mut a_rx) = bind(tcp_server(TransportLimits::default())).await;
    let mut raw = TcpStream::connect(a.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    raw.set_nodelay(true).unwrap();
    let from = raw.local_addr().unwrap();
    let msg = request("MESSAGE", TransportKind::Tcp, from, "bytewise")
        .replace("Content-Length: 0", "Content-Length: 5")
        + "hello";
    for byte in msg.as_bytes() {
        raw.write_all(std::slice::from_ref(byte)).await.unwrap();
        raw.flush().await.unwrap();
    }
    let got = recv(&mut a_rx).await;
    assert_eq!(call_id(&got), "bytewise");
    assert_eq!(got.message.body(), b"hello");
    assert_eq!(got.source, peer(TransportKind::Tcp, from));

    // The response comes back on this very socket.
    answer(&a, &got).await;
    let mut buf = vec![0u8; 4096];
    let n = within("the response", raw.read(&mut buf)).await.unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
}

#[tokio::test]
async fn tcp_framing_error_closes_the_connection() {
    let (a, mut a_rx) = bind(tcp_server(TransportLimits::default())).await;
    let mut raw = TcpStream::connect(a.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    raw.write_all(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: abc\r\n\r\n")
        .await
        .unwrap();
    expect_closed(&mut raw).await;
    assert!(a_rx.try_recv().is_err(), "nothing delivered");
}

#[tokio::test]
async fn tcp_drops_a_framed_but_malformed_message_and_keeps_the_connection() {
    let (a, mut a_rx) = bind(tcp_server(TransportLimits::default())).await;
    let mut raw = TcpStream::connect(a.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    let from = raw.local_addr().unwrap();
    raw.write_all(b"NOT A START LINE\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let msg = request("OPTIONS", TransportKind::Tcp, from, "after");
    raw.write_all(msg.as_bytes()).await.unwrap();
    assert_eq!(call_id(&recv(&mut a_rx).await), "after");
}

#[tokio::test]
async fn tcp_enforces_max_message_size() {
    let mut limits = TransportLimits::default();
    limits.message.max_message_size = 1024;
    let (a, _a_rx) = bind(tcp_server(limits)).await;
    let mut raw = TcpStream::connect(a.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    let from = raw.local_addr().unwrap();
    let msg = request("MESSAGE", TransportKind::Tcp, from, "huge")
        .replace("Content-Length: 0", "Content-Length: 5000");
    raw.write_all(msg.as_bytes()).await.unwrap();
    expect_closed(&mut raw).await;
}

#[tokio::test]
async fn tcp_enforces_max_connections() {
    let limits = TransportLimits {
        max_connections: 2,
        ..TransportLimits::default()
    };
    let (a, mut a_rx) = bind(tcp_server(limits)).await;
    let addr = a.local_addr(TransportKind::Tcp).unwrap();
    let mut open = Vec::new();
    for i in 0..2 {
        let mut raw = TcpStream::connect(addr).await.unwrap();
        let from = raw.local_addr().unwrap();
        let msg = request("OPTIONS", TransportKind::Tcp, from, &format!("c{i}"));
        raw.write_all(msg.as_bytes()).await.unwrap();
        assert_eq!(call_id(&recv(&mut a_rx).await), format!("c{i}"));
        open.push(raw);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    expect_closed(&mut third).await;
    assert_eq!(a.connections().len(), 2);

    // Outbound connections count against the same limit.
    let err = a
        .send(peer(TransportKind::Tcp, addr), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::TooManyConnections { limit: 2, .. }),
        "{err}"
    );

    // A slot freed is a slot usable again.
    drop(open.pop());
    within("the slot to free", async {
        while a.connections().len() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let from = fourth.local_addr().unwrap();
    let msg = request("OPTIONS", TransportKind::Tcp, from, "c3");
    fourth.write_all(msg.as_bytes()).await.unwrap();
    assert_eq!(call_id(&recv(&mut a_rx).await), "c3");
}

#[tokio::test]
async fn tcp_idle_connection_is_closed() {
    let limits = TransportLimits {
        idle_timeout: Duration::from_millis(200),
        ..TransportLimits::default()
    };
    let (a, _a_rx) = bind(tcp_server(limits)).await;
    let mut raw = TcpStream::connect(a.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    expect_closed(&mut raw).await;
    within("the table to empty", async {
        while !a.connections().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn tcp_outbound_connection_sends_keepalive_pings() {
    let limits = TransportLimits {
        keepalive: Some(Duration::from_millis(50)),
        ..TransportLimits::default()
    };
    let (b, _b_rx) = bind(TransportConfig {
        limits,
        ..TransportConfig::default()
    })
    .await;
    let listener = TcpListener::bind(any(V4)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let msg = request("REGISTER", TransportKind::Tcp, any(V4), "ka");
    within(
        "send",
        b.send(peer(TransportKind::Tcp, addr), msg.clone().into()),
    )
    .await
    .unwrap();
    let (mut server, _) = within("accept", listener.accept()).await.unwrap();
    let mut buf = vec![0u8; msg.len() + 4];
    within("message and ping", server.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf[..msg.len()], msg.as_bytes());
    assert_eq!(&buf[msg.len()..], b"\r\n\r\n", "RFC 5626 ping");
}

// ---- IPv6 -----------------------------------------------------------------

#[tokio::test]
async fn ipv6_udp_and_tcp_round_trips() {
    let config = || TransportConfig {
        udp: vec![any(V6)],
        tcp: vec![any(V6)],
        ..TransportConfig::default()
    };
    let (a, mut a_rx) = bind(config()).await;
    let (b, mut b_rx) = bind(config()).await;
    for transport in [TransportKind::Udp, TransportKind::Tcp] {
        let a_addr = a.local_addr(transport).unwrap();
        let b_addr = b.local_addr(transport).unwrap();
        assert!(a_addr.is_ipv6());
        let req = request("OPTIONS", transport, b_addr, &format!("v6{transport}"));
        within("send", b.send(peer(transport, a_addr), req.into()))
            .await
            .unwrap();
        let got = recv(&mut a_rx).await;
        assert_eq!(got.source.transport, transport);
        assert!(got.source.addr.is_ipv6());
        answer(&a, &got).await;
        let resp = recv(&mut b_rx).await;
        assert_eq!(resp.message.status(), Some(200));
        assert_eq!(resp.source, peer(transport, a_addr));
    }
}

// ---- TLS ------------------------------------------------------------------

/// A CA and a server certificate for localhost, 127.0.0.1 and ::1.
struct Pki {
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

fn new_pki() -> Pki {
    let p = sip_testkit::pki::TestPki::loopback("Switchboard test CA").unwrap();
    Pki {
        ca: CertificateDer::from(p.ca_der),
        cert: CertificateDer::from(p.cert_der),
        cert_pem: p.cert_pem,
        key_der: p.key_der,
        key_pem: p.key_pem,
    }
}

impl Pki {
    fn server(&self) -> TlsServer {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        TlsServer::from_der(vec![self.cert.clone()], key).unwrap()
    }

    fn client(&self) -> TlsClient {
        TlsClient::from_ca_der([self.ca.clone()]).unwrap()
    }

    fn rustls_client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }
}

#[tokio::test]
async fn tls_round_trip_with_a_generated_ca() {
    let pki = new_pki();
    // The server reads its certificate from PEM files, as a deployment would.
    let dir = std::env::temp_dir().join(format!("sip-transport-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &pki.cert_pem).unwrap();
    std::fs::write(&key_path, &pki.key_pem).unwrap();
    let server = TlsServer::from_pem_files(&cert_path, &key_path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let (a, mut a_rx) = bind(TransportConfig {
        tls: vec![(any(V4), server)],
        ..TransportConfig::default()
    })
    .await;
    let (b, mut b_rx) = bind(TransportConfig {
        tls_client: Some(pki.client()),
        ..TransportConfig::default()
    })
    .await;
    let a_peer = peer(
        TransportKind::Tls,
        a.local_addr(TransportKind::Tls).unwrap(),
    );

    // Verified against the IP address by default.
    let req = request("OPTIONS", TransportKind::Tls, any(V4), "tls1");
    within("send", b.send(a_peer, req.into())).await.unwrap();
    let got = recv(&mut a_rx).await;
    assert_eq!(got.source.transport, TransportKind::Tls);
    answer(&a, &got).await;
    let resp = recv(&mut b_rx).await;
    assert_eq!(resp.message.status(), Some(200));
    assert_eq!(resp.source, a_peer);
    assert_eq!(a.connections().len(), 1);

    // A client that trusts another CA refuses the server.
    let other = new_pki();
    let (c, _c_rx) = bind(TransportConfig {
        tls_client: Some(other.client()),
        ..TransportConfig::default()
    })
    .await;
    let req = request("OPTIONS", TransportKind::Tls, any(V4), "tls2");
    let err = within("send", c.send(a_peer, req.into()))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::TlsHandshake { .. }), "{err}");

    // A name not in the certificate is refused too; one that is works.
    let (e, _e_rx) = bind(TransportConfig {
        tls_client: Some(pki.client()),
        ..TransportConfig::default()
    })
    .await;
    let err = within("connect", e.connect(a_peer, Some("example.com")))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::TlsHandshake { .. }), "{err}");
    within("connect", e.connect(a_peer, Some("localhost")))
        .await
        .unwrap();
    assert_eq!(e.connections(), vec![a_peer]);

    // No client configuration: a clear error.
    let (d, _d_rx) = bind(TransportConfig::default()).await;
    let err = d.send(a_peer, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, TransportError::NoTlsClient { .. }), "{err}");
}

// ---- WebSocket ------------------------------------------------------------

/// Opens a WebSocket to `addr` as a browser would, offering `protocols`.
async fn ws_client<S>(
    io: S,
    url: &str,
    protocols: Option<&str>,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<S>,
        tungstenite::handshake::client::Response,
    ),
    tungstenite::Error,
>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    tokio_tungstenite::client_async(req, io).await
}

/// A WS client sends a request without Content-Length (RFC 7118: the
/// WebSocket message is the boundary) and reads the answer.
async fn ws_exchange<S>(
    a: &Transports,
    a_rx: &mut mpsc::Receiver<Incoming>,
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    transport: TransportKind,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = request("REGISTER", transport, any(V4), "ws1").replace("Content-Length: 0\r\n", "");
    within("ws send", ws.send(Message::text(req)))
        .await
        .unwrap();
    let got = recv(a_rx).await;
    assert_eq!(got.source.transport, transport);
    assert_eq!(call_id(&got), "ws1");
    answer(a, &got).await;
    let reply = within("ws reply", ws.next()).await.unwrap().unwrap();
    let Message::Text(text) = reply else {
        panic!("expected a text message, got {reply:?}");
    };
    assert!(text.as_str().starts_with("SIP/2.0 200 OK\r\n"), "{text}");

    // Binary messages carry SIP too.
    let req = request("OPTIONS", transport, any(V4), "ws2");
    within("ws send", ws.send(Message::binary(req.into_bytes())))
        .await
        .unwrap();
    assert_eq!(call_id(&recv(a_rx).await), "ws2");

    // A CRLFCRLF keepalive in a WebSocket message gets a CRLF pong.
    within("ws send", ws.send(Message::text("\r\n\r\n")))
        .await
        .unwrap();
    let pong = within("ws pong", ws.next()).await.unwrap().unwrap();
    assert_eq!(pong.into_data().as_ref(), b"\r\n");

    // A malformed message is dropped; the connection stays.
    within("ws send", ws.send(Message::text("not SIP at all\r\n\r\n")))
        .await
        .unwrap();
    let req = request("OPTIONS", transport, any(V4), "ws4");
    within("ws send", ws.send(Message::text(req)))
        .await
        .unwrap();
    assert_eq!(call_id(&recv(a_rx).await), "ws4");
}

#[tokio::test]
async fn ws_round_trip_with_sip_subprotocol() {
    let (a, mut a_rx) = bind(TransportConfig {
        ws: vec![any(V4)],
        ..TransportConfig::default()
    })
    .await;
    let addr = a.local_addr(TransportKind::Ws).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = within(
        "handshake",
        ws_client(tcp, &format!("ws://{addr}/"), Some("sip")),
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "sip"
    );
    ws_exchange(&a, &mut a_rx, &mut ws, TransportKind::Ws).await;

    // Transports as a WebSocket client.
    let (b, mut b_rx) = bind(TransportConfig::default()).await;
    let req = request("OPTIONS", TransportKind::Ws, any(V4), "ws3");
    within("send", b.send(peer(TransportKind::Ws, addr), req.into()))
        .await
        .unwrap();
    let got = recv(&mut a_rx).await;
    assert_eq!(call_id(&got), "ws3");
    answer(&a, &got).await;
    let resp = recv(&mut b_rx).await;
    assert_eq!(resp.message.status(), Some(200));
    assert_eq!(resp.source, peer(TransportKind::Ws, addr));
}

#[tokio::test]
async fn ws_upgrade_without_sip_subprotocol_is_refused() {
    let (a, _a_rx) = bind(TransportConfig {
        ws: vec![any(V4)],
        ..TransportConfig::default()
    })
    .await;
    let addr = a.local_addr(TransportKind::Ws).unwrap();
    for offered in [None, Some("chat, xmpp")] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = within(
            "handshake",
            ws_client(tcp, &format!("ws://{addr}/"), offered),
        )
        .await
        .unwrap_err();
        let tungstenite::Error::Http(response) = err else {
            panic!("expected an HTTP refusal, got {err}");
        };
        assert_eq!(response.status(), 400);
    }
    assert!(a.connections().is_empty());
}

#[tokio::test]
async fn wss_round_trip() {
    let pki = new_pki();
    let (a, mut a_rx) = bind(TransportConfig {
        wss: vec![(any(V4), pki.server())],
        ..TransportConfig::default()
    })
    .await;
    let addr = a.local_addr(TransportKind::Wss).unwrap();

    let connector = tokio_rustls::TlsConnector::from(pki.rustls_client());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = within("TLS", connector.connect(name, tcp)).await.unwrap();
    let (mut ws, _) = within(
        "handshake",
        ws_client(
            tls,
            &format!("wss://localhost:{}/", addr.port()),
            Some("sip"),
        ),
    )
    .await
    .unwrap();
    ws_exchange(&a, &mut a_rx, &mut ws, TransportKind::Wss).await;

    // Transports as a WSS client.
    let (b, mut b_rx) = bind(TransportConfig {
        tls_client: Some(pki.client()),
        ..TransportConfig::default()
    })
    .await;
    let req = request("OPTIONS", TransportKind::Wss, any(V4), "wss3");
    within("send", b.send(peer(TransportKind::Wss, addr), req.into()))
        .await
        .unwrap();
    let got = recv(&mut a_rx).await;
    assert_eq!(call_id(&got), "wss3");
    answer(&a, &got).await;
    let resp = recv(&mut b_rx).await;
    assert_eq!(resp.message.status(), Some(200));
}

// ---- Lifecycle ------------------------------------------------------------

#[tokio::test]
async fn shutdown_stops_everything() {
    let (a, _a_rx) = bind(TransportConfig {
        udp: vec![any(V4)],
        tcp: vec![any(V4)],
        ..TransportConfig::default()
    })
    .await;
    let addr = a.local_addr(TransportKind::Tcp).unwrap();
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    within("the pong", raw.read_exact(&mut pong)).await.unwrap();

    let clone = a.clone();
    within("shutdown", a.shutdown()).await;
    expect_closed(&mut raw).await;
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    let err = clone
        .send(peer(TransportKind::Udp, addr), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Shutdown), "{err}");
}
