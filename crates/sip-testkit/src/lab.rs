//! In-process application tests: the container's engine and scripted SIP
//! peers on one [`MemoryNetwork`], with no socket, on tokio's clock.
//!
//! Run the test on a paused clock (`#[tokio::test(start_paused = true)]`)
//! and time is virtual: it stands still while anything can run, and jumps
//! to the next timer when every task waits (a transaction's Timer B, an
//! application's timer, a phone's receive deadline). A test of a 30 s
//! application timer or of a 32 s transaction timeout takes milliseconds
//! and cannot be flaky about time.
//!
//! * [`Lab`]: the network; starts engines (memory store, one shard on the
//!   test's runtime) and phones on addresses the test names.
//! * [`Phone`]: a scripted peer, like a SIPp scenario: it builds requests
//!   (fresh Call-ID, branch and tag), sends them, and waits for what the
//!   engine sends it, failing with the message it got instead of the one
//!   expected. [`Dialog`] builds the in-dialog requests of a call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sip_app::{AppRouter, Rule, SipRouter};
//! use sip_testkit::lab::Lab;
//!
//! let lab = Lab::new();
//! let app = SipRouter::new()
//!     .invite(|_cx: sip_app::Context<()>, req: sip_app::IncomingRequest| req.reject(486))
//!     .with_state("busy", ());
//! let server = lab.engine("10.0.0.1:5060", AppRouter::new().route(Rule::any(), app)).await?;
//! let mut alice = lab.phone("alice", "10.0.0.2:5060")?;
//! let invite = alice.invite("sip:bob@10.0.0.1:5060")?;
//! alice.send(&invite, server.addr());
//! let busy = alice.expect_final().await?;
//! assert_eq!(busy.status(), Some(486));
//! let ack = alice.ack(&invite, &busy)?;
//! alice.send(&ack, server.addr());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use bytes::Bytes;
use session_store::{MemoryStore, Store};
use sip_app::{AppRouter, Engine, EngineConfig};
use sip_message::SipMessage;
use sip_stack::{Stack, StackConfig};
use sip_transport::{MemoryNetwork, MemorySocket, TransportConfig};

/// How long a phone waits for a message before it reports a timeout
/// (virtual time on a paused clock): longer than any transaction timer.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(70);

/// What went wrong in a lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// An address did not parse or was taken.
    #[error("address {0}: {1}")]
    Address(String, String),
    /// The stack or the engine did not start.
    #[error("cannot start: {0}")]
    Start(String),
    /// Nothing arrived in time.
    #[error("{who}: nothing received within {secs} s (waiting for {wanted})")]
    Timeout {
        /// The phone.
        who: String,
        /// What it waited for.
        wanted: String,
        /// How long.
        secs: u64,
    },
    /// Something else arrived than what was expected.
    #[error("{who}: expected {wanted}, got:\n{got}")]
    Unexpected {
        /// The phone.
        who: String,
        /// What it waited for.
        wanted: String,
        /// The start line and headers of what came.
        got: String,
    },
    /// A message could not be built.
    #[error("bad message: {0}")]
    Build(String),
}

/// The network of a test: engines and phones on addresses it names.
#[derive(Debug, Clone, Default)]
pub struct Lab {
    net: MemoryNetwork,
}

/// An engine started by a [`Lab`], with its address.
#[derive(Debug, Clone)]
pub struct LabEngine {
    engine: Engine,
    addr: SocketAddr,
}

impl LabEngine {
    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine (live sessions, counters, store).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn parse_addr(addr: &str) -> Result<SocketAddr, LabError> {
    addr.parse()
        .map_err(|e: std::net::AddrParseError| LabError::Address(addr.to_owned(), e.to_string()))
}

impl Lab {
    /// An empty network.
    #[must_use]
    pub fn new() -> Lab {
        Lab::default()
    }

    /// The network, for parties a test builds itself.
    #[must_use]
    pub fn network(&self) -> &MemoryNetwork {
        &self.net
    }

    /// An engine at `addr` (node `c1`, its own memory store) running
    /// `router`'s applications.
    pub async fn engine(&self, addr: &str, router: AppRouter) -> Result<LabEngine, LabError> {
        let store = Store::from(MemoryStore::new());
        self.engine_with(addr, EngineConfig::new("c1"), store, router)
            .await
    }

    /// An engine at `addr` with a config and store of the test's choosing
    /// (two engines on one store: a cluster in one process).
    pub async fn engine_with(
        &self,
        addr: &str,
        config: EngineConfig,
        store: Store,
        router: AppRouter,
    ) -> Result<LabEngine, LabError> {
        let at = parse_addr(addr)?;
        let stack = Stack::start(StackConfig {
            transport: TransportConfig {
                udp: vec![at],
                memory: Some(self.net.clone()),
                ..TransportConfig::default()
            },
            shards: 1,
            dedicated_threads: false,
            seed: u64::from(at.port()) ^ 0x5eed,
            ..StackConfig::default()
        })
        .await
        .map_err(|e| LabError::Start(e.to_string()))?;
        let engine = Engine::start(stack, config, store, router);
        Ok(LabEngine { engine, addr: at })
    }

