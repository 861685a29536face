//! Method routing for an application, axum-style: plain async handler
//! functions, state given once with [`SipRouter::with_state`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{AppError, Context, IncomingRequest};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An async function that handles a request of one application.
pub trait Handler<S>: Send + Sync + 'static {
    /// Runs the handler.
    fn call(&self, cx: Context<S>, request: IncomingRequest) -> BoxFuture<Result<(), AppError>>;
}

impl<S, F, Fut> Handler<S> for F
where
    F: Fn(Context<S>, IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AppError>> + Send + 'static,
{
    fn call(&self, cx: Context<S>, request: IncomingRequest) -> BoxFuture<Result<(), AppError>> {
        Box::pin(self(cx, request))
    }
}

/// An async function that runs when a timer of an application session
/// fires (JSR 289 `TimerListener.timeout`).
pub trait TimerHandler<S>: Send + Sync + 'static {
    /// Runs the handler.
    fn call(&self, cx: Context<S>, timer: TimerEvent) -> BoxFuture<Result<(), AppError>>;
}

impl<S, F, Fut> TimerHandler<S> for F
where
    F: Fn(Context<S>, TimerEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AppError>> + Send + 'static,
{
    fn call(&self, cx: Context<S>, timer: TimerEvent) -> BoxFuture<Result<(), AppError>> {
        Box::pin(self(cx, timer))
    }
}

/// An HTTP request as an application sees it (body read whole).
pub type HttpRequest = http::Request<bytes::Bytes>;
/// An HTTP response an application returns.
pub type HttpResponse = http::Response<bytes::Bytes>;

/// An async function that handles an HTTP request of one application, in
/// the application session the request names (cookie `SBSESSION` or query
/// `sbt`), or in a new one.
pub trait HttpHandler<S>: Send + Sync + 'static {
    /// Runs the handler.
    fn call(
        &self,
        cx: Context<S>,
        request: HttpRequest,
    ) -> BoxFuture<Result<HttpResponse, AppError>>;
}

impl<S, F, Fut> HttpHandler<S> for F
where
    F: Fn(Context<S>, HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HttpResponse, AppError>> + Send + 'static,
{
    fn call(
        &self,
        cx: Context<S>,
        request: HttpRequest,
    ) -> BoxFuture<Result<HttpResponse, AppError>> {
        Box::pin(self(cx, request))
    }
}

/// A timer that fired: what [`Context::set_timer`] stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerEvent {
    /// The timer's id within its session.
    pub id: String,
    /// What the application attached.
    pub payload: serde_json::Value,
    /// When it was due (ms since the Unix epoch); it fires at or after this.
    pub due_unix_ms: u64,
    /// The period of a repeating timer (it is already re-armed for the next
    /// period when the handler runs; cancel it to stop it).
    pub period_ms: Option<u64>,
}

/// The methods RFC 3261 and its extensions define; an application that does
/// not handle one of these answers 405 with Allow, anything else 501
/// (§8.2.1, §21.4.6, §21.5.2).
pub(crate) const KNOWN_METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "REFER",
    "MESSAGE",
];

/// An application's SIP routes, before its state is given.
pub struct SipRouter<S> {
    routes: HashMap<String, Arc<dyn Handler<S>>>,
    fallback: Option<Arc<dyn Handler<S>>>,
    timer: Option<Arc<dyn TimerHandler<S>>>,
    http: Vec<(String, String, Arc<dyn HttpHandler<S>>)>,
    key: Option<Arc<SessionKey>>,
    listener: Option<Arc<crate::session::SessionListener>>,
}

/// A session key function (JSR 289 `@SipApplicationKey`): initial requests
/// with the same key join one application session.
pub type SessionKey = dyn Fn(&sip_message::SipMessage) -> Option<String> + Send + Sync;

