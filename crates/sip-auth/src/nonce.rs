//! Stateless nonces: `hex(timestamp || salt || HMAC-SHA256(secret, ...)[..16])`.
//!
//! The server keeps no table of issued nonces. Any process holding the same
//! secret and realm checks a nonce by recomputing its MAC, so every
//! container of a cluster accepts a nonce another one issued. The timestamp
//! (seconds since the Unix epoch, wall clock, so that nodes agree) gives the
//! nonce its age; the salt, random bytes from the caller, makes two nonces
//! issued in the same second differ.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::algorithm::hex;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"switchboard sip-auth nonce v1\0";
const TS_LEN: usize = 8;
const SALT_LEN: usize = 8;
const TAG_LEN: usize = 16;
const RAW_LEN: usize = TS_LEN + SALT_LEN + TAG_LEN;
/// Length of a nonce on the wire (hex).
pub(crate) const NONCE_HEX_LEN: usize = RAW_LEN * 2;

/// The keyed MAC behind nonces.
#[derive(Clone)]
pub(crate) struct NonceKey {
    mac: HmacSha256,
}

/// A nonce that this key did not issue for this realm, or not a nonce at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidNonce;

impl NonceKey {
    /// `None` only if HMAC refused the key, which it never does.
    pub(crate) fn new(secret: &[u8]) -> Option<NonceKey> {
        HmacSha256::new_from_slice(secret)
            .ok()
            .map(|mac| NonceKey { mac })
    }

    fn mac_for(&self, realm: &str, ts: [u8; TS_LEN], salt: [u8; SALT_LEN]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(&u64::try_from(realm.len()).unwrap_or(u64::MAX).to_be_bytes());
        mac.update(realm.as_bytes());
        mac.update(&ts);
        mac.update(&salt);
        mac
    }

    /// Issues a nonce for `realm` at `unix_secs`.
    pub(crate) fn issue(&self, realm: &str, unix_secs: u64, salt: [u8; SALT_LEN]) -> String {
        let ts = unix_secs.to_be_bytes();
        let tag = self.mac_for(realm, ts, salt).finalize().into_bytes();
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.extend_from_slice(&ts);
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(tag.get(..TAG_LEN).unwrap_or(&[]));
        hex(&raw)
    }

    /// Checks a nonce's MAC in constant time; gives its issue time.
    pub(crate) fn check(&self, realm: &str, nonce: &str) -> Result<u64, InvalidNonce> {
        if nonce.len() != NONCE_HEX_LEN {
            return Err(InvalidNonce);
        }
        let raw = unhex(nonce).ok_or(InvalidNonce)?;
        let ts: [u8; TS_LEN] = raw
            .get(..TS_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(InvalidNonce)?;
        let salt: [u8; SALT_LEN] = raw
            .get(TS_LEN..TS_LEN + SALT_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(InvalidNonce)?;
        let tag = raw.get(TS_LEN + SALT_LEN..).ok_or(InvalidNonce)?;
        self.mac_for(realm, ts, salt)
            .verify_truncated_left(tag)
            .map_err(|_| InvalidNonce)?;
        Ok(u64::from_be_bytes(ts))
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [h, l] => Some(nibble(*h)? << 4 | nibble(*l)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn issue_and_check() {
        let k = NonceKey::new(b"0123456789abcdef").unwrap();
        let n = k.issue("example.com", 1_700_000_000, [7; 8]);
        assert_eq!(n.len(), NONCE_HEX_LEN);
        assert_eq!(k.check("example.com", &n), Ok(1_700_000_000));
        assert_eq!(k.check("example.org", &n), Err(InvalidNonce));
        let other = NonceKey::new(b"fedcba9876543210").unwrap();
        assert_eq!(other.check("example.com", &n), Err(InvalidNonce));
        // Moving the timestamp breaks the MAC.
        let mut forged = String::from("0000000066");
        forged.push_str(n.get(10..).unwrap());
        assert_eq!(k.check("example.com", &forged), Err(InvalidNonce));
        assert_eq!(k.check("example.com", "zz"), Err(InvalidNonce));
        assert_eq!(
            k.check("example.com", &"g".repeat(NONCE_HEX_LEN)),
            Err(InvalidNonce)
        );
        assert_ne!(n, k.issue("example.com", 1_700_000_000, [8; 8]));
    }
}
