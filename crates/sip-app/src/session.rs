//! Application sessions (the JSR 289 SipApplicationSession).
//!
//! An application session is one call or conversation: its attributes, the
//! dialogs (SIP sessions) that belong to it, its expiry and its timers. It
//! is a plain, versioned, serializable record ([`SessionRecord`]) kept in
//! the session store under its id; the id is the affinity token of
//! docs/CLUSTER.md (`<node>.<16 hex>`).
//!
//! In the container a session lives in a [`SessionCell`]: the record, the
//! version last written, and a turn lock that lets one handler of the
//! session run at a time (the application never sees the lock).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// An application session id: `<node>.<16 lowercase hex>`.
///
/// Shared, not copied: the session map's key, the cell, the record and
/// the Call-ID index of a session hold one allocation (a held call keeps
/// its id in five places).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SessionId, D::Error> {
        String::deserialize(d).map(|s| SessionId(s.into()))
    }
}

impl SessionId {
    /// A new id on `node` from 64 random bits.
    #[must_use]
    pub fn new(node: &str, random: u64) -> SessionId {
        let mut id = String::with_capacity(node.len() + 17);
        id.push_str(node);
        id.push('.');
        sip_proto::push_hex(&mut id, random, 16);
        SessionId(id.into())
    }

    /// Parses an id, checking its form (a token from a peer is untrusted).
    #[must_use]
    pub fn parse(s: &str) -> Option<SessionId> {
        let (node, hex) = s.split_once('.')?;
        let node_ok = !node.is_empty()
            && node.len() <= 32
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let hex_ok = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (node_ok && hex_ok).then(|| SessionId(s.into()))
    }

    /// The node that created the session.
    #[must_use]
    pub fn node(&self) -> &str {
        self.0.split_once('.').map_or("", |(n, _)| n)
    }

    /// The key of the session's record in the session store
    /// (`session:<id>`).
    #[must_use]
    pub fn store_key(&self) -> String {
        let mut k = String::with_capacity(8 + self.0.len());
        k.push_str("session:");
        k.push_str(&self.0);
        k
    }

    /// The id as text (the `sbt` token).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What this container is in a dialog of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DialogRole {
    /// A record-routing proxy on the path.
    Proxy,
    /// The UAS (the application answered the INVITE or SUBSCRIBE).
    Uas,
    /// The UAC (the application sent the request).
    Uac,
}

/// Where a dialog stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DialogState {
    /// A provisional with a To tag was seen.
    Early,
    /// A 2xx was seen.
    Confirmed,
    /// BYE answered, or the INVITE failed.
    Terminated,
}

/// One dialog (a SIP session in JSR 289 terms) of an application session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogRecord {
    /// Call-ID.
    pub call_id: String,
    /// From tag of the dialog-creating request.
    pub from_tag: String,
    /// To tag (empty until known).
    pub to_tag: String,
    /// Our role.
    pub role: DialogRole,
    /// Its state.
    pub state: DialogState,
    /// What a user agent needs to send requests in the dialog (a B2BUA
    /// leg); None for dialogs this container only proxies or answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua: Option<UaLeg>,
}

/// The user-agent state of one B2BUA leg (§12.1): enough to build a
/// request inside the dialog on any container that loads the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UaLeg {
    /// Our URI in the dialog (From of our requests).
    pub local_uri: String,
    /// The peer's URI (To of our requests).
    pub remote_uri: String,
    /// The peer's Contact: the Request-URI of our requests.
    pub remote_target: String,
    /// The route set, in the order of our requests' Route headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_set: Vec<String>,
    /// The CSeq number of our last request in the dialog.
    pub local_cseq: u32,
    /// The Call-ID of the linked leg (the other side of the B2BUA).
    pub link: Option<String>,
}

impl DialogRecord {
    fn matches(&self, call_id: &str, tag_a: &str, tag_b: &str) -> bool {
        self.call_id == call_id
            && ((self.from_tag == tag_a && self.to_tag == tag_b)
                || (self.from_tag == tag_b && self.to_tag == tag_a))
    }
}

/// An application timer stored with its session (JSR 289 ServletTimer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRecord {
    /// The timer's id within the session.
    pub id: String,
    /// When it fires (ms since the Unix epoch).
    pub due_unix_ms: u64,
    /// The period of a repeating timer.
    pub period_ms: Option<u64>,
    /// What the application attached.
    pub payload: serde_json::Value,
}

