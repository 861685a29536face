//! The edge's HTTP port on real sockets: affinity by cookie and query,
//! metrics, and the admin API (drain, add, remove, reload).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use balance::{Backend, rendezvous_order};
use common::{Caller, PUBLIC, StandIn, edge, http, token_of_response};
use edge::{Edge, EdgeConfig};
use sip_message::TransportKind;

async fn three() -> (StandIn, StandIn, StandIn) {
    (
        StandIn::start("c1").await,
        StandIn::start("c2").await,
        StandIn::start("c3").await,
    )
}

#[tokio::test]
async fn http_goes_by_cookie_then_query_then_client_address() {
    let (c1, c2, c3) = three().await;
    let edge = edge(&[&c1, &c2, &c3]).await;
    let at = edge.http_addr();
    for node in ["c1", "c2", "c3"] {
        let (status, body) = http(
            at,
            "GET",
            "/app/page",
            &format!("Cookie: a=b; SBSESSION={node}.00000000000000ab\r\n"),
            "",
        )
        .await;
        assert_eq!((status, body.as_str()), (200, node));
        let (status, body) = http(
            at,
            "GET",
            &format!("/app?x=1&sbt={node}.00000000000000ab"),
            "",
            "",
        )
        .await;
        assert_eq!((status, body.as_str()), (200, node));
    }
    // The cookie wins over the query.
    let (_, body) = http(
        at,
        "GET",
        "/app?sbt=c1.0000000000000001",
        "Cookie: SBSESSION=c3.0000000000000001\r\n",
        "",
    )
    .await;
    assert_eq!(body, "c3");
    // No token: rendezvous of the client address, the same every time.
    let backends = [
        Backend::new("c1", 1),
        Backend::new("c2", 1),
        Backend::new("c3", 1),
    ];
    let want = rendezvous_order(b"127.0.0.1", &backends)
        .next()
        .unwrap()
        .id
        .clone();
    for _ in 0..3 {
        let (_, body) = http(at, "POST", "/app/form", "", "a=1").await;
        assert_eq!(body, want);
    }
    // The edge's own health.
    assert_eq!(
        http(at, "GET", "/_sb/health", "", "").await,
        (200, "ok".to_owned())
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn sip_and_http_of_one_session_meet_through_two_edges() {
    let (c1, c2, c3) = three().await;
    let a = edge(&[&c1, &c2, &c3]).await;
    let b = edge(&[&c1, &c2, &c3]).await;
    let caller = Caller::new().await;
    caller
        .send(
            a.sip_addr(TransportKind::Udp).unwrap(),
            &caller.invite("conv@test", "bob", "z9hG4bKconv", ""),
        )
        .await;
    let (ok, _) = caller.expect(200).await;
    let token = token_of_response(&ok);
    let node = token.split('.').next().unwrap().to_owned();
    let (_, body) = http(
        b.http_addr(),
        "GET",
        "/x",
        &format!("Cookie: SBSESSION={token}\r\n"),
        "",
    )
    .await;
    assert_eq!(body, node);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn metrics_show_every_container_from_the_start_and_count() {
    let (c1, c2, c3) = three().await;
    let edge = edge(&[&c1, &c2, &c3]).await;
    let (status, text) = http(edge.http_addr(), "GET", "/_sb/metrics", "", "").await;
    assert_eq!(status, 200);
    for node in ["c1", "c2", "c3"] {
        assert!(
            text.contains(&format!(
                "sb_edge_container_state{{node=\"{node}\",state=\"up\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "sb_edge_container_sip_messages_total{{node=\"{node}\",direction=\"in\"}} 0"
        )));
    }
    let caller = Caller::new().await;
    caller
        .send(
            edge.sip_addr(TransportKind::Udp).unwrap(),
            &caller.invite("m@test", "bob", "z9hG4bKm", ""),
        )
        .await;
    let (ok, _) = caller.expect(200).await;
    let node = token_of_response(&ok).split('.').next().unwrap().to_owned();
    let (_, text) = http(edge.http_addr(), "GET", "/_sb/metrics", "", "").await;
    assert!(
        text.contains(&format!(
            "sb_edge_container_sip_messages_total{{node=\"{node}\",direction=\"in\"}} 1"
        )),
        "{text}"
    );
    // 180 and 200 came back out.
    assert!(
        text.contains(&format!(
            "sb_edge_container_sip_responses_total{{node=\"{node}\"}} 2"
        )),
        "{text}"
    );
    assert!(
        text.contains("sb_edge_sip_replies_total{status=\"483\"} 0"),
        "{text}"
    );
    assert!(text.contains("# TYPE sb_edge_container_probes_total counter"));
    edge.shutdown().await;
}

fn uses(all: &[&StandIn], call_id: &str) -> Vec<String> {
    all.iter()
        .filter(|c| c.methods(call_id).iter().any(|m| m == "INVITE"))
        .map(|c| c.node.clone())
        .collect()
}

#[tokio::test]
async fn drain_add_remove_and_reload_through_the_admin_api() {
    let (c1, c2, c3) = three().await;
    let c4 = StandIn::start("c4").await;
    let all = [&c1, &c2, &c3, &c4];
    // Start from a file so reload has something to read.
    let dir = std::env::temp_dir().join(format!("edge-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edge.toml");
    let containers = |list: &[&StandIn]| -> String {
        list.iter()
            .map(|c| {
                format!(
                    "[[containers]]\nnode = \"{}\"\nsip = \"{}\"\nhttp = \"{}\"\n",
                    c.node, c.sip, c.http
                )
            })
            .collect()
    };
    let head = format!(
        "node = \"e1\"\npublic = \"{PUBLIC}\"\n[listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n[health]\ninterval_ms = 5000\n"
    );
    std::fs::write(&path, format!("{head}{}", containers(&[&c1, &c2, &c3]))).unwrap();
    let edge = Edge::start(EdgeConfig::load(&path).unwrap()).await.unwrap();
    let at = edge.http_addr();
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let caller = Caller::new().await;

    // A dialog on c1 before the drain.
    let backends = [
        Backend::new("c1", 1),
        Backend::new("c2", 1),
        Backend::new("c3", 1),
    ];
    let on_c1 = (0..60)
        .map(|i| format!("pre-{i}@test"))
        .find(|c| rendezvous_order(c.as_bytes(), &backends).next().unwrap().id == "c1")
        .unwrap();
    caller
        .send(to, &caller.invite(&on_c1, "bob", "z9hG4bKpre", ""))
        .await;
    let (ok, _) = caller.expect(200).await;
    let token = token_of_response(&ok);
    assert!(token.starts_with("c1."));

    assert_eq!(
        http(at, "POST", "/_sb/admin/containers/c1/drain", "", "")
            .await
            .0,
        200
    );
    assert_eq!(
        http(at, "POST", "/_sb/admin/containers/nope/drain", "", "")
            .await
            .0,
        404
    );
    let (_, list) = http(at, "GET", "/_sb/admin/containers", "", "").await;
    assert!(
        list.contains("\"node\":\"c1\"") && list.contains("\"state\":\"draining\""),
        "{list}"
    );
    // No new call lands on c1 ...
    for i in 0..30 {
        let call_id = format!("drain-{i}@test");
        caller
            .send(
                to,
                &caller.invite(&call_id, "bob", &format!("z9hG4bKd{i}"), ""),
            )
            .await;
        caller.expect(200).await;
        assert_ne!(uses(&all, &call_id), ["c1"]);
    }
    // ... but its dialog's BYE still does.
    let route = format!("Route: <sip:{PUBLIC};lr;sbt={token}>\r\n");
    let bye = caller.request(
        "BYE",
        "sip:c1@example.com",
        &on_c1,
        2,
        "z9hG4bKprebye",
        "c1tag",
        &route,
    );
    caller.send(to, &bye).await;
    caller.expect(200).await;
    assert!(c1.methods(&on_c1).contains(&"BYE".to_owned()));

    // Add c4 at run time: it takes a share of new calls.
    let body = format!(
        "{{\"node\":\"c4\",\"sip\":\"{}\",\"http\":\"{}\",\"weight\":1}}",
        c4.sip, c4.http
    );
    assert_eq!(
        http(
            at,
            "POST",
            "/_sb/admin/containers",
            "Content-Type: application/json\r\n",
            &body
        )
        .await
        .0,
        201
    );
    assert_eq!(
        http(
            at,
            "POST",
            "/_sb/admin/containers",
            "Content-Type: application/json\r\n",
            &body
        )
        .await
        .0,
        409
    );
    assert_eq!(
        http(
            at,
            "POST",
            "/_sb/admin/containers",
            "",
            "{\"node\":\"Bad Name\",\"sip\":\"x\"}"
        )
        .await
        .0,
        400
    );
    let mut c4_calls = 0;
    for i in 0..30 {
        let call_id = format!("add-{i}@test");
        caller
            .send(
                to,
                &caller.invite(&call_id, "bob", &format!("z9hG4bKa{i}"), ""),
            )
            .await;
        caller.expect(200).await;
        if uses(&all, &call_id) == ["c4"] {
            c4_calls += 1;
        }
    }
    assert!(c4_calls > 0);

    // Remove c1: its dialogs fail over.
    assert_eq!(
        http(at, "DELETE", "/_sb/admin/containers/c1", "", "")
            .await
            .0,
        200
    );
    let bye = caller.request(
        "BYE",
        "sip:c1@example.com",
        &on_c1,
        3,
        "z9hG4bKprebye2",
        "c1tag",
        &route,
    );
    caller.send(to, &bye).await;
    caller.expect(200).await;
    assert_eq!(c1.methods(&on_c1).iter().filter(|m| *m == "BYE").count(), 1);

    // Reload: the file lists c2 and c3 only.
    std::fs::write(&path, format!("{head}{}", containers(&[&c2, &c3]))).unwrap();
    assert_eq!(http(at, "POST", "/_sb/admin/reload", "", "").await.0, 200);
    let nodes: Vec<String> = edge
        .view()
        .members()
        .iter()
        .map(|m| m.backend.id.clone())
        .collect();
    assert_eq!(nodes, ["c2", "c3"]);
    // A broken file is refused with its line and field; the view stays.
    std::fs::write(
        &path,
        format!("{head}[[containers]]\nnode = \"c9\"\nsip = \"bad\"\n"),
    )
    .unwrap();
    let (status, msg) = http(at, "POST", "/_sb/admin/reload", "", "").await;
    assert_eq!(status, 400);
    assert!(msg.contains("containers[0].sip"), "{msg}");
    assert_eq!(edge.view().members().len(), 2);
    edge.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
