//! Certificate verification for mesh mTLS between proxies.
//!
//! # Why custom verification
//!
//! Mesh certificates identify workloads by URI SANs only
//! (`spiffe://<mesh>/<service>`, `kuma://<tag>/<value>`), with no DNS name
//! and an empty subject. rustls's stock `WebPkiServerVerifier` always checks
//! the server certificate against a DNS name or IP address, so it rejects
//! every mesh certificate. The client (outbound) side therefore uses
//! [`SpiffeServerVerifier`]: the same webpki chain validation (trust anchors,
//! validity period, signatures, serverAuth EKU), then, instead of the host
//! name check, an exact match of the expected SPIFFE ID among the leaf's URI
//! SANs, as Kuma's outbound clusters do. The `ServerName` given to rustls is
//! ignored (pass an IP address so that no SNI is sent, or any DNS name).
//!
//! The server (inbound) side uses rustls's `WebPkiClientVerifier`
//! ([`client_cert_verifier`]): client verification checks no names, so it
//! works unchanged and just requires a certificate chaining to the mesh CA.
//! Which peers may talk to the service is then decided by RBAC on the peer's
//! URI SANs ([`peer_uri_sans`]), as Kuma does with its `spiffe://<mesh>/`
//! principals.
//!
//! During a CA change a mesh trusts two roots at once: [`TrustBundle`]
//! collects roots from several PEMs.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use x509_parser::extensions::GeneralName;

use crate::{Error, Result};

/// Parses `cert` (DER) and returns its URI SANs, in certificate order.
/// A certificate without a SAN extension yields an empty list.
pub fn peer_uri_sans(cert: &CertificateDer<'_>) -> Result<Vec<String>> {
    let (_, x509) = parse(cert)?;
    let sans = x509
        .subject_alternative_name()
        .map_err(|e| Error::InvalidCertificate(format!("broken subjectAltName extension: {e}")))?;
    Ok(sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The NotAfter time of `cert` (DER), e.g. to schedule renewal.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<SystemTime> {
    let (_, x509) = parse(cert)?;
    Ok(crate::ca::system_time(
        x509.validity().not_after.timestamp(),
    ))
}

fn parse<'a>(
    cert: &'a CertificateDer<'_>,
) -> Result<(&'a [u8], x509_parser::certificate::X509Certificate<'a>)> {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| Error::InvalidCertificate(format!("not an X.509 certificate: {e}")))
}

/// The ring provider's signature algorithms: the only provider Aerie uses.
fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// A root store holding exactly `roots`; every root must parse and there
/// must be at least one.
fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    if roots.is_empty() {
        return Err(Error::InvalidCertificateParams(
            "at least one trusted root certificate is required".to_string(),
        ));
    }
    let mut store = RootCertStore::empty();
    for (i, root) in roots.iter().enumerate() {
        store.add(root.clone()).map_err(|e| {
            Error::InvalidCertificate(format!("trusted root #{i} is not usable: {e}"))
        })?;
    }
    Ok(store)
}

/// A rustls client certificate verifier for inbound mesh traffic: a client
/// certificate is mandatory and must chain to one of `roots` (with the
/// clientAuth EKU). Peer identity is checked afterwards, by RBAC on
/// [`peer_uri_sans`].
pub fn client_cert_verifier(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<dyn ClientCertVerifier>> {
    let store = root_store(roots)?;
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(store),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| Error::InvalidCertificateParams(format!("client certificate verifier: {e}")))
}

/// The error inside `rustls::Error::InvalidCertificate(CertificateError::Other(..))`
/// when a server's certificate is valid but for another identity. Callers
/// can downcast the `OtherError` to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "peer identity mismatch: expected {expected:?}, the peer certificate presents {presented:?}"
)]
pub struct SpiffeIdMismatch {
    /// The SPIFFE ID the client wanted.
    pub expected: String,
    /// The URI SANs of the certificate the server presented.
    pub presented: Vec<String>,
}

/// A rustls server certificate verifier for outbound mesh traffic: webpki
/// chain validation to the mesh roots (serverAuth EKU, validity, signatures)
/// without the DNS-name check, then an exact match of `expected_uri` among
/// the leaf's URI SANs. See the module docs.
pub struct SpiffeServerVerifier {
    roots: RootCertStore,
    expected_uri: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeServerVerifier {
    /// A verifier trusting `roots` (at least one) that accepts only a
    /// server presenting `expected_uri` (e.g. `spiffe://default/backend`).
    pub fn new(roots: &[CertificateDer<'static>], expected_uri: String) -> Result<Arc<Self>> {
        if expected_uri.is_empty() {
            return Err(Error::InvalidCertificateParams(
                "the expected server identity (URI) must not be empty".to_string(),
            ));
        }
        Ok(Arc::new(Self {
            roots: root_store(roots)?,
            expected_uri,
            algorithms: algorithms(),
        }))
    }

    /// The identity this verifier requires.
    pub fn expected_uri(&self) -> &str {
        &self.expected_uri
    }
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeServerVerifier")
            .field("roots", &self.roots.len())
            .field("expected_uri", &self.expected_uri)
            .finish()
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let presented = peer_uri_sans(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if presented.contains(&self.expected_uri) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(SpiffeIdMismatch {
                    expected: self.expected_uri.clone(),
                    presented,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The set of root certificates a mesh trusts: normally its CA, two CAs
/// while the mesh changes CA (old and new), deduplicated, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustBundle(Vec<CertificateDer<'static>>);

impl TrustBundle {
    /// Every certificate of every PEM in `pems` (each may hold several).
    pub fn from_pems<I, S>(pems: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut bundle = Self::default();
        for pem in pems {
            for cert in crate::load_cert_chain(pem.as_ref())? {
                bundle.push(cert)?;
            }
        }
        Ok(bundle)
    }

    /// Adds a root (DER) unless already present; it must parse.
    pub fn push(&mut self, root: CertificateDer<'static>) -> Result<()> {
        parse(&root)?;
        if !self.0.contains(&root) {
            self.0.push(root);
        }
        Ok(())
    }

    /// The roots, for [`client_cert_verifier`] and [`SpiffeServerVerifier::new`].
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.0
    }

    /// Whether the bundle holds no root.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All roots as one PEM (e.g. for an SDS validation context).
    pub fn to_pem(&self) -> String {
        self.0
            .iter()
            .map(|c| crate::pem::encode("CERTIFICATE", c))
            .collect()
    }
}

impl From<TrustBundle> for Vec<CertificateDer<'static>> {
    fn from(bundle: TrustBundle) -> Self {
        bundle.0
    }
}

#[cfg(test)]
mod tests;

/// Accepts any server certificate while still checking the handshake signatures: for an
/// operator's explicit choice not to verify a peer (`kumactl --skip-verify`, `kuma-dp`
/// without `--ca-cert-file`), which callers must announce loudly. Never used for mesh traffic.
#[derive(Debug)]
pub struct InsecureServerVerifier(Arc<rustls::crypto::CryptoProvider>);

impl InsecureServerVerifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Arc::new(rustls::crypto::ring::default_provider())))
    }
}

impl ServerCertVerifier for InsecureServerVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
