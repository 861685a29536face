//! Cluster membership from the session store (`members` in the config).
//!
//! Containers announce themselves in the store with a TTL
//! ([`SessionStore::announce`]); this task polls
//! [`SessionStore::members`] every `members_interval_ms` and reconciles the
//! cluster view with the answer, through the same [`balance::Cluster`]
//! calls as the admin API: an announced node the view lacks is added (weight
//! 1, state up, then probed like any other), a membership container no
//! longer announced is removed (its sessions fail over by rendezvous, as a
//! dead one's do), and changed addresses are updated in place (health,
//! draining and counters kept). Containers from the config file or the admin
//! API are never touched: a node announced under one of their names is
//! ignored.
//!
//! A store that cannot be reached changes nothing: the edge keeps the last
//! list it had, warns once per outage, and counts the failed polls. When it
//! answers again, and when it answers "no members at all" while the edge
//! holds membership containers (a Redis that restarted without its data,
//! before the containers re-announced), the edge adds and updates but
//! removes nothing for a settling window ([`settle_window`]: three poll
//! intervals, at least [`SETTLE_MIN`]), so the containers have time to
//! announce themselves again. A blink of the store never empties the
//! cluster; an empty answer that lasts past the window is believed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use session_store::{Member, SessionStore, Store, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::config::{ContainerConfig, is_node_id};
use crate::container::{Container, Origin};
use crate::http::backend_of;
use crate::metrics::inc;

/// The shortest settling window after a store outage or an empty answer
/// (containers announce every second).
pub const SETTLE_MIN: Duration = Duration::from_secs(2);

/// How long removals wait after a store outage ends or an empty answer
/// arrives: three poll intervals, at least [`SETTLE_MIN`].
#[must_use]
pub fn settle_window(interval: Duration) -> Duration {
    interval.saturating_mul(3).max(SETTLE_MIN)
}

/// Where the members come from.
pub(crate) enum Source {
    /// A store URL, opened (and re-opened until it works) by the task.
    Url(String),
    /// A store given by the caller (tests, an embedding program).
    Store(Store),
}

/// What the poller remembers between polls.
#[derive(Default)]
struct PollState {
    /// The store is failing: warned already, say when it is back.
    outage: bool,
    /// The last answer was empty while membership containers were held.
    empty: bool,
    /// Removals wait until then (settling after an outage or an empty
    /// answer).
    hold_until: Option<Instant>,
    /// The settling window.
    settle: Duration,
    /// Announcements already warned about as unusable (node, sip, http).
    warned: HashSet<(String, String, String)>,
}

/// The URL without its credentials, for logs.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (hosts, tail) = rest
                .split_once(['/', '?'])
                .map_or((rest, ""), |(h, _)| (h, &rest[h.len()..]));
            match hosts.rsplit_once('@') {
                Some((_, hosts)) => format!("{scheme}://***@{hosts}{tail}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// Polls the store every `interval` until the edge stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    source: Source,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (mut store, url) = match source {
        Source::Store(s) => (Some(s), None),
        Source::Url(u) => (None, Some(u)),
    };
    let mut state = PollState {
        settle: settle_window(interval),
        ..PollState::default()
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        inc(&shared.counters.members_polls);
        let answer = tokio::select! {
            a = poll(&mut store, url.as_deref()) => a,
            _ = stop.changed() => return,
        };
        match answer {
            Ok(list) => {
                if state.outage {
                    state.outage = false;
                    state.hold_until = Some(Instant::now() + state.settle);
                    info!(
                        settle = ?state.settle,
                        "membership store reachable again; removals wait for the containers to re-announce"
                    );
                }
                reconcile(&shared, &list, &mut state);
            }
            Err(e) => {
                inc(&shared.counters.members_errors);
                if !state.outage {
                    state.outage = true;
                    warn!(
                        error = %e,
                        "membership store unreachable; keeping the last known containers"
                    );
                } else {
                    debug!(error = %e, "membership poll failed");
                }
            }
        }
    }
}

/// One poll: opens the store when it is not open yet, then lists members.
async fn poll(store: &mut Option<Store>, url: Option<&str>) -> Result<Vec<Member>, StoreError> {
    if store.is_none()
        && let Some(url) = url
    {
        let opened = Store::open(url).await?;
        info!(store = %redacted(url), kind = opened.kind(), "membership store open");
        *store = Some(opened);
    }
    match store {
        Some(s) => s.members().await,
        None => Err(StoreError::Config("no membership store".into())),
    }
}

