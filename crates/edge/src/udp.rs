//! The edge's UDP sockets and their reader threads.
//!
//! Bound and read here rather than in `sip-transport`, so that every
//! datagram is seen before it is parsed: a source over its admission limit
//! then costs one table lookup, not a parse, and a datagram that is not SIP
//! or is too large is counted by reason instead of vanishing in the
//! transport layer.
//!
//! # Threads, not tasks
//! A stateless forwarder does per datagram: read, decide (a few
//! microseconds), write. On loopback the kernel's side of that (the two
//! system calls, the delivery to the next socket, the thread wake-ups) is
//! most of the cost, so this module is written to make the fewest system
//! calls and wake-ups per message:
//!
//! * Every UDP address gets [`Listen::udp_threads`](crate::Listen) sockets
//!   (one per core by default) bound with `SO_REUSEPORT`, and each socket
//!   one plain OS thread that **blocks** in `recvmmsg(2)` (`MSG_WAITFORONE`:
//!   wait for the first datagram, then take what else is queued, up to
//!   [`BATCH`]). No readiness poll, no runtime wake-up, no task switch: the
//!   kernel wakes the thread straight from the socket, as it wakes a
//!   Kamailio UDP worker blocked in `recvfrom`. Under load one call reads
//!   many datagrams.
//! * The datagrams of one read are decided in order, and what they produce
//!   for UDP leaves in one `sendmmsg(2)` at the end of the round (again up
//!   to [`BATCH`] per call, each to its own destination).
//! * The kernel spreads the sources over the sockets of an address by flow
//!   (source address and port), so the messages of one flow stay in order,
//!   on one thread. All the sockets share the port: a peer sees answers
//!   come from the address it sent to (RFC 3581 §4), whichever thread
//!   sends them.
//!
//! Everything that may wait (a stream send, a name lookup) is handed to the
//! edge's tokio runtime as a task; the probes, the stream transports and
//! the HTTP side stay on tokio and send their datagrams through
//! [`UdpSockets::send`] without blocking.
//!
//! The system calls come from the `nix` crate's safe wrappers (this
//! workspace forbids `unsafe`), as in `sip-transport`'s shard sockets;
//! `tokio::net::UdpSocket` has no batched calls, and a tokio task reading
//! it pays an `epoll_wait` and a runtime wake-up per quiet period on top of
//! the read (the cost this replaced; docs/BENCHMARKS.md).
//!
//! # Stopping
//! [`Readers::stop`] sets a flag and shuts the sockets' receive side
//! (`shutdown(SHUT_RD)`), which wakes a thread blocked in `recvmmsg` at
//! once on Linux (the call then returns an empty datagram with no
//! address); a one-second receive timeout bounds the wait anywhere else.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendto};
use sip_message::{Limits, ParseError, Peer, SipMessage, Transport, TransportKind};
use sip_transport::{Incoming, TransportError};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::Handle;
use tracing::{debug, trace, warn};

use crate::Shared;
use crate::container::Container;
use crate::forward::DropReason;

/// Datagrams read or sent per system call at most.
pub(crate) const BATCH: usize = 32;

/// The UDP receive buffer asked for (bursts of calls, and floods that the
/// admission limit is dropping, must not push out everyone else's
/// datagrams); the kernel caps it at `net.core.rmem_max`.
const RECV_BUFFER: usize = 4 << 20;

/// How long a reader blocks before it looks at its stop flag anyway.
const RECV_TIMEOUT: Duration = Duration::from_secs(1);

/// How often, and how long apart, a send from a task retries when the
/// socket's send buffer is full.
const SEND_RETRIES: u32 = 20;
const SEND_RETRY_WAIT: Duration = Duration::from_millis(1);

/// The sockets of one UDP address: one per reader thread, one port.
#[derive(Debug)]
struct Group {
    local: Peer,
    sockets: Vec<Arc<UdpSocket>>,
}

/// The edge's UDP sockets.
#[derive(Debug)]
pub(crate) struct UdpSockets {
    groups: Vec<Group>,
    pub(crate) limits: Limits,
}

