//! Authorization of a downstream connection.
//!
//! The peer's identity is fixed for the life of a TLS connection, so the certificate is parsed
//! once, into a [`Peer`]. The decision ([`InboundAuthz::check`](aerie_core::policies::meshtrafficpermission::InboundAuthz::check))
//! is made once per connection *and per config*: an HTTP connection re-decides only when the
//! listener's route (and so its policies) has been swapped since, so a revoked permission
//! applies to the next request even on a long-lived pooled connection; per request the cost
//! is a pointer comparison and a pre-resolved counter bump. A connection without an identity
//! (accepted while mTLS was off, or plaintext in PERMISSIVE mode) is denied once the mesh's
//! mode no longer accepts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aerie_core::policies::meshtrafficpermission::{Decision, PeerIdentity};
use aerie_core::proxy_config::MtlsMode;
use http::HeaderValue;
use prometheus_client::metrics::counter::Counter;
use rustls_pki_types::CertificateDer;
use tracing::{debug, info};

use crate::listener::InboundRoute;
use crate::proxy::Shared;

/// Who is on the other end of an inbound connection, established once per connection.
pub(crate) enum Peer {
    /// mTLS is off: no identities, no authorization.
    MeshWithoutMtls,
    /// Permissive mode, plaintext: no identity.
    Plaintext,
    /// A verified client certificate's identity.
    Identity(PeerIdentity),
    /// A verified certificate without a usable mesh identity: denied.
    Unusable,
}

impl Peer {
    /// Reads a verified client certificate (leaf) once; with a usable identity, also the
    /// `x-forwarded-client-cert` value describing it to the application.
    pub fn from_certificate(
        leaf: &CertificateDer<'_>,
        listener: &str,
        local_spiffe_id: &str,
    ) -> (Peer, Option<HeaderValue>) {
        match crate::tls::peer_identity(leaf) {
            Ok((id, uri)) => {
                let xfcc = forwarded_client_cert(local_spiffe_id, leaf, &uri);
                (Peer::Identity(id), xfcc)
            }
            Err(e) => {
                debug!(listener, error = %e, "client certificate carries no usable identity");
                (Peer::Unusable, None)
            }
        }
    }
}

/// The header an inbound sets on every request to the application, describing the verified
/// caller as Envoy's `SANITIZE_SET` with `uri: true` does (Kuma's inbound setting):
/// `By=<this proxy's SPIFFE ID>;Hash=<SHA-256 of the caller's certificate, hex>;URI=<the
/// caller's SPIFFE ID>`. Whatever the caller sent under that name is dropped first.
pub(crate) const XFCC: http::HeaderName = http::HeaderName::from_static("x-forwarded-client-cert");

fn forwarded_client_cert(by: &str, leaf: &CertificateDer<'_>, uri: &str) -> Option<HeaderValue> {
    use std::fmt::Write;
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    let mut value = format!("By={by};Hash=");
    for b in digest.as_ref() {
        let _ = write!(value, "{b:02x}");
    }
    let _ = write!(value, ";URI={uri}");
    HeaderValue::from_str(&value).ok()
}

/// The connection's decision and the counter its requests bump.
pub(crate) struct ConnAuthz {
    pub decision: Decision,
    counter: Option<Counter>,
}

impl ConnAuthz {
    /// Counts one connection (TCP) or request (HTTP) under this decision.
    pub fn record(&self) {
        if let Some(c) = &self.counter {
            c.inc();
        }
    }
}

pub(crate) fn authorize(shared: &Shared, route: &InboundRoute, peer: &Peer) -> ConnAuthz {
    let authz = &route.cfg.authz;
    let (decision, source) = match peer {
        // A connection accepted while mTLS was off carries no identity: it stays allowed only
        // as long as mTLS stays off.
        Peer::MeshWithoutMtls if route.mtls == MtlsMode::Off => {
            return ConnAuthz {
                decision: Decision::Allow,
                counter: None,
            };
        }
        Peer::MeshWithoutMtls => (Decision::Deny, "unauthenticated"),
        // Plaintext is only ever accepted in PERMISSIVE mode.
        Peer::Plaintext if route.mtls == MtlsMode::Permissive => {
            (authz.check_unauthenticated(), "unauthenticated")
        }
        Peer::Plaintext => (Decision::Deny, "unauthenticated"),
        Peer::Identity(id) => (
            authz.check(id),
            id.services.first().map(String::as_str).unwrap_or_default(),
        ),
        Peer::Unusable => (Decision::Deny, "unknown"),
    };
    match decision {
        Decision::Deny => {
            debug!(listener = %route.stats.name, source = %source, "RBAC: access denied");
        }
        Decision::AllowShadowDeny => {
            if shared.shadow_log.allow() {
                info!(listener = %route.stats.name, source = %source, "RBAC shadow deny: allowed only by AllowWithShadowDeny");
            } else {
                debug!(listener = %route.stats.name, source = %source, "RBAC shadow deny");
            }
        }
        Decision::Allow => {}
    }
    let counter = shared.metrics.rbac(decision, &route.stats.name, source);
    ConnAuthz {
        decision,
        counter: Some(counter),
    }
}

/// Lets one event through per interval (log rate limiting), lock-free.
pub(crate) struct RateLimit {
    start: Instant,
    interval_ms: u64,
    /// Milliseconds since `start` of the last event let through, plus one (0 = never).
    last: AtomicU64,
}

impl RateLimit {
    pub fn new(interval: Duration) -> RateLimit {
        RateLimit {
            start: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    pub fn allow(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= self.interval_ms)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_through_per_interval() {
        let rl = RateLimit::new(Duration::from_secs(3600));
        assert!(rl.allow());
        assert!(!rl.allow());
        let rl = RateLimit::new(Duration::ZERO);
        assert!(rl.allow());
        assert!(rl.allow());
    }
}
