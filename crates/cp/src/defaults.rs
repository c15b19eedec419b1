//! What a fresh control plane creates: the `default` Mesh, mTLS off, and no
//! MeshTrafficPermission (Kuma 2.6+ creates none; with mTLS on, nothing is allowed until
//! the user adds one).

use aerie_core::spec::MeshSpec;
use aerie_core::{DEFAULT_MESH, Meta, Resource, ResourceType, Spec};
use aerie_store::{SharedStore, StoreError};

/// Creates Mesh `default` unless it exists (a restart must not reset the user's changes)
/// or the operator asked to skip it.
pub async fn ensure_default_mesh(store: &SharedStore, skip: bool) -> Result<bool, StoreError> {
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
    match store.create(mesh, &crate::now_rfc3339()).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
