//! UDP sockets owned by the stack's shards, read and written in batches.
//!
//! [`Transports`](crate::Transports) gives each UDP address one socket and
//! one receiving task that hands messages to a channel. A shard of the
//! stack can instead own its UDP sockets: [`bind_shard_sockets`] binds one
//! socket per shard on the same address with `SO_REUSEPORT`, so the kernel
//! spreads datagrams over them by flow (source address and port); each
//! shard turns its [`ShardSocketBinding`]s into [`ShardSocket`]s on its own
//! runtime and reads them itself, with no task and no channel between the
//! socket and the transaction layer. All the sockets of an address share
//! its port, so a peer sees answers come from the address it sent to,
//! whichever shard sends them (RFC 3581 §4).
//!
//! # Batches
//! On Linux one `recvmmsg(2)` reads up to [`BATCH`] datagrams and one
//! `sendmmsg(2)` sends up to [`BATCH`], each to its own destination: a UAS
//! answers many peers, so segmentation offload (GSO, which needs one
//! destination per batch) does not apply to SIP's responses, and
//! `sendmmsg` does. A read asks for a few datagrams after one that drained
//! the socket and for more after one that filled its slots (each slot
//! asked for costs a zeroed header); a round with one datagram to send
//! uses `sendto`. The system calls come from the `nix` crate's safe
//! wrappers (this workspace forbids `unsafe`). `quinn-udp`, the other
//! candidate, batches receives with `recvmmsg` but sends one datagram (or
//! one GSO train to one destination) per call, which would leave half the
//! system calls in place. Elsewhere the same API loops over
//! `recv_from` / `send_to` without blocking.
//!
//! # Readiness
//! The socket is registered with the runtime for reading only. A UDP
//! socket is writable almost always, and with writability registered
//! every drained send buffer woke the shard once more for nothing (about
//! one extra `epoll_wait` return per call in `strace`). Sends go straight
//! to `sendmmsg` without waiting; when the send buffer is full
//! (`EAGAIN`), the shard yields to its other tasks three times, then
//! retries every millisecond, about 100 ms in all, and then drops the
//! datagrams with a warning, as a congested network would (the
//! retransmission timers cover UDP loss; a transaction is not failed for
//! it).
//!
//! A datagram is one message (RFC 3261 §18.3); what does not parse is
//! dropped and logged at `debug`, an oversized one at `warn`, as on the
//! other UDP path.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use sip_message::{ParseError, Peer, SipMessage, Transport, TransportKind};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tracing::{debug, trace, warn};

use crate::config::TransportLimits;
use crate::transports::Incoming;
use crate::{TransportError, udp};

/// Datagrams read or sent per system call at most.
pub const BATCH: usize = 32;

/// How many datagrams a read asks for after a read that drained the
/// socket: a system call's headers are set up (and zeroed) for each slot
/// asked for, and at a few thousand datagrams a second a wake-up finds one
/// or two. A read that fills its slots asks for four times as many next
/// time, up to [`BATCH`].
const RECV_FIRST: usize = 4;

/// How many times a send that found the socket's buffer full is retried:
/// the first [`SEND_YIELDS`] after letting the other tasks run, the rest a
/// millisecond apart (about a tenth of a second in all).
pub(crate) const SEND_RETRIES: u32 = 100;

/// Retries of a full send buffer that only yield to the other tasks.
const SEND_YIELDS: u32 = 3;

/// The largest UDP payload (IPv4: 65,507 bytes; IPv6: 65,527), rounded up.
const MAX_DATAGRAM: usize = 65_535;

/// A bound UDP socket not yet attached to a runtime: it can move to the
/// shard's thread, where [`ShardSocketBinding::register`] attaches it.
#[derive(Debug)]
pub struct ShardSocketBinding {
    socket: std::net::UdpSocket,
    local: Peer,
}

impl ShardSocketBinding {
    /// The bound address.
    #[must_use]
    pub fn local(&self) -> Peer {
        self.local
    }

