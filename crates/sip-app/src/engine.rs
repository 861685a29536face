//! The engine: takes the stack's events, finds or creates the application
//! session of each request, runs the application's handler, and answers
//! what the application left unanswered.
//!
//! * Initial requests (no To tag): OPTIONS to the container itself is
//!   answered 200; everything else goes to the application the
//!   [`AppRouter`] picks, in a new application session.
//! * Requests inside a dialog: when the top Route is our Record-Route we
//!   pop it (§16.4); a Request-URI with our token (our Contact) belongs to
//!   a dialog the application is a UA in, so its handler runs; otherwise
//!   the container is a proxy on the path and forwards it (§16.6) without
//!   running application code. No token and no Route of ours: 481.
//! * ACK for a 2xx: forwarded along a proxied dialog, absorbed for ours.
//! * Responses no transaction matched whose top Via is ours (2xx
//!   retransmissions after a proxy context ended): forwarded upstream
//!   statelessly.
//!
//! Sessions live in a map owned by the engine; each is written to the
//! store before a message that reveals its new state leaves (proxy
//! branches, 2xx answers), and removed when invalidated, when it is ready
//! (no live dialog, no timer) or when it expires.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use session_store::{SessionStore, Store};
use sip_message::{ResponseBuilder, SipMessage, TransportKind};
use sip_proto::IdGenerator;
use sip_stack::{ServerTransaction, ShardEvents, Stack, StackEvent, StackHandle};
use tracing::{debug, warn};

use crate::context::RawContext;
use crate::request::{IncomingRequest, TxSlot};
use crate::router::KNOWN_METHODS;
use crate::session::{DialogRole, DialogState, SessionCell, SessionId, SessionRecord};
use crate::{AppError, AppRouter, Application, routing};

/// What the engine needs to know about its container.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This container's node id (`[a-z0-9-]{1,32}`), the first part of
    /// every session id it creates.
    pub node: String,
    /// The cluster's public address (`host:port`), put in Record-Route
    /// and Contact. `None`: this container's own UDP address.
    pub public: Option<String>,
    /// Edges to send outbound requests through (docs/CLUSTER.md). Empty:
    /// send directly.
    pub edges: Vec<SocketAddr>,
    /// How long a new application session lives without a dialog
    /// (JSR 289's default is 3 minutes).
    pub session_lifetime: Duration,
    /// How long a session with a confirmed dialog lives (extended on each
    /// dialog).
    pub dialog_lifetime: Duration,
    /// Seed for session ids.
    pub seed: u64,
    /// How long a reliable provisional waits for its PRACK (64*T1).
    pub prack_timeout: Duration,
}

impl EngineConfig {
    /// Defaults for a node.
    #[must_use]
    pub fn new(node: &str) -> EngineConfig {
        EngineConfig {
            node: node.to_owned(),
            public: None,
            edges: Vec::new(),
            session_lifetime: Duration::from_secs(180),
            dialog_lifetime: Duration::from_secs(4 * 3600),
            seed: unix_ms() ^ u64::from(std::process::id()).rotate_left(32),
            prack_timeout: Duration::from_secs(32),
        }
    }
}

/// A reliable provisional waiting for its PRACK: the INVITE's transaction
/// slot and the sender that wakes its handler.
pub(crate) enum PrackWait {
    /// A handler's reliable provisional: the engine answers the PRACK 200,
    /// stops the retransmissions and wakes the handler.
    Local(Arc<TxSlot>, tokio::sync::oneshot::Sender<()>),
    /// A provisional the B2BUA relayed from leg B: the PRACK itself goes
    /// to the B2BUA, which relays it (with its body) to leg B and answers
    /// it with B's answer.
    Relay(tokio::sync::oneshot::Sender<(ServerTransaction, SipMessage)>),
}

/// Counters the container exports on /metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests received (server transactions).
    pub requests: AtomicU64,
    /// Calls answered here and confirmed: the first ACK for each 2xx this
    /// container sent (copies, and ACKs of proxied dialogs passing
    /// through, are not counted).
    pub acks: AtomicU64,
    /// Initial requests that created an application session.
    pub sessions_created: AtomicU64,
    /// Sessions removed (invalidated, ready or expired).
    pub sessions_removed: AtomicU64,
    /// Sessions loaded from the store (taken over from another node).
    pub sessions_loaded: AtomicU64,
    /// Requests answered by the container for the application (405, 501,
    /// 481, error statuses, 500 for an unanswered request).
    pub default_answers: AtomicU64,
    /// Store failures.
    pub store_errors: AtomicU64,
    /// HTTP requests served by applications.
    pub http_requests: AtomicU64,
    /// Writes that lost a compare-and-set race (another container wrote
    /// the session first); the message that would have followed was not
    /// sent.
    pub store_conflicts: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) stack: StackHandle,
    pub(crate) store: Store,
    pub(crate) router: AppRouter,
    pub(crate) sessions: Mutex<HashMap<SessionId, Arc<SessionCell>>>,
    /// Call-ID -> session, for dialogs this container is a UA in: a peer
    /// that sends an in-dialog request to the address it first called
    /// rather than to our Contact (SIPp's built-in uac) still finds it.
    pub(crate) ua_dialogs: Mutex<HashMap<String, SessionId>>,
    ids: Mutex<IdGenerator>,
    /// Reliable provisionals waiting for their PRACK: (Call-ID, RSeq) ->
    /// the INVITE's transaction slot and the sender that wakes the handler.
    pub(crate) pracks: Mutex<HashMap<(String, u32), PrackWait>>,
    /// Wakes the timer task when a timer is armed.
    pub(crate) timers_changed: Arc<tokio::sync::Notify>,
    /// Timers of the sessions in this container, in firing order:
    /// (due, session, timer id). Entries are checked against the session
    /// record when they fire (a cancelled or re-armed timer's old entry is
    /// skipped then).
    pub(crate) local_timers: Mutex<std::collections::BTreeSet<(u64, SessionId, String)>>,
    pub(crate) stats: Stats,
    local_udp: Option<SocketAddr>,
    local_tcp: Option<SocketAddr>,
    /// `host:port` for Record-Route and Contact, written once.
    public_host_port: String,
    /// `SIP/2.0/UDP local` and `SIP/2.0/TCP local`, the start of the Vias
    /// of forwarded requests, written once.
    via_udp: Option<String>,
    via_tcp: Option<String>,
}

