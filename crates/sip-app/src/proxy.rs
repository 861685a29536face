//! The stateful proxy (RFC 3261 §16): forking, best response, CANCEL,
//! Record-Route with the affinity token, and the forwarding of requests
//! inside proxied dialogs.
//!
//! One request context per proxied request (§16.2), one task: it follows
//! every branch's client transaction and deadlines itself, forwards
//! provisionals at once, every 2xx at once (forks and retransmissions,
//! RFC 6026 §7.3), and, when every branch has its final response and no
//! 2xx went upstream, the best one (§16.7 step 6). A 2xx cancels the other
//! branches (§16.7 step 10), so does a 6xx (step 5: no further branch
//! starts, and the 6xx goes up once the others ended); a CANCEL from upstream cancels them all
//! (§16.10). When the context ends its branches drop their transactions'
//! handles; a 2xx that still comes (a retransmission, or a late fork, RFC
//! 6026 §7.3) reaches the engine as a late response with our Via on top,
//! which it forwards statelessly: no task waits 64*T1 per proxied INVITE.

use std::sync::Arc;
use std::time::Duration;

use sip_message::headers::{Contact, MaxForwards, Via};
use sip_message::{Peer, ResponseBuilder, SipMessage};
use sip_stack::{ClientEvent, ServerTransaction};
use tokio::time::Instant;
use tracing::debug;

use crate::AppError;
use crate::engine::Shared;
use crate::routing;
use crate::session::{DialogRecord, DialogRole, DialogState, SessionCell};

/// A supervisor of a proxy (JSR 289 supervised mode): it sees every final
/// error response of every branch, with the branch's target, and may
/// return new targets to try (for example a voicemail on 486 Busy Here).
pub type Supervisor = std::sync::Arc<dyn Fn(&str, &SipMessage) -> Vec<String> + Send + Sync>;

/// How to proxy.
#[derive(Clone)]
pub struct ProxyOptions {
    /// Target URIs (Request-URIs of the branches).
    pub targets: Vec<String>,
    /// All branches at once (true, the default) or one after another.
    pub parallel: bool,
    /// Add a Record-Route (with the session's token) so requests inside
    /// the dialog come back through the cluster. Default true.
    pub record_route: bool,
    /// Give up on a branch without a final response after this long
    /// (CANCEL it; it counts as 408). Default: none (timer C is the
    /// transaction's business).
    pub branch_timeout: Option<Duration>,
    /// Follow 3xx Contacts with new branches (§16.5). Default true.
    pub recurse: bool,
    /// Give up on a branch that has sent no response at all (not even a
    /// 100) after this long: a dead next hop, tried no further (it counts
    /// as 408 and sequential forking moves on). Kamailio's `fr_timer`.
    /// Default: none.
    pub no_response_timeout: Option<Duration>,
    /// Supervised mode: called with each branch's final error response
    /// (3xx not recursed, 4xx, 5xx, 6xx); the targets it returns become
    /// new branches, started at once. Default: none.
    pub supervisor: Option<Supervisor>,
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyOptions")
            .field("targets", &self.targets)
            .field("parallel", &self.parallel)
            .field("record_route", &self.record_route)
            .field("branch_timeout", &self.branch_timeout)
            .field("recurse", &self.recurse)
            .field("no_response_timeout", &self.no_response_timeout)
            .field("supervised", &self.supervisor.is_some())
            .finish()
    }
}

impl ProxyOptions {
    /// Proxy to these targets with the defaults.
    #[must_use]
    pub fn to(targets: impl IntoIterator<Item = String>) -> ProxyOptions {
        ProxyOptions {
            targets: targets.into_iter().collect(),
            parallel: true,
            record_route: true,
            branch_timeout: None,
            recurse: true,
            no_response_timeout: None,
            supervisor: None,
        }
    }
}

/// What a proxied request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOutcome {
    /// The status of the final response that went upstream.
    pub status: u16,
    /// The target whose branch won, if one did.
    pub winner: Option<String>,
}

const MAX_BRANCHES: usize = 16;

/// What a branch has to report to its request context.
// A response is the common event; boxing it would allocate per response.
#[allow(clippy::large_enum_variant)]
enum BranchEvent {
    Event(ClientEvent),
    /// The branch timed out (it was cancelled), or its next hop stayed
    /// silent (it was given up).
    TimedOut,
    /// The transaction ended, or the branch was given up.
    Ended,
}

