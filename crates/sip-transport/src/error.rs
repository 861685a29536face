//! The error of this crate's API surface: what went wrong with a bind, a
//! connect or a send, naming the peer or address at fault.

use std::io;
use std::net::SocketAddr;

use sip_message::{Peer, TransportKind};

/// Why binding, connecting or sending failed.
///
/// Errors on data a peer sends (malformed messages, framing errors, limits
/// hit) are not returned: they are logged and the message or connection is
/// dropped, since no caller waits for them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A socket or listener could not be bound to a configured address.
    #[error("cannot bind {transport} on {addr}: {source}")]
    Bind {
        /// The transport being bound.
        transport: TransportKind,
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The TCP connection to a peer could not be opened.
    #[error("cannot connect to {peer}: {source}")]
    Connect {
        /// The peer.
        peer: Peer,
        /// The operating system's error.
        source: io::Error,
    },
    /// Connecting, or the TLS or WebSocket handshake, took longer than
    /// [`TransportLimits::handshake_timeout`](crate::TransportLimits::handshake_timeout).
    #[error("connecting to {peer} timed out")]
    ConnectTimeout {
        /// The peer.
        peer: Peer,
    },
    /// The TLS handshake with a peer failed (certificate not trusted, name
    /// mismatch, protocol error).
    #[error("TLS handshake with {peer} failed: {source}")]
    TlsHandshake {
        /// The peer.
        peer: Peer,
        /// The error rustls reported, wrapped by tokio-rustls.
        source: io::Error,
    },
    /// The WebSocket handshake with a peer failed, including a server that
    /// did not accept the `sip` subprotocol (RFC 7118 §4.1).
    #[error("WebSocket handshake with {peer} failed: {source}")]
    WebSocketHandshake {
        /// The peer.
        peer: Peer,
        /// The error tungstenite reported.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// A TLS or WSS peer was addressed but no [`TlsClient`](crate::TlsClient)
    /// was configured.
    #[error("no TLS client configuration to reach {peer}")]
    NoTlsClient {
        /// The peer.
        peer: Peer,
    },
    /// The name given to verify a TLS peer's certificate is not a DNS name
    /// or an IP address.
    #[error("invalid TLS server name {name:?}")]
    InvalidServerName {
        /// The name as given.
        name: String,
    },
    /// Building a rustls configuration failed (a key that does not match
    /// the certificate, an unsupported key type, ...).
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    /// A certificate or key could not be read from PEM.
    #[error("cannot read {what} PEM: {source}")]
    Pem {
        /// What was being read (`certificate`, `private key`, `CA certificate`).
        what: &'static str,
        /// The error from the PEM decoder (file not found, no item, bad base64).
        source: rustls::pki_types::pem::Error,
    },
    /// No UDP socket of the peer's address family is bound, or `send_from`
    /// named a local address that is not bound.
    #[error("no local {transport} socket to reach {addr}")]
    NoSocket {
        /// The transport.
        transport: TransportKind,
        /// The destination (or the requested local address).
        addr: SocketAddr,
    },
    /// Opening a connection would exceed
    /// [`TransportLimits::max_connections`](crate::TransportLimits::max_connections).
    #[error("connection limit of {limit} reached; cannot connect to {peer}")]
    TooManyConnections {
        /// The peer.
        peer: Peer,
        /// The configured limit.
        limit: usize,
    },
    /// The message is larger than
    /// [`Limits::max_message_size`](sip_message::Limits::max_message_size).
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The message size.
        size: usize,
        /// The configured limit.
        limit: u32,
    },
    /// Sending a datagram failed.
    #[error("cannot send to {peer}: {source}")]
    Send {
        /// The peer.
        peer: Peer,
        /// The operating system's error.
        source: io::Error,
    },
    /// The connection's send queue stayed full for
    /// [`TransportLimits::write_timeout`](crate::TransportLimits::write_timeout):
    /// the peer does not read.
    #[error("send queue to {peer} is full")]
    Congested {
        /// The peer.
        peer: Peer,
    },
    /// The connection closed before the message could be queued.
    #[error("connection to {peer} closed")]
    ConnectionClosed {
        /// The peer.
        peer: Peer,
    },
    /// The transports have been shut down.
    #[error("transports are shut down")]
    Shutdown,
}