impl Shared {
    pub(crate) fn local(&self, t: TransportKind) -> Option<SocketAddr> {
        match t {
            TransportKind::Udp => self.local_udp,
            TransportKind::Tcp => self.local_tcp,
            other => self.stack.local_addr(other),
        }
    }

    /// `host:port` for Record-Route and Contact.
    pub(crate) fn public_host_port(&self) -> &str {
        &self.public_host_port
    }

    /// `SIP/2.0/T local` for a Via of ours on `transport`, when we listen
    /// on it (UDP and TCP, written once at start).
    pub(crate) fn via_sent_by(&self, transport: TransportKind) -> Option<&str> {
        match transport {
            TransportKind::Udp => self.via_udp.as_deref(),
            TransportKind::Tcp => self.via_tcp.as_deref(),
            _ => None,
        }
    }

    /// Whether `host:port` names this container or its cluster (no
    /// allocation: it runs for every in-dialog request and every Via of a
    /// proxied one).
    pub(crate) fn is_own(&self, host: &str, port: Option<u16>) -> bool {
        let wanted_port = port.unwrap_or(5060);
        let public = self
            .config
            .public
            .as_deref()
            .is_some_and(|p| match p.rsplit_once(':') {
                Some((ph, pp)) if !ph.contains(':') || ph.starts_with('[') => {
                    ph == host && pp.parse::<u16>() == Ok(wanted_port)
                }
                _ => port.is_none() && p == host,
            });
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>();
        let local = |a: Option<SocketAddr>| {
            a.is_some_and(|a| ip.as_ref() == Ok(&a.ip()) && a.port() == wanted_port)
        };
        public || local(self.local_udp) || local(self.local_tcp)
    }

    pub(crate) fn pick_edge(&self, key: &str) -> Option<SocketAddr> {
        let n = u64::try_from(self.config.edges.len())
            .ok()
            .filter(|n| *n > 0)?;
        let i = usize::try_from(routing::fnv1a(key) % n).unwrap_or(0);
        self.config.edges.get(i).copied()
    }

    pub(crate) fn new_session_id(&self) -> SessionId {
        let r = self
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64();
        SessionId::new(&self.config.node, r)
    }

    fn session(&self, id: &SessionId) -> Option<Arc<SessionCell>> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }
}

