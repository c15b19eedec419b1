//! The Aerie sidecar proxy engine: what `kuma-dp` runs in place of Envoy.
//!
//! The control-plane client (elsewhere) drives one [`Proxy`] through three calls:
//! [`Proxy::apply_config`] whenever a new [`ProxyConfig`](aerie_core::proxy_config::ProxyConfig)
//! arrives, [`Proxy::apply_identity`] whenever the workload certificate rotates, and
//! [`Proxy::drain`] on shutdown. Everything else (listeners, connection pools, TLS, authorization,
//! metrics) is owned here.
//!
//! [`Ingress`] is the zone ingress (`kuma-dp run --proxy-type ingress`): it routes other
//! zones' mTLS connections by TLS server name to this zone's sidecars without terminating
//! TLS.
//!
//! # Data path
//!
//! - **Inbound** listeners terminate mTLS (or accept plaintext, per the mesh's
//!   [`MtlsMode`](aerie_core::proxy_config::MtlsMode)), decide authorization **once per
//!   connection** from the client certificate's URI SANs, and forward to the local application:
//!   HTTP through a pooled hyper client, TCP by copying bytes.
//! - **Outbound** listeners accept the application's plaintext, pick an endpoint
//!   round-robin (skipping endpoints that refuse connections) and speak mTLS to the peer proxy,
//!   verifying that it presents the destination's SPIFFE ID, and sending the destination's
//!   server name (SNI) so that a zone ingress can route the connection.
//!
//! # Threads
//!
//! Connections are served thread-per-core (module `workers`): `--concurrency` worker threads, each
//! with a single-threaded runtime, take accepted connections round-robin, and upstream pools
//! keep one idle stack per worker, so a request never wakes another thread. The caller's
//! runtime keeps the accept loops, the admin API and the control-plane stream.
//!
//! # Hot-path discipline
//!
//! Configuration and TLS material are immutable snapshots behind [`arc_swap`]: a request or a
//! connection loads a pointer, never takes a lock to read config. TLS configs are built once
//! per identity change, authorization is decided once per connection (the peer identity cannot
//! change on a connection), and per-listener metric handles are resolved once per config.

// `unsafe` is denied (workspace lints) except for one setsockopt in `dial`.

mod accesslog;
mod admin;
mod app;
mod body;
mod breaker;
pub mod cli;
mod config;
mod dial;
mod drain;
mod fault;
mod forward;
mod head_timer;
mod health;
mod inbound;
mod ingress;
mod lb;
mod listener;
mod meshmetric;
mod meshtrace;
mod metrics;
mod outbound;
mod pool;
mod proxy;
mod ratelimit;
mod rbac;
mod retry;
mod rng;
mod route;
mod stream;
mod tls;
mod workers;

pub use config::ConfigError;

/// What parses a peer's bytes, for the fuzzing harness (`crates/fuzz`) only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::forward::prepare_request;
    pub use crate::ingress::hello::{Hello, parse as parse_client_hello};
    pub use crate::pool::HttpVersion;

    /// Checks a config as [`crate::Proxy::apply_config`] does before binding anything;
    /// returns the number of listeners it would run.
    pub fn plan_config(
        opts: &crate::ProxyOptions,
        cfg: &aerie_core::proxy_config::ProxyConfig,
    ) -> Result<usize, crate::ConfigError> {
        crate::config::plan(opts, cfg).map(|listeners| listeners.len())
    }
}
pub use ingress::{Ingress, IngressConfigError, IngressOptions};
pub use proxy::{Proxy, ProxyOptions};
pub use tls::{Identity, IdentityError, IdentitySummary};
