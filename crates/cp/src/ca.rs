//! Each mesh's certificate authority, for the `builtin` and `provided` mTLS backends.
//!
//! Builtin: created on first need and kept as the mesh Secrets
//! `{mesh}.ca-builtin-cert-{backend}` and `{mesh}.ca-builtin-key-{backend}` (Kuma's names).
//! Provided: read from the backend's `conf.cert` / `conf.key` data sources.
//! The CA key is used only inside the control plane; proxies get certificates, never keys.
//! The trust bundle holds every builtin CA certificate still stored in the mesh, so after a
//! backend change proxies trust both the old and the new CA until the old one is removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_core::duration::parse_kuma_duration;
use aerie_core::spec::{
    BuiltinCaConf, DataSource, MeshSpec, MtlsBackend, ProvidedCaConf, SecretSpec,
};
use aerie_core::{Meta, Resource, ResourceType, Spec};
use aerie_identity::CertificateAuthority;
use aerie_store::{SharedStore, StoreError};
use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Kuma's defaults: CA valid 10 years, proxy certificates 24 hours.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
pub const DEFAULT_DP_CERT_VALIDITY: Duration = Duration::from_secs(86_400);

pub fn builtin_cert_secret(mesh: &str, backend: &str) -> String {
    format!("{mesh}.ca-builtin-cert-{backend}")
}

pub fn builtin_key_secret(mesh: &str, backend: &str) -> String {
    format!("{mesh}.ca-builtin-key-{backend}")
}

/// The enabled backend's CA, ready to sign.
#[derive(Clone)]
pub struct MeshCa {
    pub backend: String,
    pub ca: Arc<CertificateAuthority>,
    /// Validity of the proxy certificates it issues (`dpCert.rotation.expiration`).
    pub dp_cert_validity: Duration,
}

/// Loads and caches mesh CAs.
pub struct MeshCas {
    store: SharedStore,
    /// (mesh, backend, cert PEM) -> CA: reparsing PEM on every signature would be wasted work.
    cache: Mutex<HashMap<(String, String), Arc<CertificateAuthority>>>,
    /// Never create a builtin CA here (see [`MeshCas::federated`]).
    federated: bool,
}

