//! Helpers shared by the engine tests: a stack on a loopback UDP port.

#![allow(dead_code)]

use std::net::SocketAddr;

use sip_stack::{Stack, StackConfig};

/// A one-shard stack on 127.0.0.1, port 0, on the test's runtime; with the
/// address it got.
pub(crate) async fn loopback_stack() -> (Stack, SocketAddr) {
    let mut config = StackConfig::udp("127.0.0.1:0".parse().unwrap());
    config.shards = 1;
    config.dedicated_threads = false;
    let stack = Stack::start(config).await.unwrap();
    let addr = stack
        .handle()
        .local_addr(sip_message::TransportKind::Udp)
        .unwrap();
    (stack, addr)
}
