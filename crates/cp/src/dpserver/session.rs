//! A sidecar's stream: authenticate, register the Dataplane, then (through the shared
//! lifecycle in `stream.rs`) push config and certificates as they change, and track ACKs
//! and NACKs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aerie_core::format::resource_from_value;
use aerie_core::{Resource, ResourceType, Spec, validate};
use aerie_identity::DataplaneClaims;
use aerie_store::{SharedStore, StoreError};
use aerie_xds::{
    DiscoveryRequest, NodeInfo, PROXY_CONFIG_TYPE, PROXY_OUTBOUNDS_TYPE, SECRET_TYPE,
    encode_ca_secret, encode_identity_secret,
};
use tonic::Status;

use super::hub::{ConnStatus, Snapshot, rfc3339};
use super::stream::{Conn, Protocol};

/// The first request must arrive within this time.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// A proxy let in: its node, its Dataplane, and the id of the token it presented.
pub struct Admitted {
    pub node: NodeInfo,
    pub dataplane: Resource,
    pub token_id: String,
}

/// Checks a proxy's first request, its token, the addresses it declares (for a proxy
/// connecting from `peer`) and that it does not change another proxy's identity; returns its
/// Dataplane.
///
/// Refusals retrying cannot fix are `InvalidArgument`, `Unauthenticated` or
/// `PermissionDenied` (kuma-dp gives up); what may resolve itself (a federated zone still
/// waiting for the mesh or its signing key from the global, the store unreachable, a
/// Dataplane an admin must change first) is `Unavailable` or `FailedPrecondition` (kuma-dp
/// retries with backoff).
pub async fn admit(
    store: &SharedStore,
    tokens: &crate::tokens::TokenIssuer,
    token: Option<&str>,
    first: &DiscoveryRequest,
    peer: Option<std::net::SocketAddr>,
) -> Result<Admitted, Status> {
    let node = first
        .node
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("the first request carries no node"))?;
    let node = NodeInfo::from_proto(node).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let token = token.ok_or_else(|| {
        Status::unauthenticated("no dataplane token: start kuma-dp with --dataplane-token-file (see `kumactl generate dataplane-token`)")
    })?;
    let json = node.dataplane_json.as_deref().ok_or_else(|| {
        Status::invalid_argument("the node metadata carries no dataplane.resource")
    })?;
    let doc: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Status::invalid_argument(format!("dataplane.resource is not JSON: {e}")))?;
    let dp = resource_from_value(&doc)
        .map_err(|e| Status::invalid_argument(format!("invalid Dataplane: {e}")))?;
    if dp.resource_type() != ResourceType::Dataplane {
        return Err(Status::invalid_argument(format!(
            "expected a Dataplane, got a {}",
            dp.resource_type()
        )));
    }
    if dp.name() != node.name || dp.mesh() != node.mesh {
        return Err(Status::invalid_argument(format!(
            "node id {}.{} does not match the Dataplane {}.{}",
            node.mesh,
            node.name,
            dp.mesh(),
            dp.name()
        )));
    }
    validate::validate(&dp)
        .map_err(|e| Status::invalid_argument(format!("invalid Dataplane: {e}")))?;
    let mesh_exists = store
        .get(ResourceType::Mesh, "", dp.mesh())
        .await
        .map_err(store_status)?
        .is_some();
    if !mesh_exists {
        if tokens.is_federated() {
            return Err(Status::unavailable(format!(
                "mesh \"{}\" has not arrived from the global control plane yet",
                dp.mesh()
            )));
        }
        return Err(Status::failed_precondition(format!(
            "mesh \"{}\" does not exist",
            dp.mesh()
        )));
    }
    let verified = tokens
        .verify_dataplane_token(dp.mesh(), token)
        .await
        .map_err(|refusal| refusal.to_status())?;
    check_claims(&verified.claims, &dp)?;
    if let Spec::Dataplane(spec) = &dp.spec {
        super::addresses::check_dataplane(spec, peer)?;
    }
    let existing = store
        .get(ResourceType::Dataplane, dp.mesh(), dp.name())
        .await
        .map_err(store_status)?;
    if let Some(existing) = existing {
        check_identity_kept(&verified.claims, &existing, &dp)?;
    }
    Ok(Admitted {
        node,
        dataplane: dp,
        token_id: verified.id,
    })
}

