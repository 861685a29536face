//! The handle: binds everything a [`TransportConfig`] names, hands received
//! messages to one channel, sends to a [`Peer`] over UDP or over a stream
//! connection it reuses or opens, and shuts it all down.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use sip_message::{Peer, SipMessage, TransportKind};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::{TransportConfig, TransportLimits};
use crate::io::Io;
use crate::tls::{TlsClient, server_name};
use crate::{TransportError, connection, listener, udp, ws};

/// A message received on one of the transports.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The parsed message.
    pub message: SipMessage,
    /// Where it came from: the transport and the remote address (for UDP
    /// the datagram's source, for streams the connection's remote end).
    /// Sending to this peer reaches the sender: over the same connection
    /// for a stream transport (RFC 3261 §18.2.2), from the same socket for
    /// UDP with [`Transports::send_from`] (RFC 3581 §4).
    pub source: Peer,
    /// The local socket it arrived on.
    pub local: Peer,
}

/// The transports: a cheap-to-clone handle. Dropping the last clone stops
/// every socket, listener and connection, as [`Transports::shutdown`] does
/// without waiting.
#[derive(Clone)]
pub struct Transports {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("local_addrs", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

/// Owned by the `Transports` clones only (tasks hold `Shared`), so its drop
/// means the user let go of the transports.
struct Handle {
    shared: Arc<Shared>,
    /// Yields `None` once every task has ended.
    done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
    }
}

impl Transports {
    /// Binds every address in `config` and starts receiving. Must be called
    /// inside a tokio runtime: the sockets' tasks run on it. Received
    /// messages arrive on the returned receiver.
    pub async fn bind(
        config: TransportConfig,
    ) -> Result<(Transports, mpsc::Receiver<Incoming>), TransportError> {
        let limits = config.limits;
        let bind_err = |transport, addr| {
            move |source| TransportError::Bind {
                transport,
                addr,
                source,
            }
        };
        let mut udp_sockets = Vec::new();
        let mut memory_sockets = Vec::new();
        if let Some(net) = &config.memory {
            for addr in &config.udp {
                memory_sockets.push(net.bind(*addr)?);
            }
        }
        for addr in config.udp.iter().filter(|_| config.memory.is_none()) {
            let socket =
                udp::bind(*addr, config.reuse_port).map_err(bind_err(TransportKind::Udp, *addr))?;
            let local = socket
                .local_addr()
                .map_err(bind_err(TransportKind::Udp, *addr))?;
            udp_sockets.push((local, Arc::new(socket)));
        }
        let mut stream_listeners = Vec::new();
        let plain = |kind: TransportKind, addrs: &[SocketAddr]| {
            addrs.iter().map(|a| (kind, *a, None)).collect::<Vec<_>>()
        };
        let secure = |kind: TransportKind, addrs: &[(SocketAddr, crate::TlsServer)]| {
            addrs
                .iter()
                .map(|(a, tls)| (kind, *a, Some(tls.acceptor())))
                .collect::<Vec<_>>()
        };
        let wanted = [
            plain(TransportKind::Tcp, &config.tcp),
            secure(TransportKind::Tls, &config.tls),
            plain(TransportKind::Ws, &config.ws),
            secure(TransportKind::Wss, &config.wss),
        ];
        for (kind, addr, tls) in wanted.into_iter().flatten() {
            let listener = listener::bind(addr, config.reuse_port).map_err(bind_err(kind, addr))?;
            let local = listener.local_addr().map_err(bind_err(kind, addr))?;
            stream_listeners.push((kind, local, listener, tls));
        }

        let (incoming_tx, incoming_rx) = mpsc::channel(limits.incoming_queue.max(1));
        let (shutdown, _) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel(1);
        let mut local_addrs: Vec<Peer> = udp_sockets
            .iter()
            .map(|(addr, _)| Peer {
                transport: TransportKind::Udp,
                addr: *addr,
            })
            .collect();
        local_addrs.extend(memory_sockets.iter().map(|m| Peer {
            transport: TransportKind::Udp,
            addr: m.local_addr(),
        }));
        local_addrs.extend(stream_listeners.iter().map(|(kind, addr, _, _)| Peer {
            transport: *kind,
            addr: *addr,
        }));
        let shared = Arc::new(Shared {
            limits,
            incoming: incoming_tx,
            udp: udp_sockets,
            memory: memory_sockets
                .iter()
                .map(crate::MemorySocket::sender)
                .collect(),
            local_addrs,
            connections: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(
                limits.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            tls_client: config.tls_client,
            shutdown,
            tasks: Mutex::new(Some(done_tx)),
            next_id: AtomicU64::new(1),
        });
        for (local, socket) in &shared.udp {
            let local = Peer {
                transport: TransportKind::Udp,
                addr: *local,
            };
            shared.spawn(udp::receive(Arc::clone(&shared), Arc::clone(socket), local));
        }
        for socket in memory_sockets {
            let local = Peer {
                transport: TransportKind::Udp,
                addr: socket.local_addr(),
            };
            shared.spawn(udp::receive_memory(Arc::clone(&shared), socket, local));
        }
        for (kind, local, listener, tls) in stream_listeners {
            let local = Peer {
                transport: kind,
                addr: local,
            };
            shared.spawn(listener::accept(Arc::clone(&shared), listener, local, tls));
        }
        info!(addrs = ?shared.local_addrs, "transports bound");
        let handle = Handle {
            shared,
            done: Mutex::new(Some(done_rx)),
        };
        Ok((
            Transports {
                handle: Arc::new(handle),
            },
            incoming_rx,
        ))
    }

    /// The bound addresses, port 0 resolved, in configuration order: UDP,
    /// then TCP, TLS, WS, WSS.
    #[must_use]
    pub fn local_addrs(&self) -> Vec<Peer> {
        self.handle.shared.local_addrs.clone()
    }

    /// The first bound address of a transport, if any.
    #[must_use]
    pub fn local_addr(&self, transport: TransportKind) -> Option<SocketAddr> {
        self.handle
            .shared
            .local_addrs
            .iter()
            .find(|p| p.transport == transport)
            .map(|p| p.addr)
    }

    /// The remote ends of the open stream connections, inbound and
    /// outbound.
    #[must_use]
    pub fn connections(&self) -> Vec<Peer> {
        lock(&self.handle.shared.connections)
            .keys()
            .copied()
            .collect()
    }

    /// Sends one message to `peer`. UDP: a datagram from the first bound
    /// socket of the peer's address family. Stream transports: over the
    /// open connection to that address, inbound or outbound, else over a
    /// new one (TLS peers are verified against their IP address; see
    /// [`Transports::connect`] to verify a name).
    ///
    /// `Ok` means the datagram was sent or the message queued on the
    /// connection, not that the peer received it.
    pub async fn send(&self, peer: Peer, bytes: Bytes) -> Result<(), TransportError> {
        self.handle.shared.send(None, peer, bytes).await
    }

    /// Like [`Transports::send`], but a UDP datagram leaves from the socket
    /// bound to `local` (an [`Incoming::local`]): a response goes out from
    /// the address and port the request arrived on, so it traverses a
    /// symmetric NAT (RFC 3581 §4). For stream transports `local` is
    /// ignored.
    pub async fn send_from(
        &self,
        local: Peer,
        peer: Peer,
        bytes: Bytes,
    ) -> Result<(), TransportError> {
        self.handle.shared.send(Some(local), peer, bytes).await
    }

    /// Opens a stream connection to `peer` unless one is open already; the
    /// next [`Transports::send`] to `peer` uses it. `server_name` is the
    /// name a TLS or WSS peer's certificate must carry and the WebSocket
    /// `Host`; `None` uses the peer's IP address. Nothing to do for UDP.
    pub async fn connect(
        &self,
        peer: Peer,
        server_name: Option<&str>,
    ) -> Result<(), TransportError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        if peer.transport == TransportKind::Udp || shared.lookup(peer).is_some() {
            return Ok(());
        }
        shared.connect(peer, server_name).await.map(drop)
    }

