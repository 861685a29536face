//! Active health checks: a SIP OPTIONS over UDP to each container's `sip`
//! address and, when it has an HTTP address, `GET /_sb/health`, every
//! interval. Any SIP response means alive; a 503 (SIP or HTTP) means alive
//! but overloaded (for its Retry-After, else one interval). No answer within
//! the timeout, or an HTTP status other than 200 and 503, is a failure. The
//! results feed the rise/fall counters of [`balance::Cluster`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use balance::Signal;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use sip_message::{Peer, TransportKind};
use tokio::sync::oneshot;
use tracing::{debug, info};

use crate::Shared;
use crate::container::Container;
use crate::forward::PROBE_BRANCH_PREFIX;
use crate::metrics::inc;

/// One probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Overloaded(Duration),
    Failed,
}

/// Probes every container once per interval until the edge stops.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let seq = AtomicU64::new(1);
    let mut tick = tokio::time::interval(shared.config.health.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let view = shared.cluster.view();
        for m in view.members() {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let shared = Arc::clone(&shared);
            let container = Arc::clone(&m.data);
            tokio::spawn(async move { probe(shared, container, n).await });
        }
    }
}

async fn probe(shared: Arc<Shared>, container: Arc<Container>, seq: u64) {
    let (sip, http) = tokio::join!(
        probe_sip(&shared, &container, seq),
        probe_http(&shared, &container)
    );
    let verdict = match (sip, http) {
        (Verdict::Failed, _) | (_, Verdict::Failed) => Verdict::Failed,
        (Verdict::Overloaded(d), _) | (_, Verdict::Overloaded(d)) => Verdict::Overloaded(d),
        (Verdict::Ok, Verdict::Ok) => Verdict::Ok,
    };
    let node = &container.config.node;
    let signal = match verdict {
        Verdict::Ok => {
            inc(&container.counters.probes_ok);
            Signal::ProbeOk
        }
        Verdict::Overloaded(retry_after) => {
            inc(&container.counters.probes_ok);
            Signal::Overloaded { retry_after }
        }
        Verdict::Failed => {
            inc(&container.counters.probes_failed);
            Signal::ProbeFailed
        }
    };
    debug!(node = %node, ?verdict, "probe");
    if let Some(state) = shared.cluster.record(node, signal, shared.now()) {
        info!(node = %node, state = state.name(shared.now()), "container state changed");
    }
}

async fn probe_sip(shared: &Shared, container: &Container, seq: u64) -> Verdict {
    let node = &container.config.node;
    let target = container.config.sip;
    let public = shared.forwarder.public();
    let branch = format!("{PROBE_BRANCH_PREFIX}{}.{node}.{seq}", shared.config.node);
    let request = format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {public};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{target}>\r\n\
         From: <sip:edge@{public}>;tag=sb{seq:x}\r\n\
         Call-ID: {branch}\r\n\
         CSeq: {seq} OPTIONS\r\n\
         User-Agent: switchboard-edge\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let (tx, rx) = oneshot::channel();
    shared.pending_probes().insert(branch.clone(), tx);
    let peer = Peer {
        transport: TransportKind::Udp,
        addr: target,
    };
    let sent = shared.send_to(None, peer, Bytes::from(request)).await;
    let verdict = match sent {
        Err(e) => {
            debug!(node = %node, error = %e, "probe send failed");
            Verdict::Failed
        }
        Ok(()) => match tokio::time::timeout(shared.config.health.timeout, rx).await {
            Ok(Ok((503, retry_after))) => Verdict::Overloaded(overload_time(shared, retry_after)),
            Ok(Ok(_)) => Verdict::Ok,
            _ => Verdict::Failed,
        },
    };
    shared.pending_probes().remove(&branch);
    verdict
}

fn overload_time(shared: &Shared, retry_after: Option<u32>) -> Duration {
    retry_after.map_or(shared.config.health.interval, |s| {
        Duration::from_secs(u64::from(s))
    })
}

async fn probe_http(shared: &Shared, container: &Container) -> Verdict {
    let Some(addr) = container.config.http else {
        return Verdict::Ok;
    };
    let Ok(uri) = format!("http://{addr}/_sb/health").parse::<http::Uri>() else {
        return Verdict::Failed;
    };
    let request = http::Request::get(uri)
        .header(http::header::USER_AGENT, "switchboard-edge")
        .body(axum::body::Body::empty());
    let Ok(request) = request else {
        return Verdict::Failed;
    };
    let call = async {
        let response = shared.http_client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        // Read the body so the connection can be reused.
        let _ = response.into_body().collect().await;
        Some((status, retry_after))
    };
    match tokio::time::timeout(shared.config.health.timeout, call).await {
        Ok(Some((200, _))) => Verdict::Ok,
        Ok(Some((503, retry_after))) => Verdict::Overloaded(overload_time(shared, retry_after)),
        _ => Verdict::Failed,
    }
}
