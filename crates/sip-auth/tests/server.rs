#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Client -> server round trips and the server's rejections.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip_auth::{
    Action, Algorithm, Authenticator, BadCredentialsPolicy, ChallengeKind, ClientError,
    ConfigError, DigestClient, DigestRequest, Ha1, MemoryDirectory, ParseError, Rejection,
    parse_challenges,
};

const SECRET: &[u8] = b"cluster secret, 32 bytes long!!!";
const REALM: &str = "sip.example.com";
const REG: DigestRequest<'static> = DigestRequest {
    method: "REGISTER",
    uri: "sip:sip.example.com",
};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn users() -> MemoryDirectory {
    let mut d = MemoryDirectory::new();
    d.insert_password("alice", "wonderland");
    d.insert_ha1("bob", Ha1::compute(Algorithm::Md5, "bob", REALM, "builder"));
    d.insert_ha1(
        "bob",
        Ha1::compute(Algorithm::Sha256, "bob", REALM, "builder"),
    );
    d
}

fn auth() -> Authenticator {
    Authenticator::new(REALM, SECRET).unwrap()
}

/// Challenge at `t(0)` and answer it as `user`/`pass`.
fn answered(auth: &Authenticator, user: &str, pass: &str, kind: ChallengeKind) -> String {
    let reply = auth.challenge(t(0), [9; 8], kind);
    let mut c = DigestClient::new(user, pass);
    c.answer(
        kind,
        reply.headers.iter().map(|(_, v)| v.as_str()),
        REG,
        "c1",
    )
    .unwrap()
    .value
}

#[test]
fn challenge_lists_sha256_first_and_parses() {
    let r = auth().challenge(t(0), [0; 8], ChallengeKind::Www);
    assert_eq!(r.status, 401);
    assert_eq!(r.headers.len(), 2);
    assert!(r.headers.iter().all(|(n, _)| *n == "WWW-Authenticate"));
    let first = &parse_challenges(&r.headers[0].1).unwrap()[0];
    let second = &parse_challenges(&r.headers[1].1).unwrap()[0];
    assert_eq!(first.algorithm(), Some("SHA-256"));
    assert_eq!(second.algorithm(), Some("MD5"));
    assert_eq!(first.realm(), Some(REALM));
    assert_eq!(first.nonce(), second.nonce());
    assert_eq!(first.qop_options().collect::<Vec<_>>(), ["auth"]);
    assert!(!first.stale());

    let p = auth().challenge(t(0), [0; 8], ChallengeKind::Proxy);
    assert_eq!(p.status, 407);
    assert!(p.headers.iter().all(|(n, _)| *n == "Proxy-Authenticate"));
}

#[test]
fn round_trip_sha256_and_md5_with_qop() {
    for (algs, want) in [
        (vec![Algorithm::Sha256, Algorithm::Md5], Algorithm::Sha256),
        (vec![Algorithm::Md5], Algorithm::Md5),
        (vec![Algorithm::Sha256], Algorithm::Sha256),
    ] {
        let a = auth().with_algorithms(&algs).unwrap();
        for user in ["alice", "bob"] {
            let pass = if user == "alice" {
                "wonderland"
            } else {
                "builder"
            };
            let v = answered(&a, user, pass, ChallengeKind::Www);
            assert!(v.contains("qop=auth, nc=00000001"), "{v}");
            let ok = a.verify(t(10), REG, [v.as_str()], &users()).unwrap();
            assert_eq!(ok.username, user);
            assert_eq!(ok.algorithm, want);
            assert_eq!(ok.nc, Some(1));
            assert_eq!(ok.nonce_issued, t(0));
        }
    }
}

