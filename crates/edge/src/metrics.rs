//! Counters and the Prometheus text exposition of `GET /_sb/metrics`.
//!
//! Hand-written text format (version 0.0.4): every container's state and
//! counters are present from the first scrape, zeros included.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use balance::ClusterView;

use crate::container::Container;
use crate::forward::DropReason;

/// Edge-wide counters (per container counters live in
/// [`crate::ContainerCounters`]).
#[derive(Debug, Default)]
pub struct EdgeCounters {
    /// SIP messages received on any transport.
    pub sip_received: AtomicU64,
    /// Messages dropped, all reasons together (by reason:
    /// [`EdgeCounters::dropped`]).
    pub sip_dropped: AtomicU64,
    /// Messages dropped, by [`DropReason::index`].
    dropped_by: [AtomicU64; DropReason::ALL.len()],
    /// Messages dropped because their source was over its admission limit
    /// (`[limits] per_source_rps`); not in `sip_dropped`.
    pub sip_throttled: AtomicU64,
    /// Sources in the admission table (a gauge).
    pub sources_tracked: AtomicU64,
    /// Responses the edge answered itself, by status: 400 (bad request).
    pub replied_400: AtomicU64,
    /// ... 482 (loop detected).
    pub replied_482: AtomicU64,
    /// ... 483 (too many hops).
    pub replied_483: AtomicU64,
    /// ... 503 (no container available).
    pub replied_503: AtomicU64,
    /// Requests sent to the outside (from containers).
    pub sip_to_outside: AtomicU64,
    /// Sends that failed (transport errors, names that did not resolve).
    pub send_errors: AtomicU64,
    /// HTTP requests proxied.
    pub http_proxied: AtomicU64,
    /// HTTP requests answered 502/503 by the edge (no container, container
    /// failed).
    pub http_errors: AtomicU64,
    /// Polls of the membership store (`members`), failed ones included.
    pub members_polls: AtomicU64,
    /// Membership polls that failed (store unreachable, timeout, error).
    pub members_errors: AtomicU64,
    /// Usable announcements in the last successful membership poll (a
    /// gauge).
    pub members_announced: AtomicU64,
}

impl EdgeCounters {
    /// Messages dropped for `reason`.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_by.get(reason.index()).map_or(0, get)
    }

    /// Counts one message dropped for `reason`.
    pub(crate) fn count_drop(&self, reason: DropReason) {
        inc(&self.sip_dropped);
        if let Some(c) = self.dropped_by.get(reason.index()) {
            inc(c);
        }
    }
}

