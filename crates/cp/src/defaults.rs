//! What a fresh control plane creates: the `default` Mesh, mTLS off, and no
//! MeshTrafficPermission (Kuma 2.6+ creates none; with mTLS on, nothing is allowed until
//! the user adds one). Every mesh is created with its dataplane-token signing key, as Kuma
//! does, so that on a multi-zone global the key reaches the zones with the mesh, before
//! any token for it exists.

use aerie_core::spec::MeshSpec;
use aerie_core::{DEFAULT_MESH, Meta, Resource, ResourceType, Spec};
use aerie_store::{SharedStore, StoreError};

/// Creates a new Mesh and its dataplane-token signing key in one transaction (a mesh never
/// exists without its key). A key left over under that name (it cannot be: deleting a mesh
/// deletes what lives in it) is kept and the mesh created alone.
pub async fn create_mesh(
    store: &SharedStore,
    mesh: Resource,
    now: &str,
) -> Result<Resource, CreateMeshError> {
    let name = mesh.name().to_string();
    let key_name = crate::tokens::dataplane_signing_key_name(&name);
    let (_, key) =
        crate::signing::new_key_secret(&name, &key_name).map_err(CreateMeshError::Key)?;
    match store.create_all(vec![mesh.clone(), key], now).await {
        Ok(mut created) => Ok(created.swap_remove(0)),
        Err(StoreError::AlreadyExists {
            rtype: ResourceType::Secret,
            ..
        }) => store
            .create(mesh, now)
            .await
            .map_err(CreateMeshError::Store),
        Err(e) => Err(CreateMeshError::Store(e)),
    }
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
