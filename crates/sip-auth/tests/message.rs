#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The `SipMessage` glue: a proxy challenge (407) answered in
//! Proxy-Authorization, read back from parsed messages.

use std::time::{Duration, UNIX_EPOCH};

use sip_auth::{
    Authenticator, ChallengeKind, DigestClient, DigestRequest, MemoryDirectory, Rejection,
    challenges_of,
};
use sip_message::{Method, RequestBuilder, ResponseBuilder, SipMessage};

fn invite(proxy_authorization: &[&str]) -> SipMessage {
    let mut b = RequestBuilder::new(Method::Invite, "sip:bob@example.com")
        .unwrap()
        .header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")
        .header("Max-Forwards", "70")
        .header("From", "<sip:alice@example.com>;tag=1")
        .header("To", "<sip:bob@example.com>")
        .header("Call-ID", "c1")
        .header("CSeq", "1 INVITE");
    for v in proxy_authorization {
        b = b.header("Proxy-Authorization", v);
    }
    b.build().unwrap()
}

#[test]
fn proxy_challenge_on_parsed_messages() {
    let auth = Authenticator::new("example.com", b"0123456789abcdef0123").unwrap();
    let mut users = MemoryDirectory::new();
    users.insert_password("alice", "pw");
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);

    let first = invite(&[]);
    let e = auth
        .verify_message(now, &first, ChallengeKind::Proxy, &users)
        .unwrap_err();
    assert_eq!(e, Rejection::Missing);
    let reply = auth.reply(&e, now, [1; 8], ChallengeKind::Proxy);
    let mut b = ResponseBuilder::for_request(&first, reply.status, Some("t")).unwrap();
    for (n, v) in &reply.headers {
        b = b.header(n, v);
    }
    let resp = b.build().unwrap();
    assert_eq!(resp.status(), Some(407));
    assert_eq!(challenges_of(&resp, ChallengeKind::Proxy).count(), 2);
    assert_eq!(challenges_of(&resp, ChallengeKind::Www).count(), 0);

    let mut client = DigestClient::new("alice", "pw");
    let req = DigestRequest {
        method: "INVITE",
        uri: "sip:bob@example.com",
    };
    let a = client
        .answer(
            ChallengeKind::Proxy,
            challenges_of(&resp, ChallengeKind::Proxy),
            req,
            "cn",
        )
        .unwrap();
    assert_eq!(a.header, "Proxy-Authorization");
    // Another proxy's credentials ahead of ours (RFC 3261 §22.3).
    let theirs = r#"Digest username="alice", realm="other.net", nonce="x", uri="sip:bob@example.com", response="00""#;
    let second = invite(&[theirs, &a.value]);
    let ok = auth
        .verify_message(now, &second, ChallengeKind::Proxy, &users)
        .unwrap();
    assert_eq!(ok.username, "alice");
    // Proxy credentials do not satisfy a 401 challenge.
    assert_eq!(
        auth.verify_message(now, &second, ChallengeKind::Www, &users)
            .unwrap_err(),
        Rejection::Missing
    );
    // A response is not a request.
    assert_eq!(
        auth.verify_message(now, &resp, ChallengeKind::Proxy, &users)
            .unwrap_err(),
        Rejection::MissingParam("request")
    );
}
