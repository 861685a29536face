//! The application router: which application an initial request goes to.
//!
//! Rules are tried in order; the first that matches picks the
//! application. A rule matches on the method and, optionally, the
//! Request-URI's user part. This is the JSR 289 application router's
//! selection step for one application per request; composition (several
//! applications on one request) is not built yet (see the crate doc).

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

/// Picks the application for an initial request.
#[derive(Debug, Clone, Default)]
pub struct AppRouter {
    rules: Vec<(Rule, Application)>,
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

    /// This router's rules, then `other`'s.
    #[must_use]
    pub fn then(mut self, other: AppRouter) -> AppRouter {
        self.rules.extend(other.rules);
        self
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
        self.rules
            .iter()
            .find_map(|(_, a)| a.http_route(method, path).map(|h| (a.clone(), h)))
    }

    /// An application by name (for requests inside its sessions).
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<Application> {
        self.rules
            .iter()
            .find(|(_, a)| a.name() == name)
            .map(|(_, a)| a.clone())
    }
}