/// Milliseconds since the Unix epoch: the wall clock read once per
/// process, carried forward by tokio's monotonic clock. Records carry
/// absolute times so they mean the same on another node; a step of the
/// wall clock while the process runs does not move timers that are set;
/// and under a paused tokio clock (tests) the engine's whole notion of
/// time, session expiry and application timers included, is virtual.
#[must_use]
pub fn unix_ms() -> u64 {
    static ANCHOR: std::sync::OnceLock<(u64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, mono) = *ANCHOR.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (wall, std::time::Instant::now())
    });
    let since = tokio::time::Instant::now()
        .into_std()
        .saturating_duration_since(mono);
    wall.saturating_add(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn store_key(id: &SessionId) -> String {
    id.store_key()
}

/// Writes a session to the store when it changed. A session that would be
/// dropped right away (ready, never written) is not written at all.
pub(crate) async fn commit(shared: &Shared, cell: &SessionCell) -> Result<(), AppError> {
    let _writing = cell.writing.lock().await;
    let now = unix_ms();
    let pending = cell.with(|d| {
        if !d.dirty {
            return Ok(None);
        }
        if d.gone {
            // Removed, or dropped as stale after a conflict: what was
            // about to follow this write must not go out.
            return Err(AppError::with_reason(
                481,
                "Call/Transaction Does Not Exist (the session has ended here)",
            ));
        }
        let transient = d.version == 0
            && d.record.invalidate_when_ready
            && d.record.is_ready()
            && d.record.attributes.is_empty();
        if transient {
            return Ok(None);
        }
        let Ok(mut bytes) = serde_json::to_vec(&d.record) else {
            return Ok(None);
        };
        // The memory store keeps this buffer for the session's life: no
        // spare capacity from the serializer's doubling growth.
        bytes.shrink_to_fit();
        d.dirty = false;
        let ttl = Duration::from_millis(d.record.expires_unix_ms.saturating_sub(now).max(1000));
        Ok(Some((bytes, d.version, ttl)))
    });
    let Some((bytes, expected, ttl)) = pending? else {
        return Ok(());
    };
    match shared
        .store
        .put(&store_key(&cell.id), bytes, expected, Some(ttl))
        .await
    {
        Ok(v) => {
            cell.with(|d| d.version = d.version.max(v));
            crate::timers::sync_index(shared, cell).await;
            Ok(())
        }
        Err(e @ session_store::StoreError::Conflict { .. }) => {
            // Another container wrote the session since we read it: our
            // copy is stale, and what we were about to send must not go.
            shared.stats.store_conflicts.fetch_add(1, Ordering::Relaxed);
            forget(shared, &cell.id);
            Err(AppError::Store(e))
        }
        Err(e) => {
            shared.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            cell.with(|d| d.dirty = true);
            Err(AppError::Store(e))
        }
    }
}

/// The running engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.shared.config.node)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the engine on a running stack (on the current tokio runtime).
    ///
    /// Each shard's events are handled by a task on that shard's own
    /// runtime when it has one (`sip_stack::ShardEvents`): a request, its
    /// handler, the client transactions the handler starts and their
    /// responses stay on one thread. The timer task, the sweep and HTTP
    /// run on the current runtime.
    pub fn start(stack: Stack, config: EngineConfig, store: Store, router: AppRouter) -> Engine {
        let (handle, shards) = stack.into_shards();
        let local_udp = handle.local_addr(TransportKind::Udp);
        let local_tcp = handle.local_addr(TransportKind::Tcp);
        let public_host_port = match (&config.public, local_udp.or(local_tcp)) {
            (Some(p), _) => p.clone(),
            (None, Some(a)) => a.to_string(),
            (None, None) => "invalid.invalid".to_owned(),
        };
        let shared = Arc::new(Shared {
            ids: Mutex::new(IdGenerator::new(config.seed)),
            local_udp,
            local_tcp,
            public_host_port,
            via_udp: local_udp.map(|a| format!("SIP/2.0/UDP {a}")),
            via_tcp: local_tcp.map(|a| format!("SIP/2.0/TCP {a}")),
            config,
            stack: handle,
            store,
            router,
            sessions: Mutex::new(HashMap::new()),
            ua_dialogs: Mutex::new(HashMap::new()),
            timers_changed: Arc::new(tokio::sync::Notify::new()),
            pracks: Mutex::new(HashMap::new()),
            local_timers: Mutex::new(std::collections::BTreeSet::new()),
            stats: Stats::default(),
        });
        for events in shards {
            let runtime = events.runtime().cloned();
            let task = run(Arc::clone(&shared), events);
            match runtime {
                Some(rt) => drop(rt.spawn(task)),
                None => drop(tokio::spawn(task)),
            }
        }
        tokio::spawn(sweep(Arc::downgrade(&shared)));
        tokio::spawn(crate::timers::run(
            Arc::downgrade(&shared),
            Arc::clone(&shared.timers_changed),
        ));
        Engine { shared }
    }

    /// How many application sessions are live in this container.
    #[must_use]
    pub fn live_sessions(&self) -> usize {
        self.shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The stack handle.
    #[must_use]
    pub fn stack(&self) -> &StackHandle {
        &self.shared.stack
    }

    /// The node id.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.shared.config.node
    }

    /// The session store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.shared.store
    }
}

/// Spawns a task for one request, response or timer, its future boxed
/// first. The futures of the engine's request handling are several KiB
/// (every state of the handler, proxy and B2BUA they may await); tokio
/// keeps a future of up to 16 KiB inline in its task and moves it by value
/// on the way in and when it finishes, which cost more than the parsing
/// of the message (callgrind, `benches/proxy_call.rs`). Boxed, the task
/// holds a pointer and the future is written once.
#[track_caller]
pub(crate) fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    drop(tokio::spawn(Box::pin(future)));
}

async fn run(shared: Arc<Shared>, mut stack: ShardEvents) {
    while let Some(ev) = stack.next_event().await {
        match ev {
            StackEvent::Request(tx) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                spawn(on_request(Arc::clone(&shared), tx));
            }
            StackEvent::Ack {
                request,
                acknowledged,
                ..
            } => {
                if acknowledged {
                    shared.stats.acks.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(later) = on_ack(&shared, request) {
                    spawn(later);
                }
            }
            // A 2xx to a proxied INVITE after its request context ended
            // (RFC 6026). A response that matched no transaction at all
            // (`StrayResponse`) is dropped (RFC 6026 §8.9, rewriting §18.1.2).
            StackEvent::LateResponse { response, .. }
                if routing::top_via_is_ours(&shared, &response) =>
            {
                let shared = Arc::clone(&shared);
                spawn(async move {
                    crate::proxy::forward_stateless(&shared, &response).await;
                });
            }
            StackEvent::AckTimeout { request } => {
                debug!(
                    call_id = request.call_id().unwrap_or(""),
                    "2xx never acknowledged"
                );
            }
            _ => {}
        }
    }
}