/// The stored form of an application session (JSON). Empty collections
/// and a false `invalidated` are left out (a held call's record is kept in
/// memory for the call's life) and read back as their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The id.
    pub id: SessionId,
    /// The application that owns it.
    pub app: String,
    /// Typed attributes (serde values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Its dialogs.
    pub dialogs: Vec<DialogRecord>,
    /// Its timers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<TimerRecord>,
    /// When it expires (ms since the Unix epoch).
    pub expires_unix_ms: u64,
    /// Invalidate it once it has no live dialog and no timer.
    pub invalidate_when_ready: bool,
    /// Invalidated: about to be removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invalidated: bool,
    /// The session key it was started by (`SipRouter::session_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SessionRecord {
    /// A fresh record.
    #[must_use]
    pub fn new(id: SessionId, app: &str, now_unix_ms: u64, lifetime: Duration) -> SessionRecord {
        SessionRecord {
            id,
            app: app.to_owned(),
            attributes: BTreeMap::new(),
            dialogs: Vec::new(),
            timers: Vec::new(),
            expires_unix_ms: now_unix_ms.saturating_add(millis(lifetime)),
            invalidate_when_ready: true,
            invalidated: false,
            key: None,
        }
    }

    /// No live dialog and no pending timer (JSR 289 §6.1.2.2.2 "ready to
    /// be invalidated").
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.timers.is_empty()
            && self
                .dialogs
                .iter()
                .all(|d| d.state == DialogState::Terminated)
    }

    /// The dialog with this Call-ID and these two tags (either order).
    #[must_use]
    pub fn dialog(&self, call_id: &str, a: &str, b: &str) -> Option<&DialogRecord> {
        self.dialogs.iter().find(|d| d.matches(call_id, a, b))
    }

    /// The dialog with this Call-ID and these two tags (either order),
    /// for changing it.
    pub fn dialog_mut(&mut self, call_id: &str, a: &str, b: &str) -> Option<&mut DialogRecord> {
        self.dialogs.iter_mut().find(|d| d.matches(call_id, a, b))
    }

    /// Records (or updates) a dialog.
    pub fn upsert_dialog(&mut self, d: DialogRecord) {
        if let Some(existing) = self.dialogs.iter_mut().find(|x| {
            x.call_id == d.call_id
                && x.from_tag == d.from_tag
                && (x.to_tag == d.to_tag || x.to_tag.is_empty())
        }) {
            *existing = d;
        } else {
            // Exact capacity: a session lives as long as its calls, and
            // the doubling growth of a Vec of these records left a held
            // B2BUA call with room for four.
            self.dialogs.reserve_exact(1);
            self.dialogs.push(d);
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The live state of one session in this container.
#[derive(Debug)]
pub(crate) struct SessionCell {
    pub(crate) id: SessionId,
    /// One handler at a time.
    pub(crate) turn: tokio::sync::Mutex<()>,
    /// One write to the store at a time: a relay waiting for the other
    /// leg's answer runs without the turn and writes what the answer
    /// changed, and two writes of one session must not race each other
    /// (both would expect the same version, and the second would see a
    /// conflict that is not one).
    pub(crate) writing: tokio::sync::Mutex<()>,
    /// Relays under way without the turn: the expiry sweep leaves a busy
    /// session alone.
    pub(crate) busy: std::sync::atomic::AtomicUsize,
    /// Requests of this session's user-agent dialogs without a final
    /// response yet (JSR 289 pending messages). Not stored: transactions
    /// live and die with the container that has them.
    pending: Mutex<Vec<Pending>>,
    pub(crate) data: Mutex<SessionData>,
}

/// Which side of a dialog's requests (JSR 289 `UAMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UaMode {
    /// Requests this container sent in the dialog.
    Uac,
    /// Requests this container received in the dialog.
    Uas,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    call_id: String,
    mode: UaMode,
    request: Arc<sip_message::SipMessage>,
    /// A received request is answered once its slot holds a final status.
    slot: Option<Arc<crate::request::TxSlot>>,
}

/// A request listed as pending while this lives.
#[must_use]
pub(crate) struct PendingGuard {
    cell: Arc<SessionCell>,
    seq: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut pending = self
            .cell
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| p.seq != self.seq);
        if pending.is_empty() {
            // A held call keeps its session for hours: no room for
            // requests that have been answered (four entries' worth,
            // 1.2 KiB, per call otherwise).
            *pending = Vec::new();
        }
    }
}

