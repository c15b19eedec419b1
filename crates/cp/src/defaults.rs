//! What a fresh control plane creates: the `default` Mesh, mTLS off, and no
//! MeshTrafficPermission (Kuma 2.6+ creates none; with mTLS on, nothing is allowed until
//! the user adds one). Every mesh is created with its dataplane-token signing key, as Kuma
//! does, so that on a multi-zone global the key reaches the zones with the mesh, before
//! any token for it exists, and with Kuma's default policies (`mesh-timeout-all-<mesh>`
//! and the others each policy's folder declares) unless the Mesh's
//! `skipCreatingInitialPolicies` names their type or `*`.

use std::collections::BTreeMap;

use aerie_core::policies::{meshcircuitbreaker, meshretry, meshtimeout};
use aerie_core::spec::{MESH_LABEL, MeshSpec};
use aerie_core::{DEFAULT_MESH, Meta, Resource, ResourceType, Spec};
use aerie_store::{SharedStore, StoreError};

/// Creates a new Mesh, its dataplane-token signing key and its default policies in one
/// transaction (a mesh never exists without its key, and never half-way with its
/// defaults). A key or policy left over under one of those names (it cannot be: deleting a
/// mesh deletes what lives in it) is kept and the rest created.
pub async fn create_mesh(
    store: &SharedStore,
    mesh: Resource,
    now: &str,
) -> Result<Resource, CreateMeshError> {
    let name = mesh.name().to_string();
    let key_name = crate::tokens::dataplane_signing_key_name(&name);
    let (_, key) =
        crate::signing::new_key_secret(&name, &key_name).map_err(CreateMeshError::Key)?;
    let mut batch = vec![mesh.clone(), key];
    if let Spec::Mesh(spec) = &mesh.spec {
        batch.extend(default_policies(&name, spec));
    }
    match store.create_all(batch.clone(), now).await {
        Ok(mut created) => Ok(created.swap_remove(0)),
        Err(StoreError::AlreadyExists { rtype, .. }) if rtype != ResourceType::Mesh => {
            let mut fresh = Vec::with_capacity(batch.len());
            for r in batch {
                let exists = r.resource_type() != ResourceType::Mesh
                    && store
                        .get(r.resource_type(), r.mesh(), r.name())
                        .await
                        .map_err(CreateMeshError::Store)?
                        .is_some();
                if !exists {
                    fresh.push(r);
                }
            }
            store
                .create_all(fresh, now)
                .await
                .map(|mut created| created.swap_remove(0))
                .map_err(CreateMeshError::Store)
        }
        Err(e) => Err(CreateMeshError::Store(e)),
    }
}