#[test]
fn round_trip_without_qop_rfc2069() {
    // A challenge with no qop (hand-made, as an RFC 2069 server would send).
    let a = auth();
    let nonce = a.nonce(t(0), [1; 8]);
    for alg in ["MD5", "SHA-256"] {
        let challenge = format!(r#"Digest realm="{REALM}", nonce="{nonce}", algorithm={alg}"#);
        let mut c = DigestClient::new("alice", "wonderland");
        let v = c
            .answer(ChallengeKind::Proxy, [challenge.as_str()], REG, "ignored")
            .unwrap();
        assert_eq!(v.header, "Proxy-Authorization");
        assert!(!v.value.contains("qop"));
        assert!(!v.value.contains("cnonce"));
        let ok = a.verify(t(1), REG, [v.value.as_str()], &users()).unwrap();
        assert_eq!(ok.nc, None);
        // The same without qop is refused when qop is required.
        let strict = auth().with_qop_required(true);
        let e = strict
            .verify(t(1), REG, [v.value.as_str()], &users())
            .unwrap_err();
        assert_eq!(e, Rejection::QopRequired);
        assert_eq!(
            e.action(BadCredentialsPolicy::default()),
            Action::Challenge { stale: false }
        );
    }
}

#[test]
fn nonce_count_increments_on_reuse() {
    let a = auth();
    let reply = a.challenge(t(0), [2; 8], ChallengeKind::Www);
    let mut c = DigestClient::new("alice", "wonderland");
    let first = c
        .answer(
            ChallengeKind::Www,
            reply.headers.iter().map(|(_, v)| v.as_str()),
            REG,
            "aa",
        )
        .unwrap();
    let invite = DigestRequest {
        method: "INVITE",
        uri: "sip:bob@sip.example.com",
    };
    let second = c.authorize(invite, "bb").unwrap();
    assert!(second.value.contains("nc=00000002"));
    assert_eq!(c.current(), Some((REALM, Algorithm::Sha256, 2)));
    assert_eq!(
        a.verify(t(1), REG, [first.value.as_str()], &users())
            .unwrap()
            .nc,
        Some(1)
    );
    assert_eq!(
        a.verify(t(1), invite, [second.value.as_str()], &users())
            .unwrap()
            .nc,
        Some(2)
    );
    c.reset();
    assert_eq!(
        c.authorize(invite, "cc").unwrap_err(),
        ClientError::NoDigestChallenge
    );
}

#[test]
fn expired_nonce_with_right_password_is_stale() {
    let a = auth().with_nonce_lifetime(Duration::from_secs(60)).unwrap();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    assert!(a.verify(t(60), REG, [v.as_str()], &users()).is_ok());
    let e = a.verify(t(61), REG, [v.as_str()], &users()).unwrap_err();
    assert_eq!(e, Rejection::Stale);
    let reply = a.reply(&e, t(61), [3; 8], ChallengeKind::Www);
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .headers
            .iter()
            .all(|(_, v)| parse_challenges(v).unwrap()[0].stale())
    );
    // Expired and wrong password: not stale, bad credentials.
    let wrong = answered(&a, "alice", "nope", ChallengeKind::Www);
    assert!(matches!(
        a.verify(t(61), REG, [wrong.as_str()], &users()),
        Err(Rejection::BadCredentials { .. })
    ));
}

#[test]
fn nonce_from_the_future_is_invalid() {
    let a = auth();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    // Issued at t(0); the verifier's clock is 30 s behind: accepted (skew).
    let behind = t(0) - Duration::from_secs(30);
    assert!(a.verify(behind, REG, [v.as_str()], &users()).is_ok());
    let far = t(0) - Duration::from_secs(31);
    assert_eq!(
        a.verify(far, REG, [v.as_str()], &users()).unwrap_err(),
        Rejection::InvalidNonce
    );
}

#[test]
fn tampered_or_foreign_nonce_is_invalid() {
    let a = auth();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    let nonce = sip_auth::parse_credentials(&v)
        .unwrap()
        .nonce()
        .unwrap()
        .to_owned();
    // Flip one hex digit of the MAC part.
    let mut bytes = nonce.clone().into_bytes();
    let last = bytes.last_mut().unwrap();
    *last = if *last == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(bytes).unwrap();
    let forged = v.replace(&nonce, &tampered);
    assert_eq!(
        a.verify(t(1), REG, [forged.as_str()], &users())
            .unwrap_err(),
        Rejection::InvalidNonce
    );
    // Another cluster (other secret) issued it.
    let other = Authenticator::new(REALM, b"another secret of 32 bytes......").unwrap();
    let theirs = answered(&other, "alice", "wonderland", ChallengeKind::Www);
    assert_eq!(
        a.verify(t(1), REG, [theirs.as_str()], &users())
            .unwrap_err(),
        Rejection::InvalidNonce
    );
    // A free-form nonce.
    let free = v.replace(&nonce, "abc");
    assert_eq!(
        a.verify(t(1), REG, [free.as_str()], &users()).unwrap_err(),
        Rejection::InvalidNonce
    );
}