/// Counts a relay that runs without the turn while this lives.
pub(crate) struct BusyGuard(Arc<SessionCell>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0
            .busy
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub(crate) struct SessionData {
    pub(crate) record: SessionRecord,
    /// The version last read from or written to the store (0: never).
    pub(crate) version: u64,
    /// Changed since the last write.
    pub(crate) dirty: bool,
    /// Removed (invalidated, ready or expired): a relay that finishes
    /// later writes nothing.
    pub(crate) gone: bool,
    /// The timers (id, due) the store's timer index holds for this
    /// session, so a write adds and removes only what changed.
    pub(crate) synced_timers: Vec<(String, u64)>,
}

impl SessionCell {
    pub(crate) fn new(record: SessionRecord, version: u64) -> SessionCell {
        SessionCell {
            id: record.id.clone(),
            turn: tokio::sync::Mutex::new(()),
            writing: tokio::sync::Mutex::new(()),
            busy: std::sync::atomic::AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            data: Mutex::new(SessionData {
                synced_timers: if version > 0 {
                    record
                        .timers
                        .iter()
                        .map(|t| (t.id.clone(), t.due_unix_ms))
                        .collect()
                } else {
                    Vec::new()
                },
                record,
                version,
                dirty: version == 0,
                gone: false,
            }),
        }
    }

    /// Lists `request` as pending in the dialog `call_id` until the guard
    /// drops (a received request: also until `slot` holds a final status).
    pub(crate) fn pending(
        self: &Arc<Self>,
        call_id: &str,
        mode: UaMode,
        request: Arc<sip_message::SipMessage>,
        slot: Option<Arc<crate::request::TxSlot>>,
    ) -> PendingGuard {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Pending {
                seq,
                call_id: call_id.to_owned(),
                mode,
                request,
                slot,
            });
        PendingGuard {
            cell: Arc::clone(self),
            seq,
        }
    }

    /// The pending requests of the dialog `call_id` on one side, oldest
    /// first.
    pub(crate) fn pending_messages(
        &self,
        call_id: &str,
        mode: UaMode,
    ) -> Vec<sip_message::SipMessage> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| p.mode == mode && p.call_id == call_id)
            .filter(|p| p.slot.as_ref().is_none_or(|s| s.status().is_none()))
            .map(|p| sip_message::SipMessage::clone(&p.request))
            .collect()
    }

    /// Marks a relay running without the turn until the guard drops.
    pub(crate) fn busy(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        BusyGuard(Arc::clone(self))
    }

    /// Runs `f` on the data (a short critical section, never across an
    /// await).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut SessionData) -> R) -> R {
        let mut g = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }
}

/// What happened to an application session (JSR 289's
/// SipApplicationSessionListener and attribute listener events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A new session (an initial request, an HTTP request, a chain step).
    Created,
    /// Its lifetime ran out; it is removed next.
    Expired,
    /// It was removed (invalidated, ready, or expired).
    Destroyed,
    /// An attribute was set.
    AttributeSet(String),
    /// An attribute was removed.
    AttributeRemoved(String),
}

/// A session listener: called with the session id and the event, right
/// where it happens (keep it short; it must not block).
pub type SessionListener = dyn Fn(&SessionId, &SessionEvent) + Send + Sync;

/// A handler's view of its application session.
#[derive(Clone, Copy)]
pub struct AppSession<'a> {
    pub(crate) cell: &'a SessionCell,
    pub(crate) now_unix_ms: u64,
    pub(crate) listener: Option<&'a SessionListener>,
}

impl std::fmt::Debug for AppSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSession")
            .field("id", &self.cell.id)
            .finish_non_exhaustive()
    }
}

