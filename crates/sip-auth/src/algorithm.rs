//! Digest algorithms, HA1 values and the digest computation itself
//! (RFC 2617 §3.2.2, RFC 7616 §3.4.1 to §3.4.3).

use std::fmt;

use md5::Md5;
use sha2::Sha256;

/// A digest algorithm this crate computes.
///
/// The `-sess` variants and SHA-512-256 are not supported (see
/// `docs/AUTH.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// MD5 (RFC 2617), the default when a challenge names no algorithm.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// Every supported algorithm, strongest first (the order RFC 8760 §2.4
    /// asks a server to list its challenges in).
    pub const STRONGEST_FIRST: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// The token used in the `algorithm` parameter.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Maps an `algorithm` token (case-insensitive); `None` for anything
    /// this crate does not compute, `-sess` variants included.
    #[must_use]
    pub fn from_token(token: &str) -> Option<Algorithm> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Relative strength: a client picks the highest one offered.
    #[must_use]
    pub fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 => 1,
            Algorithm::Sha256 => 2,
        }
    }

    /// Length of a digest in lowercase hex.
    #[must_use]
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// `H(p1 ":" p2 ":" ...)` in lowercase hex (RFC 7616 §3.4.1).
    pub(crate) fn hash_joined(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 => hex(&joined::<Md5>(parts)),
            Algorithm::Sha256 => hex(&joined::<Sha256>(parts)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

fn joined<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    d.finalize().to_vec()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    fn digit(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

/// Constant-time equality of two byte strings of public length.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HA1 = `H(username ":" realm ":" password)` for one algorithm (RFC 7616
/// §3.4.2): what a user directory stores instead of a plaintext password.
///
/// An HA1 is bound to the realm it was computed for. Its `Debug` output is
/// redacted, since it is as good as the password inside its realm.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    algorithm: Algorithm,
    hex: String,
}

/// An HA1 given as hex that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ha1Error {
    /// Wrong length for the algorithm (32 hex digits for MD5, 64 for SHA-256).
    #[error("HA1 for {algorithm} must be {expected} hex digits, got {got}")]
    Length {
        /// The algorithm the value was given for.
        algorithm: Algorithm,
        /// Expected number of hex digits.
        expected: usize,
        /// Number of characters given.
        got: usize,
    },
    /// A character that is not a hex digit.
    #[error("HA1 contains a character that is not a hex digit")]
    NotHex,
}

impl Ha1 {
    /// Computes HA1 from a plaintext password.
    #[must_use]
    pub fn compute(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> Ha1 {
        Ha1 {
            algorithm,
            hex: algorithm.hash_joined(&[
                username.as_bytes(),
                realm.as_bytes(),
                password.as_bytes(),
            ]),
        }
    }

    /// Takes a precomputed HA1 in hex (either case).
    ///
    /// # Errors
    /// [`Ha1Error`] when `hex` has the wrong length or is not hex.
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Ha1, Ha1Error> {
        if hex.len() != algorithm.hex_len() {
            return Err(Ha1Error::Length {
                algorithm,
                expected: algorithm.hex_len(),
                got: hex.len(),
            });
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Ha1Error::NotHex);
        }
        Ok(Ha1 {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }

    /// The algorithm this HA1 was computed with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The HA1 in lowercase hex.
    #[must_use]
    pub fn as_hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ha1")
            .field("algorithm", &self.algorithm)
            .field("hex", &"<redacted>")
            .finish()
    }
}

/// The `qop`-dependent inputs of a digest response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseQop<'a> {
    /// No `qop` (RFC 2069 compatibility, RFC 2617 §3.2.2.1).
    None,
    /// `qop=auth` with its client nonce and nonce count.
    Auth {
        /// `cnonce`.
        cnonce: &'a str,
        /// `nc`, 8 hex digits on the wire.
        nc: u32,
    },
}

/// The `response` value (RFC 7616 §3.4.1): `KD(HA1, nonce ":" nc ":" cnonce
/// ":" qop ":" HA2)` with qop, `KD(HA1, nonce ":" HA2)` without, where
/// HA2 = `H(method ":" digest-uri)` (qop `auth`, RFC 7616 §3.4.3).
///
/// `ha1` decides the algorithm.
#[must_use]
pub fn digest_response(
    ha1: &Ha1,
    nonce: &str,
    qop: ResponseQop<'_>,
    method: &str,
    digest_uri: &str,
) -> String {
    let alg = ha1.algorithm;
    let ha2 = alg.hash_joined(&[method.as_bytes(), digest_uri.as_bytes()]);
    match qop {
        ResponseQop::None => {
            alg.hash_joined(&[ha1.hex.as_bytes(), nonce.as_bytes(), ha2.as_bytes()])
        }
        ResponseQop::Auth { cnonce, nc } => {
            let nc = format_nc(nc);
            alg.hash_joined(&[
                ha1.hex.as_bytes(),
                nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                b"auth",
                ha2.as_bytes(),
            ])
        }
    }
}

/// `nc` on the wire: 8 lowercase hex digits (RFC 7616 §3.4).
#[must_use]
pub fn format_nc(nc: u32) -> String {
    format!("{nc:08x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_and_ct_eq() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn ha1_from_hex_checks() {
        assert!(matches!(
            Ha1::from_hex(Algorithm::Md5, "abc"),
            Err(Ha1Error::Length { .. })
        ));
        assert_eq!(
            Ha1::from_hex(Algorithm::Md5, &"g".repeat(32)),
            Err(Ha1Error::NotHex)
        );
        let h = Ha1::from_hex(Algorithm::Md5, &"AB".repeat(16)).unwrap();
        assert_eq!(h.as_hex(), "ab".repeat(16));
        assert!(!format!("{h:?}").contains("abab"));
    }

    #[test]
    fn tokens_round_trip() {
        for a in Algorithm::STRONGEST_FIRST {
            assert_eq!(Algorithm::from_token(a.token()), Some(a));
        }
        assert_eq!(Algorithm::from_token("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_token("MD5-sess"), None);
        assert_eq!(format_nc(1), "00000001");
    }
}