/// A datagram decided by the SIP path, to send from the edge's UDP
/// sockets.
#[derive(Debug)]
pub(crate) struct UdpOut {
    /// The socket it answers (a stateless reply leaves from the socket the
    /// request came on); `None`: the first socket of `to`'s family.
    pub(crate) from: Option<Peer>,
    /// The destination.
    pub(crate) to: SocketAddr,
    /// The message.
    pub(crate) bytes: Bytes,
    /// The container it goes to, for passive health (a failed send marks
    /// it); `None` for replies and messages to the outside.
    pub(crate) container: Option<Arc<Container>>,
}

impl UdpSockets {
    /// Binds `threads` sockets (at least one) on each address (port 0: any
    /// free port, the same for all the sockets of the address).
    ///
    /// `SO_REUSEPORT` would also let these sockets join those of another
    /// process of the same user already on the port (a second edge started
    /// by mistake would silently take part of the traffic), so a fixed port
    /// is first checked to be free with a plain bind.
    pub(crate) fn bind(
        addrs: &[SocketAddr],
        threads: usize,
        limits: Limits,
    ) -> Result<UdpSockets, TransportError> {
        let threads = threads.max(1);
        let mut groups = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let err = |source| TransportError::Bind {
                transport: TransportKind::Udp,
                addr,
                source,
            };
            if threads > 1 && addr.port() != 0 {
                drop(bind_one(addr, false).map_err(err)?);
            }
            let mut bound = addr;
            let mut sockets = Vec::with_capacity(threads);
            for _ in 0..threads {
                let socket = bind_one(bound, threads > 1).map_err(err)?;
                bound = socket.local_addr().map_err(err)?;
                sockets.push(Arc::new(socket));
            }
            groups.push(Group {
                local: Peer {
                    transport: TransportKind::Udp,
                    addr: bound,
                },
                sockets,
            });
        }
        Ok(UdpSockets { groups, limits })
    }

    /// The bound addresses, port 0 resolved.
    pub(crate) fn local_addrs(&self) -> impl Iterator<Item = Peer> + '_ {
        self.groups.iter().map(|g| g.local)
    }

    /// The group a datagram to `to` leaves from: `local`'s when it is one
    /// of these addresses, else the first of `to`'s address family.
    fn group_for(&self, local: Option<Peer>, to: SocketAddr) -> Option<usize> {
        local
            .and_then(|l| self.groups.iter().position(|g| g.local == l))
            .or_else(|| {
                self.groups
                    .iter()
                    .position(|g| g.local.addr.is_ipv4() == to.is_ipv4())
            })
    }

    fn too_large(&self, bytes: &[u8]) -> Option<TransportError> {
        let limit = self.limits.max_message_size;
        (bytes.len() > limit as usize).then_some(TransportError::MessageTooLarge {
            size: bytes.len(),
            limit,
        })
    }

    /// Sends one datagram to `to` (see [`UdpOut::from`] for the socket),
    /// from a task: never blocks the runtime; a full send buffer is waited
    /// out briefly.
    pub(crate) async fn send(
        &self,
        local: Option<Peer>,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), TransportError> {
        if let Some(e) = self.too_large(bytes) {
            return Err(e);
        }
        let socket = self
            .group_for(local, to)
            .and_then(|g| self.groups.get(g))
            .and_then(|g| g.sockets.first())
            .ok_or(TransportError::NoSocket {
                transport: TransportKind::Udp,
                addr: to,
            })?;
        let dest = SockaddrStorage::from(to);
        let mut tries = 0;
        loop {
            match sendto(socket.as_raw_fd(), bytes, &dest, MsgFlags::MSG_DONTWAIT) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EAGAIN) if tries < SEND_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(SEND_RETRY_WAIT).await;
                }
                Err(e) => {
                    return Err(TransportError::Send {
                        peer: Peer {
                            transport: TransportKind::Udp,
                            addr: to,
                        },
                        source: io::Error::from(e),
                    });
                }
            }
        }
    }

    /// Starts one reader thread per socket. `rt` runs what they hand off
    /// (stream sends, name lookups).
    pub(crate) fn start_readers(shared: &Arc<Shared>, rt: &Handle) -> io::Result<Readers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sockets = Vec::new();
        let mut threads = Vec::new();
        for (g, group) in shared.udp.groups.iter().enumerate() {
            for (i, socket) in group.sockets.iter().enumerate() {
                sockets.push(Arc::clone(socket));
                let reader = Reader {
                    shared: Arc::clone(shared),
                    socket: Arc::clone(socket),
                    local: group.local,
                    group: g,
                    index: i,
                    stop: Arc::clone(&stop),
                    rt: rt.clone(),
                };
                let name = format!("sb-edge-udp-{i}");
                let spawned = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || reader.run());
                match spawned {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        let readers = Readers {
                            stop,
                            sockets,
                            threads,
                        };
                        readers.stop();
                        return Err(e);
                    }
                }
            }
        }
        Ok(Readers {
            stop,
            sockets,
            threads,
        })
    }
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if socket.set_recv_buffer_size(RECV_BUFFER).is_err() {
        debug!(%addr, "could not enlarge the UDP receive buffer");
    }
    socket.set_read_timeout(Some(RECV_TIMEOUT))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The reader threads of an edge.
