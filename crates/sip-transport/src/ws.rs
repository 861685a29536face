//! SIP over WebSocket (RFC 7118): the handshake that requires the `sip`
//! subprotocol, and a connection driver where each WebSocket message, text
//! or binary, carries exactly one SIP message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sip_message::{Peer, SipMessage, Transport, TransportKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Interval;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::{debug, warn};

use crate::TransportError;
use crate::config::TransportLimits;
use crate::connection::{
    Activity, IdleTimer, PING, PONG, WRITE_BATCH, keepalive_interval, keepalive_tick,
};
use crate::io::Io;
use crate::transports::{Incoming, Registered, Shared, shutdown_signal};

/// The WebSocket subprotocol of RFC 7118 §4.1.
const SUBPROTOCOL: &str = "sip";

fn config(limits: &TransportLimits) -> WebSocketConfig {
    let max = Some(limits.message.max_message_size as usize);
    WebSocketConfig::default()
        .max_message_size(max)
        .max_frame_size(max)
}

/// Whether the client's `Sec-WebSocket-Protocol` offers `sip`.
fn offers_sip(request: &Request) -> bool {
    request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// The handshake callback: select `sip` or refuse.
// The error type is tungstenite's callback signature.
#[allow(clippy::result_large_err)]
fn select_sip(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if offers_sip(request) {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(response)
    } else {
        let mut refusal = ErrorResponse::new(Some(
            "WebSocket subprotocol 'sip' required (RFC 7118)".to_owned(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        Err(refusal)
    }
}

/// Server side of the handshake: RFC 7118 §4.1, the client must offer the
/// `sip` subprotocol and the server selects it; anything else is refused
/// with 400.
pub(crate) async fn accept(
    io: Io,
    limits: &TransportLimits,
) -> Result<WebSocketStream<Io>, WsError> {
    tokio_tungstenite::accept_hdr_async_with_config(io, select_sip, Some(config(limits))).await
}

/// Client side of the handshake, offering `sip`; tungstenite refuses a
/// response that does not select it. The URI is `ws://host:port/` (or
/// `wss://`), `host` the server name if given, else the peer's address.
pub(crate) async fn connect(
    io: Io,
    peer: Peer,
    server_name: Option<&str>,
    limits: &TransportLimits,
) -> Result<WebSocketStream<Io>, TransportError> {
    let fail = |source| TransportError::WebSocketHandshake {
        peer,
        source: Box::new(source),
    };
    let scheme = if peer.transport == TransportKind::Wss {
        "wss"
    } else {
        "ws"
    };
    let authority = match server_name {
        Some(name) if name.parse::<std::net::Ipv6Addr>().is_ok() => {
            format!("[{name}]:{}", peer.addr.port())
        }
        Some(name) => format!("{name}:{}", peer.addr.port()),
        None => peer.addr.to_string(),
    };
    let mut request = format!("{scheme}://{authority}/")
        .into_client_request()
        .map_err(fail)?;
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, io, Some(config(limits)))
            .await
            .map_err(fail)?;
    Ok(socket)
}

/// Runs a WS or WSS connection until it ends; the same life as a TCP
/// connection (see `connection::run`), with WebSocket messages for frames.
pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: WebSocketStream<Io>,
    reg: Registered,
    local: Peer,
    outbound: bool,
) {
    let Registered {
        registration,
        tx,
        rx,
    } = reg;
    let remote = registration.remote;
    let limits = shared.limits;
    let (sink, mut stream) = socket.split();
    let activity = Activity::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut writer = tokio::spawn(write(
        sink,
        rx,
        stopped,
        keepalive_interval(outbound.then_some(limits.keepalive).flatten()),
        limits.write_timeout,
        Arc::clone(&activity),
        remote,
    ));
    let mut shutdown = shared.shutdown_rx();
    let mut idle = IdleTimer::new(limits.idle_timeout);
    let mut writer_done = false;
    debug!(%remote, %local, "WebSocket connection open");
    loop {
        let next = tokio::select! {
            () = shutdown_signal(&mut shutdown) => break,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            () = idle.expired(&activity) => {
                warn!(%remote, timeout = ?limits.idle_timeout, "idle_timeout: closing connection");
                break;
            }
            next = stream.next() => next,
        };
        let message = match next {
            None => {
                debug!(%remote, "connection closed by peer");
                break;
            }
            Some(Err(WsError::Capacity(error))) => {
                warn!(%remote, %error, "max_message_size exceeded: closing connection");
                break;
            }
            Some(Err(error)) => {
                debug!(%remote, %error, "WebSocket error; closing connection");
                break;
            }
            Some(Ok(message)) => message,
        };
        idle.read();
        // RFC 7118 §4.2: SIP travels in text or binary messages.
        let data = match message {
            Message::Text(text) => Bytes::from(text),
            Message::Binary(data) => data,
            Message::Close(_) => {
                debug!(%remote, "WebSocket closed by peer");
                break;
            }
            // Pings are answered by tungstenite.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if data.as_ref() == PING {
            // Some browser stacks send RFC 5626 keepalives over WebSocket too.
            if tx.try_send(Bytes::from_static(PONG)).is_err() {
                debug!(%remote, "send queue full; pong dropped");
            }
            continue;
        }
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        // RFC 7118 §5.1: one WebSocket message is one SIP message, so the
        // message boundary, not Content-Length, ends it: datagram rules.
        match SipMessage::parse_with(data, Transport::Datagram, &limits.message) {
            Ok(message) => {
                let incoming = Incoming {
                    message,
                    source: remote,
                    local,
                };
                if !shared.deliver(incoming, &mut shutdown).await {
                    break;
                }
            }
            Err(error) => debug!(%remote, %error, "malformed message dropped"),
        }
    }
    drop(registration);
    drop(stop);
    if !writer_done {
        let _ = tokio::time::timeout(limits.write_timeout, writer).await;
    }
    debug!(%remote, "WebSocket connection closed");
}

/// One SIP message per WebSocket message: text when it is UTF-8 (what
/// browsers expect), binary otherwise (RFC 7118 §4.2).
fn frame(bytes: Bytes) -> Message {
    match Utf8Bytes::try_from(bytes.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(bytes),
    }
}

async fn write<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Bytes>,
    mut stop: oneshot::Receiver<()>,
    mut keepalive: Option<Interval>,
    write_timeout: Duration,
    activity: Arc<Activity>,
    remote: Peer,
) where
    S: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    loop {
        let (message, ping) = tokio::select! {
            next = rx.recv() => match next {
                Some(bytes) => (frame(bytes), false),
                None => break,
            },
            _ = &mut stop => break,
            () = keepalive_tick(&mut keepalive) => (Message::Ping(Bytes::new()), true),
        };
        let batch = async {
            sink.feed(message).await?;
            for _ in 1..WRITE_BATCH {
                let Ok(more) = rx.try_recv() else { break };
                sink.feed(frame(more)).await?;
            }
            sink.flush().await
        };
        let outcome = tokio::time::timeout(write_timeout, batch).await;
        if !crate::connection::write_done(outcome, remote, write_timeout, ping, &activity) {
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}