/// A registration may not change the identity (the services, hence the SPIFFE IDs) of a
/// Dataplane that already exists unless its token is bound to that Dataplane's name: a token
/// bound only to tags would otherwise let its holder turn any proxy's Dataplane into its own
/// service. An admin changes identities through the API; the proxy then gets a certificate
/// for the new identity on its live stream.
fn check_identity_kept(
    claims: &DataplaneClaims,
    existing: &Resource,
    dp: &Resource,
) -> Result<(), Status> {
    if claims.name.as_deref() == Some(dp.name()) {
        return Ok(());
    }
    let (Spec::Dataplane(old), Spec::Dataplane(new)) = (&existing.spec, &dp.spec) else {
        return Ok(());
    };
    let (was, now) = (services(old), services(new));
    if was == now {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "Dataplane \"{}\" already exists in mesh \"{}\" as {was:?}, and this proxy declares {now:?}: a token not bound to this name cannot change a Dataplane's identity. An admin can change or delete it (`kumactl delete dataplane {} --mesh {}`), or start the proxy with a token generated with --name {}",
        dp.name(),
        dp.mesh(),
        dp.name(),
        dp.mesh(),
        dp.name(),
    )))
}

fn services(spec: &aerie_core::spec::DataplaneSpec) -> std::collections::BTreeSet<&str> {
    spec.networking
        .iter()
        .flat_map(|n| n.inbound.iter())
        .map(|i| i.service())
        .collect()
}

/// The token's name, tags and proxy type must agree with the Dataplane (Kuma's rules).
fn check_claims(claims: &DataplaneClaims, dp: &Resource) -> Result<(), Status> {
    if let Some(name) = &claims.name
        && name != dp.name()
    {
        return Err(Status::permission_denied(format!(
            "the dataplane token is for \"{name}\", not \"{}\"",
            dp.name()
        )));
    }
    if let Some(t) = &claims.proxy_type
        && t != "dataplane"
    {
        return Err(Status::permission_denied(format!(
            "the dataplane token is for a proxy of type {t}"
        )));
    }
    let Spec::Dataplane(spec) = &dp.spec else {
        return Ok(());
    };
    let inbounds: Vec<_> = spec
        .networking
        .iter()
        .flat_map(|n| n.inbound.iter())
        .collect();
    for (tag, allowed) in &claims.tags {
        let ok = !inbounds.is_empty()
            && inbounds.iter().all(|i| {
                i.tags
                    .get(tag)
                    .is_some_and(|v| allowed.iter().any(|a| a == v))
            });
        if !ok {
            return Err(Status::permission_denied(format!(
                "the dataplane token requires tag {tag} to be one of {allowed:?} on every inbound"
            )));
        }
    }
    Ok(())
}