#[derive(Debug)]
pub(crate) struct Readers {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<UdpSocket>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Asks every reader to stop, and wakes those blocked in a read.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in &self.sockets {
            // On Linux this fails with ENOTCONN (an unconnected socket) but
            // still wakes the readers; elsewhere the receive timeout does.
            let _ = socket2::SockRef::from(&**s).shutdown(std::net::Shutdown::Read);
        }
    }

    /// A guard that stops the readers when dropped: held by a task on the
    /// edge's runtime, so a runtime that stops (or an edge that shuts
    /// down) takes its threads with it.
    pub(crate) fn stopper(&self) -> StopReaders {
        StopReaders {
            stop: Arc::clone(&self.stop),
            sockets: self.sockets.clone(),
        }
    }

    /// Stops the readers and waits for them to end.
    pub(crate) fn join(mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                warn!("a UDP reader thread panicked");
            }
        }
    }
}

/// Stops the readers when dropped (see [`Readers::stopper`]).
#[derive(Debug)]
pub(crate) struct StopReaders {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<UdpSocket>>,
}

impl Drop for StopReaders {
    fn drop(&mut self) {
        Readers {
            stop: Arc::clone(&self.stop),
            sockets: std::mem::take(&mut self.sockets),
            threads: Vec::new(),
        }
        .stop();
    }
}

/// Whether a datagram is a keepalive (CRLFs, or nothing): not a message.
fn is_keepalive(data: &[u8]) -> bool {
    data.iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
}

/// The buffers of one round's sends, kept from round to round.
struct Round {
    /// `sendmmsg`'s headers and destinations.
    headers: MultiHeaders<SockaddrStorage>,
    addrs: Vec<Option<SockaddrStorage>>,
    /// What the round's datagrams produced, in order.
    out: Vec<UdpOut>,
    /// The same with the index of the address each leaves from.
    pending: Vec<(usize, UdpOut)>,
    /// The addresses sent from, in order of first use.
    groups: Vec<usize>,
    /// One `sendmmsg`'s datagrams, and their indexes in `pending`.
    chunk: Vec<(SocketAddr, Bytes)>,
    index: Vec<usize>,
}

/// One reader thread: its socket, and what it needs to decide.
struct Reader {
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    local: Peer,
    /// Its address's index in [`UdpSockets::groups`].
    group: usize,
    /// Its socket's index in its group (it sends from the same index of
    /// any group).
    index: usize,
    stop: Arc<AtomicBool>,
    rt: Handle,
}

