//! Each mesh's certificate authority, for the `builtin` and `provided` mTLS backends.
//!
//! Builtin: created on first need and kept as the mesh Secrets
//! `{mesh}.ca-builtin-cert-{backend}` and `{mesh}.ca-builtin-key-{backend}` (Kuma's names).
//! Provided: read from the backend's `conf.cert` / `conf.key` data sources.
//! The CA key is used only inside the control plane; proxies get certificates, never keys.
//! A CA is used only when both halves are present and the key is the certificate's: on a
//! federated zone the two secrets arrive from the global one at a time, and until the
//! matching pair is there the mesh's proxies keep what they have and new ones wait.
//! The trust bundle holds every builtin CA certificate still stored in the mesh, so after a
//! backend change proxies trust both the old and the new CA until the old one is removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

impl MeshCa {
    /// When a proxy certificate issued at `now` expires: `now` plus
    /// [`MeshCa::dp_cert_validity`], capped at the CA's own NotAfter (as
    /// [`CertificateAuthority::sign_workload`] caps the certificate), whatever the
    /// configured validity.
    pub fn dp_cert_not_after(&self, now: SystemTime) -> SystemTime {
        let ca_not_after = self.ca.not_after();
        now.checked_add(self.dp_cert_validity)
            .map_or(ca_not_after, |t| t.min(ca_not_after))
    }
}

