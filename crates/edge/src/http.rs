//! The HTTP side: the reverse proxy to the containers and the edge's own
//! routes under the reserved `/_sb/` prefix (CLUSTER.md).
//!
//! * `GET /_sb/health`: 200 `ok`.
//! * `GET /_sb/metrics`: Prometheus text.
//! * `GET /_sb/admin/containers`: the containers and their states (JSON).
//! * `POST /_sb/admin/containers`: add one (`{"node","sip","http","weight"}`).
//! * `POST /_sb/admin/containers/{node}/drain`: drain (no new sessions);
//!   `DELETE` on the same path undrains.
//! * `DELETE /_sb/admin/containers/{node}`: remove.
//! * `POST /_sb/admin/reload`: re-read the config file's container list.
//!
//! The admin routes answer only clients on a loopback address (403
//! otherwise): the HTTP port is public.
//!
//! Everything else is proxied: to the container of the `SBSESSION` cookie's
//! token, else of the `sbt` query parameter's, else by rendezvous of the
//! client's IP address over the containers that take new sessions; a
//! container that is down fails over by rendezvous of the token, and a
//! connection failure moves a body-less request to the next container.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use balance::{Backend, Member, MembershipError, Signal};
use tracing::{debug, info, warn};

use crate::Shared;
use crate::config::{ContainerConfig, EdgeConfig, FileContainer};
use crate::container::{Container, Origin};
use crate::metrics::inc;

/// The router of the edge's HTTP port.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sb/health", get(|| async { "ok" }))
        .route("/_sb/metrics", get(metrics))
        .route("/_sb/admin/containers", get(list).post(add))
        .route(
            "/_sb/admin/containers/{node}",
            axum::routing::delete(remove),
        )
        .route(
            "/_sb/admin/containers/{node}/drain",
            post(drain).delete(undrain),
        )
        .route("/_sb/admin/reload", post(reload))
        .fallback(proxy)
        .with_state(shared)
}

type Shared_ = State<Arc<Shared>>;

async fn metrics(State(shared): Shared_) -> impl IntoResponse {
    let body = crate::metrics::render(
        &shared.config.node,
        &shared.counters,
        &shared.cluster.view(),
        shared.now(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

fn admin_allowed(client: SocketAddr) -> Result<(), (StatusCode, &'static str)> {
    if client.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "admin API is loopback only\n"))
    }
}

#[derive(serde::Serialize)]
struct ContainerView<'a> {
    node: &'a str,
    sip: SocketAddr,
    http: Option<SocketAddr>,
    weight: u32,
    state: &'static str,
}

async fn list(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Response<Body> {
    if let Err(e) = admin_allowed(client) {
        return e.into_response();
    }
    let view = shared.cluster.view();
    let now = shared.now();
    let list: Vec<ContainerView<'_>> = view
        .members()
        .iter()
        .map(|m| ContainerView {
            node: &m.backend.id,
            sip: m.data.config.sip,
            http: m.data.config.http,
            weight: m.backend.weight,
            state: m.state.name(now),
        })
        .collect();
    axum::Json(list).into_response()
}

fn membership_error(e: &MembershipError) -> Response<Body> {
    let status = match e {
        MembershipError::Duplicate(_) => StatusCode::CONFLICT,
        _ => StatusCode::NOT_FOUND,
    };
    (status, format!("{e}\n")).into_response()
}

async fn add(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response<Body> {
    if let Err(e) = admin_allowed(client) {
        return e.into_response();
    }
    let entry: FileContainer = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("bad container JSON: {e}\n"),
            )
                .into_response();
        }
    };
    let config = match entry.validate(|field, m| format!("field {field}: {m}\n")) {
        Ok(c) => c,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    let node = config.node.clone();
    match shared.cluster.add(
        backend_of(&config),
        Container {
            config,
            counters: Arc::default(),
            origin: Origin::Admin,
        },
    ) {
        Ok(()) => {
            info!(node = %node, "container added");
            (StatusCode::CREATED, "added\n").into_response()
        }
        Err(e) => membership_error(&e),
    }
}

async fn remove(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(node): Path<String>,
) -> Response<Body> {
    if let Err(e) = admin_allowed(client) {
        return e.into_response();
    }
    match shared.cluster.remove(&node) {
        Ok(()) => {
            info!(node = %node, "container removed");
            (StatusCode::OK, "removed\n").into_response()
        }
        Err(e) => membership_error(&e),
    }
}

async fn set_draining(
    shared: &Shared,
    client: SocketAddr,
    node: &str,
    draining: bool,
) -> Response<Body> {
    if let Err(e) = admin_allowed(client) {
        return e.into_response();
    }
    match shared.cluster.set_draining(node, draining) {
        Ok(()) => {
            info!(node = %node, draining, "container drain changed");
            (
                StatusCode::OK,
                if draining {
                    "draining\n"
                } else {
                    "undrained\n"
                },
            )
                .into_response()
        }
        Err(e) => membership_error(&e),
    }
}

async fn drain(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(node): Path<String>,
) -> Response<Body> {
    set_draining(&shared, client, &node, true).await
}

async fn undrain(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(node): Path<String>,
) -> Response<Body> {
    set_draining(&shared, client, &node, false).await
}