impl Reader {
    /// Reads until stopped: each round reads up to [`BATCH`] datagrams,
    /// screens and decides each, and sends what they produced.
    fn run(self) {
        let max = self.shared.udp.limits.max_message_size as usize;
        // One byte more than the limit tells an oversized datagram from
        // one that fits.
        // Each allocated zeroed on its own: untouched pages stay out of the
        // resident set until a datagram lands in them.
        let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; max + 1]).collect();
        let mut meta: Vec<(usize, usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH);
        let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut round = Round {
            headers: MultiHeaders::preallocate(BATCH, None),
            addrs: Vec::with_capacity(BATCH),
            out: Vec::with_capacity(BATCH),
            pending: Vec::with_capacity(BATCH),
            groups: Vec::new(),
            chunk: Vec::with_capacity(BATCH),
            index: Vec::with_capacity(BATCH),
        };
        let _rt = self.rt.enter();
        while !self.stop.load(Ordering::Relaxed) {
            meta.clear();
            match recv_batch(&self.socket, &mut recv_headers, &mut bufs, &mut meta) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    // E.g. an ICMP error reported for an earlier send.
                    debug!(socket = %self.local, %error, "UDP receive error");
                }
            }
            for &(i, len, addr) in &meta {
                // No address: the wake-up of a stopping socket.
                let Some(addr) = addr else { continue };
                let data = bufs.get(i).and_then(|b| b.get(..len)).unwrap_or_default();
                if let Some(incoming) = self.screen(data, addr, max)
                    && let Some(o) = crate::dispatch(&self.shared, incoming)
                {
                    round.out.push(o);
                }
            }
            if !round.out.is_empty() {
                self.send_round(&mut round);
            }
        }
        trace!(socket = %self.local, "UDP reader stopped");
    }

    /// The checks before a datagram is decided: keepalives, the admission
    /// limit, the size limit, the parse. `None`: not to be decided
    /// (counted here).
    fn screen(&self, data: &[u8], addr: SocketAddr, max: usize) -> Option<Incoming> {
        let shared = &*self.shared;
        let source = Peer {
            transport: TransportKind::Udp,
            addr,
        };
        if is_keepalive(data) {
            trace!(%source, "keepalive datagram");
            return None;
        }
        crate::metrics::inc(&shared.counters.sip_received);
        if !crate::admit(shared, source) {
            return None;
        }
        if data.len() > max {
            debug!(%source, limit = max, "datagram over max_message_size dropped");
            shared.counters.count_drop(DropReason::TooLarge);
            return None;
        }
        let limits = &shared.udp.limits;
        match SipMessage::parse_with(Bytes::copy_from_slice(data), Transport::Datagram, limits) {
            Ok(message) => Some(Incoming {
                message,
                source,
                local: self.local,
            }),
            Err(ParseError::TooLarge { .. }) => {
                debug!(%source, limit = max, "datagram over max_message_size dropped");
                shared.counters.count_drop(DropReason::TooLarge);
                None
            }
            Err(error) => {
                // Never answered: without a parsed Via there is no way back.
                debug!(%source, %error, "datagram that is not SIP dropped");
                shared.counters.count_drop(DropReason::Unparsable);
                None
            }
        }
    }

    /// Sends the datagrams of a round: those of each sending address in one
    /// `sendmmsg` per [`BATCH`], in order. Failures are counted (and marked
    /// on their container) as a send from a task would be.
    fn send_round(&self, round: &mut Round) {
        let udp = &self.shared.udp;
        let Round {
            headers,
            addrs,
            out,
            pending,
            groups,
            chunk,
            index,
        } = round;
        for o in out.drain(..) {
            let from = if o.from == Some(self.local) {
                Some(self.group)
            } else {
                udp.group_for(o.from, o.to)
            };
            if let Some(e) = udp.too_large(&o.bytes) {
                crate::send_failed(&self.shared, o.to, &e, o.container.as_deref());
                continue;
            }
            let Some(g) = from else {
                let e = TransportError::NoSocket {
                    transport: TransportKind::Udp,
                    addr: o.to,
                };
                crate::send_failed(&self.shared, o.to, &e, o.container.as_deref());
                continue;
            };
            if !groups.contains(&g) {
                groups.push(g);
            }
            pending.push((g, o));
        }
        // Almost always one address: every datagram in one pass.
        for &g in groups.iter() {
            let Some(socket) = udp
                .groups
                .get(g)
                .and_then(|grp| grp.sockets.get(self.index % grp.sockets.len().max(1)))
            else {
                continue;
            };
            chunk.clear();
            index.clear();
            for (j, (pg, o)) in pending.iter().enumerate() {
                if *pg == g {
                    chunk.push((o.to, o.bytes.clone()));
                    index.push(j);
                }
            }
            for (i, source) in send_all(socket, headers, addrs, chunk) {
                if let Some((_, o)) = index.get(i).and_then(|&j| pending.get(j)) {
                    let e = TransportError::Send {
                        peer: Peer {
                            transport: TransportKind::Udp,
                            addr: o.to,
                        },
                        source,
                    };
                    crate::send_failed(&self.shared, o.to, &e, o.container.as_deref());
                }
            }
        }
        pending.clear();
        groups.clear();
        chunk.clear();
    }
}