/// An ACK for a 2xx of ours confirms the dialog: nothing to do. One with
/// our Route goes along the proxied dialog, from here (a future only when
/// its next hop's name must be looked up first).
fn on_ack(
    shared: &Arc<Shared>,
    ack: SipMessage,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    if routing::own_route(shared, &ack).is_some() && routing::request_uri_token(&ack).is_none() {
        crate::proxy::forward_ack(shared, ack)
    } else {
        None
    }
}

fn respond(tx: &ServerTransaction, status: u16, reason: &str, extra: &[(&str, String)]) {
    let tag = (status > 100 && tx.request().to_tag().is_none()).then_some("sb");
    let Ok(mut b) = ResponseBuilder::with_reason(tx.request(), status, reason, tag) else {
        return;
    };
    for (n, v) in extra {
        b = b.header(n, v);
    }
    if let Ok(r) = b.build() {
        tx.respond(r);
    }
}

async fn on_request(shared: Arc<Shared>, tx: ServerTransaction) {
    let request = tx.request().clone();
    if request.to_tag().is_some() {
        return in_dialog(shared, tx, request).await;
    }
    let method = request
        .method()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    // OPTIONS to the container itself (no user part, our address): 200.
    if method == "OPTIONS" && is_to_self(&shared, &request) {
        let allow = KNOWN_METHODS.join(", ");
        respond(
            &tx,
            200,
            "OK",
            &[("Allow", allow), ("Accept", "application/sdp".to_owned())],
        );
        return;
    }
    if request.header(sip_message::HeaderName::Route).is_some()
        && routing::own_route(&shared, &request).is_some()
    {
        // An initial request routed to us (a preloaded Route, or a Path):
        // strip our entry and carry on.
        let mut e = request.edit();
        if e.pop_route().is_ok()
            && let Ok(popped) = e.into_message()
        {
            return initial(shared, tx, popped, method).await;
        }
    }
    initial(shared, tx, request, method).await;
}

fn is_to_self(shared: &Shared, request: &SipMessage) -> bool {
    match request.request_uri() {
        Some(sip_message::Uri::Sip(u)) => {
            u.user().is_none()
                && (shared.is_own(u.host_str(), u.port()) || shared.config.public.is_none())
        }
        _ => false,
    }
}

async fn initial(shared: Arc<Shared>, tx: ServerTransaction, request: SipMessage, method: String) {
    // Session targeting by an encoded URI (JSR 289 encodeURI): an initial
    // request whose Request-URI carries a live session's token joins it.
    if let Some(id) = routing::request_uri_token(&request)
        && let Some(cell) = find_fresh(&shared, &id).await
        && !cell.with(|d| d.record.invalidated)
        && let Some(app) = shared.router.by_name(&cell.with(|d| d.record.app.clone()))
    {
        let to_tag = shared.stack.tag();
        return run_handler(&shared, &cell, &app, tx, request, to_tag, false, Vec::new()).await;
    }
    // RFC 3891 / RFC 3911 (JSR 289 §15.7): an INVITE with Replaces or
    // Join naming a dialog this container is a user agent in goes to that
    // dialog's session, whose application decides; one naming a dialog we
    // do not know is routed as any initial request (a proxy application
    // forwards it to the user agent that has the dialog).
    if method == "INVITE" {
        match referenced_session(&shared, &request).await {
            Ok(None) => {}
            Ok(Some(cell)) => {
                if let Some(app) = shared.router.by_name(&cell.with(|d| d.record.app.clone())) {
                    let to_tag = shared.stack.tag();
                    return run_handler(
                        &shared,
                        &cell,
                        &app,
                        tx,
                        request,
                        to_tag,
                        false,
                        Vec::new(),
                    )
                    .await;
                }
            }
            Err((status, reason)) => {
                shared.stats.default_answers.fetch_add(1, Ordering::Relaxed);
                return respond(&tx, status, &reason, &[]);
            }
        }
    }
    let mut chain = shared.router.select_chain(&request);
    let rest = chain.split_off(chain.len().min(1));
    let Some(app) = chain.pop() else {
        shared.stats.default_answers.fetch_add(1, Ordering::Relaxed);
        let status = if KNOWN_METHODS.contains(&method.as_str()) {
            404
        } else {
            501
        };
        let reason = if status == 404 {
            "Not Found (no application for this request)"
        } else {
            "Not Implemented"
        };
        respond(&tx, status, reason, &[]);
        return;
    };
    let key = app.session_key(&request);
    let cell = match &key {
        Some(k) => match keyed_session(&shared, &app, k).await {
            Ok(cell) => cell,
            Err(e) => {
                let (status, reason) = e.response_status();
                respond(&tx, status, &reason, &[]);
                return;
            }
        },
        None => new_session(&shared, &app, None, false),
    };
    let to_tag = shared.stack.tag();
    run_handler(&shared, &cell, &app, tx, request, to_tag, false, rest).await;
}

