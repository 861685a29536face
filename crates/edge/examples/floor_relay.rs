//! The cheapest UDP relay that carries the benchmark's calls: the floor
//! under any SIP forwarder's CPU per call on this machine (benchmarks only,
//! `scripts/bench-edge.sh floor`; docs/BENCHMARKS.md).
//!
//! ```text
//! floor_relay LISTEN BACKEND... [--batch]
//! ```
//!
//! One thread. A datagram from a backend goes to the last client seen; any
//! other datagram goes to a backend chosen by a hash of its Call-ID line.
//! No parse, no Via, no check: it relies on the SIPp UAS answering the
//! source address of a request, which it does. Without `--batch` it blocks
//! in `recv_from` and sends with `send_to`, one datagram per system call
//! (a Kamailio UDP worker's shape); with `--batch`, `recvmmsg` and
//! `sendmmsg`, up to 32 per call (the edge's shape). What it costs is the
//! kernel's share (receive, send, loopback delivery, wake-ups) plus
//! almost nothing.

// A measuring tool, not the edge: it prints its banner, and its slices are
// within buffers it sized itself (kernel-reported lengths of them).
#![allow(clippy::print_stdout, clippy::indexing_slicing)]

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

const BATCH: usize = 32;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .ok_or("usage: floor_relay LISTEN BACKEND...")?
        .parse()?;
    let mut backends: Vec<SocketAddr> = Vec::new();
    let mut batch = false;
    for a in args {
        if a == "--batch" {
            batch = true;
        } else {
            backends.push(a.parse()?);
        }
    }
    if backends.is_empty() {
        return Err("no backend".into());
    }
    let socket = UdpSocket::bind(listen)?;
    println!("floor_relay on {listen} to {backends:?} (batch: {batch})");
    let mut client: Option<SocketAddr> = None;
    let mut bufs = vec![vec![0u8; 65_536]; BATCH];
    let mut out: Vec<(SocketAddr, usize, usize)> = Vec::with_capacity(BATCH);
    loop {
        out.clear();
        if batch {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let got: Vec<(usize, Option<SocketAddr>)> = match recvmmsg(
                socket.as_raw_fd(),
                &mut headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(r) => r
                    .map(|m| {
                        let from = m.address.and_then(|a| {
                            a.as_sockaddr_in().map(|v4| SocketAddr::V4((*v4).into()))
                        });
                        (m.bytes, from)
                    })
                    .collect(),
                Err(_) => continue,
            };
            for (i, (len, from)) in got.into_iter().enumerate() {
                if let Some(from) = from
                    && let Some(to) = route(&bufs[i][..len], from, &backends, &mut client)
                {
                    out.push((to, i, len));
                }
            }
            let iovs: Vec<[IoSlice<'_>; 1]> = out
                .iter()
                .map(|&(_, i, len)| [IoSlice::new(&bufs[i][..len])])
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> = out
                .iter()
                .map(|&(to, _, _)| Some(SockaddrStorage::from(to)))
                .collect();
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(out.len(), None);
            let none: [ControlMessage<'_>; 0] = [];
            let _ = sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                &iovs,
                &addrs,
                none,
                MsgFlags::empty(),
            );
        } else {
            let Ok((len, from)) = socket.recv_from(&mut bufs[0]) else {
                continue;
            };
            if let Some(to) = route(&bufs[0][..len], from, &backends, &mut client) {
                let _ = socket.send_to(&bufs[0][..len], to);
            }
        }
    }
}

/// Where a datagram goes: from a backend to the client, else to a backend
/// by the Call-ID's hash.
fn route(
    data: &[u8],
    from: SocketAddr,
    backends: &[SocketAddr],
    client: &mut Option<SocketAddr>,
) -> Option<SocketAddr> {
    if backends.contains(&from) {
        return *client;
    }
    *client = Some(from);
    let call_id = memchr::memmem::find(data, b"\nCall-ID:")
        .or_else(|| memchr::memmem::find(data, b"\ni:"))
        .map_or(&data[..0], |at| {
            let line = &data[at..];
            &line[..memchr::memchr(b'\r', line).unwrap_or(line.len())]
        });
    let h = xxhash_rust::xxh3::xxh3_64(call_id);
    backends.get((h % backends.len() as u64) as usize).copied()
}