    /// A phone for `user` at `addr`.
    pub fn phone(&self, user: &str, addr: &str) -> Result<Phone, LabError> {
        let at = parse_addr(addr)?;
        let socket = self
            .net
            .bind(at)
            .map_err(|e| LabError::Address(addr.to_owned(), e.to_string()))?;
        Ok(Phone {
            socket,
            user: user.to_owned(),
            counter: 0,
        })
    }
}

/// A message a phone received, and where from.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message.
    pub message: SipMessage,
    /// Its source address.
    pub from: SocketAddr,
}

impl Deref for Received {
    type Target = SipMessage;
    fn deref(&self) -> &SipMessage {
        &self.message
    }
}

/// The first value of a header, by name (any case, compact forms too).
#[must_use]
pub fn header(msg: &SipMessage, name: &str) -> Option<String> {
    msg.headers_named(name)
        .next()
        .and_then(|h| h.value().ok().map(str::to_owned))
}

/// Every value of a header (one per header line), in order.
#[must_use]
pub fn headers(msg: &SipMessage, name: &str) -> Vec<String> {
    msg.headers_named(name)
        .filter_map(|h| h.value().ok().map(str::to_owned))
        .collect()
}

/// The URI inside `<...>` of a name-addr, or the value up to its first `;`.
#[must_use]
pub fn uri_of(name_addr: &str) -> String {
    match (name_addr.find('<'), name_addr.find('>')) {
        (Some(a), Some(b)) if a < b => name_addr.get(a + 1..b).unwrap_or("").to_owned(),
        _ => name_addr.split(';').next().unwrap_or("").trim().to_owned(),
    }
}