    /// Stops every socket, listener and connection, and waits until their
    /// tasks have ended. Other clones of this handle then fail with
    /// [`TransportError::Shutdown`].
    pub async fn shutdown(self) {
        let shared = &self.handle.shared;
        shared.begin_shutdown();
        let done = lock(&self.handle.done).take();
        if let Some(mut done) = done {
            // Every task holds a sender; `None` once the last one ended.
            while done.recv().await.is_some() {}
        }
        info!("transports shut down");
    }
}

/// State shared by the handle and every task.
pub(crate) struct Shared {
    pub(crate) limits: TransportLimits,
    incoming: mpsc::Sender<Incoming>,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// UDP on an in-process network instead of sockets.
    memory: Vec<crate::MemorySender>,
    local_addrs: Vec<Peer>,
    /// Open stream connections by remote end: how a response or a later
    /// request to the same peer finds the connection (RFC 3261 §18.2.2).
    connections: Mutex<HashMap<Peer, ConnectionEntry>>,
    permits: Arc<Semaphore>,
    tls_client: Option<TlsClient>,
    shutdown: watch::Sender<bool>,
    /// Cloned into every task; taken (dropped) at shutdown so that the
    /// handle's receiver closes when the last task ends.
    tasks: Mutex<Option<mpsc::Sender<()>>>,
    next_id: AtomicU64,
}

struct ConnectionEntry {
    id: u64,
    tx: mpsc::Sender<Bytes>,
}

/// A connection's place in the table and its share of the connection
/// limit; dropping it releases both.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    pub(crate) remote: Peer,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = lock(&self.shared.connections);
        if table.get(&self.remote).is_some_and(|e| e.id == self.id) {
            table.remove(&self.remote);
        }
    }
}

