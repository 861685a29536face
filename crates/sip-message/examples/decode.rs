//! Decode a SIP message the way a proxy does and print what it read.
//!
//! `cargo run -p sip-message --example decode -- [FILE] [ITERATIONS]`
//!
//! Without FILE, decodes a built-in INVITE. With ITERATIONS, repeats the
//! parse and decode that many times (handy under a profiler).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use bytes::Bytes;
use sip_message::headers::{CSeq, CallId, From, MaxForwards, Route, To, Via};
use sip_message::{Role, SipMessage, validate};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com:5062;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;received=198.51.100.7;rport=40123\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.net:5070;lr;transport=tcp>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600;q=0.7\r\n\
Content-Length: 0\r\n\r\n";

struct Decoded<'m> {
    branch: Option<&'m str>,
    from_tag: Option<&'m str>,
    to_tag: Option<&'m str>,
    call_id: &'m str,
    cseq: u32,
    max_forwards: u8,
    routes: Vec<&'m str>,
}

fn decode(msg: &SipMessage) -> Result<Decoded<'_>, Box<dyn std::error::Error>> {
    let missing = || "missing header";
    let via: Via<'_> = msg.typed().ok_or_else(missing)??;
    let from: From<'_> = msg.typed().ok_or_else(missing)??;
    let to: To<'_> = msg.typed().ok_or_else(missing)??;
    let call_id: CallId<'_> = msg.typed().ok_or_else(missing)??;
    let cseq: CSeq<'_> = msg.typed().ok_or_else(missing)??;
    let mf = msg.typed::<MaxForwards>().transpose()?.map_or(70, |m| m.0);
    let mut routes = Vec::with_capacity(4);
    for r in msg.typed_all::<Route<'_>>() {
        routes.push(r?.uri().as_str());
    }
    Ok(Decoded {
        branch: via.branch(),
        from_tag: from.tag(),
        to_tag: to.tag(),
        call_id: call_id.0,
        cseq: cseq.seq,
        max_forwards: mf,
        routes,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bytes = match args.next() {
        Some(path) if path != "-" => Bytes::from(std::fs::read(path)?),
        _ => Bytes::from_static(INVITE),
    };
    let iterations: u64 = args.next().map_or(Ok(1), |n| n.parse())?;
    for _ in 1..iterations {
        let msg = SipMessage::parse(bytes.clone())?;
        std::hint::black_box(decode(&msg)?.routes.len());
    }
    let msg = SipMessage::parse(bytes)?;
    println!("{}", msg.start_line_str());
    let d = decode(&msg)?;
    println!(
        "branch={:?} from-tag={:?} to-tag={:?}",
        d.branch, d.from_tag, d.to_tag
    );
    println!(
        "call-id={} cseq={} max-forwards={}",
        d.call_id, d.cseq, d.max_forwards
    );
    println!("routes={:?}", d.routes);
    match validate(&msg, Role::Uas) {
        Ok(()) => println!("valid"),
        Err(e) => println!("invalid: {} {}", e.status(), e.reason_phrase()),
    }
    Ok(())
}