fn summary(msg: &SipMessage) -> String {
    let text = String::from_utf8_lossy(msg.as_bytes());
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

/// Ends a request's text: `extra` header lines, a Content-Type for a body
/// (SDP when it starts with `v=`, else text), Content-Length, the body.
fn finish(mut text: String, extra: &[&str], body: &str) -> Result<SipMessage, LabError> {
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    if !body.is_empty() {
        let ct = if body.starts_with("v=") {
            "application/sdp"
        } else {
            "text/plain"
        };
        text.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    parse(&text)
}

/// Every Record-Route value of a message, one per route, in order.
fn record_routes(msg: &SipMessage) -> Vec<String> {
    headers(msg, "Record-Route")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn parse(text: &str) -> Result<SipMessage, LabError> {
    SipMessage::parse(Bytes::from(text.to_owned())).map_err(|e| LabError::Build(e.to_string()))
}

/// A scripted SIP peer on the lab's network (UDP semantics: what it sends
/// to an address nobody holds is lost).
#[derive(Debug)]
pub struct Phone {
    socket: MemorySocket,
    user: String,
    counter: u64,
}

impl Phone {
    /// Its address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    /// `sip:user@addr`.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.addr())
    }

    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}{}-{}", self.counter, self.user)
    }

    /// A new branch (`z9hG4bK...`).
    pub fn branch(&mut self) -> String {
        let b = self.fresh("z9hG4bK-");
        b.replace('@', "-")
    }

    /// Sends a message to `to`; `false` when nobody is there.
    pub fn send(&self, msg: &SipMessage, to: SocketAddr) -> bool {
        self.socket
            .send_to(Bytes::copy_from_slice(msg.as_bytes()), to)
    }

    /// Sends raw bytes (malformed input, torture tests).
    pub fn send_raw(&self, bytes: &[u8], to: SocketAddr) -> bool {
        self.socket.send_to(Bytes::copy_from_slice(bytes), to)
    }

    /// A new out-of-dialog request from this phone: fresh Call-ID, branch
    /// and From tag, CSeq 1, Max-Forwards 70, a Contact; `extra` header
    /// lines (`"Name: value"`) and a body (SDP when `body` starts with
    /// `v=`) as given.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        extra: &[&str],
        body: &str,
    ) -> Result<SipMessage, LabError> {
        let call_id = self.fresh("call-");
        let branch = self.branch();
        let tag = self.fresh("tag-");
        let me = self.addr();
        let text = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <{uri}>;tag={tag}\r\nTo: <{target}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <{uri}>\r\n",
            uri = self.uri()
        );
        finish(text, extra, body)
    }

    /// An INVITE with an SDP offer.
    pub fn invite(&mut self, target: &str) -> Result<SipMessage, LabError> {
        let sdp = self.sdp();
        self.request("INVITE", target, &[], &sdp)
    }

    /// An SDP body for this phone's address.
    #[must_use]
    pub fn sdp(&self) -> String {
        let ip = self.addr().ip();
        format!(
            "v=0\r\no={u} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            u = self.user
        )
    }

    /// The next message, waiting at most [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> Result<Received, LabError> {
        self.recv_within(RECV_TIMEOUT, "any message").await
    }

    /// The next message, waiting at most `wait`.
    pub async fn recv_within(
        &mut self,
        wait: Duration,
        wanted: &str,
    ) -> Result<Received, LabError> {
        loop {
            let got = tokio::time::timeout(wait, self.socket.recv_from()).await;
            let Ok(Some((bytes, from))) = got else {
                return Err(LabError::Timeout {
                    who: self.user.clone(),
                    wanted: wanted.to_owned(),
                    secs: wait.as_secs(),
                });
            };
            // A datagram that does not parse is skipped, as a UA would.
            if let Ok(message) = SipMessage::parse(bytes) {
                return Ok(Received { message, from });
            }
        }
    }

    /// Whether nothing arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> Result<(), LabError> {
        match self.recv_within(wait, "silence").await {
            Err(LabError::Timeout { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(got) => Err(self.unexpected("silence", &got)),
        }
    }

    fn unexpected(&self, wanted: &str, got: &SipMessage) -> LabError {
        LabError::Unexpected {
            who: self.user.clone(),
            wanted: wanted.to_owned(),
            got: summary(got),
        }
    }

    /// The next message must be a response with `status` (a 100 Trying
    /// before it is skipped, unless 100 is what is expected: whether a
    /// server sends one depends on how fast it answers).
    pub async fn expect_status(&mut self, status: u16) -> Result<Received, LabError> {
        let wanted = format!("a {status} response");
        loop {
            let got = self.recv_within(RECV_TIMEOUT, &wanted).await?;
            if got.status() == Some(status) {
                return Ok(got);
            }
            if got.status() != Some(100) {
                return Err(self.unexpected(&wanted, &got));
            }
        }
    }

    /// The next final response (provisionals skipped).
    pub async fn expect_final(&mut self) -> Result<Received, LabError> {
        loop {
            let got = self.recv_within(RECV_TIMEOUT, "a final response").await?;
            match got.status() {
                Some(s) if s >= 200 => return Ok(got),
                Some(_) => {}
                None => return Err(self.unexpected("a final response", &got)),
            }
        }
    }

    /// The next message must be a request with `method`.
    pub async fn expect_request(&mut self, method: &str) -> Result<Received, LabError> {
        let wanted = format!("a {method} request");
        let got = self.recv_within(RECV_TIMEOUT, &wanted).await?;
        if got.method().is_some_and(|m| m.as_str() == method) {
            Ok(got)
        } else {
            Err(self.unexpected(&wanted, &got))
        }
    }

    /// A response to `request` with this phone's Contact (and SDP for a
    /// 2xx to INVITE); `to_tag` for anything but 100.
    pub fn response(
        &self,
        request: &SipMessage,
        status: u16,
        to_tag: Option<&str>,
    ) -> Result<SipMessage, LabError> {
        self.response_with(request, status, to_tag, &[])
    }

    /// [`Phone::response`] with extra header lines (`"Name: value"`).
    pub fn response_with(
        &self,
        request: &SipMessage,
        status: u16,
        to_tag: Option<&str>,
        extra: &[&str],
    ) -> Result<SipMessage, LabError> {
        let mut b = sip_message::ResponseBuilder::for_request(request, status, to_tag)
            .map_err(|e| LabError::Build(e.to_string()))?;
        for line in extra {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| LabError::Build(format!("not a header line: {line}")))?;
            b = b.header(name.trim(), value.trim());
        }
        let invite = request.method().is_some_and(|m| m.as_str() == "INVITE");
        if status > 100 {
            b = b.header("Contact", &format!("<{}>", self.uri()));
        }
        let dialog_creating = request
            .method()
            .is_some_and(|m| matches!(m.as_str(), "INVITE" | "SUBSCRIBE" | "REFER"));
        if dialog_creating && (101..300).contains(&status) {
            // §12.1.1: the route set goes back in the response.
            for rr in headers(request, "Record-Route") {
                b = b.header("Record-Route", &rr);
            }
        }
        if invite && (200..300).contains(&status) {
            b = b.body("application/sdp", Bytes::from(self.sdp()));
        }
        b.build().map_err(|e| LabError::Build(e.to_string()))
    }

    /// Answers a received request with `status` (tag `to_tag`), to where
    /// it came from; returns the response sent.
    pub fn reply(
        &self,
        request: &Received,
        status: u16,
        to_tag: Option<&str>,
    ) -> Result<SipMessage, LabError> {
        self.reply_with(request, status, to_tag, &[])
    }

    /// [`Phone::reply`] with extra header lines.
    pub fn reply_with(
        &self,
        request: &Received,
        status: u16,
        to_tag: Option<&str>,
        extra: &[&str],
    ) -> Result<SipMessage, LabError> {
        let r = self.response_with(request, status, to_tag, extra)?;
        self.send(&r, request.from);
        Ok(r)
    }

    /// The ACK for an INVITE's final response: for a non-2xx the same
    /// branch and Request-URI (§17.1.1.3), for a 2xx a new transaction to
    /// the remote target along the route set (§13.2.2.4).
    pub fn ack(
        &mut self,
        invite: &SipMessage,
        response: &SipMessage,
    ) -> Result<SipMessage, LabError> {
        if response.status().is_some_and(|s| s >= 300) {
            let via = header(invite, "Via").unwrap_or_default();
            let text = format!(
                "ACK {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
                 To: {to}\r\nCall-ID: {cid}\r\nCSeq: {n} ACK\r\nContent-Length: 0\r\n\r\n",
                ruri = invite.request_uri_str().unwrap_or(""),
                from = header(invite, "From").unwrap_or_default(),
                to = header(response, "To").unwrap_or_default(),
                cid = invite.call_id().unwrap_or(""),
                n = invite.cseq().map_or(1, |c| c.0),
            );
            return parse(&text);
        }
        let mut dialog = Dialog::as_uac(invite, response);
        dialog.cseq = invite.cseq().map_or(1, |c| c.0);
        dialog.request(self, "ACK", &[], "")
    }
}

