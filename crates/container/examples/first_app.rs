//! The application of docs/FIRST-APPLICATION.md: a SIP handler and an HTTP
//! route sharing one application session, run in a container.
//!
//! * `INVITE sip:desk@HOST` is answered 200; the call is counted in its
//!   session (`calls`) and the caller noted.
//! * `GET /desk?sbt=TOKEN` (or with the `SBSESSION` cookie) shows what the
//!   SIP side wrote; `POST /desk` with a note stores it in the session.
//!
//! ```sh
//! cargo run -p container --example first_app -- 127.0.0.1:5080
//! sipp -sn uac 127.0.0.1:5080 -s desk -m 1        # then read the token
//! curl -s '127.0.0.1:8090/desk?sbt=c1.0123456789abcdef'
//! ```

#![allow(clippy::print_stdout)]

use bytes::Bytes;
use container::{Container, ContainerConfig};
use sip_app::{
    AppError, AppRouter, Context, HttpRequest, HttpResponse, IncomingRequest, Rule, SipRouter,
};

/// The application's state: shared by every session (configuration,
/// clients); per-call data goes in the session.
struct Desk {
    greeting: String,
}

async fn on_invite(cx: Context<Desk>, invite: IncomingRequest) -> Result<(), AppError> {
    let calls = cx.session().get::<u32>("calls")?.unwrap_or(0) + 1;
    cx.session().set("calls", &calls)?;
    cx.session()
        .set("caller", &invite.request().from_tag().unwrap_or(""))?;
    // Written to the session store before the 200 leaves: a survivor
    // container would find it.
    invite.accept().await
}

async fn show(cx: Context<Desk>, _req: HttpRequest) -> Result<HttpResponse, AppError> {
    let s = cx.session();
    let text = format!(
        "{} session {}: calls={:?} caller={:?} note={:?}\n",
        cx.state().greeting,
        s.id(),
        s.get::<u32>("calls")?,
        s.get::<String>("caller")?,
        s.get::<String>("note")?,
    );
    Ok(HttpResponse::new(Bytes::from(text)))
}

async fn note(cx: Context<Desk>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let note = String::from_utf8_lossy(req.body()).into_owned();
    cx.session().set("note", &note)?;
    show(cx, req).await
}

/// The application: SIP and HTTP routes, one state.
fn desk() -> sip_app::Application {
    SipRouter::new()
        .invite(on_invite)
        .http("GET", "/desk", show)
        .http("POST", "/desk", note)
        .with_state(
            "desk",
            Desk {
                greeting: "front desk".to_owned(),
            },
        )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5080".to_owned())
        .parse()?;
    let mut config = ContainerConfig::development("c1", listen);
    config.listen.http = "127.0.0.1:8090".parse()?;
    let store = session_store::Store::open("memory").await?;
    let apps = AppRouter::new().route(Rule::any().user("desk"), desk());
    let c = Container::start_with_apps(config, store, apps).await?;
    println!(
        "first_app: SIP {listen} (call sip:desk@{listen}), HTTP {}; Ctrl-C stops it",
        c.http_addr()
    );
    tokio::signal::ctrl_c().await?;
    c.shutdown();
    Ok(())
}
