//! Token signing keys kept as secrets in the store (Kuma's names): the control plane creates
//! them at start and with each mesh; every replica reads the same one. Private keys never
//! leave the control plane: only admins can read secrets through the API.

use aerie_core::spec::SecretSpec;
use aerie_core::{Meta, Resource, ResourceType, Spec};
use aerie_identity::SigningKey;
use aerie_store::{SharedStore, StoreError};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The secret type a key named in `mesh` is kept as: GlobalSecret outside meshes.
fn secret_type(mesh: &str) -> ResourceType {
    if mesh.is_empty() {
        ResourceType::GlobalSecret
    } else {
        ResourceType::Secret
    }
}

/// The signing key a stored secret holds (base64 of a PKCS#8 PEM).
fn decode_key(r: &Resource, name: &str) -> anyhow::Result<SigningKey> {
    let data = match &r.spec {
        Spec::GlobalSecret(s) | Spec::Secret(s) => &s.data,
        _ => anyhow::bail!("{} is not a secret", r.describe()),
    };
    let pem = STANDARD
        .decode(data.as_bytes())
        .with_context(|| format!("secret {name} is not base64"))?;
    let pem = String::from_utf8(pem).with_context(|| format!("secret {name} is not PEM"))?;
    SigningKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("secret {name} holds no usable signing key"))
}

/// Loads the key stored as `name` if it exists; never creates it (a federated zone uses
/// the keys its global made, or none).
pub async fn load_existing(
    store: &SharedStore,
    mesh: &str,
    name: &str,
) -> anyhow::Result<Option<SigningKey>> {
    match store.get(secret_type(mesh), mesh, name).await? {
        Some(r) => decode_key(&r, name).map(Some),
        None => Ok(None),
    }
}

/// A fresh signing key and the secret that stores it as `name` (a GlobalSecret when `mesh`
/// is empty, else a Secret in `mesh`), not yet stored.
pub fn new_key_secret(mesh: &str, name: &str) -> anyhow::Result<(SigningKey, Resource)> {
    let key = SigningKey::generate()?;
    let secret = SecretSpec {
        data: STANDARD.encode(key.to_pkcs8_pem()),
    };
    let resource = Resource {
        meta: Meta {
            name: name.into(),
            mesh: (!mesh.is_empty()).then(|| mesh.to_string()),
            ..Meta::default()
        },
        spec: if mesh.is_empty() {
            Spec::GlobalSecret(secret)
        } else {
            Spec::Secret(secret)
        },
    };
    Ok((key, resource))
}

/// Loads the key stored as `name` (a GlobalSecret when `mesh` is empty, else a Secret in
/// `mesh`), creating it when missing.
pub async fn load_or_create(
    store: &SharedStore,
    mesh: &str,
    name: &str,
) -> anyhow::Result<SigningKey> {
    for _ in 0..3 {
        if let Some(key) = load_existing(store, mesh, name).await? {
            return Ok(key);
        }
        let (key, resource) = new_key_secret(mesh, name)?;
        match store.create(resource, &crate::now_rfc3339()).await {
            Ok(_) => return Ok(key),
            // Another replica created it first: read theirs.
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("could not load or create the signing key {name}")
}

/// Comma-separated token ids in a revocation secret (base64 of the list), if it exists.
pub async fn revoked_ids(
    store: &SharedStore,
    mesh: &str,
    name: &str,
) -> Result<Vec<String>, StoreError> {
    let rtype = secret_type(mesh);
    let Some(r) = store.get(rtype, mesh, name).await? else {
        return Ok(Vec::new());
    };
    let data = match &r.spec {
        Spec::GlobalSecret(s) | Spec::Secret(s) => s.data.clone(),
        _ => return Ok(Vec::new()),
    };
    let list = STANDARD.decode(data.trim().as_bytes()).unwrap_or_default();
    Ok(String::from_utf8_lossy(&list)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}
