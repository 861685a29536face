//! Digest authentication as a layer in front of the built-in applications
//! (`[auth]` in the config): initial requests of the configured methods
//! must carry credentials of a configured user, checked by `sip-auth`
//! (stateless nonces under the cluster's shared secret). REGISTER is
//! challenged with 401 and must be for the authenticated user's own
//! address (To user); other methods with 407, and the caller (From user)
//! must be the authenticated user. Requests inside a dialog pass.

use std::time::{Duration, SystemTime};

use sip_app::{AppError, IncomingRequest};
use sip_auth::{Algorithm, Authenticator, ChallengeKind, MemoryDirectory};
use sip_message::headers::{From, To};

use crate::config::AuthConfig;

/// The authentication layer of a container.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Authenticator,
    users: std::sync::Arc<MemoryDirectory>,
    methods: Vec<String>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("realm", &self.auth.realm())
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Builds the layer; on a bad setting, the field and what is wrong.
    pub fn from_config(c: &AuthConfig) -> Result<AuthLayer, (&'static str, String)> {
        if c.realm.is_empty() || c.realm.contains('"') {
            return Err(("realm", "must be non-empty, without quotes".to_owned()));
        }
        let mut algorithms = Vec::new();
        for a in &c.algorithms {
            let alg = Algorithm::from_token(a)
                .ok_or_else(|| ("algorithms", format!("{a:?} is not SHA-256 or MD5")))?;
            algorithms.push(alg);
        }
        let auth = Authenticator::new(c.realm.clone(), c.secret.as_bytes())
            .map_err(|e| ("secret", e.to_string()))?
            .with_algorithms(&algorithms)
            .map_err(|e| ("algorithms", e.to_string()))?
            .with_nonce_lifetime(Duration::from_secs(c.nonce_lifetime_s))
            .map_err(|e| ("nonce_lifetime_s", e.to_string()))?
            .with_uri_check(c.check_uri);
        if c.users.is_empty() {
            return Err(("users", "needs at least one user".to_owned()));
        }
        let mut users = MemoryDirectory::new();
        for (name, password) in &c.users {
            users.insert_password(name, password);
        }
        Ok(AuthLayer {
            auth,
            users: std::sync::Arc::new(users),
            methods: c.methods.clone(),
        })
    }

    /// Lets a request through (`Some`) or answers it with a challenge, 403
    /// or 400 (`None`). `random` seeds the nonce's salt.
    pub async fn admit(
        &self,
        req: IncomingRequest,
        random: u64,
    ) -> Result<Option<IncomingRequest>, AppError> {
        let method = req
            .request()
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        if req.is_in_dialog() || !self.methods.contains(&method) {
            return Ok(Some(req));
        }
        let register = method == "REGISTER";
        let kind = if register {
            ChallengeKind::Www
        } else {
            ChallengeKind::Proxy
        };
        let now = SystemTime::now();
        let salt = random.to_le_bytes();
        match self
            .auth
            .verify_message(now, req.request(), kind, self.users.as_ref())
        {
            Ok(user) => {
                let claimed = if register {
                    req.request()
                        .typed::<To<'_>>()
                        .and_then(Result::ok)
                        .and_then(|t| t.uri().as_sip().and_then(|u| u.user().map(str::to_owned)))
                } else {
                    req.request()
                        .typed::<From<'_>>()
                        .and_then(Result::ok)
                        .and_then(|f| f.uri().as_sip().and_then(|u| u.user().map(str::to_owned)))
                };
                if claimed.as_deref() != Some(user.username.as_str()) {
                    let reason = if register {
                        "Forbidden (credentials are for another address of record)"
                    } else {
                        "Forbidden (credentials are for another caller)"
                    };
                    req.respond(403, Some(reason)).await?;
                    return Ok(None);
                }
                Ok(Some(req))
            }
            Err(rejection) => {
                let reply = self.auth.reply(&rejection, now, salt, kind);
                let reason = match reply.status {
                    401 => "Unauthorized".to_owned(),
                    407 => "Proxy Authentication Required".to_owned(),
                    403 => format!("Forbidden ({rejection})"),
                    _ => format!("Bad Request ({rejection})"),
                };
                let reason = reason.replace(['\r', '\n'], " ");
                let mut b = req.response(reply.status, Some(&reason))?;
                for (name, value) in &reply.headers {
                    b = b.header(name, value);
                }
                req.send(b, reply.status).await?;
                Ok(None)
            }
        }
    }
}

/// 64 bits of the stack's random generator, for nonce salts.
pub(crate) fn random(stack: &sip_stack::StackHandle) -> u64 {
    let tag = stack.tag();
    u64::from_str_radix(tag.get(..16).unwrap_or(&tag), 16)
        .unwrap_or_else(|_| sip_app::unix_ms().rotate_left(17))
}

/// [`AuthLayer::admit`] when authentication is configured; every request
/// passes when it is not.
pub async fn admit(
    layer: Option<&AuthLayer>,
    req: IncomingRequest,
    stack: &sip_stack::StackHandle,
) -> Result<Option<IncomingRequest>, AppError> {
    match layer {
        None => Ok(Some(req)),
        Some(l) => l.admit(req, random(stack)).await,
    }
}
