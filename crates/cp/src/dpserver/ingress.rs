//! Zone ingresses on the DP server: a `kuma-dp --proxy-type=ingress` authenticates with a
//! zone token (scope `ingress`) for this zone, registers its ZoneIngress, and receives its
//! routes (server name -> live local instances). It holds no certificate: it forwards TLS
//! without terminating it.

use std::sync::Arc;

use aerie_core::format::resource_from_value;
use aerie_core::{Resource, ResourceType, Spec, validate};
use aerie_store::{SharedStore, StoreError};
use aerie_xds::{DiscoveryRequest, INGRESS_CONFIG_TYPE, NodeInfo};
use tonic::Status;

use super::hub::Snapshot;
use super::session::store_status;
use super::stream::{Conn, Protocol};

/// Checks an ingress's hello and zone token; returns its ZoneIngress (with `zone` set) and
/// the id of its token. A token that cannot be checked yet (the zone still waits for the
/// global's public key) is `Unavailable`: kuma-dp retries.
pub async fn admit(
    tokens: &crate::tokens::TokenIssuer,
    token: Option<&str>,
    node: &NodeInfo,
    local_zone: &str,
    peer: Option<std::net::SocketAddr>,
) -> Result<(Resource, String), Status> {
    let token = token.ok_or_else(|| {
        Status::unauthenticated(format!(
            "no zone token: start the ingress with --dataplane-token-file holding a token from `kumactl generate zone-token --zone {local_zone} --scope ingress`"
        ))
    })?;
    let json = node.dataplane_json.as_deref().ok_or_else(|| {
        Status::invalid_argument("the node metadata carries no dataplane.resource")
    })?;
    let doc: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Status::invalid_argument(format!("dataplane.resource is not JSON: {e}")))?;
    let mut r = resource_from_value(&doc)
        .map_err(|e| Status::invalid_argument(format!("invalid ZoneIngress: {e}")))?;
    if r.resource_type() != ResourceType::ZoneIngress {
        return Err(Status::invalid_argument(format!(
            "an ingress must describe a ZoneIngress, not a {}",
            r.resource_type()
        )));
    }
    if r.name() != node.name {
        return Err(Status::invalid_argument(format!(
            "node id \"{}\" does not match the ZoneIngress \"{}\"",
            node.name,
            r.name()
        )));
    }
    validate::validate(&r)
        .map_err(|e| Status::invalid_argument(format!("invalid ZoneIngress: {e}")))?;
    let verified = tokens
        .verify_zone_token(token, "ingress")
        .await
        .map_err(|refusal| refusal.to_status())?;
    let claims = verified.claims;
    if claims.zone != local_zone {
        return Err(Status::permission_denied(format!(
            "the zone token is for zone \"{}\", but this control plane is zone \"{local_zone}\"",
            claims.zone
        )));
    }
    if let Spec::ZoneIngress(spec) = &mut r.spec {
        super::addresses::check_zone_ingress(spec, peer)?;
        if !spec.zone.is_empty() && spec.zone != local_zone {
            return Err(Status::invalid_argument(format!(
                "zone: the ZoneIngress says zone \"{}\", but this control plane is zone \"{local_zone}\"",
                spec.zone
            )));
        }
        spec.zone = local_zone.to_string();
        // The control plane owns this list.
        spec.available_services.clear();
    }
    Ok((r, verified.id))
}

/// Creates or updates the ZoneIngress, keeping the services the control plane computed.
pub async fn register(store: &SharedStore, mut r: Resource) -> Result<(), Status> {
    let now = crate::now_rfc3339();
    for _ in 0..3 {
        let existing = store
            .get(ResourceType::ZoneIngress, "", r.name())
            .await
            .map_err(store_status)?;
        let result = match existing {
            None => store.create(r.clone(), &now).await.map(|_| ()),
            Some(cur) => {
                if let (Spec::ZoneIngress(new), Spec::ZoneIngress(old)) = (&mut r.spec, &cur.spec) {
                    new.available_services.clone_from(&old.available_services);
                }
                if cur.spec == r.spec && cur.meta.labels == r.meta.labels {
                    return Ok(());
                }
                store
                    .update(r.clone(), cur.meta.version, &now)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(store_status(e)),
        }
    }
    Err(Status::unavailable(
        "the ZoneIngress kept changing while registering",
    ))
}

/// An ingress's side of its stream: one config, its routes.
#[derive(Default)]
pub struct Ingress {
    subscribed: bool,
    sent: Option<String>,
}

impl Protocol for Ingress {
    const RESOURCE: ResourceType = ResourceType::ZoneIngress;
    const WHO: &'static str = "zone ingress";
    const REVOKED: &'static str = "invalid zone token: it has been revoked";

    async fn handle(&mut self, conn: &mut Conn, req: DiscoveryRequest) -> Result<(), ()> {
        if req.type_url != INGRESS_CONFIG_TYPE {
            tracing::debug!(type_url = %req.type_url, "an ingress subscribed to something it cannot get");
            return Ok(());
        }
        self.subscribed = true;
        if !req.response_nonce.is_empty() {
            let nack = req.error_detail.as_ref().map(|e| e.message.as_str());
            conn.record_reply("config", &req);
            if nack.is_none() {
                conn.status().config_version_acked = Some(req.version_info.clone());
            }
        }
        self.push(conn).await
    }

    async fn push(&mut self, conn: &mut Conn) -> Result<(), ()> {
        let snapshot: Option<Arc<Snapshot>> = conn.reg.snapshots.borrow_and_update().clone();
        let Some(snap) = snapshot else { return Ok(()) };
        if !self.subscribed || self.sent.as_deref() == Some(snap.version.as_str()) {
            return Ok(());
        }
        let resp = conn.response(
            INGRESS_CONFIG_TYPE,
            &snap.version,
            vec![snap.config.clone()],
        );
        conn.status().config_version_sent = Some(snap.version.clone());
        conn.send(resp).await?;
        self.sent = Some(snap.version.clone());
        Ok(())
    }
}