    /// Attaches the socket to the current tokio runtime (call it on the
    /// runtime that will read it).
    pub fn register(self, limits: TransportLimits) -> io::Result<ShardSocket> {
        self.socket.set_nonblocking(true)?;
        // Deprecated in tokio for `T`s that could close or swap their file
        // descriptor while registered; the replacement is `unsafe`, which
        // this workspace forbids. `std::net::UdpSocket` owns its descriptor
        // and keeps it until dropped, with the `AsyncFd`, so this use is
        // sound.
        #[allow(deprecated)]
        let socket = AsyncFd::with_interest(self.socket, Interest::READABLE)?;
        // No datagram is larger than 64 KiB, whatever the configured limit.
        let max = (limits.message.max_message_size as usize).min(MAX_DATAGRAM);
        Ok(ShardSocket {
            socket,
            local: self.local,
            limits,
            max,
            // One byte more than the limit tells an oversized datagram from
            // one that fits.
            // Each allocated zeroed on its own: untouched pages stay out
            // of the resident set until a datagram lands in them (cloning
            // one buffer would write every page of all 32 at start-up).
            bufs: (0..BATCH).map(|_| vec![0u8; max + 1]).collect(),
            meta: Vec::with_capacity(BATCH),
            want: RECV_FIRST,
        })
    }
}

/// Binds `shards` UDP sockets on each address in `addrs`, all with
/// `SO_REUSEPORT` when `shards > 1` (else when `reuse_port` says so).
/// Port 0 is resolved by the first socket of an address; the others bind
/// the port it got. Returns, per shard, one binding per address, in the
/// order of `addrs`.
///
/// `SO_REUSEPORT` would also let these sockets join those of another
/// process of the same user already on the port (a second server started
/// by mistake would silently take part of the traffic). Unless
/// `reuse_port` asks for sharing, a fixed port is first checked to be free
/// with a plain bind, so that mistake fails with [`TransportError::Bind`]
/// as it does with one socket.
pub fn bind_shard_sockets(
    addrs: &[SocketAddr],
    shards: usize,
    reuse_port: bool,
) -> Result<Vec<Vec<ShardSocketBinding>>, TransportError> {
    let shards = shards.max(1);
    let sharing_asked = reuse_port;
    let reuse_port = reuse_port || shards > 1;
    let mut out: Vec<Vec<ShardSocketBinding>> = (0..shards).map(|_| Vec::new()).collect();
    for &addr in addrs {
        let err = |source| TransportError::Bind {
            transport: TransportKind::Udp,
            addr,
            source,
        };
        if reuse_port && !sharing_asked && addr.port() != 0 {
            drop(udp::bind_std(addr, false).map_err(err)?);
        }
        let mut bound = addr;
        for shard in &mut out {
            let socket = udp::bind_std(bound, reuse_port).map_err(err)?;
            bound = socket.local_addr().map_err(err)?;
            shard.push(ShardSocketBinding {
                socket,
                local: Peer {
                    transport: TransportKind::Udp,
                    addr: bound,
                },
            });
        }
    }
    Ok(out)
}

/// A UDP socket read and written by one shard, in batches.
#[derive(Debug)]
pub struct ShardSocket {
    socket: AsyncFd<UdpSocket>,
    local: Peer,
    limits: TransportLimits,
    max: usize,
    bufs: Vec<Vec<u8>>,
    /// Per datagram of the last batch: its buffer, length and source.
    meta: Vec<(usize, usize, Option<SocketAddr>)>,
    /// How many datagrams the next read asks for (see [`RECV_FIRST`]).
    want: usize,
}

impl ShardSocket {
    /// The bound address (port 0 resolved).
    #[must_use]
    pub fn local(&self) -> Peer {
        self.local
    }