async fn reload(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Response<Body> {
    if let Err(e) = admin_allowed(client) {
        return e.into_response();
    }
    let Some(path) = shared.config.source.clone() else {
        return (
            StatusCode::CONFLICT,
            "this edge was not started from a config file\n",
        )
            .into_response();
    };
    let read = tokio::task::spawn_blocking(move || EdgeConfig::reload_containers(&path)).await;
    let containers = match read {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    shared.replace_containers(containers);
    info!("containers reloaded");
    (StatusCode::OK, "reloaded\n").into_response()
}

/// The rendezvous backend of a container.
pub(crate) fn backend_of(c: &ContainerConfig) -> Backend {
    Backend::new(c.node.clone(), c.weight)
}

// ---- the reverse proxy ------------------------------------------------------

/// The affinity token of an HTTP request: the `SBSESSION` cookie, else the
/// `sbt` query parameter.
fn token_of(req: &Request<Body>) -> Option<String> {
    for value in req.headers().get_all(header::COOKIE) {
        let Ok(v) = value.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((name, val)) = pair.trim().split_once('=')
                && name == "SBSESSION"
                && !val.is_empty()
            {
                return Some(val.trim_matches('"').to_owned());
            }
        }
    }
    let query = req.uri().query()?;
    query.split('&').find_map(|pair| {
        let (name, val) = pair.split_once('=')?;
        (name == "sbt" && !val.is_empty()).then(|| val.to_owned())
    })
}

/// Containers to try, in order: the token's owner (if it takes its
/// sessions' traffic), then the rendezvous order of the token (or of the
/// client address) over containers that take new sessions. Only containers
/// with an HTTP address.
fn candidates<'v>(
    view: &'v balance::ClusterView<Container>,
    token: Option<&str>,
    client: SocketAddr,
    now: std::time::Instant,
) -> (Vec<&'v Member<Container>>, bool) {
    let has_http = |m: &&Member<Container>| m.data.config.http.is_some();
    let mut out: Vec<&Member<Container>> = Vec::with_capacity(4);
    let mut owner_ok = false;
    let key = match token {
        Some(t) => {
            let node = t.split_once('.').map_or(t, |(n, _)| n);
            if let Some(m) = view
                .get(node)
                .filter(|m| m.state.accepts_existing() && has_http(m))
            {
                out.push(m);
                owner_ok = true;
            }
            t.as_bytes().to_vec()
        }
        None => client.ip().to_canonical().to_string().into_bytes(),
    };
    for m in view.order(&key) {
        if has_http(&m)
            && m.state.accepts_new(now)
            && !out.iter().any(|o| o.backend.id == m.backend.id)
        {
            out.push(m);
        }
    }
    // A token whose owner is down: the first candidate is a failover.
    (out, token.is_some() && !owner_ok)
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn proxy(
    State(shared): Shared_,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response<Body> {
    let view = shared.cluster.view();
    let now = shared.now();
    let token = token_of(&req);
    let (candidates, failover) = candidates(&view, token.as_deref(), client, now);
    if candidates.is_empty() {
        inc(&shared.counters.http_errors);
        return (StatusCode::SERVICE_UNAVAILABLE, "no container available\n").into_response();
    }
    let (parts, body) = req.into_parts();
    let bodiless = axum::body::HttpBody::size_hint(&body).exact() == Some(0);
    let mut body = Some(body);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    for (i, m) in candidates.iter().take(3).enumerate() {
        let Some(addr) = m.data.config.http else {
            continue;
        };
        let this_body = match body.take() {
            Some(b) => b,
            None if bodiless => Body::empty(),
            None => break,
        };
        let Ok(uri) = format!("http://{addr}{path}").parse::<http::Uri>() else {
            return (StatusCode::BAD_REQUEST, "bad request target\n").into_response();
        };
        let mut upstream = Request::new(this_body);
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = parts.headers.clone();
        for h in HOP_BY_HOP {
            upstream.headers_mut().remove(h);
        }
        if let Ok(v) = HeaderValue::from_str(&client.ip().to_canonical().to_string()) {
            upstream.headers_mut().append("x-forwarded-for", v);
        }
        let counters = &m.data.counters;
        match shared.http_client.request(upstream).await {
            Ok(response) => {
                inc(&counters.http_requests);
                inc(&shared.counters.http_proxied);
                if i > 0 || failover {
                    inc(&counters.failovers);
                }
                let (mut parts, incoming) = response.into_parts();
                for h in HOP_BY_HOP {
                    parts.headers.remove(h);
                }
                return Response::from_parts(parts, Body::new(incoming));
            }
            Err(e) => {
                debug!(node = %m.backend.id, error = %e, "HTTP request to container failed");
                inc(&counters.transport_errors);
                if e.is_connect() {
                    shared
                        .cluster
                        .record(&m.backend.id, Signal::TransportError, now);
                } else {
                    // Not a connection failure: the request may have reached
                    // the container; do not send it twice.
                    break;
                }
            }
        }
    }
    warn!("HTTP request failed on every container tried");
    inc(&shared.counters.http_errors);
    (StatusCode::BAD_GATEWAY, "container unreachable\n").into_response()
}
