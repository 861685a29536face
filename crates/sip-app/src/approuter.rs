//! The application router: which application an initial request goes to.
//!
//! Rules are tried in order; the first that matches picks the
//! application. A rule matches on the method and, optionally, the
//! Request-URI's user part. A DAR file ([`AppRouter::from_dar`]) gives a
//! method a chain of applications instead (JSR 289 composition): the
//! request goes through them in the file's order, each one that proxies
//! handing it to the next.

use sip_message::SipMessage;

use crate::Application;

/// One selection rule.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    methods: Option<Vec<String>>,
    user: Option<String>,
    user_prefix: Option<String>,
}

impl Rule {
    /// Matches every initial request.
    #[must_use]
    pub fn any() -> Rule {
        Rule::default()
    }

    /// Matches these methods only.
    #[must_use]
    pub fn methods(methods: &[&str]) -> Rule {
        Rule {
            methods: Some(methods.iter().map(|m| (*m).to_owned()).collect()),
            ..Rule::default()
        }
    }

    /// And only this Request-URI user.
    #[must_use]
    pub fn user(mut self, user: &str) -> Rule {
        self.user = Some(user.to_owned());
        self
    }

    /// And only Request-URI users that start with `prefix` (a service
    /// prefix such as `b2bua-`).
    #[must_use]
    pub fn user_prefix(mut self, prefix: &str) -> Rule {
        self.user_prefix = Some(prefix.to_owned());
        self
    }

    fn matches(&self, method: &str, user: Option<&str>) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == method))
            && self.user.as_deref().is_none_or(|u| Some(u) == user)
            && self
                .user_prefix
                .as_deref()
                .is_none_or(|p| user.is_some_and(|u| u.starts_with(p)))
    }
}

/// Picks the application (or the chain of applications) for an initial
/// request.
#[derive(Debug, Clone, Default)]
pub struct AppRouter {
    rules: Vec<(Rule, Application)>,
    /// From a DAR file: per method, the applications in order.
    chains: std::collections::HashMap<String, Vec<Application>>,
}

impl AppRouter {
    /// No rules (every initial request gets 404).
    #[must_use]
    pub fn new() -> AppRouter {
        AppRouter::default()
    }

    /// Adds a rule; earlier rules win.
    #[must_use]
    pub fn route(mut self, rule: Rule, app: Application) -> AppRouter {
        self.rules.push((rule, app));
        self
    }

    /// This router's rules, then `other`'s (a method chained by both
    /// keeps this router's chain).
    #[must_use]
    pub fn then(mut self, other: AppRouter) -> AppRouter {
        self.rules.extend(other.rules);
        for (m, c) in other.chains {
            self.chains.entry(m).or_insert(c);
        }
        self
    }

    /// A router from a JSR 289 DAR file: each listed method goes through
    /// its chain of applications in order (composition, see
    /// [`IncomingRequest::proxy`](crate::IncomingRequest::proxy)). `apps`
    /// are the applications the file may name; an unknown name is an
    /// error.
    pub fn from_dar(dar: &crate::Dar, apps: &[Application]) -> Result<AppRouter, String> {
        let mut chains = std::collections::HashMap::new();
        for name in dar.apps() {
            if !apps.iter().any(|a| a.name() == name) {
                return Err(format!(
                    "the DAR file names {name:?}, which is not an application here"
                ));
            }
        }
        for method in crate::router::KNOWN_METHODS {
            let chain: Vec<Application> = dar
                .chain(method)
                .iter()
                .filter_map(|e| apps.iter().find(|a| a.name() == e.app).cloned())
                .collect();
            if !chain.is_empty() {
                chains.insert((*method).to_owned(), chain);
            }
        }
        Ok(AppRouter {
            rules: Vec::new(),
            chains,
        })
    }

    /// The applications an initial request goes through, in order: its
    /// method's DAR chain, else the first rule that matches.
    #[must_use]
    pub(crate) fn select_chain(&self, request: &SipMessage) -> Vec<Application> {
        if let Some(c) = request.method().and_then(|m| self.chains.get(m.as_str())) {
            return c.clone();
        }
        self.select(request).into_iter().collect()
    }

    fn all(&self) -> impl Iterator<Item = &Application> {
        self.rules
            .iter()
            .map(|(_, a)| a)
            .chain(self.chains.values().flatten())
    }

    /// The application for an initial request.
    #[must_use]
    pub fn select(&self, request: &SipMessage) -> Option<Application> {
        let method = request.method()?;
        let user = request.request_uri_str().and_then(crate::routing::uri_user);
        self.rules
            .iter()
            .find(|(r, _)| r.matches(method.as_str(), user))
            .map(|(_, a)| a.clone())
    }

    /// The application serving an HTTP `method` `path`, with its handler.
    pub(crate) fn http(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(Application, std::sync::Arc<crate::router::HttpDispatch>)> {
        self.all()
            .find_map(|a| a.http_route(method, path).map(|h| (a.clone(), h)))
    }

    /// An application by name (for requests inside its sessions).
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<Application> {
        self.all().find(|a| a.name() == name).cloned()
    }
}