/// An announcement as a container, or why it cannot be one.
fn container_of(m: &Member) -> Result<ContainerConfig, &'static str> {
    if !is_node_id(&m.node) {
        return Err("node is not a node id ([a-z0-9-]{1,32})");
    }
    let usable = |a: &SocketAddr| !a.ip().is_unspecified() && a.port() != 0;
    let sip: SocketAddr = m
        .sip
        .parse()
        .ok()
        .filter(usable)
        .ok_or("sip is not an IP address and port the edge can send to")?;
    let http = if m.http.is_empty() {
        None
    } else {
        Some(
            m.http
                .parse::<SocketAddr>()
                .ok()
                .filter(usable)
                .ok_or("http is not an IP address and port the edge can connect to")?,
        )
    };
    Ok(ContainerConfig {
        node: m.node.clone(),
        sip,
        http,
        weight: 1,
    })
}

/// Brings the view in line with the announced members.
fn reconcile(shared: &Shared, list: &[Member], state: &mut PollState) {
    let mut announced: Vec<ContainerConfig> = Vec::with_capacity(list.len());
    let mut seen: HashSet<(String, String, String)> = HashSet::new();
    for m in list {
        let key = (m.node.clone(), m.sip.clone(), m.http.clone());
        match container_of(m) {
            Ok(c) => announced.push(c),
            Err(why) => {
                if !state.warned.contains(&key) {
                    warn!(node = %m.node, sip = %m.sip, http = %m.http, why, "announcement ignored");
                }
                seen.insert(key);
            }
        }
    }
    state.warned = seen;
    shared
        .counters
        .members_announced
        .store(announced.len() as u64, Ordering::Relaxed);

    let view = shared.cluster.view();
    let ours = |m: &&balance::Member<Container>| m.data.origin == Origin::Membership;
    let held = view.members().iter().filter(ours).count();
    let now = Instant::now();
    if announced.is_empty() && held > 0 {
        if !state.empty {
            state.empty = true;
            state.hold_until = Some(now + state.settle);
            warn!(
                held,
                settle = ?state.settle,
                "membership store lists no containers; keeping ours for the settling window"
            );
        }
    } else {
        state.empty = false;
    }
    let removing = state.hold_until.is_none_or(|t| now >= t);
    if removing {
        state.hold_until = None;
    }

    let gone = view
        .members()
        .iter()
        .filter(ours)
        .filter(|m| removing && !announced.iter().any(|a| a.node == m.backend.id));
    for m in gone {
        if shared.cluster.remove(&m.backend.id).is_ok() {
            info!(node = %m.backend.id, "container left: no longer announced");
        }
    }
    let mut changed = Vec::new();
    for a in announced {
        match view.get(&a.node) {
            None => {
                let node = a.node.clone();
                let added = shared.cluster.add(
                    backend_of(&a),
                    Container {
                        config: a,
                        counters: Arc::default(),
                        origin: Origin::Membership,
                    },
                );
                match added {
                    Ok(()) => info!(node = %node, "container joined: announced"),
                    // Added by the admin API since the view was read: it
                    // wins, as a static one does.
                    Err(e) => debug!(node = %node, error = %e, "announced container not added"),
                }
            }
            Some(m) if m.data.origin == Origin::Membership && m.data.config != a => {
                info!(node = %a.node, sip = %a.sip, http = ?a.http, "container moved: addresses updated");
                changed.push(a);
            }
            // Unchanged, or a static / admin container of that name.
            Some(_) => {}
        }
    }
    if !changed.is_empty() {
        shared.update_containers(changed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn member(node: &str, sip: &str, http: &str) -> Member {
        Member {
            node: node.into(),
            sip: sip.into(),
            http: http.into(),
        }
    }

    #[test]
    fn announcements_become_containers() {
        let c = container_of(&member("c1", "127.0.0.1:5080", "127.0.0.1:8090")).unwrap();
        assert_eq!(c.sip, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(c.http, Some("127.0.0.1:8090".parse().unwrap()));
        assert_eq!(c.weight, 1);
        let c = container_of(&member("c1", "[::1]:5080", "")).unwrap();
        assert_eq!(c.http, None);
        assert!(container_of(&member("C1", "127.0.0.1:5080", "")).is_err());
        assert!(container_of(&member("c1", "host:5080", "")).is_err());
        assert!(container_of(&member("c1", "0.0.0.0:5080", "")).is_err());
        assert!(container_of(&member("c1", "127.0.0.1:0", "")).is_err());
        assert!(container_of(&member("c1", "127.0.0.1:5080", "x")).is_err());
    }

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            redacted("redis://u:secret@10.0.0.1:6379/0?timeout_ms=5"),
            "redis://***@10.0.0.1:6379/0?timeout_ms=5"
        );
        assert_eq!(
            redacted("redis-cluster://:pw@h1:1,h2:2"),
            "redis-cluster://***@h1:1,h2:2"
        );
        assert_eq!(redacted("redis://h:1"), "redis://h:1");
        assert_eq!(redacted("memory"), "memory");
    }
}
