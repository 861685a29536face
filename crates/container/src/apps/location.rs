//! The location service (RFC 3261 §10): the bindings of each address of
//! record, kept in the session store under `loc:<aor>` so every container
//! of a cluster that shares the store sees them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use session_store::{SessionStore, Store, StoreError};

/// One binding of an address of record to a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// The contact URI.
    pub contact: String,
    /// When it expires (ms since the Unix epoch).
    pub expires_unix_ms: u64,
    /// Preference, 0 to 1000 (q=0.0 to 1.0).
    pub q: u16,
    /// Call-ID of the REGISTER that made it (§10.3 step 7).
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// RFC 5626 `+sip.instance`, when given.
    pub instance: Option<String>,
    /// RFC 5626 `reg-id`, when given.
    pub reg_id: Option<u32>,
    /// RFC 3327 Path of the REGISTER, when given.
    pub path: Vec<String>,
}

/// The bindings of every address of record, in the store.
#[derive(Debug, Clone)]
pub struct Location {
    store: Store,
}

/// The canonical address of record of a SIP URI: `sip:user@host`,
/// host lowercased, no port unless given, no parameters (§10.3 step 5).
#[must_use]
pub fn canonical_aor(uri: &str) -> Option<String> {
    match sip_message::Uri::parse(uri).ok()? {
        sip_message::Uri::Sip(s) => Some(canonical_aor_of(&s)),
        _ => None,
    }
}

/// [`canonical_aor`] of a parsed SIP URI.
#[must_use]
pub fn canonical_aor_of(s: &sip_message::SipUri<'_>) -> String {
    let host = s.host_str();
    let user = s.user().unwrap_or("");
    let mut aor = String::with_capacity(11 + user.len() + host.len());
    aor.push_str(if s.is_secure() { "sips:" } else { "sip:" });
    if let Some(u) = s.user() {
        aor.push_str(u);
        aor.push('@');
    }
    aor.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    if let Some(p) = s.port() {
        aor.push(':');
        aor.push_str(&p.to_string());
    }
    aor
}

fn key(aor: &str) -> String {
    let mut k = String::with_capacity(4 + aor.len());
    k.push_str("loc:");
    k.push_str(aor);
    k
}

impl Location {
    /// The location service over a store.
    #[must_use]
    pub fn new(store: Store) -> Location {
        Location { store }
    }

    /// The live bindings of an AOR, best q first, and the store version.
    pub async fn lookup(
        &self,
        aor: &str,
        now_unix_ms: u64,
    ) -> Result<(Vec<Binding>, u64), StoreError> {
        match self.store.get(&key(aor)).await? {
            None => Ok((Vec::new(), 0)),
            Some(v) => {
                let mut b: Vec<Binding> = serde_json::from_slice(&v.value).unwrap_or_default();
                b.retain(|b| b.expires_unix_ms > now_unix_ms);
                b.sort_by_key(|x| std::cmp::Reverse(x.q));
                Ok((b, v.version))
            }
        }
    }

    /// Replaces the bindings of an AOR if the store still holds version
    /// `expected`.
    pub async fn store(
        &self,
        aor: &str,
        bindings: &[Binding],
        expected: u64,
        now_unix_ms: u64,
    ) -> Result<(), StoreError> {
        if bindings.is_empty() {
            return self.store.delete(&key(aor), expected).await;
        }
        let last = bindings
            .iter()
            .map(|b| b.expires_unix_ms)
            .max()
            .unwrap_or(now_unix_ms);
        let ttl = Duration::from_millis(last.saturating_sub(now_unix_ms).max(1000));
        let bytes = serde_json::to_vec(bindings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(&key(aor), bytes, expected, Some(ttl))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aors_are_canonical() {
        assert_eq!(
            canonical_aor("sip:Bob@EXAMPLE.com;transport=tcp").as_deref(),
            Some("sip:Bob@example.com")
        );
        assert_eq!(
            canonical_aor("sips:bob@example.com:5071").as_deref(),
            Some("sips:bob@example.com:5071")
        );
        assert_eq!(canonical_aor("tel:+123"), None);
    }
}