/// A registered connection: the place in the table, the queue its writer
/// drains, and a sender into that queue (for pongs).
pub(crate) struct Registered {
    pub(crate) registration: Registration,
    pub(crate) tx: mpsc::Sender<Bytes>,
    pub(crate) rx: mpsc::Receiver<Bytes>,
}

/// What a connection carries SIP over, once its handshakes are done.
pub(crate) enum Wire {
    /// TCP or TLS: a byte stream to frame.
    Stream(Io),
    /// WS or WSS: WebSocket messages (boxed: the socket is large).
    WebSocket(Box<tokio_tungstenite::WebSocketStream<Io>>),
}

impl Wire {
    /// Runs the connection until it ends.
    pub(crate) async fn run(
        self,
        shared: Arc<Shared>,
        reg: Registered,
        local: Peer,
        outbound: bool,
    ) {
        match self {
            Wire::Stream(io) => connection::run(shared, io, reg, local, outbound).await,
            Wire::WebSocket(socket) => ws::run(shared, *socket, reg, local, outbound).await,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding these locks; if one did, the map
    // is still consistent (every operation is a single insert or remove).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves when shutdown has begun (immediately if it already has).
pub(crate) async fn shutdown_signal(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stopping| *stopping).await;
}

impl Shared {
    /// Spawns a task that shutdown waits for; does nothing once shutdown
    /// has begun.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(guard) = lock(&self.tasks).clone() else {
            return;
        };
        tokio::spawn(async move {
            task.await;
            drop(guard);
        });
    }

    fn begin_shutdown(&self) {
        lock(&self.tasks).take();
        self.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if *self.shutdown.borrow() {
            Err(TransportError::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Hands a message to the consumer, waiting for room; `false` if
    /// shutdown began meanwhile.
    pub(crate) async fn deliver(
        &self,
        incoming: Incoming,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        debug!(
            source = %incoming.source,
            start_line = incoming.message.start_line_str(),
            "received"
        );
        tokio::select! {
            biased;
            () = shutdown_signal(shutdown) => false,
            sent = self.incoming.send(incoming) => {
                if sent.is_err() {
                    debug!("incoming receiver dropped; message discarded");
                }
                true
            }
        }
    }

    /// Takes a connection slot, or logs the limit and refuses.
    pub(crate) fn permit(&self, peer: Peer, inbound: bool) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok();
        if permit.is_none() {
            let limit = self.limits.max_connections;
            if inbound {
                warn!(remote = %peer, limit, "max_connections reached: refusing inbound connection");
            } else {
                warn!(%peer, limit, "max_connections reached: not connecting");
            }
        }
        permit
    }

    /// Puts a new connection in the table (replacing an older one to the
    /// same peer: the newest wins).
    pub(crate) fn register(
        self: &Arc<Self>,
        remote: Peer,
        permit: OwnedSemaphorePermit,
    ) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.limits.send_queue.max(1));
        lock(&self.connections).insert(remote, ConnectionEntry { id, tx: tx.clone() });
        Registered {
            registration: Registration {
                shared: Arc::clone(self),
                remote,
                id,
                _permit: permit,
            },
            tx,
            rx,
        }
    }

    fn lookup(&self, peer: Peer) -> Option<mpsc::Sender<Bytes>> {
        lock(&self.connections).get(&peer).map(|e| e.tx.clone())
    }

