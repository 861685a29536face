//! Replays the committed fuzz inputs through the same checks the fuzz
//! targets run (`fuzz/src/checks.rs`), so CI exercises every interesting
//! input the fuzzer found, on stable and without libFuzzer. See
//! `fuzz/README.md`.
//!
//! * `fuzz/seeds/<target>/`: the hand-written and RFC 4475 / RFC 5118 seeds,
//!   with readable names.
//! * `fuzz/corpus/<target>/`: the minimized corpus after fuzzing.
//! * `fuzz/regressions/<target>/`: inputs that made a check fail. Their bugs
//!   are either fixed or tolerated by `checks::known_bugs`, so they replay
//!   cleanly; the ignored `known_bug_*` tests below assert the fixed
//!   behaviour of each known bug and are un-ignored when it is fixed.
//!
//! A missing or empty seeds or corpus directory fails the test: it means
//! inputs were lost, not that there is nothing to check.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use sip_message::headers::{CSeq, To, TypedHeader};
use sip_message::{
    Frame, Limits, ResponseBuilder, Role, SipMessage, StreamFramer, Transport, Uri, validate,
};

#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/checks.rs"]
mod checks;

#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/replay.rs"]
mod replay;
use replay::{files, read};

/// The fuzz project, from this crate's manifest directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// One test per target, replaying its seeds, corpus and regressions.
macro_rules! replay_tests {
    ($($test:ident: $target:literal => $check:path;)*) => {$(
        #[test]
        fn $test() {
            replay::replay(&fuzz_dir(), "seeds", $target, $check, true);
            replay::replay(&fuzz_dir(), "corpus", $target, $check, true);
            replay::replay(&fuzz_dir(), "regressions", $target, $check, false);
        }
    )*};
}

replay_tests! {
    parse: "parse" => checks::check_parse;
    framer: "framer" => checks::check_framer;
    uri: "uri" => checks::check_uri;
    typed_headers: "typed_headers" => checks::check_typed_headers;
}

// ---- known bugs: the fixed behaviour, asserted strictly ----------------------

/// The regression inputs of one target whose names start with `prefix`.
fn regressions(target: &str, prefix: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let found: Vec<_> = files(&fuzz_dir().join("regressions").join(target))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|p| {
            let data = read(&p);
            (p, data)
        })
        .collect();
    assert!(!found.is_empty(), "no regressions/{target}/{prefix}*");
    found
}

/// KB1: a URI with a repeated parameter equals itself (RFC 3261 §19.1.4).
#[test]
fn fixed_kb1_uri_with_repeated_param_equals_itself() {
    for (path, data) in regressions("uri", "kb1-") {
        let text = std::str::from_utf8(&data).expect("UTF-8");
        let uri = Uri::parse(text).expect("parses");
        assert!(uri.eq_rfc(&uri), "{}: {text:?}", path.display());
    }
    for (path, data) in regressions("parse", "kb1-") {
        // The same URI in the From of a whole message.
        let msg = SipMessage::parse(Bytes::from(data)).expect("parses");
        for v in msg.typed_all::<sip_message::headers::From<'_>>() {
            let from = v.expect("From parses");
            assert!(from.uri().eq_rfc(from.uri()), "{}", path.display());
        }
    }
}

/// KB2: a CSeq number is below 2**31 (RFC 3261 §8.1.1.5).
#[test]
fn fixed_kb2_cseq_is_below_2_31() {
    for (path, data) in regressions("typed_headers", "kb2-") {
        let text = std::str::from_utf8(&data).expect("UTF-8");
        assert!(CSeq::parse(text).is_err(), "{}: {text:?}", path.display());
    }
}

/// KB3: a request a UAS accepts can be answered (RFC 3261 §8.2.6).
#[test]
fn fixed_kb3_valid_request_can_be_answered() {
    for (path, data) in regressions("parse", "kb3-") {
        let msg = SipMessage::parse(Bytes::from(data)).expect("parses");
        assert_eq!(validate(&msg, Role::Uas), Ok(()), "{}", path.display());
        for code in [100, 200, 400] {
            let built =
                ResponseBuilder::for_request(&msg, code, Some("t1")).and_then(|b| b.build());
            assert!(
                built.is_ok(),
                "{} answering {code}: {built:?}",
                path.display()
            );
        }
    }
}

/// KB4: on a stream, the framer and the parser agree on where a message
/// ends (RFC 3261 §18.3).
#[test]
fn fixed_kb4_framer_and_parser_agree_on_message_end() {
    for (path, data) in regressions("framer", "kb4-") {
        let mut buf = BytesMut::from(data.get(1..).unwrap_or_default());
        let mut framer = StreamFramer::default();
        while let Ok(Some(frame)) = framer.next_frame(&mut buf) {
            let Frame::Message(bytes) = frame else {
                continue;
            };
            let parsed =
                SipMessage::parse_with(bytes.clone(), Transport::Stream, &Limits::default());
            if let Ok(msg) = parsed {
                assert_eq!(msg.message_bytes(), bytes, "{}", path.display());
            }
        }
    }
}

/// KB5: a To `tag` without a value is refused (§25.1 tag-param), or at
/// least a response built to it carries a tag (§8.2.6.2).
#[test]
fn fixed_kb5_valueless_to_tag() {
    for (path, data) in regressions("parse", "kb5-") {
        let msg = SipMessage::parse(Bytes::from(data)).expect("parses");
        if validate(&msg, Role::Uas).is_err() {
            continue;
        }
        let resp = ResponseBuilder::for_request(&msg, 200, Some("t1"))
            .and_then(|b| b.build())
            .expect("answerable");
        let to = resp.typed::<To<'_>>().expect("To").expect("To parses");
        assert_eq!(to.tag(), Some("t1"), "{}", path.display());
    }
}