/// Reads up to [`BATCH`] datagrams: blocks for the first (up to the
/// socket's receive timeout), then takes what is queued. `headers` are
/// reused from call to call (the kernel rewrites each entry's address
/// length, which stays right: a socket has one address family).
fn recv_batch(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    bufs: &mut [Vec<u8>],
    meta: &mut Vec<(usize, usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    use std::io::IoSliceMut;

    // On the stack: no allocation per read.
    let mut rest = bufs.iter_mut();
    let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
        [IoSliceMut::new(
            rest.next()
                .map_or_else(<&mut [u8]>::default, Vec::as_mut_slice),
        )]
    });
    let results = recvmmsg(
        socket.as_raw_fd(),
        headers,
        iovs.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )
    .map_err(io::Error::from)?;
    for (i, r) in results.enumerate() {
        meta.push((i, r.bytes, r.address.and_then(|a| to_std(&a))));
    }
    Ok(())
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Sends every datagram of `chunk`, blocking while the send buffer is
/// full: one `sendto` for a lone datagram (the usual case at low rates),
/// else one `sendmmsg` per [`BATCH`]. Returns the datagrams the system
/// refused (index in `chunk`, error); the others are sent.
fn send_all(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    addrs: &mut Vec<Option<SockaddrStorage>>,
    chunk: &[(SocketAddr, Bytes)],
) -> Vec<(usize, io::Error)> {
    let mut failed = Vec::new();
    let mut start = 0;
    while start < chunk.len() {
        let end = chunk.len().min(start + BATCH);
        let part = chunk.get(start..end).unwrap_or_default();
        let sent = match part {
            [(to, bytes)] => sendto(
                socket.as_raw_fd(),
                bytes,
                &SockaddrStorage::from(*to),
                MsgFlags::empty(),
            )
            .map(|_| 1)
            .map_err(io::Error::from),
            _ => send_many(socket, headers, addrs, part),
        };
        match sent {
            Ok(n) => start += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // The system refused the first datagram of the part.
                failed.push((start, e));
                start += 1;
            }
        }
    }
    failed
}

fn send_many(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    addrs: &mut Vec<Option<SockaddrStorage>>,
    chunk: &[(SocketAddr, Bytes)],
) -> io::Result<usize> {
    use std::io::IoSlice;

    use nix::sys::socket::ControlMessage;

    addrs.clear();
    addrs.extend(chunk.iter().map(|(a, _)| Some(SockaddrStorage::from(*a))));
    // On the stack: no allocation per send. Entries past the chunk are
    // empty and not sent (the call takes as many as there are addresses).
    let mut rest = chunk.iter();
    let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
        [IoSlice::new(
            rest.next().map_or(&[][..], |(_, b)| b.as_ref()),
        )]
    });
    let none: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        headers,
        &iovs,
        &addrs[..],
        none,
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}
