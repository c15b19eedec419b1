//! Which proxies are connected to this control plane, and the channel each one's session
//! receives its snapshots on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::ca::MeshCa;

/// (mesh, dataplane name)
pub type DpKey = (String, String);

/// What a session sends its proxy: the config and, with mTLS on, the CA to sign with.
pub struct Snapshot {
    /// The config's inbound half, encoded once for the wire (and hashed into `version` from
    /// those bytes).
    pub config: envoy_types::pb::google::protobuf::Any,
    /// Hash of the inbound half: equal halves are not pushed again.
    pub version: String,
    /// The outbound half (endpoints), versioned on its own: a policy change leaves it alone.
    /// Shared by every proxy declaring the same outbounds.
    pub outbounds: Arc<envoy_types::pb::google::protobuf::Any>,
    pub outbounds_version: String,
    pub mtls: Option<MtlsMaterial>,
}

#[derive(Clone)]
pub struct MtlsMaterial {
    pub ca: MeshCa,
    pub bundle_pem: Arc<str>,
    pub sans: Vec<String>,
    /// False during a CA change's grace period: proxies first receive the new trust bundle
    /// (old and new anchors) and keep their certificates; only once every proxy had time to
    /// trust the new CA are certificates re-issued from it. Otherwise a proxy already holding
    /// a new-CA certificate would be refused by one that does not trust the new CA yet.
    pub reissue_allowed: bool,
}

impl MtlsMaterial {
    /// What decides whether a session has something new to send.
    fn key(&self) -> (&str, &str, &[String], bool) {
        (
            &self.bundle_pem,
            self.ca.ca.cert_pem(),
            &self.sans,
            self.reissue_allowed,
        )
    }
}

/// What `kumactl inspect dataplanes` shows about a connected proxy.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnStatus {
    pub connect_time: String,
    pub peer: String,
    pub config_version_sent: Option<String>,
    pub config_version_acked: Option<String>,
    pub last_nack: Option<String>,
    pub responses_sent: u64,
    pub responses_acknowledged: u64,
    pub certificate_expiration_time: Option<String>,
    pub certificate_regenerations: u64,
    pub dp_version: String,
    /// The proxy's current CSR: its key never leaves it, so a connection presenting the same
    /// CSR is the same proxy reconnecting.
    #[serde(skip)]
    pub csr: Option<String>,
}

struct Conn {
    id: u64,
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    status: Arc<Mutex<ConnStatus>>,
    /// The id (`jti`) of the token the proxy authenticated with.
    token_id: Arc<str>,
    /// Set to `true` when that token is revoked: the session ends.
    revoked: watch::Sender<bool>,
}

/// Registry of live sessions. A proxy reconnecting under the same name replaces its old
/// session (whose snapshot channel then closes, ending it).
pub struct Hub {
    conns: Mutex<HashMap<DpKey, Conn>>,
    next_id: AtomicU64,
    dirty: mpsc::UnboundedSender<String>,
    /// This control plane's id among replicas (recorded with each session in the store).
    replica: Arc<str>,
    /// Dataplane addresses the last round could not use (unresolvable host names), shown by
    /// `dataplanes+insights`.
    pub problems: crate::resolve::Problems,
    /// The control plane's metrics (`xds_*`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A session's handle on its registration.
pub struct Registration {
    pub id: u64,
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    pub status: Arc<Mutex<ConnStatus>>,
    /// Turns `true` when the session's token is revoked (see [`Hub::revoke`]).
    pub revoked: watch::Receiver<bool>,
}

impl Hub {
    pub fn new(
        dirty: mpsc::UnboundedSender<String>,
        replica: Arc<str>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            dirty,
            replica,
            problems: Default::default(),
            metrics,
        }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DpKey, Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session of proxy `key` that authenticated with the token `token_id`,
    /// replacing any other one under the same name (zone ingresses).
    pub fn register(&self, key: DpKey, status: ConnStatus, token_id: &str) -> Registration {
        self.insert(&mut self.lock(), key, status, token_id)
    }

    /// Registers a sidecar's session unless another proxy holds a live one under the same
    /// name: the same proxy reconnecting (same CSR) replaces its old session, anyone else is
    /// refused with the address the live session came from.
    pub fn register_exclusive(
        &self,
        key: DpKey,
        status: ConnStatus,
        token_id: &str,
    ) -> Result<Registration, String> {
        let mut conns = self.lock();
        if let Some(live) = conns.get(&key) {
            let live = live.status.lock().unwrap_or_else(|p| p.into_inner());
            if live.csr.is_none() || live.csr != status.csr {
                return Err(live.peer.clone());
            }
        }
        Ok(self.insert(&mut conns, key, status, token_id))
    }

    fn insert(
        &self,
        conns: &mut HashMap<DpKey, Conn>,
        key: DpKey,
        status: ConnStatus,
        token_id: &str,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        let (revoked_tx, revoked_rx) = watch::channel(false);
        let status = Arc::new(Mutex::new(status));
        let mesh = key.0.clone();
        conns.insert(
            key,
            Conn {
                id,
                snapshot: tx,
                status: status.clone(),
                token_id: Arc::from(token_id),
                revoked: revoked_tx,
            },
        );
        self.mark_dirty(&mesh);
        Registration {
            id,
            snapshots: rx,
            status,
            revoked: revoked_rx,
        }
    }

