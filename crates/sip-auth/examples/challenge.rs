//! One digest exchange end to end, on parsed SIP messages: a REGISTER
//! without credentials gets a 401 with SHA-256 and MD5 challenges, the
//! client answers the strongest, the server accepts it, and the same answer
//! once the nonce has expired gets a `stale=true` challenge.
//!
//! ```sh
//! cargo run -p sip-auth --example challenge
//! ```

#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime};

use sip_auth::{
    Authenticator, ChallengeKind, DigestClient, DigestRequest, MemoryDirectory, challenges_of,
};
use sip_message::{RequestBuilder, ResponseBuilder, SipMessage};

fn register(authorization: Option<&str>) -> Result<SipMessage, Box<dyn std::error::Error>> {
    let mut b = RequestBuilder::new(sip_message::Method::Register, "sip:example.com")?
        .header("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKexample")
        .header("Max-Forwards", "70")
        .header("From", "<sip:alice@example.com>;tag=a1")
        .header("To", "<sip:alice@example.com>")
        .header("Call-ID", "example-call-id")
        .header("CSeq", "1 REGISTER")
        .header("Contact", "<sip:alice@192.0.2.10:5060>");
    if let Some(value) = authorization {
        b = b.header("Authorization", value);
    }
    Ok(b.build()?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every container of the cluster is built with the same realm and secret.
    let auth = Authenticator::new("example.com", b"the cluster's shared nonce secret")?
        .with_nonce_lifetime(Duration::from_secs(60))?;
    let mut users = MemoryDirectory::new();
    users.insert_password("alice", "wonderland");
    // Time and randomness come from the caller.
    let now = SystemTime::now();
    let salt = [0x5a; 8];

    let first = register(None)?;
    let rejection = auth
        .verify_message(now, &first, ChallengeKind::Www, &users)
        .err()
        .ok_or("unauthenticated REGISTER accepted")?;
    let reply = auth.reply(&rejection, now, salt, ChallengeKind::Www);
    let mut response = ResponseBuilder::for_request(&first, reply.status, Some("srv"))?;
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let response = response.build()?;
    println!(
        "--- server ({rejection}):\n{}",
        String::from_utf8_lossy(response.as_bytes())
    );

    let mut client = DigestClient::new("alice", "wonderland");
    let request = DigestRequest {
        method: "REGISTER",
        uri: "sip:example.com",
    };
    let creds = client.answer(
        ChallengeKind::Www,
        challenges_of(&response, ChallengeKind::Www),
        request,
        "f2/wE4q74E6z",
    )?;
    let second = register(Some(&creds.value))?;
    println!(
        "--- client:\n{}",
        String::from_utf8_lossy(second.as_bytes())
    );

    let user = auth.verify_message(now, &second, ChallengeKind::Www, &users)?;
    println!(
        "--- server: authenticated {} with {}",
        user.username, user.algorithm
    );

    let later = now + Duration::from_secs(120);
    let stale = auth
        .verify_message(later, &second, ChallengeKind::Www, &users)
        .err()
        .ok_or("expired nonce accepted")?;
    let reply = auth.reply(&stale, later, salt, ChallengeKind::Www);
    println!("--- two minutes later ({stale}): {}", reply.status);
    for (name, value) in &reply.headers {
        println!("{name}: {value}");
    }
    Ok(())
}
