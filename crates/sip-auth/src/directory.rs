//! Where the server finds a user's secret: the [`UserDirectory`] trait and
//! [`MemoryDirectory`], a map filled from config.

use std::collections::HashMap;
use std::fmt;

use crate::algorithm::{Algorithm, Ha1};

/// A source of user secrets for one or more realms.
///
/// It answers with the HA1 for a user, a realm and an algorithm; `None`
/// when the user is unknown or has no secret for that algorithm. A lookup
/// must not block (read from memory; load remote directories ahead of
/// time).
pub trait UserDirectory {
    /// The HA1 of `username` in `realm` for `algorithm`.
    fn ha1(&self, username: &str, realm: &str, algorithm: Algorithm) -> Option<Ha1>;
}

impl<T: UserDirectory + ?Sized> UserDirectory for &T {
    fn ha1(&self, username: &str, realm: &str, algorithm: Algorithm) -> Option<Ha1> {
        (**self).ha1(username, realm, algorithm)
    }
}

impl<T: UserDirectory + ?Sized> UserDirectory for std::sync::Arc<T> {
    fn ha1(&self, username: &str, realm: &str, algorithm: Algorithm) -> Option<Ha1> {
        (**self).ha1(username, realm, algorithm)
    }
}

/// What [`MemoryDirectory`] holds for one user.
#[derive(Clone, PartialEq, Eq)]
pub enum UserSecret {
    /// A plaintext password: HA1 is computed for whatever realm asks.
    Password(String),
    /// Precomputed HA1 values, one per algorithm, each bound to the realm it
    /// was computed for. An algorithm without one cannot authenticate.
    Ha1 {
        /// HA1 for MD5.
        md5: Option<Ha1>,
        /// HA1 for SHA-256.
        sha256: Option<Ha1>,
    },
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSecret::Password(_) => f.write_str("Password(<redacted>)"),
            UserSecret::Ha1 { md5, sha256 } => f
                .debug_struct("Ha1")
                .field("md5", &md5.is_some())
                .field("sha256", &sha256.is_some())
                .finish(),
        }
    }
}

/// An in-memory user directory, e.g. the users of a config file.
///
/// Usernames compare exactly (case-sensitive), as the digest computation
/// does. `Debug` shows only the number of users.
#[derive(Clone, Default)]
pub struct MemoryDirectory {
    users: HashMap<String, UserSecret>,
}

impl MemoryDirectory {
    /// An empty directory.
    #[must_use]
    pub fn new() -> MemoryDirectory {
        MemoryDirectory::default()
    }

    /// Adds or replaces a user with a plaintext password.
    pub fn insert_password(&mut self, username: impl Into<String>, password: impl Into<String>) {
        self.users
            .insert(username.into(), UserSecret::Password(password.into()));
    }

    /// Adds a precomputed HA1 for a user, keeping HA1 values of other
    /// algorithms; replaces a plaintext password.
    pub fn insert_ha1(&mut self, username: impl Into<String>, ha1: Ha1) {
        let entry = self
            .users
            .entry(username.into())
            .or_insert(UserSecret::Ha1 {
                md5: None,
                sha256: None,
            });
        if matches!(entry, UserSecret::Password(_)) {
            *entry = UserSecret::Ha1 {
                md5: None,
                sha256: None,
            };
        }
        if let UserSecret::Ha1 { md5, sha256 } = entry {
            match ha1.algorithm() {
                Algorithm::Md5 => *md5 = Some(ha1),
                Algorithm::Sha256 => *sha256 = Some(ha1),
            }
        }
    }

    /// Removes a user; true if it was there.
    pub fn remove(&mut self, username: &str) -> bool {
        self.users.remove(username).is_some()
    }

    /// Number of users.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl fmt::Debug for MemoryDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDirectory")
            .field("users", &self.users.len())
            .finish()
    }
}

impl UserDirectory for MemoryDirectory {
    fn ha1(&self, username: &str, realm: &str, algorithm: Algorithm) -> Option<Ha1> {
        match self.users.get(username)? {
            UserSecret::Password(p) => Some(Ha1::compute(algorithm, username, realm, p)),
            UserSecret::Ha1 { md5, sha256 } => match algorithm {
                Algorithm::Md5 => md5.clone(),
                Algorithm::Sha256 => sha256.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn password_and_ha1_entries() {
        let mut d = MemoryDirectory::new();
        d.insert_password("alice", "secret");
        let md5 = Ha1::compute(Algorithm::Md5, "bob", "r", "pw");
        d.insert_ha1("bob", md5.clone());
        assert_eq!(d.ha1("bob", "r", Algorithm::Md5), Some(md5));
        assert_eq!(d.ha1("bob", "r", Algorithm::Sha256), None);
        assert_eq!(
            d.ha1("alice", "r", Algorithm::Sha256),
            Some(Ha1::compute(Algorithm::Sha256, "alice", "r", "secret"))
        );
        assert_eq!(d.ha1("carol", "r", Algorithm::Md5), None);
        assert!(!format!("{d:?}").contains("secret"));
        assert!(d.remove("alice"));
        assert_eq!(d.len(), 1);
    }
}