/// The session of the dialog an INVITE's Replaces or Join names, when
/// that dialog's Call-ID is one this container is a user agent in
/// (`Ok(None)`: none is); otherwise the answer of RFC 3891 §3 / RFC 3911
/// §4: 400 for more than one such header (or both kinds), or one without
/// its tags; 481 when no dialog has the tags; 603 when the dialog has
/// ended; for Replaces, 486 when `early-only` names a confirmed dialog and
/// 481 for an early dialog this container did not start.
async fn referenced_session(
    shared: &Arc<Shared>,
    request: &SipMessage,
) -> Result<Option<Arc<SessionCell>>, (u16, String)> {
    let refs = crate::request::dialog_refs(request);
    let ours = |call_id: &str| {
        shared
            .ua_dialogs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(call_id)
            .cloned()
    };
    let Some(id) = refs.iter().find_map(|r| ours(&r.call_id)) else {
        return Ok(None);
    };
    let bad = |why: &str| Err((400, format!("Bad Request ({why})")));
    let [r] = refs.as_slice() else {
        return bad("more than one Replaces or Join");
    };
    let (Some(to_tag), Some(from_tag)) = (&r.to_tag, &r.from_tag) else {
        return bad(if r.join {
            "Join without to-tag and from-tag"
        } else {
            "Replaces without to-tag and from-tag"
        });
    };
    let what = r.what();
    let none = || {
        (
            481,
            format!("Call/Transaction Does Not Exist (no dialog to {what})"),
        )
    };
    let cell = find_or_load(shared, &id).await.ok_or_else(none)?;
    let found = cell.with(|d| {
        d.record
            .dialog(&r.call_id, to_tag, from_tag)
            .map(|dl| (dl.state, dl.role))
    });
    match found {
        None => Err(none()),
        Some((DialogState::Terminated, _)) => {
            Err((603, format!("Declined (the dialog to {what} has ended)")))
        }
        Some((DialogState::Confirmed, _)) if r.early_only => Err((
            486,
            "Busy Here (the dialog to replace is no longer early)".to_owned(),
        )),
        Some((DialogState::Early, role)) if !r.join && role != DialogRole::Uac => Err((
            481,
            "Call/Transaction Does Not Exist (the early dialog to replace was not started here)"
                .to_owned(),
        )),
        Some(_) => Ok(Some(cell)),
    }
}

/// A new application session of `app` in this container (started by a
/// session key when `key` is given; ended by expiry only when
/// `until_expiry`, as an HTTP session is).
pub(crate) fn new_session(
    shared: &Shared,
    app: &Application,
    key: Option<&str>,
    until_expiry: bool,
) -> Arc<SessionCell> {
    let id = shared.new_session_id();
    let mut record = SessionRecord::new(
        id.clone(),
        app.name(),
        unix_ms(),
        shared.config.session_lifetime,
    );
    record.key = key.map(str::to_owned);
    record.invalidate_when_ready = !until_expiry;
    let cell = Arc::new(SessionCell::new(record, 0));
    shared
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, Arc::clone(&cell));
    shared
        .stats
        .sessions_created
        .fetch_add(1, Ordering::Relaxed);
    app.notify(&cell.id, &crate::SessionEvent::Created);
    cell
}

/// The store key of a session key's index entry.
fn key_index(app: &str, key: &str) -> String {
    format!("appkey:{app}:{key}")
}

/// The session of a session key: the live one the store's index names,
/// else a new one, claimed in the index with compare-and-set (two
/// containers starting the same key at once: the loser joins the
/// winner's session).
async fn keyed_session(
    shared: &Arc<Shared>,
    app: &Application,
    key: &str,
) -> Result<Arc<SessionCell>, AppError> {
    let index = key_index(app.name(), key);
    for _ in 0..3 {
        if let Some(v) = shared.store.get(&index).await? {
            if let Some(id) = std::str::from_utf8(&v.value)
                .ok()
                .and_then(SessionId::parse)
                && let Some(cell) = find_fresh(shared, &id).await
                && !cell.with(|d| d.record.invalidated)
            {
                return Ok(cell);
            }
            // A stale entry (its session ended): replace it.
            let cell = new_session(shared, app, Some(key), false);
            match shared
                .store
                .put(
                    &index,
                    cell.id.as_str().as_bytes().to_vec(),
                    v.version,
                    Some(shared.config.dialog_lifetime),
                )
                .await
            {
                Ok(_) => return Ok(cell),
                Err(session_store::StoreError::Conflict { .. }) => {
                    forget(shared, &cell.id);
                    continue;
                }
                Err(e) => {
                    forget(shared, &cell.id);
                    return Err(e.into());
                }
            }
        }
        let cell = new_session(shared, app, Some(key), false);
        match shared
            .store
            .put(
                &index,
                cell.id.as_str().as_bytes().to_vec(),
                0,
                Some(shared.config.dialog_lifetime),
            )
            .await
        {
            Ok(_) => return Ok(cell),
            Err(session_store::StoreError::Conflict { .. }) => forget(shared, &cell.id),
            Err(e) => {
                forget(shared, &cell.id);
                return Err(e.into());
            }
        }
    }
    Err(AppError::with_reason(
        500,
        "Server Internal Error (session key contended)",
    ))
}