#[test]
fn cluster_members_share_nonces() {
    let node1 = auth();
    let node2 = auth();
    let v = answered(&node1, "bob", "builder", ChallengeKind::Proxy);
    assert_eq!(
        node2
            .verify(t(5), REG, [v.as_str()], &users())
            .unwrap()
            .username,
        "bob"
    );
}

#[test]
fn wrong_password_and_unknown_user() {
    let a = auth();
    for (user, pass) in [
        ("alice", "wrong"),
        ("mallory", "x"),
        ("Alice", "wonderland"),
    ] {
        let v = answered(&a, user, pass, ChallengeKind::Www);
        let e = a.verify(t(1), REG, [v.as_str()], &users()).unwrap_err();
        assert_eq!(
            e,
            Rejection::BadCredentials {
                username: user.to_owned()
            }
        );
        // Default: re-challenge, not stale.
        let r = a.reply(&e, t(1), [4; 8], ChallengeKind::Www);
        assert_eq!(r.status, 401);
        assert!(!parse_challenges(&r.headers[0].1).unwrap()[0].stale());
        // Policy: 403.
        let strict = auth().with_bad_credentials_policy(BadCredentialsPolicy::Forbid);
        let r = strict.reply(&e, t(1), [4; 8], ChallengeKind::Www);
        assert_eq!(r.status, 403);
        assert!(r.headers.is_empty());
    }
}

#[test]
fn ha1_only_user_without_sha256_fails_sha256() {
    let mut d = MemoryDirectory::new();
    d.insert_ha1("carol", Ha1::compute(Algorithm::Md5, "carol", REALM, "pw"));
    let a = auth();
    let v = answered(&a, "carol", "pw", ChallengeKind::Www); // picks SHA-256
    assert!(matches!(
        a.verify(t(1), REG, [v.as_str()], &d),
        Err(Rejection::BadCredentials { .. })
    ));
    let md5 = auth().with_algorithms(&[Algorithm::Md5]).unwrap();
    let v = answered(&md5, "carol", "pw", ChallengeKind::Www);
    assert!(md5.verify(t(1), REG, [v.as_str()], &d).is_ok());
}

#[test]
fn missing_and_other_realm() {
    let a = auth();
    assert_eq!(
        a.verify(t(0), REG, [], &users()).unwrap_err(),
        Rejection::Missing
    );
    assert_eq!(
        a.verify(t(0), REG, ["Basic dXNlcjpwYXNz"], &users())
            .unwrap_err(),
        Rejection::Missing
    );
    let other = Authenticator::new("other.example.com", SECRET).unwrap();
    let theirs = answered(&other, "alice", "wonderland", ChallengeKind::Proxy);
    let e = a
        .verify(t(1), REG, [theirs.as_str()], &users())
        .unwrap_err();
    assert_eq!(e, Rejection::OtherRealm("other.example.com".into()));
    assert_eq!(a.reply(&e, t(1), [0; 8], ChallengeKind::Proxy).status, 407);
    // Ours after theirs (two proxies on the path, RFC 3261 §22.3): found.
    let ours = answered(&a, "alice", "wonderland", ChallengeKind::Proxy);
    assert!(
        a.verify(t(1), REG, [theirs.as_str(), ours.as_str()], &users())
            .is_ok()
    );
}

#[test]
fn unsupported_algorithm_qop_userhash() {
    let a = auth();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    let md5only = auth().with_algorithms(&[Algorithm::Md5]).unwrap();
    assert_eq!(
        md5only
            .verify(t(1), REG, [v.as_str()], &users())
            .unwrap_err(),
        Rejection::UnsupportedAlgorithm("SHA-256".into())
    );
    let sess = v.replace("algorithm=SHA-256", "algorithm=SHA-256-sess");
    assert_eq!(
        a.verify(t(1), REG, [sess.as_str()], &users()).unwrap_err(),
        Rejection::UnsupportedAlgorithm("SHA-256-sess".into())
    );
    let int = v.replace("qop=auth", "qop=auth-int");
    let e = a.verify(t(1), REG, [int.as_str()], &users()).unwrap_err();
    assert_eq!(e, Rejection::UnsupportedQop("auth-int".into()));
    assert_eq!(a.reply(&e, t(1), [0; 8], ChallengeKind::Www).status, 401);
    let uh = format!("{v}, userhash=true");
    assert_eq!(
        a.verify(t(1), REG, [uh.as_str()], &users()).unwrap_err(),
        Rejection::UserhashUnsupported
    );
}

