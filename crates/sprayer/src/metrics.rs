//! Prometheus text exposition of the sprayer's counters.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::ServiceStats;
use crate::edges::Edge;

/// Writes the text for these edges and services.
pub(crate) fn render(
    edges: &[std::sync::Arc<Edge>],
    services: &[(String, std::sync::Arc<ServiceStats>)],
) -> String {
    let mut out = String::with_capacity(4096);
    type EdgeGet = fn(&Edge) -> u64;
    let edge_metrics: [(&str, &str, &str, &str, EdgeGet); 12] = [
        (
            "sprayer_edge_up",
            "gauge",
            "1 when the edge passes its health checks",
            "",
            |e| u64::from(e.is_up()),
        ),
        (
            "sprayer_edge_health_failures_total",
            "counter",
            "Failed health checks",
            "",
            |e| load(&e.stats.probe_failures),
        ),
        (
            "sprayer_edge_health_transitions_total",
            "counter",
            "Up/down flips",
            "",
            |e| load(&e.stats.transitions),
        ),
        (
            "sprayer_edge_packets_total",
            "counter",
            "UDP datagrams relayed",
            "proto=\"udp\",direction=\"to_edge\"",
            |e| load(&e.stats.udp_to_edge_packets),
        ),
        (
            "sprayer_edge_packets_total",
            "",
            "",
            "proto=\"udp\",direction=\"to_client\"",
            |e| load(&e.stats.udp_to_client_packets),
        ),
        (
            "sprayer_edge_bytes_total",
            "counter",
            "Payload bytes relayed",
            "proto=\"udp\",direction=\"to_edge\"",
            |e| load(&e.stats.udp_to_edge_bytes),
        ),
        (
            "sprayer_edge_bytes_total",
            "",
            "",
            "proto=\"udp\",direction=\"to_client\"",
            |e| load(&e.stats.udp_to_client_bytes),
        ),
        (
            "sprayer_edge_bytes_total",
            "",
            "",
            "proto=\"tcp\",direction=\"to_edge\"",
            |e| load(&e.stats.tcp_to_edge_bytes),
        ),
        (
            "sprayer_edge_bytes_total",
            "",
            "",
            "proto=\"tcp\",direction=\"to_client\"",
            |e| load(&e.stats.tcp_to_client_bytes),
        ),
        (
            "sprayer_edge_udp_send_errors_total",
            "counter",
            "UDP sends that failed",
            "",
            |e| load(&e.stats.udp_send_errors),
        ),
        (
            "sprayer_edge_tcp_connections_total",
            "counter",
            "TCP connections proxied",
            "",
            |e| load(&e.stats.tcp_connections),
        ),
        (
            "sprayer_edge_tcp_connect_failures_total",
            "counter",
            "TCP connects to the edge that failed or timed out",
            "",
            |e| load(&e.stats.tcp_connect_failures),
        ),
    ];
    for (name, kind, help, extra, get) in edge_metrics {
        header(&mut out, name, kind, help);
        for e in edges {
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(
                out,
                "{name}{{edge=\"{}\"{sep}{extra}}} {}",
                escape(&e.spec.name),
                get(e)
            );
        }
    }
    header(
        &mut out,
        "sprayer_edge_tcp_active",
        "gauge",
        "Open TCP connections",
    );
    for e in edges {
        let _ = writeln!(
            out,
            "sprayer_edge_tcp_active{{edge=\"{}\"}} {}",
            escape(&e.spec.name),
            load(&e.stats.tcp_active)
        );
    }

    type SvcGet = fn(&ServiceStats) -> u64;
    let svc_metrics: [(&str, &str, &str, SvcGet); 7] = [
        (
            "sprayer_udp_flows",
            "gauge",
            "UDP flows in the flow table",
            |s| load(&s.flows),
        ),
        (
            "sprayer_udp_flows_created_total",
            "counter",
            "UDP flows created",
            |s| load(&s.flows_created),
        ),
        (
            "sprayer_udp_flows_expired_total",
            "counter",
            "UDP flows forgotten after the idle timeout",
            |s| load(&s.flows_expired),
        ),
        (
            "sprayer_udp_flows_evicted_total",
            "counter",
            "UDP flows evicted because the table was full",
            |s| load(&s.flows_evicted),
        ),
        (
            "sprayer_udp_flows_moved_total",
            "counter",
            "UDP flows re-targeted off an edge that went down",
            |s| load(&s.flows_moved),
        ),
        (
            "sprayer_tcp_accepted_total",
            "counter",
            "TCP connections accepted",
            |s| load(&s.tcp_accepted),
        ),
        (
            "sprayer_dropped_total",
            "counter",
            "Datagrams and connections dropped: no edge could take them",
            |s| load(&s.dropped_no_edge),
        ),
    ];
    for (name, kind, help, get) in svc_metrics {
        header(&mut out, name, kind, help);
        for (svc, s) in services {
            let _ = writeln!(out, "{name}{{service=\"{}\"}} {}", escape(svc), get(s));
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    if kind.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}.");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Label value escaping (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