/// Adds one to a counter.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Renders the exposition text.
pub(crate) fn render(
    edge_node: &str,
    counters: &EdgeCounters,
    view: &ClusterView<Container>,
    now: Instant,
) -> String {
    let mut s = String::with_capacity(4096);
    let family = |s: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
    };
    family(&mut s, "sb_edge_info", "gauge", "This edge's node id.");
    let _ = writeln!(s, "sb_edge_info{{edge=\"{edge_node}\"}} 1");

    let edge_wide: [(&str, &str, &AtomicU64, Option<&str>); 11] = [
        (
            "sb_edge_sip_received_total",
            "SIP messages received.",
            &counters.sip_received,
            None,
        ),
        (
            "sb_edge_sip_replies_total",
            "Responses the edge answered itself, by status.",
            &counters.replied_400,
            Some("400"),
        ),
        (
            "sb_edge_sip_replies_total",
            "",
            &counters.replied_482,
            Some("482"),
        ),
        (
            "sb_edge_sip_replies_total",
            "",
            &counters.replied_483,
            Some("483"),
        ),
        (
            "sb_edge_sip_replies_total",
            "",
            &counters.replied_503,
            Some("503"),
        ),
        (
            "sb_edge_sip_to_outside_total",
            "Requests forwarded from containers to the outside.",
            &counters.sip_to_outside,
            None,
        ),
        (
            "sb_edge_send_errors_total",
            "Sends that failed.",
            &counters.send_errors,
            None,
        ),
        (
            "sb_edge_http_proxied_total",
            "HTTP requests proxied to containers.",
            &counters.http_proxied,
            None,
        ),
        (
            "sb_edge_http_errors_total",
            "HTTP requests the edge answered 502 or 503.",
            &counters.http_errors,
            None,
        ),
        (
            "sb_edge_members_polls_total",
            "Polls of the membership store, failed ones included.",
            &counters.members_polls,
            None,
        ),
        (
            "sb_edge_members_errors_total",
            "Membership polls that failed (the last known containers were kept).",
            &counters.members_errors,
            None,
        ),
    ];
    for (name, help, c, status) in edge_wide {
        if !help.is_empty() {
            family(&mut s, name, "counter", help);
        }
        match status {
            Some(code) => {
                let _ = writeln!(s, "{name}{{status=\"{code}\"}} {}", get(c));
            }
            None => {
                let _ = writeln!(s, "{name} {}", get(c));
            }
        }
    }

    family(
        &mut s,
        "sb_edge_sip_dropped_total",
        "counter",
        "SIP messages dropped, by reason (not SIP, too large, malformed, unroutable, ...).",
    );
    for reason in DropReason::ALL {
        let _ = writeln!(
            s,
            "sb_edge_sip_dropped_total{{reason=\"{}\"}} {}",
            reason.label(),
            counters.dropped(reason)
        );
    }
    family(
        &mut s,
        "sb_edge_sip_throttled_total",
        "counter",
        "SIP messages dropped because their source was over its admission limit.",
    );
    let _ = writeln!(
        s,
        "sb_edge_sip_throttled_total {}",
        get(&counters.sip_throttled)
    );
    family(
        &mut s,
        "sb_edge_sip_sources_tracked",
        "gauge",
        "Sources in the per-source admission table.",
    );
    let _ = writeln!(
        s,
        "sb_edge_sip_sources_tracked {}",
        get(&counters.sources_tracked)
    );

    family(
        &mut s,
        "sb_edge_members_announced",
        "gauge",
        "Usable announcements in the last successful membership poll.",
    );
    let _ = writeln!(
        s,
        "sb_edge_members_announced {}",
        get(&counters.members_announced)
    );

    family(
        &mut s,
        "sb_edge_container_source",
        "gauge",
        "1 for where the container came from (config, admin, membership).",
    );
    for m in view.members() {
        let _ = writeln!(
            s,
            "sb_edge_container_source{{node=\"{}\",source=\"{}\"}} 1",
            m.backend.id,
            m.data.origin.name()
        );
    }

    family(
        &mut s,
        "sb_edge_container_state",
        "gauge",
        "1 for the container's current state (up, down, draining, overloaded).",
    );
    for m in view.members() {
        let current = m.state.name(now);
        for state in ["up", "down", "draining", "overloaded"] {
            let v = u8::from(state == current);
            let _ = writeln!(
                s,
                "sb_edge_container_state{{node=\"{}\",state=\"{state}\"}} {v}",
                m.backend.id
            );
        }
    }
    family(
        &mut s,
        "sb_edge_container_weight",
        "gauge",
        "The container's rendezvous weight.",
    );
    for m in view.members() {
        let _ = writeln!(
            s,
            "sb_edge_container_weight{{node=\"{}\"}} {}",
            m.backend.id, m.backend.weight
        );
    }
    type Pick = fn(&crate::ContainerCounters) -> &AtomicU64;
    let per_container: [(&str, &str, &str, Pick); 9] = [
        (
            "sb_edge_container_sip_messages_total",
            "direction=\"in\"",
            "SIP messages forwarded to (in) and from (out) the container: requests and responses.",
            |c| &c.sip_in,
        ),
        (
            "sb_edge_container_sip_messages_total",
            "direction=\"out\"",
            "",
            |c| &c.sip_out,
        ),
        (
            "sb_edge_container_sip_responses_total",
            "",
            "Responses from the container forwarded to the outside.",
            |c| &c.responses,
        ),
        (
            "sb_edge_container_failovers_total",
            "",
            "Messages of a down or unknown container's sessions sent to this one instead.",
            |c| &c.failovers,
        ),
        (
            "sb_edge_container_probes_total",
            "result=\"ok\"",
            "Active probe results.",
            |c| &c.probes_ok,
        ),
        (
            "sb_edge_container_probes_total",
            "result=\"failed\"",
            "",
            |c| &c.probes_failed,
        ),
        (
            "sb_edge_container_transport_errors_total",
            "",
            "Sends to the container that failed.",
            |c| &c.transport_errors,
        ),
        (
            "sb_edge_container_overloads_total",
            "",
            "503 responses with Retry-After from the container.",
            |c| &c.overloads,
        ),
        (
            "sb_edge_container_http_requests_total",
            "",
            "HTTP requests proxied to the container.",
            |c| &c.http_requests,
        ),
    ];
    for (name, label, help, pick) in per_container {
        if !help.is_empty() {
            family(&mut s, name, "counter", help);
        }
        for m in view.members() {
            let sep = if label.is_empty() { "" } else { "," };
            let _ = writeln!(
                s,
                "{name}{{node=\"{}\"{sep}{label}}} {}",
                m.backend.id,
                get(pick(&m.data.counters))
            );
        }
    }
    s
}