/// Names the proxy process holding a session in the store: a digest of its current CSR (its
/// key never leaves it). Empty without a CSR.
pub fn owner(csr_pem: Option<&str>) -> String {
    let Some(csr) = csr_pem else {
        return String::new();
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, csr.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn store_status(e: StoreError) -> Status {
    Status::unavailable(format!("store: {e}"))
}

/// Creates or updates the Dataplane as the proxy described it.
pub async fn register(store: &SharedStore, dp: Resource) -> Result<(), Status> {
    let now = crate::now_rfc3339();
    match store
        .get(ResourceType::Dataplane, dp.mesh(), dp.name())
        .await
        .map_err(store_status)?
    {
        None => match store.create(dp, &now).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(store_status(e)),
        },
        Some(cur) if cur.spec == dp.spec && cur.meta.labels == dp.meta.labels => Ok(()),
        Some(cur) => store
            .update(dp, cur.meta.version, &now)
            .await
            .map(|_| ())
            .map_err(store_status),
    }
}

/// A sidecar's side of its stream: the two config halves, its certificate and trust bundle.
pub struct Sidecar {
    /// The proxy's latest CSR (its key), answered with a certificate.
    csr: Option<String>,
    /// The CSR, CA certificate and identity (URI SANs) the last issued certificate answered.
    issued_for: Option<Issued>,
    bundle_sent: Option<Arc<str>>,
    config_sent: Option<String>,
    outbounds_sent: Option<String>,
    /// Versions of the (inbound, outbound) halves the proxy acknowledged.
    acked: (Option<String>, Option<String>),
    subscribed_outbounds: bool,
    subscribed_config: bool,
    subscribed_secrets: bool,
    identity_chain: Option<String>,
}

/// What a certificate was issued for: a new CSR, a new CA or a new identity each call for a
/// new certificate.
#[derive(Clone, PartialEq)]
struct Issued {
    csr: String,
    ca_pem: String,
    sans: Vec<String>,
}

impl Sidecar {
    pub fn new(csr: Option<String>) -> Self {
        Sidecar {
            csr,
            issued_for: None,
            bundle_sent: None,
            config_sent: None,
            outbounds_sent: None,
            acked: (None, None),
            subscribed_outbounds: false,
            subscribed_config: false,
            subscribed_secrets: false,
            identity_chain: None,
        }
    }
}

impl Protocol for Sidecar {
    const RESOURCE: ResourceType = ResourceType::Dataplane;
    const WHO: &'static str = "proxy";
    const REVOKED: &'static str = "invalid dataplane token: it has been revoked";

    /// Handles one request: subscriptions, ACK/NACK, new CSRs.
    async fn handle(&mut self, conn: &mut Conn, req: DiscoveryRequest) -> Result<(), ()> {
        if let Some(node) = &req.node
            && let Ok(info) = NodeInfo::from_proto(node)
        {
            conn.status().dp_version = info.version.clone();
            if info.csr_pem.is_some() && info.csr_pem != self.csr {
                conn.status().csr.clone_from(&info.csr_pem);
                // Other replicas recognise this proxy by its current CSR.
                let (mesh, name) = &conn.key;
                if let Err(e) = conn
                    .store
                    .open_session(
                        mesh,
                        name,
                        conn.hub.replica(),
                        &owner(info.csr_pem.as_deref()),
                    )
                    .await
                {
                    tracing::warn!(mesh, name, error = %e, "cannot record the proxy's new key in the store");
                }
                self.csr = info.csr_pem;
            }
        }
        let is_ack = !req.response_nonce.is_empty();
        let nack = req.error_detail.as_ref().map(|e| e.message.as_str());
        match req.type_url.as_str() {
            PROXY_CONFIG_TYPE | PROXY_OUTBOUNDS_TYPE => {
                let inbound_half = req.type_url == PROXY_CONFIG_TYPE;
                if inbound_half {
                    self.subscribed_config = true;
                } else {
                    self.subscribed_outbounds = true;
                }
                if is_ack {
                    conn.record_reply("config", &req);
                    if nack.is_none() {
                        let version = Some(req.version_info.clone());
                        if inbound_half {
                            self.acked.0 = version;
                        } else {
                            self.acked.1 = version;
                        }
                        conn.status().config_version_acked = match &self.acked {
                            (Some(i), Some(o)) => Some(format!("{i}.{o}")),
                            _ => None,
                        };
                    }
                }
            }
            SECRET_TYPE => {
                self.subscribed_secrets = true;
                if is_ack {
                    conn.record_reply("certificate", &req);
                }
            }
            other => tracing::debug!(
                type_url = other,
                "ignoring a subscription to an unknown type"
            ),
        }
        self.push(conn).await
    }

    /// Sends whatever the proxy lacks: the current config, the trust bundle, a certificate
    /// for its latest CSR.
    async fn push(&mut self, conn: &mut Conn) -> Result<(), ()> {
        let snapshot: Option<Arc<Snapshot>> = conn.reg.snapshots.borrow_and_update().clone();
        let Some(snap) = snapshot else { return Ok(()) };
        if self.subscribed_config && self.config_sent.as_deref() != Some(snap.version.as_str()) {
            let resp = conn.response(PROXY_CONFIG_TYPE, &snap.version, vec![snap.config.clone()]);
            conn.send(resp).await?;
            self.config_sent = Some(snap.version.clone());
        }
        if self.subscribed_outbounds
            && self.outbounds_sent.as_deref() != Some(snap.outbounds_version.as_str())
        {
            let resp = conn.response(
                PROXY_OUTBOUNDS_TYPE,
                &snap.outbounds_version,
                vec![(*snap.outbounds).clone()],
            );
            conn.send(resp).await?;
            self.outbounds_sent = Some(snap.outbounds_version.clone());
        }
        conn.status().config_version_sent =
            Some(format!("{}.{}", snap.version, snap.outbounds_version));
        let (Some(mtls), true) = (&snap.mtls, self.subscribed_secrets) else {
            return Ok(());
        };
        // A certificate answers one CSR, from one CA, for one identity: when an admin changes
        // the Dataplane's services the proxy gets a certificate for its new identity at once,
        // not at its next rotation.
        let want = self.csr.clone().map(|csr| Issued {
            csr,
            ca_pem: mtls.ca.ca.cert_pem().to_string(),
            sans: mtls.sans.clone(),
        });
        // During a CA change's grace period a proxy that has a certificate keeps it: it gets
        // the new trust bundle first, and a certificate from the new CA once every proxy had
        // time to trust it. A proxy without a certificate gets one at once.
        let ca_changed = self
            .issued_for
            .as_ref()
            .is_some_and(|i| i.ca_pem != mtls.ca.ca.cert_pem());
        let wait_for_trust = ca_changed && !mtls.reissue_allowed && self.identity_chain.is_some();
        let need_cert = want.is_some() && want != self.issued_for && !wait_for_trust;
        let need_bundle = self.bundle_sent.as_ref() != Some(&mtls.bundle_pem);
        if !need_cert && !need_bundle {
            return Ok(());
        }
        if need_cert && let Some(Issued { csr, .. }) = &want {
            let now = SystemTime::now();
            match mtls
                .ca
                .ca
                .sign_workload(csr, &mtls.sans, mtls.ca.dp_cert_validity, now)
            {
                Ok(chain) => {
                    let expires = mtls.ca.dp_cert_not_after(now);
                    let mut st = conn.status();
                    st.certificate_expiration_time = Some(rfc3339(expires));
                    st.certificate_regenerations += 1;
                    drop(st);
                    self.identity_chain = Some(chain);
                    self.issued_for = want.clone();
                }
                Err(e) => {
                    tracing::warn!(key = ?conn.key, error = %e, "cannot sign the proxy's CSR");
                }
            }
        }
        let Some(chain) = self.identity_chain.clone() else {
            return Ok(());
        };
        let mesh = conn.key.0.clone();
        let resources = vec![
            encode_identity_secret(&mesh, &chain),
            encode_ca_secret(&mesh, &mtls.bundle_pem),
        ];
        let version = format!("{}", conn.nonce() + 1);
        let resp = conn.response(SECRET_TYPE, &version, resources);
        conn.send(resp).await?;
        self.bundle_sent = Some(mtls.bundle_pem.clone());
        Ok(())
    }
}

/// The status a fresh connection starts with.
pub fn initial_status(peer: Option<std::net::SocketAddr>, node: &NodeInfo) -> ConnStatus {
    ConnStatus {
        connect_time: crate::now_rfc3339(),
        peer: peer.map(|p| p.to_string()).unwrap_or_default(),
        dp_version: node.version.clone(),
        csr: node.csr_pem.clone(),
        ..ConnStatus::default()
    }
}