impl<S> std::fmt::Debug for SipRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipRouter")
            .field("methods", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S> Default for SipRouter<S> {
    fn default() -> Self {
        SipRouter {
            routes: HashMap::new(),
            fallback: None,
            timer: None,
            http: Vec::new(),
            key: None,
            listener: None,
        }
    }
}

macro_rules! method_routes {
    ($($(#[$doc:meta])* $fn:ident => $m:literal,)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $fn(self, handler: impl Handler<S>) -> Self {
                self.on($m, handler)
            }
        )*
    };
}

impl<S: Send + Sync + 'static> SipRouter<S> {
    /// An empty router.
    #[must_use]
    pub fn new() -> Self {
        SipRouter::default()
    }

    /// Routes `method` (case-sensitive, as SIP methods are) to `handler`.
    #[must_use]
    pub fn on(mut self, method: &str, handler: impl Handler<S>) -> Self {
        self.routes.insert(method.to_owned(), Arc::new(handler));
        self
    }

    method_routes! {
        /// Routes INVITE (initial, and re-INVITEs of dialogs this
        /// application answered).
        invite => "INVITE",
        /// Routes BYE of dialogs this application answered or started.
        bye => "BYE",
        /// Routes REGISTER.
        register => "REGISTER",
        /// Routes OPTIONS.
        options => "OPTIONS",
        /// Routes MESSAGE (RFC 3428).
        message => "MESSAGE",
        /// Routes INFO (RFC 6086).
        info => "INFO",
        /// Routes UPDATE (RFC 3311).
        update => "UPDATE",
        /// Routes SUBSCRIBE (RFC 6665).
        subscribe => "SUBSCRIBE",
        /// Routes NOTIFY (RFC 6665).
        notify => "NOTIFY",
        /// Routes PUBLISH (RFC 3903).
        publish => "PUBLISH",
        /// Routes REFER (RFC 3515).
        refer => "REFER",
    }

    /// Handles every method no route names.
    #[must_use]
    pub fn fallback(mut self, handler: impl Handler<S>) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Runs `handler` when a timer of one of this application's sessions
    /// fires ([`Context::set_timer`]). Without one, timers fire and are
    /// dropped with a warning.
    #[must_use]
    pub fn timer(mut self, handler: impl TimerHandler<S>) -> Self {
        self.timer = Some(Arc::new(handler));
        self
    }

    /// Serves `method` `path` over HTTP on the container's HTTP port
    /// (converged HTTP): the handler runs in the application session the
    /// request names with the `SBSESSION` cookie or the `sbt` query
    /// parameter, or in a new one, and the response sets the cookie. A
    /// `path` ending in `/*` matches everything under it.
    #[must_use]
    pub fn http(mut self, method: &str, path: &str, handler: impl HttpHandler<S>) -> Self {
        self.http.push((
            method.to_ascii_uppercase(),
            path.to_owned(),
            Arc::new(handler),
        ));
        self
    }

    /// Session targeting by key (JSR 289 `@SipApplicationKey`): an
    /// initial request for which `key` returns `Some(k)` joins the
    /// application session of `k` when one is live (on any container: the
    /// key's session is found through the store), else starts it. `None`:
    /// a new session, as without a key.
    #[must_use]
    pub fn session_key(
        mut self,
        key: impl Fn(&sip_message::SipMessage) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Listens to the application's sessions (JSR 289 session and
    /// attribute listeners): created, expired, destroyed, attribute set
    /// and removed. Called where it happens; keep it short.
    #[must_use]
    pub fn on_session(
        mut self,
        listener: impl Fn(&crate::SessionId, &crate::SessionEvent) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Gives the router its state: the result is an [`Application`] the
    /// container can run.
    #[must_use]
    pub fn with_state(self, name: &str, state: S) -> Application {
        let state = Arc::new(state);
        let routes = self.routes;
        let fallback = self.fallback;
        let http_state = Arc::clone(&state);
        let http_routes: Vec<HttpRoute> = self
            .http
            .into_iter()
            .map(|(method, path, h)| {
                let st = Arc::clone(&http_state);
                let f: Arc<HttpDispatch> = Arc::new(move |raw, req| {
                    let cx = Context {
                        state: Arc::clone(&st),
                        raw,
                    };
                    h.call(cx, req)
                });
                HttpRoute {
                    method,
                    path,
                    dispatch: f,
                }
            })
            .collect();
        let timer_state = Arc::clone(&state);
        let timer = self.timer.map(|h| {
            let f: Arc<TimerDispatch> = Arc::new(move |raw, ev| {
                let cx = Context {
                    state: Arc::clone(&timer_state),
                    raw,
                };
                h.call(cx, ev)
            });
            f
        });
        let mut methods: Vec<String> = routes.keys().cloned().collect();
        methods.sort();
        let dispatch = move |raw: crate::context::RawContext, req: IncomingRequest| {
            let method = req.method_str();
            let handler = routes.get(method.as_str()).or(fallback.as_ref())?;
            let cx = Context {
                state: Arc::clone(&state),
                raw,
            };
            Some(handler.call(cx, req))
        };
        Application {
            name: name.to_owned(),
            methods,
            dispatch: Arc::new(dispatch),
            timer,
            http: http_routes.into(),
            key: self.key,
            listener: self.listener,
        }
    }
}

type Dispatch = dyn Fn(crate::context::RawContext, IncomingRequest) -> Option<BoxFuture<Result<(), AppError>>>
    + Send
    + Sync;

type TimerDispatch =
    dyn Fn(crate::context::RawContext, TimerEvent) -> BoxFuture<Result<(), AppError>> + Send + Sync;

pub(crate) type HttpDispatch = dyn Fn(crate::context::RawContext, HttpRequest) -> BoxFuture<Result<HttpResponse, AppError>>
    + Send
    + Sync;

struct HttpRoute {
    method: String,
    path: String,
    dispatch: Arc<HttpDispatch>,
}

impl HttpRoute {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method == method
            && match self.path.strip_suffix("/*") {
                Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")),
                None => self.path == path,
            }
    }
}

/// A runnable application: its name, its routes and its state.
#[derive(Clone)]
pub struct Application {
    name: String,
    methods: Vec<String>,
    dispatch: Arc<Dispatch>,
    timer: Option<Arc<TimerDispatch>>,
    http: Arc<[HttpRoute]>,
    key: Option<Arc<SessionKey>>,
    listener: Option<Arc<crate::session::SessionListener>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// The application's name (in the application router and in session
    /// records).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The methods it routes, for the Allow header of a 405.
    #[must_use]
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Runs the handler for the request's method; gives the request back
    /// when there is none.
    pub(crate) fn dispatch(
        &self,
        raw: crate::context::RawContext,
        req: IncomingRequest,
    ) -> Option<BoxFuture<Result<(), AppError>>> {
        (self.dispatch)(raw, req)
    }

    /// The session listener, if any.
    pub(crate) fn listener(&self) -> Option<Arc<crate::session::SessionListener>> {
        self.listener.clone()
    }

    /// Tells the listener, if any.
    pub(crate) fn notify(&self, id: &crate::SessionId, event: &crate::SessionEvent) {
        if let Some(l) = &self.listener {
            l(id, event);
        }
    }

    /// The session key of an initial request, if the application has a
    /// key function and it gives one.
    pub(crate) fn session_key(&self, request: &sip_message::SipMessage) -> Option<String> {
        self.key.as_ref().and_then(|k| k(request))
    }

    /// The HTTP handler for `method` `path`, if the application has one.
    pub(crate) fn http_route(&self, method: &str, path: &str) -> Option<Arc<HttpDispatch>> {
        self.http
            .iter()
            .find(|r| r.matches(method, path))
            .map(|r| Arc::clone(&r.dispatch))
    }

    /// Runs the timer handler; None when the application has none.
    pub(crate) fn dispatch_timer(
        &self,
        raw: crate::context::RawContext,
        ev: TimerEvent,
    ) -> Option<BoxFuture<Result<(), AppError>>> {
        self.timer.as_ref().map(|t| t(raw, ev))
    }
}