async fn in_dialog(shared: Arc<Shared>, tx: ServerTransaction, request: SipMessage) {
    let method = request
        .method()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    if method == "PRACK" {
        return prack(&shared, tx, request);
    }
    let route_token = routing::own_route(&shared, &request);
    let ua_dialog = routing::request_uri_token(&request).or_else(|| {
        route_token.is_none().then(|| {
            shared
                .ua_dialogs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(request.call_id().unwrap_or(""))
                .cloned()
        })?
    });
    if let Some(id) = ua_dialog {
        // A dialog this container is a UA in (our Contact); the
        // application sees the request without our Route.
        let request = if route_token.is_some() {
            let mut e = request.edit();
            let popped = if e.pop_route().is_ok() {
                e.into_message().ok()
            } else {
                None
            };
            match popped {
                Some(p) => p,
                None => return respond(&tx, 400, "Bad Request (unreadable Route)", &[]),
            }
        } else {
            request
        };
        let Some(cell) = find_or_load(&shared, &id).await else {
            return respond(
                &tx,
                481,
                "Call/Transaction Does Not Exist (session gone)",
                &[],
            );
        };
        let app_name = cell.with(|d| d.record.app.clone());
        let Some(app) = shared.router.by_name(&app_name) else {
            return respond(
                &tx,
                481,
                "Call/Transaction Does Not Exist (application gone)",
                &[],
            );
        };
        let to_tag = request.to_tag().unwrap_or("").to_owned();
        return run_handler(&shared, &cell, &app, tx, request, to_tag, true, Vec::new()).await;
    }
    let Some(token) = route_token else {
        // §12.2.2: no dialog of ours.
        shared.stats.default_answers.fetch_add(1, Ordering::Relaxed);
        return respond(&tx, 481, "Call/Transaction Does Not Exist", &[]);
    };
    // A proxied dialog: forward along the route set.
    let ids = (
        request.call_id().unwrap_or("").to_owned(),
        request.from_tag().unwrap_or("").to_owned(),
        request.to_tag().unwrap_or("").to_owned(),
    );
    let status = crate::proxy::forward_subsequent(&shared, tx, request).await;
    if method == "BYE"
        && status.is_some_and(|s| (200..300).contains(&s) || s == 481 || s == 408)
        && let Some(id) = token
        && let Some(cell) = shared.session(&id)
    {
        {
            cell.with(|d| {
                if let Some(dl) = d.record.dialog_mut(&ids.0, &ids.1, &ids.2) {
                    dl.state = DialogState::Terminated;
                    d.dirty = true;
                }
            });
            finish(&shared, &cell).await;
        }
    }
}

/// A PRACK (RFC 3262 §3): stops the retransmissions of the reliable
/// provisional its RAck names, wakes the handler waiting for it, 200; 481
/// when it names none.
fn prack(shared: &Shared, tx: ServerTransaction, request: SipMessage) {
    let rack = request
        .typed::<sip_message::headers::RAck<'_>>()
        .and_then(Result::ok);
    let Some(rack) = rack else {
        return respond(&tx, 400, "Bad Request (PRACK without a readable RAck)", &[]);
    };
    let key = (request.call_id().unwrap_or("").to_owned(), rack.rseq);
    let waiting = shared
        .pracks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key);
    match waiting {
        Some(PrackWait::Local(slot, wake)) => {
            slot.with(|t| {
                if let Some(t) = t {
                    t.prack_received();
                }
            });
            let _ = wake.send(());
            respond(&tx, 200, "OK", &[]);
        }
        Some(PrackWait::Relay(to)) => {
            if let Err((tx, _)) = to.send((tx, request)) {
                respond(
                    &tx,
                    481,
                    "Call/Transaction Does Not Exist (the call setup ended)",
                    &[],
                );
            }
        }
        None => respond(
            &tx,
            481,
            "Call/Transaction Does Not Exist (no reliable provisional with this RSeq)",
            &[],
        ),
    }
}

/// The session, as the store has it now: a copy held here that another
/// container has written since is dropped and loaded again. For initial
/// requests that join a session (a key, an encoded URI), which any
/// container may receive.
async fn find_fresh(shared: &Arc<Shared>, id: &SessionId) -> Option<Arc<SessionCell>> {
    if let Some(cell) = shared.session(id) {
        let stored = shared.store.get(&store_key(id)).await.ok().flatten();
        let mine = cell.with(|d| d.version);
        match stored {
            Some(v) if v.version > mine => forget(shared, id),
            _ => return Some(cell),
        }
    }
    find_or_load(shared, id).await
}

/// The session in this container, or loaded from the store (its owner
/// died or drained; we take it over).
pub(crate) async fn find_or_load(shared: &Arc<Shared>, id: &SessionId) -> Option<Arc<SessionCell>> {
    if let Some(c) = shared.session(id) {
        return Some(c);
    }
    let v = shared.store.get(&store_key(id)).await.ok()??;
    let record: SessionRecord = serde_json::from_slice(&v.value).ok()?;
    let cell = Arc::new(SessionCell::new(record, v.version));
    cell.with(|d| d.dirty = false);
    let cell = {
        let mut map = shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(id.clone());
        if let std::collections::hash_map::Entry::Occupied(e) = entry {
            return Some(Arc::clone(e.get()));
        }
        Arc::clone(entry.or_insert(cell))
    };
    shared.stats.sessions_loaded.fetch_add(1, Ordering::Relaxed);
    // Its timers are ours to fire now.
    let timers = cell.with(|d| {
        d.record
            .timers
            .iter()
            .map(|t| (t.id.clone(), t.due_unix_ms))
            .collect::<Vec<_>>()
    });
    for (timer, due) in timers {
        crate::timers::arm(shared, id, &timer, due);
    }
    Some(cell)
}

