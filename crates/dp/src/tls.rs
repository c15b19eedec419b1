//! TLS material: the workload identity, the inbound server config, the outbound client configs
//! and the SPIFFE verification of peer proxies.
//!
//! Everything here is built once per identity change ([`TlsMaterial::new`]) and then only read:
//! connections load the current [`TlsMaterial`] from the [`TlsStore`] (an `ArcSwapOption`), so a
//! rotation never disturbs established connections and never blocks a handshake.
//!
//! Verification comes from `aerie-identity` (shared with the control plane's tests):
//! - **Inbound** (server side): [`client_cert_verifier`], rustls' `WebPkiClientVerifier` over
//!   the mesh trust anchors; a client certificate is mandatory. Who may call is decided
//!   afterwards by authorization, from the certificate's URI SANs.
//! - **Outbound** (client side): mesh certificates carry only URI SANs, which the stock server
//!   verifier rejects, so [`SpiffeServerVerifier`] checks the chain with webpki and then
//!   requires the exact `spiffe://<mesh>/<service>` of the destination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aerie_identity::verify::{
    SpiffeServerVerifier, client_cert_verifier, not_after, peer_uri_sans,
};
use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;

/// ALPN for HTTP/2 (`http2`, `grpc` protocols).
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN for HTTP/1.1 (`http` protocol).
pub(crate) const ALPN_H1: &[u8] = b"http/1.1";

/// The workload identity the control plane issues: our certificate chain (leaf first), its
/// private key, and the mesh CA certificates peers must chain to.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub trust_anchors: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for Identity {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("chain", &self.chain.len())
            .field("trust_anchors", &self.trust_anchors.len())
            .finish_non_exhaustive()
    }
}

/// Why an [`Identity`] was refused (the previous one, if any, stays in use).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("the certificate chain is empty")]
    EmptyChain,
    #[error("no trust anchors (mesh CA certificates) were given")]
    NoTrustAnchors,
    #[error("invalid trust anchor: {0}")]
    TrustAnchor(String),
    #[error("the leaf certificate cannot be parsed: {0}")]
    Certificate(String),
    #[error("the private key is unusable or does not match the certificate: {0}")]
    Key(rustls::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Tls(String),
}

/// What `/config_dump` and logs show about the identity (never key material).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySummary {
    /// The leaf's URI SANs (`spiffe://...`, `kuma://...`).
    pub uri_sans: Vec<String>,
    /// The leaf's `notAfter`, seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// The leaf's `notAfter`, RFC 3339.
    pub not_after: String,
    pub chain_length: usize,
    pub trust_anchors: usize,
}

/// Which ALPN an outbound client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Alpn {
    /// TCP: no ALPN.
    None,
    H1,
    H2,
}

/// The current TLS material, swapped atomically on rotation; `None` until an identity arrives
/// (mTLS listeners fail closed meanwhile).
pub(crate) type TlsStore = ArcSwapOption<TlsMaterial>;

/// A client config's key: the SPIFFE ID the peer must present, and the ALPN offered.
type ClientKey = (Arc<str>, Alpn);

/// TLS configs derived from one [`Identity`].
pub(crate) struct TlsMaterial {
    /// The inbound server config: our SVID, mandatory client certificates from the mesh CA,
    /// ALPN h2 + http/1.1.
    pub server: Arc<ServerConfig>,
    pub summary: IdentitySummary,
    /// Changes when the identity (the leaf's URI SANs) changes, not on a rotation that keeps
    /// it: pooled upstream connections opened under another epoch are not reused.
    pub epoch: u64,
    provider: Arc<CryptoProvider>,
    trust_anchors: Vec<CertificateDer<'static>>,
    certified: Arc<CertifiedKey>,
    /// Client configs by (expected SPIFFE ID, ALPN). Filled on the first connection to a
    /// destination; consulted once per new upstream connection, never per request.
    clients: Mutex<HashMap<ClientKey, Arc<ClientConfig>>>,
}

impl TlsMaterial {
    /// Material for `id`, succeeding `previous` (whose epoch it keeps if the identity is the
    /// same).
    pub fn new(id: Identity, previous: Option<&TlsMaterial>) -> Result<TlsMaterial, IdentityError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let leaf = id.chain.first().ok_or(IdentityError::EmptyChain)?;
        if id.trust_anchors.is_empty() {
            return Err(IdentityError::NoTrustAnchors);
        }
        let summary = summarize(leaf, id.chain.len(), id.trust_anchors.len())?;
        let certified = Arc::new(
            CertifiedKey::from_der(id.chain, id.key, &provider).map_err(IdentityError::Key)?,
        );
        let verifier = client_cert_verifier(&id.trust_anchors)
            .map_err(|e| IdentityError::TrustAnchor(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| IdentityError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
        server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_H1.to_vec()];
        let epoch = match previous {
            Some(p) if p.summary.uri_sans == summary.uri_sans => p.epoch,
            Some(p) => p.epoch.wrapping_add(1),
            None => 0,
        };

        Ok(TlsMaterial {
            server: Arc::new(server),
            epoch,
            summary,
            provider,
            trust_anchors: id.trust_anchors,
            certified,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The client config for connections to a peer that must present `spiffe_id`.
    pub fn client(&self, spiffe_id: &Arc<str>, alpn: Alpn) -> Result<Arc<ClientConfig>, String> {
        let key = (spiffe_id.clone(), alpn);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let config = Arc::new(self.build_client(spiffe_id, alpn)?);
        clients.insert(key, config.clone());
        Ok(config)
    }

    fn build_client(&self, spiffe_id: &str, alpn: Alpn) -> Result<ClientConfig, String> {
        let verifier = SpiffeServerVerifier::new(&self.trust_anchors, spiffe_id.to_owned())
            .map_err(|e| e.to_string())?;
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified.clone())));
        config.alpn_protocols = match alpn {
            Alpn::None => Vec::new(),
            Alpn::H1 => vec![ALPN_H1.to_vec()],
            Alpn::H2 => vec![ALPN_H2.to_vec()],
        };
        Ok(config)
    }
}

/// The caller's identity from its (already verified) leaf certificate, and its first URI SAN
/// (what Envoy puts in `x-forwarded-client-cert`'s `URI=`).
pub(crate) fn peer_identity(
    leaf: &CertificateDer<'_>,
) -> Result<
    (
        aerie_core::policies::meshtrafficpermission::PeerIdentity,
        String,
    ),
    String,
> {
    let sans = peer_uri_sans(leaf).map_err(|e| e.to_string())?;
    let refs: Vec<&str> = sans.iter().map(String::as_str).collect();
    let id = aerie_core::policies::meshtrafficpermission::PeerIdentity::parse_uri_sans(&refs)
        .map_err(|e| e.to_string())?;
    let first = sans.into_iter().next().unwrap_or_default();
    Ok((id, first))
}

fn summarize(
    leaf: &CertificateDer<'_>,
    chain_length: usize,
    trust_anchors: usize,
) -> Result<IdentitySummary, IdentityError> {
    let invalid = |e: aerie_identity::Error| IdentityError::Certificate(e.to_string());
    let uri_sans = peer_uri_sans(leaf).map_err(invalid)?;
    let not_after = time::OffsetDateTime::from(not_after(leaf).map_err(invalid)?);
    Ok(IdentitySummary {
        uri_sans,
        not_after_unix: not_after.unix_timestamp(),
        not_after: not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        chain_length,
        trust_anchors,
    })
}