/// The policies Kuma creates with a mesh, minus those `skipCreatingInitialPolicies` names
/// (`*` skips them all).
pub fn default_policies(mesh: &str, spec: &MeshSpec) -> Vec<Resource> {
    let skip = spec
        .skip_creating_initial_policies
        .as_deref()
        .unwrap_or_default();
    let skipped = |t: ResourceType| skip.iter().any(|s| s == "*" || s == t.name());
    let labels = BTreeMap::from([(MESH_LABEL.to_string(), mesh.to_string())]);
    let resource = |prefix: &str, spec: Spec| Resource {
        meta: Meta {
            name: format!("{prefix}-{mesh}"),
            mesh: Some(mesh.to_string()),
            labels: labels.clone(),
            ..Meta::default()
        },
        spec,
    };
    let mut out = Vec::new();
    if !skipped(ResourceType::MeshTimeout) {
        out.extend(
            meshtimeout::default_policies()
                .into_iter()
                .map(|(prefix, spec)| resource(prefix, Spec::MeshTimeout(spec))),
        );
    }
    if !skipped(ResourceType::MeshCircuitBreaker) {
        out.push(resource(
            meshcircuitbreaker::DEFAULT_POLICY_PREFIX,
            Spec::MeshCircuitBreaker(meshcircuitbreaker::default_spec()),
        ));
    }
    if !skipped(ResourceType::MeshRetry) {
        out.push(resource(
            meshretry::DEFAULT_POLICY_PREFIX,
            Spec::MeshRetry(meshretry::default_spec()),
        ));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum CreateMeshError {
    #[error(transparent)]
    Store(StoreError),
    #[error("cannot generate the mesh's dataplane token signing key: {0:#}")]
    Key(anyhow::Error),
}

/// Creates Mesh `default` unless it exists (a restart must not reset the user's changes)
/// or the operator asked to skip it.
pub async fn ensure_default_mesh(store: &SharedStore, skip: bool) -> anyhow::Result<bool> {
    if skip
        || store
            .get(ResourceType::Mesh, "", DEFAULT_MESH)
            .await?
            .is_some()
    {
        return Ok(false);
    }
    let mesh = Resource {
        meta: Meta {
            name: DEFAULT_MESH.into(),
            ..Meta::default()
        },
        spec: Spec::Mesh(MeshSpec::default()),
    };
    match create_mesh(store, mesh, &crate::now_rfc3339()).await {
        Ok(_) => Ok(true),
        Err(CreateMeshError::Store(StoreError::AlreadyExists { .. })) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn skip_creating_initial_policies_is_honoured() {
        let names = |skip: &[&str]| -> Vec<String> {
            let spec = MeshSpec {
                skip_creating_initial_policies: Some(skip.iter().map(|s| s.to_string()).collect()),
                ..MeshSpec::default()
            };
            default_policies("m", &spec)
                .into_iter()
                .map(|r| format!("{}/{}", r.resource_type(), r.name()))
                .collect()
        };
        assert!(names(&["*"]).is_empty());
        assert_eq!(
            names(&["MeshTimeout"]),
            [
                "MeshCircuitBreaker/mesh-circuit-breaker-all-m",
                "MeshRetry/mesh-retry-all-m"
            ]
        );
        assert_eq!(
            names(&["MeshRetry"]),
            [
                "MeshTimeout/mesh-gateways-timeout-all-m",
                "MeshTimeout/mesh-timeout-all-m",
                "MeshCircuitBreaker/mesh-circuit-breaker-all-m"
            ]
        );
        assert_eq!(
            names(&["MeshTimeout", "MeshCircuitBreaker"]),
            ["MeshRetry/mesh-retry-all-m"]
        );
    }

    #[tokio::test]
    async fn a_mesh_is_created_with_its_signing_key() {
        let store: SharedStore = Arc::new(aerie_store::MemoryStore::new());
        assert!(ensure_default_mesh(&store, false).await.unwrap());
        assert!(!ensure_default_mesh(&store, false).await.unwrap());
        let key =
            crate::signing::load_existing(&store, "default", "dataplane-token-signing-key-default")
                .await
                .unwrap();
        assert!(key.is_some(), "the key exists as soon as the mesh does");
        let timeouts = store
            .list(ResourceType::MeshTimeout, Some("default"))
            .await
            .unwrap();
        let names: Vec<&str> = timeouts.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "mesh-gateways-timeout-all-default",
                "mesh-timeout-all-default"
            ]
        );
        for r in &timeouts {
            assert_eq!(aerie_core::validate::validate(r), Ok(()));
            assert_eq!(
                r.meta.labels.get(MESH_LABEL).map(String::as_str),
                Some("default")
            );
        }

        // A stray key under the name (never made by us) does not block the mesh.
        let (stray, secret) =
            crate::signing::new_key_secret("other", "dataplane-token-signing-key-other").unwrap();
        store.create(secret, "now").await.unwrap();
        let mesh = Resource {
            meta: Meta {
                name: "other".into(),
                ..Meta::default()
            },
            spec: Spec::Mesh(MeshSpec::default()),
        };
        create_mesh(&store, mesh.clone(), "now").await.unwrap();
        let kept =
            crate::signing::load_existing(&store, "other", "dataplane-token-signing-key-other")
                .await
                .unwrap()
                .unwrap();
        assert_eq!(kept.verifying_key(), stray.verifying_key());
        assert!(
            store
                .get(ResourceType::MeshTimeout, "other", "mesh-timeout-all-other")
                .await
                .unwrap()
                .is_some(),
            "the defaults are created beside a stray key"
        );
        // Creating it again: the mesh's own clash.
        assert!(matches!(
            create_mesh(&store, mesh, "now").await,
            Err(CreateMeshError::Store(StoreError::AlreadyExists {
                rtype: ResourceType::Mesh,
                ..
            }))
        ));
    }
}
