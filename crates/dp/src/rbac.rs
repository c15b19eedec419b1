//! Authorization of a downstream connection, decided once when it is established.
//!
//! The peer's identity is fixed for the life of a TLS connection, so the certificate is parsed
//! and [`InboundAuthz::check`](aerie_core::policy::mtp::InboundAuthz::check) consulted once;
//! per request only a pre-resolved counter is bumped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aerie_core::policy::mtp::Decision;
use prometheus_client::metrics::counter::Counter;
use rustls_pki_types::CertificateDer;
use tracing::{debug, info};

use crate::listener::InboundRoute;
use crate::proxy::Shared;

/// Who is on the other end of an inbound connection.
pub(crate) enum Peer<'a> {
    /// mTLS is off: no identities, no authorization.
    MeshWithoutMtls,
    /// Permissive mode, plaintext: no identity.
    Plaintext,
    /// A verified client certificate (leaf).
    Certificate(&'a CertificateDer<'a>),
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

pub(crate) fn authorize(shared: &Shared, route: &InboundRoute, peer: Peer<'_>) -> ConnAuthz {
    let authz = &route.cfg.authz;
    let (decision, source) = match peer {
        Peer::MeshWithoutMtls => {
            return ConnAuthz {
                decision: Decision::Allow,
                counter: None,
            };
        }
        Peer::Plaintext => (authz.check_unauthenticated(), "unauthenticated".to_owned()),
        Peer::Certificate(leaf) => match crate::tls::peer_identity(leaf) {
            Ok(id) => {
                let source = id.services.first().cloned().unwrap_or_default();
                (authz.check(&id), source)
            }
            Err(e) => {
                debug!(listener = %route.stats.name, error = %e, "client certificate carries no usable identity");
                (Decision::Deny, "unknown".to_owned())
            }
        },
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
    let counter = shared.metrics.rbac(decision, &route.stats.name, &source);
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
