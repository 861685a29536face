#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Published test vectors: RFC 2617 §3.5, RFC 7616 §3.9.1.

use sip_auth::{
    Algorithm, ChallengeKind, DigestClient, DigestRequest, Ha1, parse_credentials, response_matches,
};

const GET: DigestRequest<'static> = DigestRequest {
    method: "GET",
    uri: "/dir/index.html",
};

#[test]
fn rfc2617_section_3_5_md5() {
    let challenge = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let mut client = DigestClient::new("Mufasa", "Circle Of Life");
    let a = client
        .answer(ChallengeKind::Www, [challenge], GET, "0a4f113b")
        .unwrap();
    assert_eq!(a.header, "Authorization");
    let c = parse_credentials(&a.value).unwrap();
    assert_eq!(c.response(), Some("6629fae49393a05397450978507c4ef1"));
    assert_eq!(c.nc(), Some("00000001"));
    assert_eq!(c.qop(), Some("auth"));
    assert_eq!(c.opaque(), Some("5ccc069c403ebaf9f0171e9517f40e41"));
    assert_eq!(c.algorithm(), Some("MD5"));

    // The server-side check of the RFC's own Authorization header.
    let rfc = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let ha1 = Ha1::compute(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    assert!(response_matches(
        &parse_credentials(rfc).unwrap(),
        "GET",
        &ha1
    ));
    assert!(!response_matches(
        &parse_credentials(rfc).unwrap(),
        "POST",
        &ha1
    ));
}

const RFC7616_SHA256: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
const RFC7616_MD5: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

#[test]
fn rfc7616_section_3_9_1_sha256_is_chosen() {
    let mut client = DigestClient::new("Mufasa", "Circle of Life");
    // Both challenges offered, SHA-256 first as in the RFC: SHA-256 wins.
    let a = client
        .answer(
            ChallengeKind::Www,
            [RFC7616_SHA256, RFC7616_MD5],
            GET,
            RFC7616_CNONCE,
        )
        .unwrap();
    let c = parse_credentials(&a.value).unwrap();
    assert_eq!(c.algorithm(), Some("SHA-256"));
    assert_eq!(
        c.response(),
        Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    );
    // Order does not matter: strongest wins.
    let mut client = DigestClient::new("Mufasa", "Circle of Life");
    let b = client
        .answer(
            ChallengeKind::Www,
            [RFC7616_MD5, RFC7616_SHA256],
            GET,
            RFC7616_CNONCE,
        )
        .unwrap();
    assert_eq!(a, b);
    let ha1 = Ha1::compute(
        Algorithm::Sha256,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
    );
    assert!(response_matches(&c, "GET", &ha1));
}

#[test]
fn rfc7616_section_3_9_1_md5() {
    let mut client = DigestClient::new("Mufasa", "Circle of Life");
    let a = client
        .answer(ChallengeKind::Proxy, [RFC7616_MD5], GET, RFC7616_CNONCE)
        .unwrap();
    assert_eq!(a.header, "Proxy-Authorization");
    let c = parse_credentials(&a.value).unwrap();
    assert_eq!(c.response(), Some("8ca523f5e9506fed4657c9700eebdbec"));
    assert_eq!(c.cnonce(), Some(RFC7616_CNONCE));
    assert_eq!(c.uri(), Some("/dir/index.html"));
}