#[allow(clippy::too_many_arguments)]
async fn run_handler(
    shared: &Arc<Shared>,
    cell: &Arc<SessionCell>,
    app: &Application,
    tx: ServerTransaction,
    request: SipMessage,
    to_tag: String,
    in_dialog: bool,
    chain: Vec<Application>,
) {
    // The stack validated for forwarding; an application reads From and
    // To, so their URIs must parse too (`validate`'s UAS role).
    // From and To in full: what the stack's Forward validation left out.
    if let Err(fault) = sip_message::check_addresses(&request) {
        shared.stats.default_answers.fetch_add(1, Ordering::Relaxed);
        return respond(&tx, fault.status(), &fault.reason_phrase(), &[]);
    }
    let source = tx.source();
    let slot = Arc::new(TxSlot::default());
    *slot.tx.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
    run_in_slot(
        shared, cell, app, slot, source, request, to_tag, in_dialog, chain,
    )
    .await;
}

/// Runs an application's handler for a request whose transaction is in
/// `slot` (shared along a composition chain), and answers what it left
/// unanswered.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_in_slot(
    shared: &Arc<Shared>,
    cell: &Arc<SessionCell>,
    app: &Application,
    slot: Arc<TxSlot>,
    source: sip_message::Peer,
    request: SipMessage,
    to_tag: String,
    in_dialog: bool,
    chain: Vec<Application>,
) {
    let mut turn = Some(cell.turn.lock().await);
    let method = request
        .method()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    // A request inside one of the session's dialogs is pending until
    // answered (JSR 289 `B2buaHelper.getPendingMessages`); the same copy
    // serves the relay when the application leaves it unanswered.
    let relay_copy = in_dialog.then(|| Arc::new(request.clone()));
    let _pending = relay_copy.as_ref().map(|r| {
        cell.pending(
            r.call_id().unwrap_or(""),
            crate::UaMode::Uas,
            Arc::clone(r),
            Some(Arc::clone(&slot)),
        )
    });
    let req = IncomingRequest {
        request,
        source,
        slot: Arc::clone(&slot),
        shared: Arc::clone(shared),
        cell: Arc::clone(cell),
        to_tag,
        in_dialog,
        chain,
        rseq: std::sync::atomic::AtomicU32::new(0),
    };
    let raw = RawContext {
        shared: Arc::clone(shared),
        cell: Arc::clone(cell),
        listener: app.listener(),
    };
    let outcome = match app.dispatch(raw, req) {
        Some(fut) => Some(fut.await),
        None => None,
    };
    if let Some(tx) = slot.take() {
        shared.stats.default_answers.fetch_add(1, Ordering::Relaxed);
        let status = match outcome {
            None => match relay_copy {
                // Inside a B2BUA call: to the other leg. The relay gives
                // the turn up once the request is on its way, so the
                // session's other requests are not held up while the
                // other leg thinks.
                // Boxed: the relay's state (3 KB) would otherwise widen
                // this future, and every future that awaits it, for every
                // request, B2BUA or not; each is moved whole when made.
                Some(r) => {
                    match Box::pin(crate::b2bua::relay(shared, cell, tx, &r, &mut turn)).await {
                        Ok(s) => s,
                        Err(tx) => default_answer(shared, cell, &tx, &method, app, in_dialog),
                    }
                }
                None => default_answer(shared, cell, &tx, &method, app, in_dialog),
            },
            Some(Err(e)) => {
                let (status, reason) = e.response_status();
                debug!(error = %e, status, "handler failed");
                respond(&tx, status, &reason, &[]);
                status
            }
            Some(Ok(())) => {
                respond(
                    &tx,
                    500,
                    "Server Internal Error (the application did not answer)",
                    &[],
                );
                500
            }
        };
        slot.set_status(status);
    }
    drop(turn);
    finish(shared, cell).await;
}

/// Composition: the request goes on from the application that proxied it
/// to the next one of its chain (JSR 289 application router), in a new
/// application session of its own, on the same server transaction.
/// Returns the final status the rest of the chain answered.
pub(crate) async fn next_in_chain(
    req: IncomingRequest,
    target: Option<String>,
) -> Result<crate::ProxyOutcome, AppError> {
    let IncomingRequest {
        mut request,
        source,
        slot,
        shared,
        to_tag,
        mut chain,
        ..
    } = req;
    if chain.is_empty() {
        return Err(AppError::Build("no next application".to_owned()));
    }
    let next = chain.remove(0);
    if let Some(t) = &target
        && Some(t.as_str()) != request.request_uri_str()
    {
        let mut e = request.edit();
        e.set_request_uri(t).map_err(|err| AppError::Target {
            target: t.clone(),
            reason: err.to_string(),
        })?;
        request = e
            .into_message()
            .map_err(|err| AppError::Build(err.to_string()))?;
    }
    let cell = new_session(&shared, &next, None, false);
    Box::pin(run_in_slot(
        &shared,
        &cell,
        &next,
        Arc::clone(&slot),
        source,
        request,
        to_tag,
        false,
        chain,
    ))
    .await;
    Ok(crate::ProxyOutcome {
        status: slot.status().unwrap_or(500),
        winner: None,
    })
}

