//! One TCP or TLS connection: a reader task that frames the byte stream
//! into messages (RFC 3261 §18.3) and answers keepalive pings (RFC 5626
//! §4.4.1), and a writer task that drains the connection's send queue.
//! The reader owns the connection's life: it ends on EOF, a read error, a
//! framing error, the idle timeout, a failed write or shutdown, and then
//! stops the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sip_message::{Frame, ParseError, Peer, SipMessage, StreamFramer, Transport};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval};
use tracing::{debug, warn};

use crate::io::Io;
use crate::transports::{Incoming, Registered, Shared, shutdown_signal};

/// How much to read at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Messages written per flush, at most; bounds how long one timed write
/// batch can take.
pub(crate) const WRITE_BATCH: usize = 64;

/// A CRLF pong, the answer to a CRLFCRLF ping (RFC 5626 §4.4.1).
pub(crate) const PONG: &[u8] = b"\r\n";
/// A CRLFCRLF ping (RFC 5626 §4.4.1).
pub(crate) const PING: &[u8] = b"\r\n\r\n";

/// When the writer last wrote a message, for the reader's idle timer.
pub(crate) struct Activity {
    epoch: Instant,
    last_write_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            last_write_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn wrote(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_write_ms.store(ms, Ordering::Relaxed);
    }

    fn last_write(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_write_ms.load(Ordering::Relaxed))
    }
}

/// Closes a connection that neither read nor wrote a message for the
/// idle timeout.
pub(crate) struct IdleTimer {
    limit: Duration,
    last_read: Instant,
}

impl IdleTimer {
    pub(crate) fn new(limit: Duration) -> IdleTimer {
        IdleTimer {
            limit,
            last_read: Instant::now(),
        }
    }

    pub(crate) fn read(&mut self) {
        self.last_read = Instant::now();
    }

    /// Resolves once the connection has been idle for the limit.
    pub(crate) async fn expired(&self, activity: &Activity) {
        loop {
            let last = self.last_read.max(activity.last_write());
            let Some(deadline) = last.checked_add(self.limit) else {
                // A limit past the end of time: never idle.
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Waits for the next keepalive tick, or forever without keepalives.
pub(crate) async fn keepalive_tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A keepalive interval whose first tick is one period from now.
pub(crate) fn keepalive_interval(period: Option<Duration>) -> Option<Interval> {
    let period = period.filter(|p| !p.is_zero())?;
    let first = Instant::now().checked_add(period)?;
    Some(tokio::time::interval_at(first, period))
}

/// Runs a TCP or TLS connection until it ends. `outbound`: this side opened
/// it, so it sends the keepalives.
pub(crate) async fn run(shared: Arc<Shared>, io: Io, reg: Registered, local: Peer, outbound: bool) {
    let Registered {
        registration,
        tx,
        rx,
    } = reg;
    let remote = registration.remote;
    let limits = shared.limits;
    let (mut reader, writer) = tokio::io::split(io);
    let activity = Activity::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut writer = tokio::spawn(write(
        writer,
        rx,
        stopped,
        keepalive_interval(outbound.then_some(limits.keepalive).flatten()),
        limits.write_timeout,
        Arc::clone(&activity),
        remote,
    ));
    let mut shutdown = shared.shutdown_rx();
    let mut framer = StreamFramer::new(limits.message);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut idle = IdleTimer::new(limits.idle_timeout);
    let mut writer_done = false;
    debug!(%remote, %local, "connection open");
    'conn: loop {
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            () = shutdown_signal(&mut shutdown) => break,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            () = idle.expired(&activity) => {
                warn!(%remote, timeout = ?limits.idle_timeout, "idle_timeout: closing connection");
                break;
            }
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                debug!(%remote, "connection closed by peer");
                break;
            }
            Ok(_) => idle.read(),
            Err(error) => {
                debug!(%remote, %error, "read failed; closing connection");
                break;
            }
        }
        loop {
            match framer.next_frame(&mut buf) {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 §4.4.1: a CRLFCRLF ping is answered with a CRLF pong.
                    if tx.try_send(Bytes::from_static(PONG)).is_err() {
                        debug!(%remote, "send queue full; pong dropped");
                    }
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(Some(Frame::Message(bytes))) => {
                    match SipMessage::parse_with(bytes, Transport::Stream, &limits.message) {
                        Ok(message) => {
                            let incoming = Incoming {
                                message,
                                source: remote,
                                local,
                            };
                            if !shared.deliver(incoming, &mut shutdown).await {
                                break 'conn;
                            }
                        }
                        // Framed, so the stream is still in step: drop only this message.
                        Err(error) => debug!(%remote, %error, "malformed message dropped"),
                    }
                }
                Err(ParseError::TooLarge { limit }) => {
                    warn!(%remote, limit, "max_message_size exceeded: closing connection");
                    break 'conn;
                }
                Err(error) => {
                    // §18.3: a stream that cannot be framed cannot be resynchronised.
                    warn!(%remote, %error, "stream framing error: closing connection");
                    break 'conn;
                }
            }
        }
    }
    // Out of the table first, so no new message is queued on a dying connection.
    drop(registration);
    drop(stop);
    if !writer_done {
        let _ = tokio::time::timeout(limits.write_timeout, writer).await;
    }
    debug!(%remote, "connection closed");
}

/// Drains the send queue into the stream, sending keepalive pings when
/// asked; ends (shutting down its half) when told to stop, and on a write
/// that fails or stalls.
async fn write<W>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    mut stop: oneshot::Receiver<()>,
    mut keepalive: Option<Interval>,
    write_timeout: Duration,
    activity: Arc<Activity>,
    remote: Peer,
) where
    W: AsyncWrite + Unpin,
{
    loop {
        let (first, ping) = tokio::select! {
            next = rx.recv() => match next {
                Some(bytes) => (bytes, false),
                None => break,
            },
            _ = &mut stop => break,
            () = keepalive_tick(&mut keepalive) => (Bytes::from_static(PING), true),
        };
        let batch = async {
            writer.write_all(&first).await?;
            // Some of what else is queued goes out before one flush.
            for _ in 1..WRITE_BATCH {
                let Ok(more) = rx.try_recv() else { break };
                writer.write_all(&more).await?;
            }
            writer.flush().await
        };
        let outcome = tokio::time::timeout(write_timeout, batch).await;
        if !write_done(outcome, remote, write_timeout, ping, &activity) {
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
}

/// What a writer does after a batch: note the activity (keepalive pings do
/// not count) and go on, or log why the connection closes and stop.
pub(crate) fn write_done<E: std::fmt::Display>(
    outcome: Result<Result<(), E>, tokio::time::error::Elapsed>,
    remote: Peer,
    write_timeout: std::time::Duration,
    ping: bool,
    activity: &Activity,
) -> bool {
    match outcome {
        Ok(Ok(())) => {
            if !ping {
                activity.wrote();
            }
            true
        }
        Ok(Err(error)) => {
            debug!(%remote, %error, "write failed; closing connection");
            false
        }
        Err(_) => {
            warn!(%remote, timeout = ?write_timeout, "write_timeout: peer is not reading; closing connection");
            false
        }
    }
}
