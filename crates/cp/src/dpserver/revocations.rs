//! Ends the sessions of proxies whose token is revoked while they are connected, so that a
//! revocation takes effect at once and not only at the proxy's next connection. Dataplane
//! tokens are listed in the Secret `dataplane-token-revocations-<mesh>`, zone tokens (zone
//! ingresses) in the GlobalSecret `zone-token-revocations`; on a federated zone both are the
//! copies received from the global. Each session ends with `Unauthenticated` naming the
//! revocation (kuma-dp stops); connecting again is refused at admission.

use std::sync::Arc;

use aerie_core::ResourceType;
use aerie_store::SharedStore;
use tokio::sync::broadcast::error::RecvError;

use super::hub::Hub;
use crate::tokens::{ZONE_TOKEN_REVOCATIONS, dataplane_revocations_name};

/// Runs until the store's change feed closes.
pub async fn run(store: SharedStore, hub: Arc<Hub>) {
    let mut feed = store.subscribe();
    loop {
        match feed.recv().await {
            Ok(ev) if ev.is_resync() => check_all(&store, &hub).await,
            Ok(ev)
                if ev.rtype == ResourceType::Secret
                    && ev.name == dataplane_revocations_name(&ev.mesh) =>
            {
                check(&store, &hub, &ev.mesh).await
            }
            Ok(ev)
                if ev.rtype == ResourceType::GlobalSecret && ev.name == ZONE_TOKEN_REVOCATIONS =>
            {
                check(&store, &hub, "").await
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => check_all(&store, &hub).await,
            Err(RecvError::Closed) => return,
        }
    }
}

/// The revocation list that covers the sessions of `mesh` ("" for zone ingresses).
fn list_of(mesh: &str) -> (String, String) {
    if mesh.is_empty() {
        (String::new(), ZONE_TOKEN_REVOCATIONS.to_string())
    } else {
        (mesh.to_string(), dataplane_revocations_name(mesh))
    }
}

async fn check(store: &SharedStore, hub: &Hub, mesh: &str) {
    let (scope, name) = list_of(mesh);
    let revoked = match crate::signing::revoked_ids(store, &scope, &name).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(mesh, error = %e, "cannot read the token revocations; connected proxies are checked again at the next change");
            return;
        }
    };
    if revoked.is_empty() {
        return;
    }
    for proxy in hub.revoke(mesh, |id| revoked.iter().any(|r| r == id)) {
        tracing::info!(mesh, proxy, "token revoked: disconnecting the proxy");
    }
}

async fn check_all(store: &SharedStore, hub: &Hub) {
    for mesh in hub.meshes() {
        check(store, hub, &mesh).await;
    }
}
