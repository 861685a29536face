//! Backends, weighted rendezvous hashing, health tracking and the cluster
//! view; knows no SIP.
//!
//! The edge proxy and the sprayer both pick a backend for a key (a Call-ID,
//! an affinity token, a flow) with the same rules:
//!
//! * [`rendezvous`]: weighted rendezvous (highest random weight) hashing with
//!   xxh3. The order of backends for a key depends only on the key, the
//!   backend ids and weights, so every process on every machine computes the
//!   same order. Removing a backend moves only the keys it held, and they
//!   spread over all survivors.
//! * [`health`]: per-backend [`State`] (`Up`, `Down`, `Draining`,
//!   `Overloaded { until }`) with rise/fall thresholds, fed by active probe
//!   results and passive signals (transport errors, timeouts, 503 with
//!   Retry-After).
//! * [`cluster`]: [`Cluster`] keeps the membership and publishes an
//!   immutable [`ClusterView`] through `arc-swap`: readers on the hot path
//!   load the current view without taking a lock; writers (probes, admin
//!   API) build a new view and swap it in.
//!
//! Time enters as an argument (`now: Instant`), so the state machines are
//! testable without a clock.
//!
//! # Layout
//! * `rendezvous`: [`Backend`], [`rendezvous_order`], [`rendezvous_first`].
//! * `health`: [`State`], [`Signal`], [`HealthPolicy`], [`HealthTracker`].
//! * `cluster`: [`Cluster`], [`ClusterView`], [`Member`], [`MembershipError`].
//!
//! # Example
//! ```
//! use balance::{Backend, Cluster, HealthPolicy, Signal};
//! use std::time::Instant;
//!
//! let cluster: Cluster<()> = Cluster::new(HealthPolicy::default());
//! for id in ["c1", "c2", "c3"] {
//!     cluster.add(Backend::new(id, 1), ()).unwrap();
//! }
//! let now = Instant::now();
//! let first = cluster.view().pick_new(b"call-id-1", now).unwrap().backend.id.clone();
//! // Two failed probes (fall = 2) take it down; the key moves to the next one.
//! cluster.record(&first, Signal::ProbeFailed, now);
//! cluster.record(&first, Signal::ProbeFailed, now);
//! let second = cluster.view().pick_new(b"call-id-1", now).unwrap().backend.id.clone();
//! assert_ne!(first, second);
//! ```

pub mod cluster;
pub mod health;
pub mod rendezvous;

pub use cluster::{Cluster, ClusterView, Member, MembershipError};
pub use health::{HealthPolicy, HealthTracker, Signal, State};
pub use rendezvous::{Backend, rendezvous_first, rendezvous_order, rendezvous_score};