struct Branch {
    target: String,
    /// The client transaction while the branch runs; dropped when it ends
    /// or is given up (and with the context: see the module doc).
    ct: Option<sip_stack::ClientTransaction>,
    final_status: Option<u16>,
    ended: bool,
    /// A CANCEL was ordered (a 2xx or 6xx elsewhere, §16.10, the timeout).
    cancelled: bool,
    /// A response arrived (even a 100).
    heard: bool,
    /// `ProxyOptions::branch_timeout` from the start; cleared once fired.
    deadline: Option<Instant>,
    /// `ProxyOptions::no_response_timeout` from the start, until heard.
    silent_deadline: Option<Instant>,
}

impl Branch {
    /// Orders the branch's CANCEL once (§9.1: the stack sends it once a
    /// provisional arrived).
    fn cancel(&mut self) {
        if !self.cancelled {
            self.cancelled = true;
            if let Some(ct) = &self.ct {
                ct.cancel();
            }
        }
    }

    /// The branch's next deadline, while it runs.
    fn next_deadline(&self) -> Option<Instant> {
        self.ct.as_ref()?;
        let silent = self.silent_deadline.filter(|_| !self.heard);
        match (silent, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The next event of any running branch's transaction, in branch order.
fn poll_branches(
    branches: &mut [Branch],
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<(usize, BranchEvent)> {
    use std::task::Poll;
    for (i, b) in branches.iter_mut().enumerate() {
        let Some(ct) = b.ct.as_mut() else { continue };
        match ct.poll_next(cx) {
            Poll::Ready(Some(e)) => {
                b.heard |= matches!(e, ClientEvent::Response(_));
                return Poll::Ready((i, BranchEvent::Event(e)));
            }
            Poll::Ready(None) => {
                b.ct = None;
                return Poll::Ready((i, BranchEvent::Ended));
            }
            Poll::Pending => {}
        }
    }
    Poll::Pending
}

/// The branches' deadlines that passed by `now`, as events.
fn expire(
    branches: &mut [Branch],
    now: Instant,
    out: &mut std::collections::VecDeque<(usize, BranchEvent)>,
) {
    for (i, b) in branches.iter_mut().enumerate() {
        if b.ct.is_none() {
            continue;
        }
        if !b.heard && b.silent_deadline.is_some_and(|d| d <= now) {
            // Nothing from this hop: stop waiting for it (no CANCEL
            // before a provisional, §9.1).
            b.ct = None;
            out.push_back((i, BranchEvent::TimedOut));
            out.push_back((i, BranchEvent::Ended));
        } else if b.deadline.is_some_and(|d| d <= now) {
            b.deadline = None;
            b.cancel();
            out.push_back((i, BranchEvent::TimedOut));
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs a proxy request context to its end.
pub(crate) async fn run(
    shared: Arc<Shared>,
    cell: Arc<SessionCell>,
    mut tx: ServerTransaction,
    request: SipMessage,
    source: Peer,
    options: ProxyOptions,
) -> Result<ProxyOutcome, AppError> {
    let reject = |tx: &ServerTransaction, status: u16, reason: &str| {
        if let Ok(r) = ResponseBuilder::with_reason(&request, status, reason, Some("sbpx"))
            .and_then(ResponseBuilder::build)
        {
            tx.respond(r);
        }
        Ok(ProxyOutcome {
            status,
            winner: None,
        })
    };
    // §16.3 step 3: Max-Forwards.
    match request.typed::<MaxForwards>() {
        Some(Ok(MaxForwards(0))) => return reject(&tx, 483, "Too Many Hops"),
        Some(Err(_)) => return reject(&tx, 400, "Bad Max-Forwards"),
        _ => {}
    }
    // §16.3 step 4: a request that already went through us with the same
    // Request-URI is a loop (a spiral changes the Request-URI).
    if is_loop(&shared, &request) {
        return reject(&tx, 482, "Loop Detected");
    }
    if options.targets.is_empty() {
        return reject(&tx, 480, "Temporarily Unavailable (no target)");
    }
    let is_invite = request.method().is_some_and(|m| m.as_str() == "INVITE");
    let creates_dialog = matches!(
        request.method().map(|m| m.as_str()),
        Some("INVITE" | "SUBSCRIBE" | "REFER")
    ) && request.to_tag().is_none();
    let record_route = (options.record_route && creates_dialog).then(|| {
        routing::record_route(
            &shared,
            &cell.id,
            routing::inbound_transport(&request, source.transport),
        )
    });
    // Write the session before the request leaves: a survivor must know
    // the call exists (docs/CLUSTER.md).
    crate::engine::commit(&shared, &cell).await?;

    let mut branches: Vec<Branch> = Vec::new();
    let mut due: std::collections::VecDeque<(usize, BranchEvent)> = Default::default();
    let mut queue: std::collections::VecDeque<String> = options.targets.iter().cloned().collect();
    let mut finals: Vec<SipMessage> = Vec::new();
    let mut winner: Option<String> = None;
    let mut cancelled = false;
    let mut sent_2xx = false;

    let start_next = |branches: &mut Vec<Branch>,
                      queue: &mut std::collections::VecDeque<String>| {
        let n = if options.parallel { queue.len() } else { 1 };
        take_branches(branches, queue, n)
    };
    let start_all = |branches: &mut Vec<Branch>, queue: &mut std::collections::VecDeque<String>| {
        let n = queue.len();
        take_branches(branches, queue, n)
    };
    let mut starts = start_next(&mut branches, &mut queue);
    loop {
        for (i, target) in starts.drain(..) {
            match start_branch(&shared, &request, &target, record_route.as_deref()).await {
                Ok(ct) => {
                    if let Some(b) = branches.get_mut(i) {
                        let now = Instant::now();
                        b.deadline = options.branch_timeout.map(|t| now + t);
                        b.silent_deadline = options.no_response_timeout.map(|t| now + t);
                        b.ct = Some(ct);
                    }
                }
                Err(e) => {
                    debug!(%target, error = %e, "branch not started");
                    if let Some(b) = branches.get_mut(i) {
                        b.final_status = Some(503);
                        b.ended = true;
                    }
                    if let Ok(r) = synth(&request, 503, "Service Unavailable (target unreachable)")
                    {
                        finals.push(r);
                    }
                }
            }
        }
        // Done when every branch has its final response (an INVITE client
        // transaction lingers after it, in Completed or Accepted).
        let done = branches.iter().all(|b| b.final_status.is_some() || b.ended);
        if done {
            if !sent_2xx && !cancelled && !queue.is_empty() {
                // Sequential forking: the next target.
                starts = start_next(&mut branches, &mut queue);
                if !starts.is_empty() {
                    continue;
                }
            }
            break;
        }
        let (i, ev) = match due.pop_front() {
            Some(ev) => ev,
            None => {
                let deadline = branches.iter().filter_map(Branch::next_deadline).min();
                tokio::select! {
                    ev = std::future::poll_fn(|cx| poll_branches(&mut branches, cx)) => ev,
                    () = sleep_until(deadline) => {
                        expire(&mut branches, Instant::now(), &mut due);
                        continue;
                    }
                    () = tx.cancelled(), if is_invite && !cancelled => {
                        // §16.10: cancel every pending branch; the
                        // responses (487) still come back through the
                        // context.
                        cancelled = true;
                        queue.clear();
                        for b in &mut branches {
                            b.cancel();
                        }
                        continue;
                    }
                }
            }
        };
        match ev {
            BranchEvent::Event(ClientEvent::Response(r)) => {
                let status = r.status().unwrap_or(500);
                if status < 200 {
                    if status > 100 && !sent_2xx {
                        forward_up(&tx, &r);
                    }
                } else if status < 300 {
                    if let Some(b) = branches.get_mut(i) {
                        b.final_status = Some(status);
                    }
                    if !sent_2xx {
                        sent_2xx = true;
                        winner = branches.get(i).map(|b| b.target.clone());
                        record_dialog(&shared, &cell, &request, &r);
                        // Write before the 2xx reveals the dialog.
                        crate::engine::commit(&shared, &cell).await?;
                        for (j, b) in branches.iter_mut().enumerate() {
                            if j != i && b.final_status.is_none() {
                                b.cancel();
                            }
                        }
                    }
                    forward_up(&tx, &r);
                } else {
                    if let Some(b) = branches.get_mut(i) {
                        if b.final_status.is_none() {
                            b.final_status = Some(status);
                        } else {
                            continue;
                        }
                    }
                    if status >= 600 && !sent_2xx {
                        // §16.7 step 5: a 6xx ends the search: cancel
                        // the pending branches, start no more; their
                        // 487s come back before the 6xx goes up.
                        queue.clear();
                        for (j, b) in branches.iter_mut().enumerate() {
                            if j != i && b.final_status.is_none() {
                                b.cancel();
                            }
                        }
                        finals.push(r);
                        continue;
                    }
                    if (300..400).contains(&status) && options.recurse && !cancelled && !sent_2xx {
                        let before = queue.len();
                        for c in r.typed_all::<Contact<'_>>().filter_map(Result::ok) {
                            if let Contact::Addr(a) = c {
                                queue.push_back(a.uri().as_str().to_owned());
                            }
                        }
                        if queue.len() > before {
                            starts = start_next(&mut branches, &mut queue);
                            continue;
                        }
                    }
                    if let Some(sup) = options
                        .supervisor
                        .as_ref()
                        .filter(|_| !cancelled && !sent_2xx)
                    {
                        let target = branches
                            .get(i)
                            .map(|b| b.target.clone())
                            .unwrap_or_default();
                        let more = sup(&target, &r);
                        if !more.is_empty() {
                            queue.extend(more);
                            finals.push(r);
                            starts = start_all(&mut branches, &mut queue);
                            continue;
                        }
                    }
                    finals.push(r);
                }
            }
            BranchEvent::Event(ClientEvent::Timeout) | BranchEvent::TimedOut => {
                if let Some(b) = branches.get_mut(i)
                    && b.final_status.is_none()
                {
                    b.final_status = Some(408);
                    if let Ok(r) = synth(&request, 408, "Request Timeout") {
                        finals.push(r);
                    }
                }
            }
            BranchEvent::Event(ClientEvent::TransportError) => {
                if let Some(b) = branches.get_mut(i)
                    && b.final_status.is_none()
                {
                    b.final_status = Some(503);
                    if let Ok(r) = synth(&request, 503, "Service Unavailable (transport error)") {
                        finals.push(r);
                    }
                }
            }
            BranchEvent::Event(_) => {}
            BranchEvent::Ended => {
                if let Some(b) = branches.get_mut(i) {
                    b.ended = true;
                    if b.final_status.is_none() {
                        b.final_status = Some(408);
                        if let Ok(r) = synth(&request, 408, "Request Timeout") {
                            finals.push(r);
                        }
                    }
                }
            }
        }
    }
    if sent_2xx {
        return Ok(ProxyOutcome {
            status: 200,
            winner,
        });
    }
    let best = if cancelled {
        synth(&request, 487, "Request Terminated")?
    } else {
        choose_best(finals).map_or_else(|| synth(&request, 408, "Request Timeout"), Ok)?
    };
    let status = best.status().unwrap_or(500);
    forward_up(&tx, &best);
    Ok(ProxyOutcome {
        status,
        winner: None,
    })
}

/// A branch to start: its index and target.
type Start = (usize, String);

/// Takes up to `n` targets off the queue as new branches (a target
/// already tried, or one over the branch limit, is skipped).
fn take_branches(
    branches: &mut Vec<Branch>,
    queue: &mut std::collections::VecDeque<String>,
    n: usize,
) -> Vec<Start> {
    let mut starts = Vec::new();
    for _ in 0..n {
        let Some(t) = queue.pop_front() else { break };
        if branches.len() >= MAX_BRANCHES || branches.iter().any(|b| b.target == t) {
            continue;
        }
        branches.push(Branch {
            target: t.clone(),
            ct: None,
            final_status: None,
            ended: false,
            cancelled: false,
            heard: false,
            deadline: None,
            silent_deadline: None,
        });
        starts.push((branches.len() - 1, t));
    }
    starts
}

/// §16.7 step 6: any 6xx; else the lowest class; 503 becomes 500.
fn choose_best(finals: Vec<SipMessage>) -> Option<SipMessage> {
    let key = |r: &SipMessage| {
        let s = r.status().unwrap_or(500);
        let class = s / 100;
        // 6xx first, then 3xx, 4xx, 5xx; within a class the first one,
        // preferring an authentication challenge (§16.7 step 7).
        let rank = if class == 6 {
            0
        } else {
            u16::from(class as u8)
        };
        let pref = u16::from(!matches!(s, 401 | 407));
        (rank, pref)
    };
    let best = finals.into_iter().min_by_key(key)?;
    if best.status() == Some(503) {
        // §16.7 step 6: a 503 would make the client try elsewhere for the
        // wrong reason.
        let text = String::from_utf8_lossy(best.as_bytes());
        let line_end = text.find("\r\n").unwrap_or(0);
        let rewritten = format!(
            "SIP/2.0 500 Server Internal Error (downstream 503){}",
            text.get(line_end..).unwrap_or("")
        );
        return SipMessage::parse(bytes::Bytes::from(rewritten)).ok();
    }
    Some(best)
}

fn synth(request: &SipMessage, status: u16, reason: &str) -> Result<SipMessage, AppError> {
    ResponseBuilder::with_reason(request, status, reason, Some("sbpx"))
        .and_then(ResponseBuilder::build)
        .map_err(|e| AppError::Build(e.to_string()))
}

/// A response from a branch, upstream: our Via popped (§16.7 step 3).
fn forward_up(tx: &ServerTransaction, r: &SipMessage) {
    if r.status().is_some_and(|s| s > 100) && r.top_via().is_some() {
        // Synthesized responses carry the upstream Vias only.
        let ours = r.top_branch() != tx.request().top_branch();
        let msg = if ours { pop_via(r) } else { Some(r.clone()) };
        if let Some(m) = msg {
            tx.forward(m);
        }
    }
}

pub(crate) fn pop_via(r: &SipMessage) -> Option<SipMessage> {
    let mut e = r.edit();
    e.pop_via().ok()?;
    e.into_message().ok()
}

fn is_loop(shared: &Shared, request: &SipMessage) -> bool {
    // Our Via on the request with the same loop hash: the branch we put
    // there ends with a hash of what the request was received with (§16.6
    // step 8, `start_branch`); back unchanged it looped, retargeted to us
    // again (another Request-URI or Route set) it spirals.
    let hash = loop_hash(request);
    // Only a Via whose text holds the hash can be ours with this request:
    // most requests have none, and skip the parse.
    let bytes = hash.as_bytes();
    if !request
        .headers_of(sip_message::HeaderName::Via)
        .any(|h| h.value_bytes().windows(bytes.len()).any(|w| w == bytes))
    {
        return false;
    }
    request
        .typed_all::<Via<'_>>()
        .filter_map(Result::ok)
        .any(|v| {
            shared.is_own(v.host_str(), v.port()) && v.branch().is_some_and(|b| b.ends_with(&hash))
        })
}

/// `-<8 hex>` of what tells a spiral from a loop (§16.3 step 4, §16.6
/// step 8, RFC 5393 §4.2): the Request-URI, the Route header fields,
/// Proxy-Require and Proxy-Authorization. The From tag, To tag, Call-ID
/// and CSeq are left out: our Via with the branch is in the very request
/// being checked, so they cannot differ; the top Via is left out because
/// it changes on every pass through another proxy (RFC 5393 §4.2.1).
fn loop_hash(request: &SipMessage) -> String {
    use sip_message::HeaderName;
    let mut h = routing::fnv1a_update(
        routing::FNV1A_START,
        request.request_uri_str().unwrap_or("").as_bytes(),
    );
    for name in [
        HeaderName::Route,
        HeaderName::ProxyRequire,
        HeaderName::ProxyAuthorization,
    ] {
        for v in request.headers_of(name) {
            // A separator per field, so that moving bytes between fields
            // changes the hash.
            h = routing::fnv1a_update(h, b"\n");
            h = routing::fnv1a_update(h, v.value_bytes());
        }
    }
    let mut out = String::with_capacity(9);
    out.push('-');
    sip_proto::push_hex(&mut out, h, 8);
    out
}

/// 8 hex digits of `branch`: the stateless branch of a forwarded ACK, the
/// same for each retransmission of that ACK (§16.11).
fn ack_hash(branch: &str) -> String {
    let mut out = String::with_capacity(8);
    sip_proto::push_hex(&mut out, routing::fnv1a(branch), 8);
    out
}

async fn start_branch(
    shared: &Arc<Shared>,
    request: &SipMessage,
    target: &str,
    record_route: Option<&str>,
) -> Result<sip_stack::ClientTransaction, AppError> {
    let mut e = request.edit();
    let new_uri = request.to_tag().is_none().then_some(target);
    if let Some(uri) = new_uri {
        e.set_request_uri(uri).map_err(|err| AppError::Target {
            target: target.to_owned(),
            reason: err.to_string(),
        })?;
    }
    e.decrement_max_forwards()
        .map_err(|err| AppError::Build(err.to_string()))?;
    if let Some(rr) = record_route {
        e.prepend_record_route(rr)
            .map_err(|err| AppError::Build(err.to_string()))?;
    }
    // The edits touch neither Route nor Call-ID: the next hop is read from
    // the request as received, and the message is parsed once, at the end.
    let peer = routing::next_hop(shared, request, false, new_uri).await?;
    // §16.6 step 8: the branch tells this request from others by what it
    // was received with (the Request-URI before retargeting, the Route set
    // before popping), so that a request coming back unchanged is a loop,
    // and one retargeted to us again a spiral (§16.3 step 4).
    let mut branch = shared.stack.branch_with_room(9);
    branch.push_str(&loop_hash(request));
    e.prepend_via(&routing::via(shared, peer.transport, &branch))
        .map_err(|err| AppError::Build(err.to_string()))?;
    let out = e
        .into_message()
        .map_err(|err| AppError::Build(err.to_string()))?;
    shared
        .stack
        .send_request(out, peer)
        .await
        .map_err(|err| AppError::Target {
            target: target.to_owned(),
            reason: err.to_string(),
        })
}

/// Forwards a response outside any transaction: pop our Via, send to the
/// next (§16.11, RFC 6026 §8.4 for 2xx retransmissions).
pub(crate) async fn forward_stateless(shared: &Shared, r: &SipMessage) {
    let Some(up) = pop_via(r) else { return };
    if let Some(peer) = routing::response_hop(&up).await {
        shared.stack.send_stateless(&up, peer);
    }
}

fn record_dialog(shared: &Shared, cell: &SessionCell, request: &SipMessage, r: &SipMessage) {
    let is_dialog = matches!(
        request.method().map(|m| m.as_str()),
        Some("INVITE" | "SUBSCRIBE" | "REFER")
    ) && request.to_tag().is_none();
    let (Some(call_id), Some(from), Some(to)) = (request.call_id(), request.from_tag(), r.to_tag())
    else {
        return;
    };
    if !is_dialog {
        return;
    }
    let lifetime = shared.config.dialog_lifetime;
    cell.with(|d| {
        d.record.upsert_dialog(DialogRecord {
            call_id: call_id.to_owned(),
            from_tag: from.to_owned(),
            to_tag: to.to_owned(),
            role: DialogRole::Proxy,
            state: DialogState::Confirmed,
            ua: None,
        });
        let at = crate::engine::unix_ms().saturating_add(crate::session::millis(lifetime));
        d.record.expires_unix_ms = d.record.expires_unix_ms.max(at);
        d.dirty = true;
    });
}

/// Forwards a request inside a proxied dialog, our Route on top (popped
/// here, with the Max-Forwards and Via edits, in one pass): statefully,
/// relaying every response.
pub(crate) async fn forward_subsequent(
    shared: &Shared,
    mut tx: ServerTransaction,
    request: SipMessage,
) -> Option<u16> {
    let mut e = request.edit();
    if e.pop_route().is_err() {
        if let Ok(r) = synth(&request, 400, "Bad Request (unreadable Route)") {
            tx.respond(r);
        }
        return Some(400);
    }
    if e.decrement_max_forwards().is_err() {
        if let Ok(r) = synth(&request, 483, "Too Many Hops") {
            tx.respond(r);
        }
        return Some(483);
    }
    let peer = match routing::next_hop(shared, &request, true, None).await {
        Ok(p) => p,
        Err(err) => {
            let (status, reason) = err.response_status();
            if let Ok(r) = synth(&request, status, &reason) {
                tx.respond(r);
            }
            return Some(status);
        }
    };
    let branch = shared.stack.branch();
    if e.prepend_via(&routing::via(shared, peer.transport, &branch))
        .is_err()
    {
        return None;
    }
    let out = e.into_message().ok()?;
    let Ok(mut ct) = shared.stack.send_request(out, peer).await else {
        if let Ok(r) = synth(&request, 503, "Service Unavailable") {
            tx.respond(r);
        }
        return Some(503);
    };
    let is_invite = request.method().is_some_and(|m| m.as_str() == "INVITE");
    let mut cancelled = false;
    loop {
        tokio::select! {
            ev = ct.next() => match ev {
                Some(ClientEvent::Response(r)) => {
                    let status = r.status().unwrap_or(500);
                    forward_up(&tx, &r);
                    if status >= 200 {
                        // 2xx retransmissions that follow come to the
                        // engine as late responses once `ct` is dropped,
                        // and are relayed statelessly.
                        return Some(status);
                    }
                }
                Some(ClientEvent::Timeout) | None => {
                    if let Ok(r) = synth(&request, 408, "Request Timeout") { tx.respond(r); }
                    return Some(408);
                }
                Some(ClientEvent::TransportError) => {
                    if let Ok(r) = synth(&request, 503, "Service Unavailable (transport error)") { tx.respond(r); }
                    return Some(503);
                }
                Some(_) => {}
            },
            () = tx.cancelled(), if is_invite && !cancelled => {
                cancelled = true;
                ct.cancel();
            }
        }
    }
}

/// Forwards an ACK for a 2xx inside a proxied dialog, statelessly, our
/// Route on top (popped here with the other edits, in one pass). Done at
/// once when the next hop is an address (no task for the usual ACK);
/// otherwise the returned future looks the name up and sends it.
pub(crate) fn forward_ack(
    shared: &Arc<Shared>,
    ack: SipMessage,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    match routing::next_hop_now(shared, &ack, true, None) {
        Ok(routing::Hop::Ready(peer)) => {
            send_ack(shared, &ack, peer);
            None
        }
        Err(_) => None,
        Ok(routing::Hop::Lookup { .. }) => {
            let shared = Arc::clone(shared);
            Some(async move {
                if let Ok(peer) = routing::next_hop(&shared, &ack, true, None).await {
                    send_ack(&shared, &ack, peer);
                }
            })
        }
    }
}

fn send_ack(shared: &Shared, ack: &SipMessage, peer: Peer) {
    let mut e = ack.edit();
    if e.pop_route().is_err() || e.decrement_max_forwards().is_err() {
        return;
    }
    // §16.11: a stateless branch, the same for retransmissions of this ACK.
    let branch = format!("z9hG4bK-ack{}", ack_hash(ack.top_branch().unwrap_or("")));
    if e.prepend_via(&routing::via(shared, peer.transport, &branch))
        .is_err()
    {
        return;
    }
    if let Ok(out) = e.into_message() {
        shared.stack.send_stateless(&out, peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> SipMessage {
        let s = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
             To: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::parse(bytes::Bytes::from(s)).unwrap()
    }

    #[test]
    fn best_response_rules() {
        let pick =
            |v: &[u16]| choose_best(v.iter().map(|s| resp(*s)).collect()).and_then(|r| r.status());
        assert_eq!(pick(&[486, 603, 302]), Some(603), "6xx wins");
        assert_eq!(pick(&[486, 302, 500]), Some(302), "lowest class");
        assert_eq!(
            pick(&[404, 407, 486]),
            Some(407),
            "challenges first in a class"
        );
        assert_eq!(pick(&[503]), Some(500), "503 becomes 500");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn loop_hashes_tell_spirals_from_loops() {
        let req = |uri: &str, route: &str| {
            let s = format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n{route}From: <sip:a@x>;tag=1\r\n\
                 To: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            SipMessage::parse(bytes::Bytes::from(s)).unwrap()
        };
        let base = loop_hash(&req("sip:a@x", ""));
        assert_eq!(base.len(), 9);
        assert!(base.starts_with('-'));
        // The same request again (another top Via would not matter): a loop.
        assert_eq!(loop_hash(&req("sip:a@x", "")), base);
        // Retargeted, or sent back with another Route set: a spiral.
        assert_ne!(loop_hash(&req("sip:b@x", "")), base);
        let routed = loop_hash(&req("sip:a@x", "Route: <sip:p1;lr>\r\n"));
        assert_ne!(routed, base);
        assert_ne!(
            loop_hash(&req(
                "sip:a@x",
                "Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n"
            )),
            routed
        );
        assert_ne!(loop_hash(&req("sip:a@x", "Proxy-Require: foo\r\n")), base);
        assert_eq!(ack_hash("z9hG4bK1").len(), 8);
        assert_ne!(ack_hash("z9hG4bK1"), ack_hash("z9hG4bK2"));
    }
}
