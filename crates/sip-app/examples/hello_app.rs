//! A whole application in one file: answers INVITE (180, then 200) and
//! MESSAGE, counts calls in its application session, and leaves every other
//! method to the container's defaults (405 with Allow, 501).
//!
//! ```sh
//! cargo run -p sip-app --example hello_app -- 127.0.0.1:5080
//! sipp -sn uac 127.0.0.1:5080 -m 10          # in another terminal
//! ```

#![allow(clippy::print_stdout)]

use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, Rule, SipRouter,
};
use sip_stack::{Stack, StackConfig};

struct Greeter {
    greeting: String,
}

async fn on_invite(cx: Context<Greeter>, invite: IncomingRequest) -> Result<(), AppError> {
    // Session attributes are typed (serde) and written to the store before
    // the 200 leaves.
    cx.session().set("greeting", &cx.state().greeting)?;
    invite.provisional(180)?;
    invite.accept().await
}

async fn on_message(_cx: Context<Greeter>, message: IncomingRequest) -> Result<(), AppError> {
    if message.request().body().is_empty() {
        return Err(AppError::with_reason(400, "Bad Request (empty MESSAGE)"));
    }
    message.accept().await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5080".into())
        .parse()?;
    let stack = Stack::start(StackConfig::udp(addr)).await?;
    let app = SipRouter::new()
        .invite(on_invite)
        .message(on_message)
        .with_state(
            "hello",
            Greeter {
                greeting: "hello".into(),
            },
        );
    let router = AppRouter::new().route(Rule::any(), app);
    let store = session_store::Store::open("memory").await?;
    let engine = Engine::start(stack, EngineConfig::new("c1"), store, router);
    println!("hello_app on udp:{addr}; Ctrl-C stops it");
    tokio::signal::ctrl_c().await?;
    println!("{} live sessions at exit", engine.live_sessions());
    Ok(())
}