    /// Ready when the socket may have datagrams to read (wakes the task
    /// when it has).
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The guard goes without clearing: the readiness stays until a
        // read finds the socket empty.
        self.socket.poll_read_ready(cx).map_ok(drop)
    }

    /// Reads what is waiting, up to [`BATCH`] datagrams, without blocking;
    /// each one that parses is appended to `out`. Returns how many
    /// datagrams were read (parsed or not); `Ok(0)` when none was waiting.
    /// An error is the socket's (e.g. an ICMP error reported for an
    /// earlier send); the socket stays usable.
    pub fn try_recv_batch(&mut self, out: &mut Vec<Incoming>) -> io::Result<usize> {
        let ShardSocket {
            socket,
            bufs,
            meta,
            want,
            ..
        } = self;
        let socket = &*socket;
        meta.clear();
        let slots = bufs.get_mut(..*want).unwrap_or_default();
        let asked = slots.len();
        let read = socket.try_io(Interest::READABLE, |s| recv_many(s, slots, meta));
        *want = if meta.len() == asked {
            (asked * 4).min(BATCH)
        } else {
            RECV_FIRST
        };
        match read {
            Ok(()) => {}
            // A short batch drained the socket: `recv_many` says so with
            // WouldBlock, which clears the readiness, so the next round
            // waits for new datagrams instead of asking the kernel again
            // only to hear EAGAIN (one system call per wake-up saved).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !meta.is_empty() => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
        let read = self.meta.len();
        for &(i, len, addr) in &self.meta {
            let Some(addr) = addr else { continue };
            let source = Peer {
                transport: TransportKind::Udp,
                addr,
            };
            if len > self.max {
                warn!(%source, limit = self.max, "max_message_size exceeded: datagram dropped");
                continue;
            }
            let data = self
                .bufs
                .get(i)
                .and_then(|b| b.get(..len))
                .unwrap_or_default();
            let data = Bytes::copy_from_slice(data);
            match SipMessage::parse_with(data, Transport::Datagram, &self.limits.message) {
                Ok(message) => {
                    debug!(
                        %source,
                        start_line = message.start_line_str(),
                        "received"
                    );
                    out.push(Incoming {
                        message,
                        source,
                        local: self.local,
                    });
                }
                // A CRLF keepalive datagram, or nothing.
                Err(ParseError::Empty) => trace!(%source, "empty datagram"),
                Err(error) => debug!(%source, %error, "malformed datagram dropped"),
            }
        }
        Ok(read)
    }

    /// Sends every datagram of `batch` (destination, bytes), [`BATCH`] per
    /// system call, waiting while the socket's send buffer is full. A
    /// datagram the system refuses, or larger than the message size limit,
    /// is reported in `failed` with its index in `batch`; the rest are
    /// still sent.
    pub async fn send_batch(
        &self,
        batch: &[(SocketAddr, Bytes)],
        failed: &mut Vec<(usize, TransportError)>,
    ) {
        let limit = self.limits.message.max_message_size;
        let mut start = 0;
        while start < batch.len() {
            // Up to BATCH datagrams that fit the limit, from `start` on.
            let mut end = start;
            while end < batch.len() && end - start < BATCH {
                match batch.get(end) {
                    Some((_, b)) if b.len() <= limit as usize => end += 1,
                    _ => break,
                }
            }
            if end == start {
                if let Some((addr, b)) = batch.get(start) {
                    failed.push((
                        start,
                        TransportError::MessageTooLarge {
                            size: b.len(),
                            limit,
                        },
                    ));
                    debug!(peer = %addr, "datagram over max_message_size not sent");
                }
                start += 1;
                continue;
            }
            let chunk = batch.get(start..end).unwrap_or_default();
            match self.send_chunk(chunk).await {
                Ok(sent) => start += sent.max(1),
                Err(source) => {
                    // The system refused the first datagram of the chunk.
                    let peer = Peer {
                        transport: TransportKind::Udp,
                        addr: chunk.first().map_or(self.local.addr, |(a, _)| *a),
                    };
                    failed.push((start, TransportError::Send { peer, source }));
                    start += 1;
                }
            }
        }
    }

    /// Sends a prefix of `chunk` (non-empty) in one system call; how many
    /// were sent. A full send buffer is waited out (see the module doc);
    /// when it stays full, the chunk is dropped as the network would drop
    /// it (the retransmission timers cover UDP loss) and counted as sent.
    async fn send_chunk(&self, chunk: &[(SocketAddr, Bytes)]) -> io::Result<usize> {
        let mut retries = 0;
        loop {
            match send_many(self.socket.get_ref(), chunk) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    retries += 1;
                    if retries > SEND_RETRIES {
                        warn!(
                            local = %self.local.addr,
                            datagrams = chunk.len(),
                            "UDP send buffer full: datagrams dropped"
                        );
                        return Ok(chunk.len());
                    }
                    // The kernel often drains the buffer at once (loopback,
                    // a fast link): let the other tasks run first, then wait.
                    if retries <= SEND_YIELDS {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                other => return other,
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn recv_many(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    meta: &mut Vec<(usize, usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), None);
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let results = recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for (i, r) in results.enumerate() {
        meta.push((i, r.bytes, r.address.and_then(|a| to_std(&a))));
    }
    // Fewer than asked for: the queue is empty now (MSG_DONTWAIT returns
    // what there is). WouldBlock with `meta` filled tells the caller to
    // take them and tokio to clear the socket's readiness.
    if meta.len() < bufs.len() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn to_std(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, chunk: &[(SocketAddr, Bytes)]) -> io::Result<usize> {
    // A lone datagram (most rounds at a few thousand a second): `sendto`,
    // without the batch's headers.
    if let [(addr, bytes)] = chunk {
        return socket.send_to(bytes, addr).map(|_| 1);
    }
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(_, b)| [IoSlice::new(b)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(a, _)| Some(SockaddrStorage::from(*a)))
        .collect();
    let none: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &iovs,
        &addrs,
        none,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

/// Without `recvmmsg`: `recv_from` until the batch is full or nothing waits.
#[cfg(not(target_os = "linux"))]
fn recv_many(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    meta: &mut Vec<(usize, usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    for (i, buf) in bufs.iter_mut().enumerate() {
        match socket.recv_from(buf) {
            Ok((len, addr)) => meta.push((i, len, Some(addr))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !meta.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Without `sendmmsg`: one `send_to` per datagram.
#[cfg(not(target_os = "linux"))]
fn send_many(socket: &UdpSocket, chunk: &[(SocketAddr, Bytes)]) -> io::Result<usize> {
    let mut sent = 0;
    for (addr, bytes) in chunk {
        match socket.send_to(bytes, *addr) {
            Ok(_) => sent += 1,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// Reads ask for 4, 16, then 32 datagrams while the socket stays
    /// full, and every datagram is read once, in order.
    #[tokio::test]
    async fn reads_grow_while_datagrams_wait_and_lose_none() {
        let bound = bind_shard_sockets(&["127.0.0.1:0".parse().unwrap()], 1, false).unwrap();
        let binding = bound
            .into_iter()
            .next()
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        let to = binding.local().addr;
        let mut socket = binding.register(TransportLimits::default()).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..60 {
            let m =
                format!("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{i}\r\n\r\n");
            peer.send_to(m.as_bytes(), to).unwrap();
        }
        std::future::poll_fn(|cx| socket.poll_recv_ready(cx))
            .await
            .unwrap();
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while got.len() < 60 {
            let n = socket.try_recv_batch(&mut got).unwrap();
            assert!(n > 0, "a read found nothing after {} datagrams", got.len());
            sizes.push(n);
        }
        assert_eq!(sizes, [4, 16, 32, 8]);
        for (i, m) in got.iter().enumerate() {
            let text = String::from_utf8_lossy(m.message.as_bytes());
            assert!(
                text.contains(&format!("branch=z9hG4bK{i}\r\n")),
                "{i}: {text}"
            );
        }
        // Drained: the next read asks for four again and finds none.
        assert_eq!(socket.try_recv_batch(&mut got).unwrap(), 0);
        assert_eq!(socket.want, RECV_FIRST);
    }

    #[test]
    fn shards_share_a_port_resolved_from_zero() {
        let bound = bind_shard_sockets(&["127.0.0.1:0".parse().unwrap()], 3, false).unwrap();
        assert_eq!(bound.len(), 3);
        let port = bound[0][0].local().addr.port();
        assert_ne!(port, 0);
        assert!(bound.iter().all(|b| b[0].local().addr.port() == port));
    }

    #[test]
    fn a_port_in_use_is_refused_unless_sharing_is_asked() {
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = other.local_addr().unwrap();
        let refused = bind_shard_sockets(&[taken], 2, false);
        assert!(matches!(refused, Err(TransportError::Bind { .. })));
        // A port held by another group with SO_REUSEPORT: refused too,
        // unless this one asks to share it.
        let group = bind_shard_sockets(&["127.0.0.1:0".parse().unwrap()], 2, false).unwrap();
        let shared = group[0][0].local().addr;
        assert!(bind_shard_sockets(&[shared], 2, false).is_err());
        assert!(bind_shard_sockets(&[shared], 2, true).is_ok());
    }
}