/// Loads and caches mesh CAs.
pub struct MeshCas {
    store: SharedStore,
    /// (mesh, backend + cert PEM + key PEM) -> CA: reparsing PEM and checking the pair on
    /// every signature would be wasted work.
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
        let cache_key = (
            mesh.to_string(),
            format!("{}\n{cert_pem}\n{key_pem}", backend.name),
        );
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            .cloned();
        let ca = match cached {
            Some(ca) => ca,
            None => {
                self.check_pair(mesh, &backend.name, &cert_pem, &key_pem)?;
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
        // Whether they match is checked when the pair is first used (see `check_pair`).
        match (
            self.secret_text(mesh, &cert_name).await?,
            self.secret_text(mesh, &key_name).await?,
        ) {
            (Some(c), Some(k)) => return Ok((c, k)),
            (None, None) if self.federated => bail!(
                "mesh \"{mesh}\": the CA secrets {cert_name} and {key_name} have not arrived from the global control plane yet"
            ),
            (None, None) => {}
            (cert, _) if self.federated => {
                let (has, lacks) = if cert.is_some() {
                    (&cert_name, &key_name)
                } else {
                    (&key_name, &cert_name)
                };
                bail!(
                    "mesh \"{mesh}\": waiting for the CA secret {lacks} from the global control plane (only {has} has arrived); the CA is not used until both are here"
                )
            }
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

    /// A CA's key must be its certificate's: never sign with a key from another pair (on a
    /// federated zone, the other half of a new pair may still be on its way).
    fn check_pair(
        &self,
        mesh: &str,
        backend: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> anyhow::Result<()> {
        match aerie_identity::ca::key_matches_cert(cert_pem, key_pem) {
            Ok(true) => Ok(()),
            Ok(false) if self.federated => bail!(
                "mesh \"{mesh}\": the CA key of backend \"{backend}\" does not match its certificate yet: waiting for the matching half from the global control plane; the CA is not used meanwhile"
            ),
            Ok(false) => bail!(
                "mesh \"{mesh}\": the CA key of backend \"{backend}\" does not match its certificate: the CA is not used"
            ),
            Err(e) => bail!("mesh \"{mesh}\": the CA of backend \"{backend}\" is unusable: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::format::{parse_yaml_value, resource_from_value};
    use aerie_core::multizone::{ORIGIN_GLOBAL, ORIGIN_LABEL};

    fn mesh_spec() -> MeshSpec {
        let r = resource_from_value(
            &parse_yaml_value(
                "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\n",
            )
            .unwrap(),
        )
        .unwrap();
        match r.spec {
            Spec::Mesh(m) => m,
            _ => unreachable!(),
        }
    }

    fn store() -> SharedStore {
        Arc::new(aerie_store::MemoryStore::new())
    }

    const CERT: &str = "default.ca-builtin-cert-ca-1";
    const KEY: &str = "default.ca-builtin-key-ca-1";

    /// Stores (or replaces) a CA secret as KDS stores what the global sends.
    async fn put(store: &SharedStore, name: &str, pem: &str) {
        let r = Resource {
            meta: Meta {
                name: name.into(),
                mesh: Some("default".into()),
                labels: [(ORIGIN_LABEL.to_string(), ORIGIN_GLOBAL.to_string())].into(),
                ..Meta::default()
            },
            spec: Spec::Secret(SecretSpec {
                data: STANDARD.encode(pem),
            }),
        };
        match store
            .get(ResourceType::Secret, "default", name)
            .await
            .unwrap()
        {
            Some(cur) => store.update(r, cur.meta.version, "now").await.map(|_| ()),
            None => store.create(r, "now").await.map(|_| ()),
        }
        .unwrap();
    }

    async fn secrets(store: &SharedStore) -> Vec<String> {
        store
            .list(ResourceType::Secret, Some("default"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.meta.name)
            .collect()
    }

    async fn refusal(cas: &MeshCas) -> String {
        match cas.enabled_ca("default", &mesh_spec()).await {
            Ok(_) => panic!("a CA was used"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// The CA signs a proxy's CSR with a certificate that chains to `cert_pem`.
    fn signs_under(ca: &MeshCa, cert_pem: &str) {
        let key = aerie_identity::WorkloadKey::generate().unwrap();
        let chain = ca
            .ca
            .sign_workload(
                &key.csr_pem().unwrap(),
                &["spiffe://default/web".to_string()],
                Duration::from_secs(600),
                std::time::SystemTime::now(),
            )
            .unwrap();
        assert!(!chain.is_empty());
        assert_eq!(ca.ca.cert_pem(), cert_pem);
    }

    /// Found by fuzzing: a huge `dpCert.rotation.expiration` overflowed `now + validity`
    /// when the control plane computed the certificate's expiry for the proxy's status. The
    /// expiry is the certificate's: capped at the CA's NotAfter, like the certificate.
    #[test]
    fn dp_cert_expiry_is_capped_at_the_ca_not_after() {
        let ca =
            Arc::new(CertificateAuthority::generate("default", Duration::from_secs(3600)).unwrap());
        let now = SystemTime::now();
        let mesh_ca = |validity| MeshCa {
            backend: "ca-1".into(),
            ca: ca.clone(),
            dp_cert_validity: validity,
        };
        let short = mesh_ca(Duration::from_secs(60));
        assert_eq!(short.dp_cert_not_after(now), now + Duration::from_secs(60));
        for validity in [
            Duration::from_secs(7200),
            Duration::from_secs(500_000_000_000 * 31_536_000),
            Duration::MAX,
        ] {
            let long = mesh_ca(validity);
            assert_eq!(long.dp_cert_not_after(now), ca.not_after());
            // And the status line renders it.
            assert!(!crate::dpserver::hub::rfc3339(long.dp_cert_not_after(now)).is_empty());
        }
    }

    #[tokio::test]
    async fn a_zone_uses_a_ca_only_when_both_halves_are_here_and_match() {
        let zone = store();
        let cas = MeshCas::new(zone.clone()).federated();
        let global = CertificateAuthority::generate("default", Duration::from_secs(3600)).unwrap();
        let other = CertificateAuthority::generate("default", Duration::from_secs(3600)).unwrap();

        assert!(refusal(&cas).await.contains("have not arrived"));
        // The certificate first: waiting for the key, and no CA made here.
        put(&zone, CERT, global.cert_pem()).await;
        let why = refusal(&cas).await;
        assert!(
            why.contains(&format!("waiting for the CA secret {KEY}")),
            "{why}"
        );
        assert_eq!(secrets(&zone).await, [CERT]);
        // A key that is not the certificate's (another pair's half): never signed with.
        put(&zone, KEY, other.key_pem()).await;
        let why = refusal(&cas).await;
        assert!(why.contains("does not match its certificate yet"), "{why}");
        // The matching key arrives: used.
        put(&zone, KEY, global.key_pem()).await;
        let ca = cas
            .enabled_ca("default", &mesh_spec())
            .await
            .unwrap()
            .unwrap();
        signs_under(&ca, global.cert_pem());

        // A new pair arriving half at a time: the new certificate with the old key is
        // refused (not the cached pair, not a mix), the whole new pair is used.
        put(&zone, CERT, other.cert_pem()).await;
        let why = refusal(&cas).await;
        assert!(why.contains("does not match its certificate yet"), "{why}");
        put(&zone, KEY, other.key_pem()).await;
        let ca = cas
            .enabled_ca("default", &mesh_spec())
            .await
            .unwrap()
            .unwrap();
        signs_under(&ca, other.cert_pem());

        // The key alone.
        let zone2 = store();
        let cas2 = MeshCas::new(zone2.clone()).federated();
        put(&zone2, KEY, global.key_pem()).await;
        let why = refusal(&cas2).await;
        assert!(
            why.contains(&format!("waiting for the CA secret {CERT}")),
            "{why}"
        );
        assert_eq!(secrets(&zone2).await, [KEY]);
    }

    #[tokio::test]
    async fn a_control_plane_never_replaces_half_a_pair() {
        let s = store();
        let cas = MeshCas::new(s.clone());
        let ca = CertificateAuthority::generate("default", Duration::from_secs(3600)).unwrap();
        put(&s, CERT, ca.cert_pem()).await;
        let why = refusal(&cas).await;
        assert!(why.contains("only one of the secrets"), "{why}");
        let stored = s
            .get(ResourceType::Secret, "default", CERT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secrets(&s).await, [CERT], "no new CA over half a pair");
        assert_eq!(stored.meta.version, 1);
        // A mismatched pair is not used either.
        let other = CertificateAuthority::generate("default", Duration::from_secs(3600)).unwrap();
        put(&s, KEY, other.key_pem()).await;
        let why = refusal(&cas).await;
        assert!(why.contains("does not match its certificate"), "{why}");

        // With neither, the control plane makes its CA (both halves at once).
        let fresh = store();
        let cas = MeshCas::new(fresh.clone());
        let made = cas
            .enabled_ca("default", &mesh_spec())
            .await
            .unwrap()
            .unwrap();
        let mut names = secrets(&fresh).await;
        names.sort();
        assert_eq!(names, [CERT, KEY]);
        signs_under(&made, made.ca.cert_pem());
    }
}