#[test]
fn qop_auth_needs_cnonce_and_nc() {
    let a = auth();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    let no_cnonce = v.replace(r#"cnonce="c1", "#, "");
    assert_eq!(
        a.verify(t(1), REG, [no_cnonce.as_str()], &users())
            .unwrap_err(),
        Rejection::MissingParam("cnonce")
    );
    let empty_cnonce = v.replace(r#"cnonce="c1""#, r#"cnonce="""#);
    assert_eq!(
        a.verify(t(1), REG, [empty_cnonce.as_str()], &users())
            .unwrap_err(),
        Rejection::MissingParam("cnonce")
    );
    let no_nc = v.replace(", nc=00000001", "");
    assert_eq!(
        a.verify(t(1), REG, [no_nc.as_str()], &users()).unwrap_err(),
        Rejection::MissingParam("nc")
    );
    for bad in ["1", "0000000g", "000000001", "+0000001"] {
        let bad_nc = v.replace("nc=00000001", &format!("nc={bad}"));
        let e = a
            .verify(t(1), REG, [bad_nc.as_str()], &users())
            .unwrap_err();
        assert_eq!(e, Rejection::BadNonceCount, "{bad}");
        assert_eq!(
            e.action(BadCredentialsPolicy::default()),
            Action::BadRequest
        );
    }
    // A different nc than the one hashed: the digest no longer matches.
    let other_nc = v.replace("nc=00000001", "nc=00000002");
    assert!(matches!(
        a.verify(t(1), REG, [other_nc.as_str()], &users()),
        Err(Rejection::BadCredentials { .. })
    ));
    // A different cnonce than the one hashed: likewise.
    let other_cnonce = v.replace(r#"cnonce="c1""#, r#"cnonce="c2""#);
    assert!(matches!(
        a.verify(t(1), REG, [other_cnonce.as_str()], &users()),
        Err(Rejection::BadCredentials { .. })
    ));
}

#[test]
fn uri_and_method_are_covered() {
    let a = auth();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    let elsewhere = DigestRequest {
        method: "REGISTER",
        uri: "sip:evil.example.com",
    };
    let e = a
        .verify(t(1), elsewhere, [v.as_str()], &users())
        .unwrap_err();
    assert_eq!(e, Rejection::UriMismatch);
    assert_eq!(a.reply(&e, t(1), [0; 8], ChallengeKind::Www).status, 400);
    // Without the check, the digest still covers the uri it names.
    let lax = auth().with_uri_check(false);
    assert!(lax.verify(t(1), elsewhere, [v.as_str()], &users()).is_ok());
    let invite = DigestRequest {
        method: "INVITE",
        uri: REG.uri,
    };
    assert!(matches!(
        a.verify(t(1), invite, [v.as_str()], &users()),
        Err(Rejection::BadCredentials { .. })
    ));
}

#[test]
fn missing_params_and_malformed() {
    let a = auth();
    let v = answered(&a, "alice", "wonderland", ChallengeKind::Www);
    for (param, cut) in [
        ("username", r#"username="alice", "#),
        ("uri", r#"uri="sip:sip.example.com", "#),
    ] {
        let w = v.replace(cut, "");
        assert_eq!(
            a.verify(t(1), REG, [w.as_str()], &users()).unwrap_err(),
            Rejection::MissingParam(param)
        );
    }
    let no_realm = v.replace(&format!(r#"realm="{REALM}", "#), "");
    assert_eq!(
        a.verify(t(1), REG, [no_realm.as_str()], &users())
            .unwrap_err(),
        Rejection::MissingParam("realm")
    );
    let e = a
        .verify(t(1), REG, [r#"Digest username="x"#], &users())
        .unwrap_err();
    assert_eq!(
        e,
        Rejection::Malformed(ParseError::UnterminatedQuote { at: 16 })
    );
    assert_eq!(a.reply(&e, t(1), [0; 8], ChallengeKind::Www).status, 400);
    // A malformed value does not hide good credentials next to it.
    assert!(
        a.verify(t(1), REG, ["Digest ,,=", v.as_str()], &users())
            .is_ok()
    );
    // Upper-case hex in the response is accepted.
    let resp = sip_auth::parse_credentials(&v)
        .unwrap()
        .response()
        .unwrap()
        .to_owned();
    let upper = v.replace(&resp, &resp.to_ascii_uppercase());
    assert!(a.verify(t(1), REG, [upper.as_str()], &users()).is_ok());
}

#[test]
fn config_errors() {
    assert_eq!(
        Authenticator::new(REALM, b"short").unwrap_err(),
        ConfigError::SecretTooShort(5)
    );
    assert_eq!(
        Authenticator::new("", SECRET).unwrap_err(),
        ConfigError::BadRealm
    );
    assert_eq!(
        Authenticator::new("a\nb", SECRET).unwrap_err(),
        ConfigError::BadRealm
    );
    assert_eq!(
        auth().with_algorithms(&[]).unwrap_err(),
        ConfigError::NoAlgorithms
    );
    assert_eq!(
        auth().with_nonce_lifetime(Duration::ZERO).unwrap_err(),
        ConfigError::ZeroLifetime
    );
    let a = auth()
        .with_algorithms(&[Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5])
        .unwrap();
    assert_eq!(a.algorithms(), [Algorithm::Sha256, Algorithm::Md5]);
    assert!(!format!("{a:?}").contains("cluster secret"));
}

#[test]
fn realm_with_quote_round_trips() {
    let a = Authenticator::new(r#"odd "realm" \ here"#, SECRET).unwrap();
    let mut d = MemoryDirectory::new();
    d.insert_password("a\"b", "pw");
    let reply = a.challenge(t(0), [0; 8], ChallengeKind::Www);
    let mut c = DigestClient::new("a\"b", "pw");
    let v = c
        .answer(
            ChallengeKind::Www,
            reply.headers.iter().map(|(_, v)| v.as_str()),
            REG,
            "x\"y",
        )
        .unwrap();
    assert_eq!(
        a.verify(t(1), REG, [v.value.as_str()], &d)
            .unwrap()
            .username,
        "a\"b"
    );
}

#[test]
fn client_errors() {
    let mut c = DigestClient::new("u", "p");
    assert_eq!(
        c.answer(ChallengeKind::Www, ["Basic realm=\"x\""], REG, "c")
            .unwrap_err(),
        ClientError::NoDigestChallenge
    );
    assert_eq!(
        c.answer(
            ChallengeKind::Www,
            [r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#],
            REG,
            "c"
        )
        .unwrap_err(),
        ClientError::UnsupportedAlgorithm
    );
    assert_eq!(
        c.answer(
            ChallengeKind::Www,
            [r#"Digest realm="r", nonce="n", qop="auth-int""#],
            REG,
            "c"
        )
        .unwrap_err(),
        ClientError::UnsupportedQop
    );
    assert_eq!(
        c.answer(ChallengeKind::Www, [r#"Digest realm="r""#], REG, "c")
            .unwrap_err(),
        ClientError::MissingParam("nonce")
    );
    assert!(matches!(
        c.answer(ChallengeKind::Www, [r#"Digest realm="r"#], REG, "c"),
        Err(ClientError::Malformed(_))
    ));
    // Realm filter: only the configured realm is answered.
    let mut only = DigestClient::new("u", "p").for_realm("mine");
    let a = only
        .answer(
            ChallengeKind::Proxy,
            [
                r#"Digest realm="theirs", nonce="1", algorithm=SHA-256"#,
                r#"Digest realm="mine", nonce="2", algorithm=MD5"#,
            ],
            REG,
            "c",
        )
        .unwrap();
    assert!(a.value.contains(r#"realm="mine""#));
    // auth-int with auth offered: auth is used.
    let mut c = DigestClient::new("u", "p");
    let a = c
        .answer(
            ChallengeKind::Www,
            [r#"Digest realm="r", nonce="n", qop="auth-int,auth""#],
            REG,
            "c",
        )
        .unwrap();
    assert!(a.value.contains("qop=auth,"));
    assert!(!format!("{c:?}").contains("\"p\""));
}