/// One side of a dialog, enough to send its in-dialog requests (§12.2.1).
#[derive(Debug, Clone)]
pub struct Dialog {
    /// The Call-ID.
    pub call_id: String,
    /// Our From (name-addr with tag).
    pub local: String,
    /// Their To (name-addr with tag).
    pub remote: String,
    /// Where requests go (the remote Contact).
    pub target: String,
    /// Route headers, in order.
    pub routes: Vec<String>,
    /// Our last CSeq.
    pub cseq: u32,
}

impl Dialog {
    /// The caller's side, from the INVITE it sent and the 2xx it got.
    #[must_use]
    pub fn as_uac(invite: &SipMessage, ok: &SipMessage) -> Dialog {
        let mut routes = record_routes(ok);
        routes.reverse();
        Dialog {
            call_id: invite.call_id().unwrap_or("").to_owned(),
            local: header(invite, "From").unwrap_or_default(),
            remote: header(ok, "To").unwrap_or_default(),
            target: uri_of(&header(ok, "Contact").unwrap_or_default()),
            routes,
            cseq: invite.cseq().map_or(1, |c| c.0),
        }
    }

    /// The callee's side, from the INVITE it received and the 2xx it sent.
    #[must_use]
    pub fn as_uas(invite: &SipMessage, ok: &SipMessage) -> Dialog {
        let routes = record_routes(invite);
        Dialog {
            call_id: invite.call_id().unwrap_or("").to_owned(),
            local: header(ok, "To").unwrap_or_default(),
            remote: header(invite, "From").unwrap_or_default(),
            target: uri_of(&header(invite, "Contact").unwrap_or_default()),
            routes,
            cseq: 100,
        }
    }

    /// The next request of the dialog (CSeq + 1; ACK keeps the INVITE's).
    pub fn request(
        &mut self,
        phone: &mut Phone,
        method: &str,
        extra: &[&str],
        body: &str,
    ) -> Result<SipMessage, LabError> {
        if method != "ACK" {
            self.cseq += 1;
        }
        let me = phone.addr();
        let mut text = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {local}\r\nTo: {remote}\r\nCall-ID: {cid}\r\n\
             CSeq: {n} {method}\r\nContact: <{uri}>\r\n",
            target = self.target,
            branch = phone.branch(),
            local = self.local,
            remote = self.remote,
            cid = self.call_id,
            n = self.cseq,
            uri = phone.uri(),
        );
        for r in &self.routes {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        finish(text, extra, body)
    }

    /// Where the next request goes first: the first Route's address, else
    /// the target's (`host:port` of a `sip:` URI; default port 5060).
    #[must_use]
    pub fn next_hop(&self) -> Option<SocketAddr> {
        let uri = self
            .routes
            .first()
            .map_or_else(|| self.target.clone(), |r| uri_of(r));
        let rest = uri.strip_prefix("sip:")?;
        let hostport = rest.rsplit('@').next()?.split(';').next()?;
        hostport
            .parse()
            .ok()
            .or_else(|| format!("{hostport}:5060").parse().ok())
    }
}