/// What the container answers when the application has no handler.
fn default_answer(
    shared: &Shared,
    cell: &SessionCell,
    tx: &ServerTransaction,
    method: &str,
    app: &Application,
    in_dialog: bool,
) -> u16 {
    let _ = shared;
    if in_dialog {
        return match method {
            // A UA ends its dialog on BYE (§15.1.2).
            "BYE" => {
                let r = tx.request();
                if let (Some(c), Some(f), Some(t)) = (r.call_id(), r.from_tag(), r.to_tag()) {
                    cell.with(|d| {
                        if let Some(dl) = d.record.dialog_mut(c, f, t) {
                            dl.state = DialogState::Terminated;
                            d.dirty = true;
                        }
                    });
                }
                respond(tx, 200, "OK", &[]);
                200
            }
            "INFO" | "UPDATE" | "NOTIFY" | "OPTIONS" | "MESSAGE" => {
                respond(tx, 200, "OK", &[]);
                200
            }
            "INVITE" => {
                respond(tx, 488, "Not Acceptable Here (re-INVITE not handled)", &[]);
                488
            }
            _ => {
                respond(tx, 405, "Method Not Allowed", &[("Allow", allow(app))]);
                405
            }
        };
    }
    if KNOWN_METHODS.contains(&method) {
        // §8.2.1: known but not handled here.
        respond(tx, 405, "Method Not Allowed", &[("Allow", allow(app))]);
        405
    } else {
        respond(tx, 501, "Not Implemented", &[]);
        501
    }
}

fn allow(app: &Application) -> String {
    let mut m: Vec<&str> = app.methods().iter().map(String::as_str).collect();
    for always in ["ACK", "CANCEL", "OPTIONS"] {
        if !m.contains(&always) {
            m.push(always);
        }
    }
    m.join(", ")
}

/// After a handler or a dialog change: write the session, or drop it when
/// it is invalidated or ready.
pub(crate) async fn finish(shared: &Arc<Shared>, cell: &Arc<SessionCell>) {
    let drop_it = cell
        .with(|d| d.record.invalidated || (d.record.invalidate_when_ready && d.record.is_ready()));
    if drop_it {
        remove(shared, cell).await;
    } else if let Err(e) = commit(shared, cell).await {
        warn!(session = %cell.id, error = %e, "session not written");
    }
}

async fn remove(shared: &Arc<Shared>, cell: &Arc<SessionCell>) {
    // No write of this session may be in flight while it is deleted (a
    // relay finishing without the turn), or the record would outlive it.
    let _writing = cell.writing.lock().await;
    cell.with(|d| d.gone = true);
    let removed = {
        let mut sessions = shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let removed = sessions.remove(&cell.id).is_some();
        sip_proto::shrink_after_burst(&mut sessions);
        removed
    };
    unindex_dialogs(shared, cell);
    if removed {
        shared
            .stats
            .sessions_removed
            .fetch_add(1, Ordering::Relaxed);
        let app = cell.with(|d| d.record.app.clone());
        if let Some(a) = shared.router.by_name(&app) {
            a.notify(&cell.id, &crate::SessionEvent::Destroyed);
        }
    }
    let version = cell.with(|d| d.version);
    if version > 0
        && let Err(e) = shared.store.delete(&store_key(&cell.id), version).await
    {
        debug!(session = %cell.id, error = %e, "session not deleted from the store");
    }
    crate::timers::unindex_all(shared, cell).await;
    let keyed = cell.with(|d| d.record.key.clone().map(|k| (d.record.app.clone(), k)));
    if let Some((app, key)) = keyed {
        let index = key_index(&app, &key);
        if let Ok(Some(v)) = shared.store.get(&index).await
            && v.value == cell.id.as_str().as_bytes()
        {
            let _ = shared.store.delete(&index, v.version).await;
        }
    }
}

/// Drops the session's dialogs from the Call-ID index.
fn unindex_dialogs(shared: &Shared, cell: &SessionCell) {
    let call_ids: Vec<String> =
        cell.with(|d| d.record.dialogs.iter().map(|x| x.call_id.clone()).collect());
    if call_ids.is_empty() {
        return;
    }
    let mut idx = shared
        .ua_dialogs
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for c in call_ids {
        if idx.get(&c) == Some(&cell.id) {
            idx.remove(&c);
        }
    }
    sip_proto::shrink_after_burst(&mut idx);
}

/// Forgets a session this container holds a stale copy of (another
/// container wrote it since): nothing is deleted from the store.
pub(crate) fn forget(shared: &Shared, id: &SessionId) {
    let cell = shared
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(id);
    if let Some(cell) = cell {
        cell.with(|d| d.gone = true);
        unindex_dialogs(shared, &cell);
    }
}

/// Expires sessions once a second.
async fn sweep(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = unix_ms();
        let expired: Vec<Arc<SessionCell>> = shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|c| c.with(|d| d.record.expires_unix_ms <= now))
            .cloned()
            .collect();
        for cell in expired {
            // Not while a handler or a relay runs (a relay counts itself
            // busy before it gives the turn up, so the turn first).
            let idle = cell.turn.try_lock().ok();
            if idle.is_some() && cell.busy.load(Ordering::SeqCst) == 0 {
                debug!(session = %cell.id, "session expired");
                let app = cell.with(|d| d.record.app.clone());
                if let Some(a) = shared.router.by_name(&app) {
                    a.notify(&cell.id, &crate::SessionEvent::Expired);
                }
                remove(&shared, &cell).await;
            }
        }
    }
}
