//! `sip-auth`: SIP digest authentication (RFC 3261 §22, RFC 2617,
//! RFC 7616, RFC 8760), sans-IO.
//!
//! It owns both sides of digest authentication: a server ([`Authenticator`])
//! that challenges requests with 401 or 407 and verifies the credentials
//! against a [`UserDirectory`], and a client ([`DigestClient`]) that answers
//! challenges for requests the application sends. MD5 and SHA-256, `qop=auth`.
//!
//! Nonces are stateless: a timestamp, a salt and an HMAC-SHA256 tag under a
//! secret, so any container holding the secret verifies a nonce another one
//! issued (see `docs/AUTH.md`). Nothing here reads a clock or generates
//! randomness: `now` and random bytes come in as arguments. Nothing panics on
//! what a peer sends.
//!
//! # Layout
//! * `parse`: [`parse_challenges`], [`parse_credentials`], [`Challenge`],
//!   [`Credentials`], [`ParseError`].
//! * `algorithm`: [`Algorithm`], [`Ha1`], [`digest_response`].
//! * `nonce`: the stateless nonce (private).
//! * `directory`: [`UserDirectory`], [`MemoryDirectory`], [`UserSecret`].
//! * `server`: [`Authenticator`], [`Rejection`], [`Reply`], [`Authenticated`].
//! * `client`: [`DigestClient`], [`Authorization`].
//! * `message`: the same on a parsed [`sip_message::SipMessage`]
//!   ([`Authenticator::verify_message`], [`challenges_of`]).
//!
//! # Example
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use sip_auth::{Authenticator, ChallengeKind, DigestClient, DigestRequest, MemoryDirectory};
//!
//! let auth = Authenticator::new("example.com", b"a shared 32-byte cluster secret!")?;
//! let mut users = MemoryDirectory::new();
//! users.insert_password("alice", "wonderland");
//!
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let request = DigestRequest { method: "REGISTER", uri: "sip:example.com" };
//!
//! // No credentials: 401 with one WWW-Authenticate per algorithm, SHA-256 first.
//! let rejection = auth.verify(now, request, [], &users).unwrap_err();
//! let reply = auth.reply(&rejection, now, [1; 8], ChallengeKind::Www);
//! assert_eq!(reply.status, 401);
//!
//! // The client answers with the strongest algorithm offered.
//! let mut client = DigestClient::new("alice", "wonderland");
//! let values = reply.headers.iter().map(|(_, v)| v.as_str());
//! let creds = client.answer(ChallengeKind::Www, values, request, "0a4f113b")?;
//! assert_eq!(creds.header, "Authorization");
//!
//! let user = auth.verify(now, request, [creds.value.as_str()], &users)?;
//! assert_eq!(user.username, "alice");
//! assert_eq!(user.algorithm, sip_auth::Algorithm::Sha256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod algorithm;
mod client;
mod directory;
mod message;
mod nonce;
mod parse;
mod server;

pub use algorithm::{Algorithm, Ha1, Ha1Error, ResponseQop, digest_response, format_nc};
pub use client::{Authorization, ClientError, DigestClient};
pub use directory::{MemoryDirectory, UserDirectory, UserSecret};
pub use message::challenges_of;
pub use parse::{
    AuthParam, AuthParams, Challenge, Credentials, MAX_CHALLENGES, MAX_PARAMS, MAX_VALUE_LEN,
    ParseError, parse_challenges, parse_credentials,
};
pub use server::{
    Action, Authenticated, Authenticator, BadCredentialsPolicy, ChallengeKind, ConfigError,
    DEFAULT_MAX_CLOCK_SKEW, DEFAULT_NONCE_LIFETIME, DigestRequest, MIN_SECRET_LEN, Rejection,
    Reply, response_matches,
};
