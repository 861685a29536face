#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Header parsing edge cases, and arbitrary input never panicking.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use sip_auth::{
    Authenticator, ChallengeKind, DigestClient, DigestRequest, MAX_PARAMS, MAX_VALUE_LEN,
    MemoryDirectory, ParseError, parse_challenges, parse_credentials,
};

#[test]
fn names_are_case_insensitive_values_are_not() {
    let c = parse_credentials(r#"digest USERNAME="Alice", Realm="R", NONCE=abc"#).unwrap();
    assert!(c.is_digest());
    assert_eq!(c.username(), Some("Alice"));
    assert_eq!(c.realm(), Some("R"));
    assert_eq!(c.nonce(), Some("abc"));
}

#[test]
fn whitespace_and_folding() {
    let v = "Digest   realm = \"r\" ,\r\n\tnonce=\"n\"  ,qop=auth,  ";
    let c = parse_credentials(v).unwrap();
    assert_eq!(c.realm(), Some("r"));
    assert_eq!(c.nonce(), Some("n"));
    assert_eq!(c.qop(), Some("auth"));
    assert_eq!(c.params.len(), 3);
}

#[test]
fn unknown_params_are_ignored() {
    let c = parse_challenges(r#"Digest realm="r", foo=bar, nonce="n", x-y="z,w""#).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].realm(), Some("r"));
    assert_eq!(c[0].nonce(), Some("n"));
    assert_eq!(c[0].params.get("x-y"), Some("z,w"));
}

#[test]
fn commas_inside_quotes_do_not_split() {
    let c = parse_challenges(r#"Digest realm="a, Digest b", nonce="n""#).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].realm(), Some("a, Digest b"));
}

#[test]
fn escapes_and_utf8() {
    let c = parse_credentials(r#"Digest username="J\"o\\e", realm="réalm ✓""#).unwrap();
    assert_eq!(c.username(), Some(r#"J"o\e"#));
    assert_eq!(c.realm(), Some("réalm ✓"));
    // An escaped ordinary character is that character.
    let c = parse_credentials(r#"Digest username="\a\b""#).unwrap();
    assert_eq!(c.username(), Some("ab"));
}

#[test]
fn malformed_inputs_are_typed_errors() {
    let cases: &[(&str, ParseError)] = &[
        ("", ParseError::Empty),
        ("  , ,", ParseError::Empty),
        (
            r#"Digest realm="x"#,
            ParseError::UnterminatedQuote { at: 13 },
        ),
        (
            r#"Digest realm="x\"#,
            ParseError::UnterminatedQuote { at: 13 },
        ),
        ("Digest realm \"x\"", ParseError::ExpectedEquals { at: 13 }),
        (
            "Digest realm=\"a\" nonce=\"b\"",
            ParseError::ExpectedComma { at: 17 },
        ),
        (
            "Digest nonce=\"b\", realm=",
            ParseError::ExpectedValue { at: 24 },
        ),
        (
            "Digest realm=, nonce=\"b\"",
            ParseError::InvalidCharacter { at: 20 },
        ),
        (
            "Digest realm=\"a\", realm=\"b\"",
            ParseError::DuplicateParam { at: 18 },
        ),
        (
            "Digest realm=\"a\", REALM=\"b\"",
            ParseError::DuplicateParam { at: 18 },
        ),
        (
            "Digest realm=\"a\u{1}\"",
            ParseError::InvalidCharacter { at: 15 },
        ),
        (
            "Digest realm=\"a\\\r\"",
            ParseError::InvalidCharacter { at: 15 },
        ),
        ("Digest=x", ParseError::InvalidCharacter { at: 6 }),
        ("\"Digest\" realm=x", ParseError::ExpectedToken { at: 0 }),
        (
            "Digest realm=\"a\", @=b",
            ParseError::ExpectedToken { at: 18 },
        ),
    ];
    for (input, want) in cases {
        let got = parse_challenges(input);
        assert_eq!(got.as_ref().err(), Some(want), "{input:?} -> {got:?}");
    }
    assert_eq!(
        parse_credentials(r#"Digest realm="a", Basic abc"#).unwrap_err(),
        ParseError::TrailingCredentials { at: 18 }
    );
    assert_eq!(
        parse_credentials(&"a".repeat(MAX_VALUE_LEN + 1)).unwrap_err(),
        ParseError::TooLong
    );
    let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
    assert_eq!(
        parse_credentials(&format!("Digest {}", many.join(", "))).unwrap_err(),
        ParseError::TooMany
    );
    let schemes = vec!["Negotiate"; 100].join(", ");
    assert_eq!(parse_challenges(&schemes).unwrap_err(), ParseError::TooMany);
}

#[test]
fn bare_values_with_slashes_and_equals() {
    let c = parse_challenges(
        "Digest realm=r, nonce=7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v==, uri=sip:a@b",
    )
    .unwrap();
    assert_eq!(
        c[0].nonce(),
        Some("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v==")
    );
    assert_eq!(c[0].params.get("uri"), Some("sip:a@b"));
}

#[test]
fn scheme_only_and_token68_then_digest() {
    let c = parse_challenges(
        "Negotiate, Basic YWxhZGRpbjpvcGVuc2VzYW1l, Digest realm=\"r\", nonce=\"n\"",
    )
    .unwrap();
    assert_eq!(c.len(), 3);
    assert!(c[0].params.is_empty());
    assert_eq!(c[1].token68, Some("YWxhZGRpbjpvcGVuc2VzYW1l"));
    assert!(c[2].is_digest());
}

fn bytes_as_str(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = bytes_as_str(&bytes);
        let _ = parse_challenges(&s);
        let _ = parse_credentials(&s);
    }

    #[test]
    fn header_shaped_input_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("Digest".to_owned()), Just(" ".to_owned()), Just(",".to_owned()),
                Just("=".to_owned()), Just("\"".to_owned()), Just("\\".to_owned()),
                Just("realm".to_owned()), Just("nonce".to_owned()), Just("\r\n".to_owned()),
                Just("qop=auth".to_owned()), Just("é".to_owned()), "[a-z0-9/+=]{0,6}",
            ],
            0..40,
        )
    ) {
        let s: String = parts.concat();
        let _ = parse_challenges(&s);
        let _ = parse_credentials(&s);
        // The whole server and client paths too.
        let auth = Authenticator::new("r", b"0123456789abcdef").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let req = DigestRequest { method: "REGISTER", uri: "sip:r" };
        let _ = auth.verify(now, req, [s.as_str()], &MemoryDirectory::new());
        let mut client = DigestClient::new("u", "p");
        let _ = client.answer(ChallengeKind::Www, [s.as_str()], req, "c");
    }

    #[test]
    fn quoted_values_round_trip(v in "\\PC{0,40}") {
        let mut quoted = String::from("Digest username=\"");
        for ch in v.chars() {
            if ch == '"' || ch == '\\' { quoted.push('\\'); }
            quoted.push(ch);
        }
        quoted.push('"');
        let c = parse_credentials(&quoted).unwrap();
        prop_assert_eq!(c.username(), Some(v.as_str()));
    }
}