    async fn send(
        self: &Arc<Self>,
        local: Option<Peer>,
        peer: Peer,
        bytes: Bytes,
    ) -> Result<(), TransportError> {
        self.check_open()?;
        let limit = self.limits.message.max_message_size;
        if bytes.len() > limit as usize {
            return Err(TransportError::MessageTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        if peer.transport == TransportKind::Udp && !self.memory.is_empty() {
            let found = match local {
                Some(local) => self.memory.iter().find(|m| m.local_addr() == local.addr),
                None => self
                    .memory
                    .iter()
                    .find(|m| m.local_addr().is_ipv4() == peer.addr.is_ipv4()),
            };
            let Some(sender) = found else {
                return Err(TransportError::NoSocket {
                    transport: TransportKind::Udp,
                    addr: local.map_or(peer.addr, |l| l.addr),
                });
            };
            // A datagram nobody receives is lost, as on a network.
            let _ = sender.send_to(bytes, peer.addr);
            return Ok(());
        }
        if peer.transport == TransportKind::Udp {
            let socket = self.udp_socket(local, peer)?;
            socket
                .send_to(&bytes, peer.addr)
                .await
                .map_err(|source| TransportError::Send { peer, source })?;
            return Ok(());
        }
        let bytes = match self.lookup(peer) {
            Some(tx) => match self.queue(peer, &tx, bytes).await {
                // The connection died after the lookup: open a new one.
                Err(Queue::Closed(bytes)) => bytes,
                other => return other.map_err(|e| e.into_error(peer)),
            },
            None => bytes,
        };
        let tx = self.connect(peer, None).await?;
        self.queue(peer, &tx, bytes)
            .await
            .map_err(|e| e.into_error(peer))
    }

    fn udp_socket(
        &self,
        local: Option<Peer>,
        peer: Peer,
    ) -> Result<&Arc<UdpSocket>, TransportError> {
        let found = match local {
            Some(local) => self.udp.iter().find(|(addr, _)| *addr == local.addr),
            None => self
                .udp
                .iter()
                .find(|(addr, _)| addr.is_ipv4() == peer.addr.is_ipv4()),
        };
        found.map(|(_, s)| s).ok_or(TransportError::NoSocket {
            transport: TransportKind::Udp,
            addr: local.map_or(peer.addr, |l| l.addr),
        })
    }

    async fn queue(&self, peer: Peer, tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> Result<(), Queue> {
        match tx.send_timeout(bytes, self.limits.write_timeout).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(bytes)) => Err(Queue::Closed(bytes)),
            Err(SendTimeoutError::Timeout(_)) => {
                warn!(
                    %peer,
                    timeout = ?self.limits.write_timeout,
                    "send queue full: peer is not reading; message dropped"
                );
                Err(Queue::Congested)
            }
        }
    }

    /// Opens a connection to `peer` (TCP, then TLS and WebSocket handshakes
    /// as its transport needs), registers it and starts its tasks.
    async fn connect(
        self: &Arc<Self>,
        peer: Peer,
        name: Option<&str>,
    ) -> Result<mpsc::Sender<Bytes>, TransportError> {
        let tls = match peer.transport {
            TransportKind::Udp => {
                return Err(TransportError::NoSocket {
                    transport: TransportKind::Udp,
                    addr: peer.addr,
                });
            }
            TransportKind::Tcp | TransportKind::Ws => None,
            TransportKind::Tls | TransportKind::Wss => {
                let client = self
                    .tls_client
                    .as_ref()
                    .ok_or(TransportError::NoTlsClient { peer })?;
                Some((client.connector(), server_name(name, peer.addr)?))
            }
        };
        let permit = self
            .permit(peer, false)
            .ok_or(TransportError::TooManyConnections {
                peer,
                limit: self.limits.max_connections,
            })?;
        let limits = self.limits;
        let handshake = async {
            let tcp = TcpStream::connect(peer.addr)
                .await
                .map_err(|source| TransportError::Connect { peer, source })?;
            let _ = tcp.set_nodelay(true);
            let local = tcp
                .local_addr()
                .map_err(|source| TransportError::Connect { peer, source })?;
            let local = Peer {
                transport: peer.transport,
                addr: local,
            };
            let io = match tls {
                None => Io::Tcp(tcp),
                Some((connector, server_name)) => {
                    let tls = connector
                        .connect(server_name, tcp)
                        .await
                        .map_err(|source| TransportError::TlsHandshake { peer, source })?;
                    Io::Tls(Box::new(tls.into()))
                }
            };
            let wire = if matches!(peer.transport, TransportKind::Ws | TransportKind::Wss) {
                Wire::WebSocket(Box::new(ws::connect(io, peer, name, &limits).await?))
            } else {
                Wire::Stream(io)
            };
            Ok::<_, TransportError>((wire, local))
        };
        let (wire, local) = tokio::time::timeout(limits.handshake_timeout, handshake)
            .await
            .map_err(|_| TransportError::ConnectTimeout { peer })??;
        debug!(%peer, %local, "connected");
        let reg = self.register(peer, permit);
        let tx = reg.tx.clone();
        self.spawn(wire.run(Arc::clone(self), reg, local, true));
        Ok(tx)
    }
}

/// Why a message could not be queued on a connection.
enum Queue {
    Closed(Bytes),
    Congested,
}

impl Queue {
    fn into_error(self, peer: Peer) -> TransportError {
        match self {
            Queue::Closed(_) => TransportError::ConnectionClosed { peer },
            Queue::Congested => TransportError::Congested { peer },
        }
    }
}