    /// Ends the sessions in `mesh` ("" for zone ingresses) whose token id `is_revoked`
    /// says is revoked; returns their names. Each session tells its proxy why and closes.
    pub fn revoke(&self, mesh: &str, is_revoked: impl Fn(&str) -> bool) -> Vec<String> {
        let conns = self.lock();
        let mut ended = Vec::new();
        for ((m, name), c) in conns.iter() {
            if m == mesh && !c.token_id.is_empty() && is_revoked(&c.token_id) {
                c.revoked.send_replace(true);
                ended.push(name.clone());
            }
        }
        ended
    }

    /// The meshes with a session here ("" stands for zone ingresses).
    pub fn meshes(&self) -> std::collections::BTreeSet<String> {
        self.lock().keys().map(|(m, _)| m.clone()).collect()
    }

    /// Removes a session if it is still the registered one; returns whether it was.
    pub fn unregister(&self, key: &DpKey, id: u64) -> bool {
        let removed = {
            let mut conns = self.lock();
            match conns.get(key) {
                Some(c) if c.id == id => conns.remove(key).is_some(),
                _ => false,
            }
        };
        if removed {
            self.mark_dirty(&key.0);
        }
        removed
    }

    pub fn mark_dirty(&self, mesh: &str) {
        let _ = self.dirty.send(mesh.to_string());
    }

    pub fn is_connected(&self, mesh: &str, name: &str) -> bool {
        self.lock()
            .contains_key(&(mesh.to_string(), name.to_string()))
    }

    /// Names of the proxies connected in a mesh.
    pub fn connected_in(&self, mesh: &str) -> Vec<String> {
        self.lock()
            .keys()
            .filter(|(m, _)| m == mesh)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Hands a proxy connected here its new snapshot; `true` when it differs from the one
    /// it had.
    pub fn publish(&self, key: &DpKey, snapshot: Option<Arc<Snapshot>>) -> bool {
        let mut changed = false;
        if let Some(c) = self.lock().get(key) {
            changed = c.snapshot.send_if_modified(|cur| {
                let same = match (cur.as_ref(), snapshot.as_ref()) {
                    (Some(a), Some(b)) => {
                        a.version == b.version
                            && a.outbounds_version == b.outbounds_version
                            && a.mtls.as_ref().map(MtlsMaterial::key)
                                == b.mtls.as_ref().map(MtlsMaterial::key)
                    }
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    *cur = snapshot.clone();
                }
                !same
            });
        }
        changed
    }

    /// The last snapshot published to a proxy connected here (`None`: not connected here,
    /// or nothing computed for it yet).
    pub fn snapshot(&self, mesh: &str, name: &str) -> Option<Arc<Snapshot>> {
        let conns = self.lock();
        let c = conns.get(&(mesh.to_string(), name.to_string()))?;
        c.snapshot.borrow().clone()
    }

    pub fn status(&self, mesh: &str, name: &str) -> Option<ConnStatus> {
        let conns = self.lock();
        let c = conns.get(&(mesh.to_string(), name.to_string()))?;
        Some(c.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Statuses of every connected proxy of a mesh.
    pub fn statuses(&self, mesh: &str) -> BTreeMap<String, ConnStatus> {
        let conns = self.lock();
        conns
            .iter()
            .filter(|((m, _), _)| m == mesh)
            .map(|((_, n), c)| {
                (
                    n.clone(),
                    c.status.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                )
            })
            .collect()
    }
}

/// `t` as RFC 3339 UTC. Total: a time before year 0 or after year 9999 (which RFC 3339
/// cannot write) is clamped to the first or last instant it can.
pub fn rfc3339(t: SystemTime) -> String {
    use time::OffsetDateTime;
    use time::macros::datetime;
    const FIRST: OffsetDateTime = datetime!(0000-01-01 00:00:00 UTC);
    const LAST: OffsetDateTime = datetime!(9999-12-31 23:59:59.999_999_999 UTC);
    let nanos = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    let dt = OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(if nanos < 0 { FIRST } else { LAST })
        .clamp(FIRST, LAST);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod rfc3339_tests {
    use std::time::{Duration, SystemTime};

    use super::rfc3339;

    /// Found by fuzzing: a certificate expiry past year 9999 panicked the conversion.
    #[test]
    fn rfc3339_is_total() {
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(rfc3339(epoch), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(epoch + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        let far = epoch + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999999999Z");
        let farthest = epoch + Duration::from_secs(i64::MAX as u64);
        assert_eq!(rfc3339(farthest), "9999-12-31T23:59:59.999999999Z");
        let early = epoch - Duration::from_secs(100_000_000_000);
        assert_eq!(rfc3339(early), "0000-01-01T00:00:00Z");
    }
}
