//! Allocation counts on the hot paths, measured with dhat's counting
//! allocator: framing a stream allocates nothing, parsing allocates the
//! header index only, a forward rewrite a bounded few blocks.
//!
//! One test in this file: dhat counts the whole process, so no other test
//! may run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use sip_message::{Frame, SipMessage, StreamFramer};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=tcp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

fn blocks_during(f: impl FnOnce()) -> u64 {
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get().total_blocks;
    f();
    dhat::HeapStats::get().total_blocks - before
}

#[test]
fn hot_path_allocations() {
    // Framing: 100 messages and keepalives from one buffer, no allocation.
    let mut buf = BytesMut::with_capacity(INVITE.len() * 101 + 400);
    for _ in 0..101 {
        buf.extend_from_slice(INVITE);
        buf.extend_from_slice(b"\r\n\r\n");
    }
    let mut framer = StreamFramer::default();
    // The first split turns the buffer into shared storage: one allocation,
    // once per connection buffer, not per message.
    let first = framer.next_frame(&mut buf).unwrap();
    assert!(matches!(first, Some(Frame::Message(_))));
    let mut frames = 0;
    let framing = blocks_during(|| {
        while let Some(frame) = framer.next_frame(&mut buf).unwrap() {
            std::hint::black_box(frame);
            frames += 1;
        }
    });
    assert_eq!(frames, 201, "100 messages and 101 pings");
    assert_eq!(framing, 0, "framing allocated");

    // Parsing: the header index is the one allocation.
    let bytes = Bytes::from_static(INVITE);
    let mut parsed = None;
    let parsing = blocks_during(|| parsed = Some(SipMessage::parse(bytes.clone()).unwrap()));
    assert_eq!(parsing, 1, "parse allocated more than the header index");

    // Reading typed routing headers allocates nothing.
    let msg = parsed.unwrap();
    let decoding = blocks_during(|| {
        use sip_message::headers::{CSeq, CallId, From, MaxForwards, Route, To, Via};
        let via: Via<'_> = msg.typed().unwrap().unwrap();
        let from: From<'_> = msg.typed().unwrap().unwrap();
        let to: To<'_> = msg.typed().unwrap().unwrap();
        let call_id: CallId<'_> = msg.typed().unwrap().unwrap();
        let cseq: CSeq<'_> = msg.typed().unwrap().unwrap();
        let mf: MaxForwards = msg.typed().unwrap().unwrap();
        let routes = msg.typed_all::<Route<'_>>().filter(Result::is_ok).count();
        std::hint::black_box((
            via.branch(),
            from.tag(),
            to.tag(),
            call_id,
            cseq,
            mf,
            routes,
        ));
    });
    assert_eq!(decoding, 0, "typed routing headers allocated");

    // Forward rewrite: the splice list, its text, the output buffer.
    let rewriting = blocks_during(|| {
        let mut e = msg.edit();
        e.prepend_via("SIP/2.0/TCP 203.0.113.1;branch=z9hG4bKx")
            .unwrap();
        e.decrement_max_forwards().unwrap();
        e.pop_route().unwrap();
        std::hint::black_box(e.to_bytes());
    });
    assert!(
        rewriting <= 3,
        "forward rewrite allocated {rewriting} blocks"
    );
}