impl MeshCas {
    pub fn new(store: SharedStore) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
            federated: false,
        }
    }

    /// On a zone connected to a global, mesh CAs come from the global over KDS: a zone
    /// that made its own would sign identities no other zone trusts.
    pub fn federated(mut self) -> Self {
        self.federated = true;
        self
    }

    /// The CA of the mesh's enabled backend (created for `builtin` if missing), or `None`
    /// when mTLS is off.
    pub async fn enabled_ca(&self, mesh: &str, spec: &MeshSpec) -> anyhow::Result<Option<MeshCa>> {
        let Some(backend) = spec.enabled_mtls_backend() else {
            return Ok(None);
        };
        let dp_cert_validity = backend
            .dp_cert
            .as_ref()
            .and_then(|c| c.rotation.as_ref())
            .and_then(|r| r.expiration.as_deref())
            .and_then(parse_kuma_duration)
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_DP_CERT_VALIDITY);
        let (cert_pem, key_pem) = match backend.backend_type.as_str() {
            "builtin" => self.builtin_material(mesh, backend).await?,
            "provided" => self.provided_material(mesh, backend).await?,
            other => bail!("mesh \"{mesh}\": unknown CA backend type \"{other}\""),
        };
        let cache_key = (mesh.to_string(), format!("{}\n{cert_pem}", backend.name));
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            .cloned();
        let ca = match cached {
            Some(ca) => ca,
            None => {
                let ca = Arc::new(
                    CertificateAuthority::from_pem(&cert_pem, &key_pem).with_context(|| {
                        format!(
                            "mesh \"{mesh}\": the CA of backend \"{}\" is unusable",
                            backend.name
                        )
                    })?,
                );
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(cache_key, ca.clone());
                ca
            }
        };
        Ok(Some(MeshCa {
            backend: backend.name.clone(),
            ca,
            dp_cert_validity,
        }))
    }

    async fn builtin_material(
        &self,
        mesh: &str,
        backend: &MtlsBackend,
    ) -> anyhow::Result<(String, String)> {
        let cert_name = builtin_cert_secret(mesh, &backend.name);
        let key_name = builtin_key_secret(mesh, &backend.name);
        match (
            self.secret_text(mesh, &cert_name).await?,
            self.secret_text(mesh, &key_name).await?,
        ) {
            (Some(c), Some(k)) => return Ok((c, k)),
            (None, None) if self.federated => bail!(
                "mesh \"{mesh}\": the CA secrets {cert_name} and {key_name} have not arrived from the global control plane yet"
            ),
            (None, None) => {}
            _ => bail!(
                "mesh \"{mesh}\": only one of the secrets {cert_name} and {key_name} exists; restore the other or delete both to create a new CA"
            ),
        }
        let conf: BuiltinCaConf = match &backend.conf {
            Some(v) => serde_json::from_value(v.clone()).context("builtin CA conf")?,
            None => BuiltinCaConf::default(),
        };
        let validity = conf
            .ca_cert
            .as_ref()
            .and_then(|c| c.expiration.as_deref())
            .and_then(parse_kuma_duration)
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_CA_VALIDITY);
        let ca = CertificateAuthority::generate(mesh, validity)?;
        // Both secrets in one transaction: a certificate never exists without its key, and
        // when two replicas race, exactly one CA wins and the other reads it.
        let secret = |name: &str, text: &str| Resource {
            meta: Meta {
                name: name.into(),
                mesh: Some(mesh.into()),
                ..Meta::default()
            },
            spec: Spec::Secret(SecretSpec {
                data: STANDARD.encode(text),
            }),
        };
        let pair = vec![
            secret(&key_name, ca.key_pem()),
            secret(&cert_name, ca.cert_pem()),
        ];
        match self.store.create_all(pair, &crate::now_rfc3339()).await {
            Ok(_) => {
                tracing::info!(mesh, backend = %backend.name, "created the mesh's builtin CA");
                Ok((ca.cert_pem().to_string(), ca.key_pem().to_string()))
            }
            Err(StoreError::AlreadyExists { .. }) => {
                match (
                    self.secret_text(mesh, &cert_name).await?,
                    self.secret_text(mesh, &key_name).await?,
                ) {
                    (Some(c), Some(k)) => Ok((c, k)),
                    _ => bail!(
                        "mesh \"{mesh}\": the CA created by another control plane could not be read"
                    ),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn provided_material(
        &self,
        mesh: &str,
        backend: &MtlsBackend,
    ) -> anyhow::Result<(String, String)> {
        let conf: ProvidedCaConf = match &backend.conf {
            Some(v) => serde_json::from_value(v.clone()).context("provided CA conf")?,
            None => bail!("mesh \"{mesh}\": a provided CA needs conf.cert and conf.key"),
        };
        let read = |ds: Option<DataSource>, what: &'static str| async move {
            let ds = ds.ok_or_else(|| anyhow!("mesh \"{mesh}\": provided CA {what} is not set"))?;
            self.data_source(mesh, &ds)
                .await
                .with_context(|| format!("mesh \"{mesh}\": provided CA {what}"))
        };
        Ok((read(conf.cert, "cert").await?, read(conf.key, "key").await?))
    }

    async fn data_source(&self, mesh: &str, ds: &DataSource) -> anyhow::Result<String> {
        if let Some(name) = &ds.secret {
            return self
                .secret_text(mesh, name)
                .await?
                .ok_or_else(|| anyhow!("secret \"{name}\" not found in mesh \"{mesh}\""));
        }
        if let Some(path) = &ds.file {
            return std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"));
        }
        if let Some(b64) = &ds.inline {
            return String::from_utf8(STANDARD.decode(b64.as_bytes())?)
                .context("inline data is not text");
        }
        if let Some(s) = &ds.inline_string {
            return Ok(s.clone());
        }
        bail!("no data source set")
    }

    async fn secret_text(&self, mesh: &str, name: &str) -> anyhow::Result<Option<String>> {
        let Some(r) = self.store.get(ResourceType::Secret, mesh, name).await? else {
            return Ok(None);
        };
        let Spec::Secret(s) = &r.spec else {
            return Ok(None);
        };
        let bytes = STANDARD
            .decode(s.data.as_bytes())
            .with_context(|| format!("secret {name} is not base64"))?;
        Ok(Some(
            String::from_utf8(bytes).with_context(|| format!("secret {name} is not text"))?,
        ))
    }

    /// Every CA certificate proxies of the mesh must trust, PEM-concatenated: the enabled CA
    /// first, then any other builtin CA still stored (a CA change in progress).
    pub async fn trust_bundle(&self, mesh: &str, enabled: &MeshCa) -> anyhow::Result<String> {
        let mut bundle = enabled.ca.cert_pem().trim_end().to_string();
        bundle.push('\n');
        let prefix = format!("{mesh}.ca-builtin-cert-");
        let current = builtin_cert_secret(mesh, &enabled.backend);
        for secret in self.store.list(ResourceType::Secret, Some(mesh)).await? {
            if secret.name().starts_with(&prefix)
                && secret.name() != current
                && let Some(pem) = self.secret_text(mesh, secret.name()).await?
            {
                bundle.push_str(pem.trim_end());
                bundle.push('\n');
            }
        }
        Ok(bundle)
    }
}
