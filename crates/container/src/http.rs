//! The container's HTTP port: `/_sb/health` and `/_sb/metrics`
//! (docs/CLUSTER.md), and every other path to the applications' HTTP
//! routes (converged HTTP, `sip_app::Engine::serve_http`); 404 when none
//! matches, 413 for a body over 1 MiB.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use sip_app::Engine;

pub(crate) async fn serve(listener: tokio::net::TcpListener, engine: Engine) {
    let app = Router::new()
        .route("/_sb/health", get(health))
        .route("/_sb/metrics", get(metrics))
        .fallback(applications)
        .with_state(engine);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// The largest request body an application gets.
const MAX_BODY: usize = 1 << 20;

async fn applications(
    State(engine): State<Engine>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body over 1 MiB\n",
        )
            .into_response();
    };
    match engine
        .serve_http(axum::http::Request::from_parts(parts, bytes))
        .await
    {
        Some(r) => r.map(axum::body::Body::from).into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "no application serves this path\n",
        )
            .into_response(),
    }
}

/// What the process's allocator holds, for `/_sb/metrics`: the heap is
/// the memory a held call costs (docs/BENCHMARKS.md), and the gap between
/// `allocated` and `resident` tells live data from fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in pages that hold at least one live allocation.
    pub active: u64,
    /// Bytes of the allocator's pages resident in memory.
    pub resident: u64,
    /// Bytes the allocator has mapped.
    pub mapped: u64,
}

static HEAP: OnceLock<fn() -> Option<HeapStats>> = OnceLock::new();

/// Lets `/_sb/metrics` report the heap: the binary that chose the global
/// allocator says how to read it (`switchboard` reads jemalloc's
/// statistics). The first call wins.
pub fn report_heap(read: fn() -> Option<HeapStats>) {
    let _ = HEAP.set(read);
}

async fn health() -> &'static str {
    "ok"
}

async fn metrics(State(engine): State<Engine>) -> impl IntoResponse {
    let s = engine.stats();
    let node = engine.node();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {v}\n"
        );
    };
    counter(
        "sb_container_requests_total",
        "SIP requests received.",
        s.requests.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_acks_total",
        "Calls answered here and confirmed (the first ACK for each 2xx sent).",
        s.acks.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_sessions_created_total",
        "Application sessions created.",
        s.sessions_created.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_sessions_removed_total",
        "Application sessions removed.",
        s.sessions_removed.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_sessions_loaded_total",
        "Application sessions taken over from the store.",
        s.sessions_loaded.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_default_answers_total",
        "Requests the container answered for the application.",
        s.default_answers.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_store_errors_total",
        "Session store failures.",
        s.store_errors.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_store_conflicts_total",
        "Session writes that lost a compare-and-set race to another container.",
        s.store_conflicts.load(Ordering::Relaxed),
    );
    counter(
        "sb_container_http_requests_total",
        "HTTP requests served by applications.",
        s.http_requests.load(Ordering::Relaxed),
    );
    let _ = write!(
        out,
        "# HELP sb_container_sessions Live application sessions.\n# TYPE sb_container_sessions gauge\nsb_container_sessions{{node=\"{node}\"}} {}\n",
        engine.live_sessions()
    );
    if let Some(h) = HEAP.get().and_then(|read| read()) {
        for (name, help, v) in [
            ("allocated", "Bytes in live heap allocations.", h.allocated),
            (
                "active",
                "Bytes in heap pages with a live allocation.",
                h.active,
            ),
            (
                "resident",
                "Bytes of heap pages resident in memory.",
                h.resident,
            ),
            ("mapped", "Bytes the heap has mapped.", h.mapped),
        ] {
            let _ = write!(
                out,
                "# HELP sb_heap_{name}_bytes {help}\n# TYPE sb_heap_{name}_bytes gauge\nsb_heap_{name}_bytes{{node=\"{node}\"}} {v}\n"
            );
        }
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