impl AppSession<'_> {
    /// The session id (also its affinity token).
    #[must_use]
    pub fn id(&self) -> &SessionId {
        &self.cell.id
    }

    /// Reads an attribute as `T`; `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, AppError> {
        self.cell.with(|d| {
            d.record
                .attributes
                .get(name)
                .map(|v| serde_json::from_value(v.clone()))
                .transpose()
                .map_err(|e| AppError::Build(format!("attribute {name}: {e}")))
        })
    }

    /// Sets an attribute (written to the store before the next message
    /// this session sends).
    pub fn set<T: Serialize>(&self, name: &str, value: &T) -> Result<(), AppError> {
        let v = serde_json::to_value(value)
            .map_err(|e| AppError::Build(format!("attribute {name}: {e}")))?;
        self.cell.with(|d| {
            d.record.attributes.insert(name.to_owned(), v);
            d.dirty = true;
        });
        if let Some(l) = self.listener {
            l(&self.cell.id, &SessionEvent::AttributeSet(name.to_owned()));
        }
        Ok(())
    }

    /// Removes an attribute.
    pub fn remove(&self, name: &str) {
        let removed = self.cell.with(|d| {
            let r = d.record.attributes.remove(name).is_some();
            d.dirty |= r;
            r
        });
        if removed && let Some(l) = self.listener {
            l(
                &self.cell.id,
                &SessionEvent::AttributeRemoved(name.to_owned()),
            );
        }
    }

    /// The attribute names.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.cell
            .with(|d| d.record.attributes.keys().cloned().collect())
    }

    /// Extends the session's life to `lifetime` from now
    /// (SipApplicationSession.setExpires).
    pub fn set_expires(&self, lifetime: Duration) {
        let at = self.now_unix_ms.saturating_add(millis(lifetime));
        self.cell.with(|d| {
            d.record.expires_unix_ms = at;
            d.dirty = true;
        });
    }

    /// When the session expires (ms since the Unix epoch).
    #[must_use]
    pub fn expires_unix_ms(&self) -> u64 {
        self.cell.with(|d| d.record.expires_unix_ms)
    }

    /// Invalidates the session now: it is removed once the handler returns.
    pub fn invalidate(&self) {
        self.cell.with(|d| {
            d.record.invalidated = true;
            d.dirty = true;
        });
    }

    /// Keep (false) or drop (true, the default) the session once it has no
    /// live dialog and no timer.
    pub fn set_invalidate_when_ready(&self, yes: bool) {
        self.cell.with(|d| {
            d.record.invalidate_when_ready = yes;
            d.dirty = true;
        });
    }

    /// The session's dialogs.
    #[must_use]
    pub fn dialogs(&self) -> Vec<DialogRecord> {
        self.cell.with(|d| d.record.dialogs.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_name_their_node() {
        let id = SessionId::new("c2", 0x5f3a_9b0c_11d2_e4f7);
        assert_eq!(id.as_str(), "c2.5f3a9b0c11d2e4f7");
        assert_eq!(id.node(), "c2");
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "c2",
            "c2.",
            "C2.5f3a9b0c11d2e4f7",
            "c2.5f3a9b0c11d2e4f",
            "c2.5f3a9b0c11d2e4fz",
            ".5f3a9b0c11d2e4f7",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn readiness_follows_dialogs_and_timers() {
        let mut r = SessionRecord::new(SessionId::new("c1", 1), "app", 0, Duration::from_secs(60));
        assert!(r.is_ready());
        r.upsert_dialog(DialogRecord {
            call_id: "x".into(),
            from_tag: "a".into(),
            to_tag: String::new(),
            role: DialogRole::Proxy,
            state: DialogState::Early,
            ua: None,
        });
        assert!(!r.is_ready());
        r.upsert_dialog(DialogRecord {
            call_id: "x".into(),
            from_tag: "a".into(),
            to_tag: "b".into(),
            role: DialogRole::Proxy,
            state: DialogState::Confirmed,
            ua: None,
        });
        assert_eq!(r.dialogs.len(), 1);
        r.dialog_mut("x", "b", "a").unwrap().state = DialogState::Terminated;
        assert!(r.is_ready());
    }

    #[test]
    fn records_round_trip_through_json() {
        let mut r = SessionRecord::new(
            SessionId::new("c1", 7),
            "app",
            1000,
            Duration::from_secs(60),
        );
        r.attributes.insert("n".into(), serde_json::json!(3));
        let bytes = serde_json::to_vec(&r).unwrap();
        let back: SessionRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn empty_fields_are_left_out_and_read_back_as_defaults() {
        let mut r = SessionRecord::new(SessionId::new("c1", 7), "app", 0, Duration::ZERO);
        r.upsert_dialog(DialogRecord {
            call_id: "x".into(),
            from_tag: "a".into(),
            to_tag: "b".into(),
            role: DialogRole::Uac,
            state: DialogState::Confirmed,
            ua: Some(UaLeg {
                local_uri: "sip:a@h".into(),
                remote_uri: "sip:b@h".into(),
                remote_target: "sip:b@10.0.0.1".into(),
                route_set: Vec::new(),
                local_cseq: 1,
                link: None,
            }),
        });
        let json = serde_json::to_string(&r).unwrap();
        for absent in ["attributes", "timers", "invalidated", "route_set"] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
        assert_eq!(serde_json::from_str::<SessionRecord>(&json).unwrap(), r);
        // A record written with every field (before they were left out)
        // still reads.
        let full = json
            .replacen(
                "\"dialogs\"",
                "\"attributes\":{},\"timers\":[],\"invalidated\":false,\"dialogs\"",
                1,
            )
            .replacen("\"local_cseq\"", "\"route_set\":[],\"local_cseq\"", 1);
        assert_eq!(serde_json::from_str::<SessionRecord>(&full).unwrap(), r);
    }
}
