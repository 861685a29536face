//! A container as the edge knows it: its config and its counters.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::config::ContainerConfig;

/// One container in the edge's cluster view (the data of a
/// [`balance::Member`]).
#[derive(Debug)]
pub struct Container {
    /// Addresses and weight.
    pub config: ContainerConfig,
    /// Counters; kept across reloads (a reload that keeps the container
    /// keeps its counters).
    pub counters: Arc<ContainerCounters>,
    /// Where the edge learnt of it.
    pub origin: Origin,
}

/// Where a container in the view came from (`source` label of
/// `sb_edge_container_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Origin {
    /// `[[containers]]` in the config (or a reload of it).
    #[default]
    Config,
    /// `POST /_sb/admin/containers`.
    Admin,
    /// Announced in the membership store (`members`): removed when it is no
    /// longer announced.
    Membership,
}

impl Origin {
    /// `config`, `admin` or `membership`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Admin => "admin",
            Origin::Membership => "membership",
        }
    }
}

/// Per-container counters, exposed on `/_sb/metrics`.
#[derive(Debug, Default)]
pub struct ContainerCounters {
    /// SIP messages (requests and responses) forwarded to the container.
    pub sip_in: AtomicU64,
    /// SIP messages (requests and responses) from the container forwarded
    /// to the outside.
    pub sip_out: AtomicU64,
    /// Responses from the container forwarded on.
    pub responses: AtomicU64,
    /// Messages of another (down or unknown) container's sessions sent to
    /// this one instead.
    pub failovers: AtomicU64,
    /// Probes that succeeded.
    pub probes_ok: AtomicU64,
    /// Probes that failed.
    pub probes_failed: AtomicU64,
    /// Sends to the container that failed.
    pub transport_errors: AtomicU64,
    /// 503 responses with Retry-After.
    pub overloads: AtomicU64,
    /// HTTP requests proxied to it.
    pub http_requests: AtomicU64,
}
