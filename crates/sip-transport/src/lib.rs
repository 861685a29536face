//! `sip-transport`: SIP over UDP, TCP, TLS, WS and WSS, on tokio.
//!
//! It owns the sockets: binding UDP sockets and stream listeners, receiving
//! datagrams and framing streams into [`SipMessage`](sip_message::SipMessage)s (RFC 3261 §18.3, with
//! `sip-message`'s parser and [`StreamFramer`](sip_message::StreamFramer)),
//! the TLS and WebSocket handshakes (RFC 7118: the `sip` subprotocol, one
//! SIP message per WebSocket message), a table of open connections so a
//! response or a later request to the same peer reuses the connection it
//! came on (RFC 3261 §18.2.2), CRLF keepalives (RFC 5626 §4.4.1: pings
//! answered with pongs, pings sent on connections this side opened), and
//! the limits: message size, connection count, idle, handshake and write
//! timeouts, each logging one `warn` line when a peer hits it.
//!
//! It does not choose where a message goes: the transaction layer or the
//! edge hands it a [`Peer`]. Two pure helpers, [`via_stamp`] and
//! [`response_peer`], say what RFC 3261 §18.2 and RFC 3581 (`rport`)
//! prescribe. It does not resolve names (RFC 3263) and does not retransmit.
//!
//! Data a peer sends never causes a panic or an error return: a malformed
//! datagram or WebSocket message is logged (`debug`) and dropped; a stream
//! that cannot be framed is logged (`warn`) and its connection closed.
//!
//! # Example
//! Two transports on loopback: one sends an OPTIONS, the other answers it
//! from the socket the request arrived on.
//! ```
//! use bytes::Bytes;
//! use sip_message::{Peer, ResponseBuilder, TransportKind};
//! use sip_transport::{TransportConfig, Transports};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let config = || TransportConfig {
//!     udp: vec!["127.0.0.1:0".parse().unwrap()],
//!     ..TransportConfig::default()
//! };
//! let (server, mut server_rx) = Transports::bind(config()).await?;
//! let (client, mut client_rx) = Transports::bind(config()).await?;
//! let server_addr = server.local_addr(TransportKind::Udp).unwrap();
//! let client_addr = client.local_addr(TransportKind::Udp).unwrap();
//!
//! let options = format!(
//!     "OPTIONS sip:{server_addr} SIP/2.0\r\n\
//!      Via: SIP/2.0/UDP {client_addr};rport;branch=z9hG4bK74bf9\r\n\
//!      Max-Forwards: 70\r\n\
//!      To: <sip:{server_addr}>\r\n\
//!      From: <sip:probe@{client_addr}>;tag=9fxced76sl\r\n\
//!      Call-ID: 3848276298220188511@example.com\r\n\
//!      CSeq: 1 OPTIONS\r\n\
//!      Content-Length: 0\r\n\r\n"
//! );
//! let to_server = Peer { transport: TransportKind::Udp, addr: server_addr };
//! client.send(to_server, Bytes::from(options)).await?;
//!
//! let request = server_rx.recv().await.unwrap();
//! let response = ResponseBuilder::for_request(&request.message, 200, Some("a6c85cf"))?
//!     .build()?;
//! // RFC 3581: back to the source address and port, from the receiving socket.
//! server
//!     .send_from(request.local, request.source, response.message_bytes())
//!     .await?;
//!
//! let answer = client_rx.recv().await.unwrap();
//! assert_eq!(answer.message.status(), Some(200));
//! server.shutdown().await;
//! client.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Layout
//! * `transports`: [`Transports`] (bind, send, connect, shutdown), the
//!   connection table, [`Incoming`].
//! * `config`: [`TransportConfig`], [`TransportLimits`].
//! * `udp`: UDP sockets and their receive loops.
//! * `shard_udp`: UDP sockets owned by the stack's shards, one per shard
//!   on a shared port (`SO_REUSEPORT`), read with `recvmmsg` and written
//!   with `sendmmsg`: [`bind_shard_sockets`], [`ShardSocket`].
//! * `listener`: stream listeners, accept, inbound handshakes.
//! * `connection`: the reader and writer of a TCP or TLS connection,
//!   framing, keepalives, the idle timer.
//! * `ws`: the WebSocket handshake and connection driver (RFC 7118).
//! * `tls`: [`TlsServer`], [`TlsClient`].
//! * `io`: one stream type for plain and TLS connections.
//! * [`via_stamp`], [`response_peer`]: symmetric response routing, from `sip-message`.
//! * `error`: [`TransportError`].
//!
//! # Tasks
//! Each UDP socket and each listener has a receiving task; each connection
//! has a reader task (which owns the connection's life) and a writer task
//! fed by a bounded queue, so a consumer that is slow to take messages
//! never blocks sending. Received messages from every transport go into
//! one bounded channel. Tasks are spawned on the runtime that called
//! [`Transports::bind`]: a shard that binds on its own current-thread
//! runtime keeps its sockets on its core.
//!
//! # Not yet
//! * The UDP sockets of [`Transports`] receive one datagram per system
//!   call; the shards' own sockets ([`ShardSocket`]) batch.
//! * Two sends racing to a peer with no connection may open two; the
//!   newer one takes the table slot and the older idles out.
//! * Connections are found by remote address only: no aliases (RFC 5923)
//!   and no RFC 5626 flow tokens yet.
//! * `warn` lines are not rate-limited.
//!
//! # Dependencies
//! * `tokio`: sockets, tasks, timers, channels.
//! * `socket2`: socket options tokio does not expose before bind
//!   (`SO_REUSEPORT` for shards on one port, `IPV6_V6ONLY`).
//! * `rustls`, `tokio-rustls` (ring provider: no C toolchain): TLS and WSS;
//!   `rustls::pki_types` reads PEM.
//! * `tokio-tungstenite`: the WebSocket handshake and framing (RFC 6455);
//!   `futures-util` for its `Stream` and `Sink`.
//! * `nix` (Linux): safe `recvmmsg` / `sendmmsg` for [`ShardSocket`]
//!   (why not `quinn-udp`: see `shard_udp`).
//! * `bytes`: messages travel as [`Bytes`](bytes::Bytes) from socket to
//!   parser to consumer without copies on streams.
//! * `tracing`: logs; `thiserror`: [`TransportError`].
//! * `rcgen` (tests only): a CA and server certificates made per test.

mod config;
mod connection;
mod error;
mod io;
mod listener;
mod memory;
mod shard_udp;
mod tls;
mod transports;
mod udp;
mod ws;

pub use config::{TransportConfig, TransportLimits};
pub use error::TransportError;
pub use memory::{MemoryNetwork, MemorySender, MemorySocket};
pub use shard_udp::{BATCH, ShardSocket, ShardSocketBinding, bind_shard_sockets};
pub use sip_message::{Peer, TransportKind};
pub use sip_message::{ViaStamp, response_peer, via_stamp};
pub use tls::{TlsClient, TlsServer};
pub use transports::{Incoming, Transports};
