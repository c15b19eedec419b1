//! The mesh certificate authority: one root CA per mesh that signs workload
//! certificates (X.509 SVIDs) for the mesh's proxies.
//!
//! # Why it looks like this
//!
//! * **Kuma-compatible identity.** The root has subject `O=Kuma, OU=Mesh,
//!   CN=<mesh>` and the URI SAN `spiffe://<mesh>`; workload certificates have
//!   an empty subject, a `spiffe://<mesh>/<service>` URI SAN per service and a
//!   `kuma://<tag>/<value>` URI SAN per tag, EKU serverAuth+clientAuth, and
//!   their NotBefore is backdated 10 s (Kuma's `pkg/core/ca/issuer`), so RBAC
//!   principals and policies written for Kuma match Aerie's certificates.
//! * **ECDSA P-256 instead of RSA 2048.** Aerie's only crypto library is
//!   [`ring`], which can use RSA keys but cannot *generate* them. A builtin CA
//!   therefore always gets a P-256 key: the mesh setting
//!   `conf.caCert.RSAbits` is accepted for compatibility but has no effect.
//!   A *provided* CA may use an RSA key (2048 to 4096 bits, ring's signing
//!   limit) or an ECDSA P-256/P-384 key.
//! * **The CA decides the identity.** [`CertificateAuthority::sign_workload`]
//!   takes only the public key from a proxy's CSR (after checking the CSR's
//!   self-signature, i.e. that the proxy holds the private key); every name
//!   and extension the proxy asked for is ignored, and the SANs are the ones
//!   the control plane computed from the data plane's (authenticated) tags.
//! * **Leaves never outlive the CA**: their NotAfter is capped at the CA's.
//! * **Random serial numbers**: rcgen's default serial is a hash of the public
//!   key, which would give every re-issued certificate for one key the same
//!   serial.
//!
//! The CA key PEM ([`CertificateAuthority::key_pem`]) exists only so the
//! control plane can persist it as a mesh Secret; it never goes to a proxy.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    PKCS_RSA_SHA256, PublicKeyData as _, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;

use crate::{Error, Result, pem};

/// Default validity of a builtin root CA: 10 years (Kuma's
/// `DefaultCACertValidityPeriod`).
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default validity of a workload certificate: 24 hours (Kuma's
/// `DefaultWorkloadCertValidityPeriod`; `dpCert.rotation.expiration`
/// overrides it).
pub const DEFAULT_WORKLOAD_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// How far NotBefore is backdated, for both CA and workload certificates,
/// to tolerate clock skew between the control plane and proxies.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(10);
/// Clock skew tolerated when checking that a provided CA is already valid.
const PROVIDED_CA_SKEW: Duration = Duration::from_secs(60);

/// `AlgorithmIdentifier { rsaEncryption, NULL }`, to wrap a PKCS#1 key in PKCS#8.
const RSA_ENCRYPTION_ALG_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// `AlgorithmIdentifier { id-ecPublicKey, prime256v1 }`.
const EC_P256_ALG_ID: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// `AlgorithmIdentifier { id-ecPublicKey, secp384r1 }`.
const EC_P384_ALG_ID: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];

/// A mesh's root certificate authority.
///
/// `Debug` does not print key material.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    not_after: OffsetDateTime,
    subject: String,
}

impl CertificateAuthority {
    /// Generates a builtin root CA for `mesh`, valid from 10 s ago for
    /// `validity` (normally [`DEFAULT_CA_VALIDITY`]).
    ///
    /// The key is always ECDSA P-256 (see the module docs on `RSAbits`).
    pub fn generate(mesh: &str, validity: Duration) -> Result<Self> {
        validate_mesh_name(mesh)?;
        if validity.is_zero() {
            return Err(Error::InvalidCertificateParams(
                "CA validity must be positive".to_string(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let not_after = checked_add(now, validity).ok_or_else(|| {
            Error::InvalidCertificateParams(format!(
                "CA validity {validity:?} ends after the year 9999"
            ))
        })?;

        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "Kuma");
        subject.push(DnType::OrganizationalUnitName, "Mesh");
        subject.push(DnType::CommonName, mesh);

        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.subject_alt_names = vec![uri_san(&format!("spiffe://{mesh}"))?];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = checked_sub(now, NOT_BEFORE_BACKDATE).ok_or_else(|| {
            Error::InvalidCertificateParams("the clock is before the year 1".to_string())
        })?;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().clone();
        let key_pem = key.serialize_pem();
        let issuer = Issuer::new(params, key);
        Self::assemble(issuer, cert_der, key_pem)
    }

    /// Loads a provided CA: the CA certificate (exactly one `CERTIFICATE`
    /// section) and its private key.
    ///
    /// Supported keys: PKCS#8 (`PRIVATE KEY`) ECDSA P-256/P-384 or RSA, SEC1
    /// (`EC PRIVATE KEY`) P-256/P-384, PKCS#1 (`RSA PRIVATE KEY`). RSA keys
    /// must be 2048 to 4096 bits (what ring can sign with); Ed25519 CA keys
    /// are accepted in PKCS#8 form. Encrypted keys are not supported.
    ///
    /// Refused, with an [`Error::InvalidCa`] that says why: a certificate
    /// that is not a CA (no basicConstraints `CA:TRUE`, or a keyUsage without
    /// keyCertSign), that has expired or is not valid yet, whose subject
    /// rcgen cannot reproduce byte for byte (multi-valued RDNs, unusual string
    /// types: issued certificates would not chain), or whose public key does
    /// not match the private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let certs = crate::load_cert_chain(cert_pem)
            .map_err(|e| Error::InvalidCa(format!("CA certificate: {e}")))?;
        if certs.len() != 1 {
            return Err(Error::InvalidCa(format!(
                "expected exactly one CA certificate, found {} (intermediate chains are not \
                 supported)",
                certs.len()
            )));
        }
        let Some(cert_der) = certs.into_iter().next() else {
            return Err(Error::NoCertificate);
        };
        let key = load_ca_key(key_pem)?;

        {
            let (rest, x509) = x509_parser::parse_x509_certificate(&cert_der)
                .map_err(|e| Error::InvalidCa(format!("CA certificate does not parse: {e}")))?;
            if !rest.is_empty() {
                return Err(Error::InvalidCa(
                    "trailing data after the CA certificate".to_string(),
                ));
            }
            let subject = x509.subject().to_string();
            match x509.basic_constraints() {
                Ok(Some(bc)) if bc.value.ca => {}
                Ok(_) => {
                    return Err(Error::InvalidCa(format!(
                        "certificate {subject:?} is not a CA (basicConstraints CA:TRUE missing)"
                    )));
                }
                Err(e) => {
                    return Err(Error::InvalidCa(format!(
                        "certificate {subject:?} has a broken basicConstraints extension: {e}"
                    )));
                }
            }
            match x509.key_usage() {
                Ok(Some(ku)) if !ku.value.key_cert_sign() => {
                    return Err(Error::InvalidCa(format!(
                        "certificate {subject:?} may not sign certificates (keyUsage lacks \
                         keyCertSign)"
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::InvalidCa(format!(
                        "certificate {subject:?} has a broken keyUsage extension: {e}"
                    )));
                }
            }
            let now = SystemTime::now();
            let not_before = system_time(x509.validity().not_before.timestamp());
            let not_after = system_time(x509.validity().not_after.timestamp());
            if now > not_after {
                return Err(Error::InvalidCa(format!(
                    "CA certificate {subject:?} expired at {}",
                    x509.validity().not_after
                )));
            }
            if now + PROVIDED_CA_SKEW < not_before {
                return Err(Error::InvalidCa(format!(
                    "CA certificate {subject:?} is not valid before {}",
                    x509.validity().not_before
                )));
            }
            if x509.subject().iter().any(|rdn| rdn.iter().count() != 1) {
                return Err(Error::InvalidCa(format!(
                    "CA subject {subject:?} has a multi-valued or empty RDN, which is not \
                     supported"
                )));
            }
            for attr in x509.subject().iter_attributes() {
                if !oid_survives_rcgen(attr.attr_type()) {
                    return Err(Error::InvalidCa(format!(
                        "CA subject {subject:?} has an attribute type (OID {}) that cannot be \
                         written into issued certificates; re-issue the CA certificate with \
                         standard attribute types",
                        attr.attr_type().to_id_string()
                    )));
                }
                let value = attr.attr_value();
                if value.header.tag() == x509_parser::der_parser::asn1_rs::Tag::PrintableString
                    && let Some(c) = value.data.iter().find(|b| !printable_survives_rcgen(**b))
                {
                    return Err(Error::InvalidCa(format!(
                        "CA subject {subject:?} has a PrintableString with a character ({:?}) \
                         that cannot be written into issued certificates; re-issue the CA \
                         certificate with a UTF8String subject",
                        char::from(*c)
                    )));
                }
            }
            if key.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
                return Err(Error::InvalidCa(format!(
                    "the private key does not match the public key of CA certificate {subject:?}"
                )));
            }
        }

        let key_pem = key.serialize_pem();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            Error::InvalidCa(format!("CA certificate cannot be used as an issuer: {e}"))
        })?;
        let ca = Self::assemble(issuer, cert_der, key_pem)?;
        ca.self_test()?;
        Ok(ca)
    }

    /// Builds the struct; reads NotAfter and the subject back from the DER.
    fn assemble(
        issuer: Issuer<'static, KeyPair>,
        cert_der: CertificateDer<'static>,
        key_pem: String,
    ) -> Result<Self> {
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| Error::InvalidCa(format!("CA certificate does not parse: {e}")))?;
        let not_after = OffsetDateTime::from_unix_timestamp(x509.validity().not_after.timestamp())
            .map_err(|_| Error::InvalidCa("CA NotAfter is out of range".to_string()))?;
        let subject = x509.subject().to_string();
        let cert_pem = pem::encode("CERTIFICATE", &cert_der);
        Ok(Self {
            issuer,
            cert_der,
            cert_pem,
            key_pem,
            not_after,
            subject,
        })
    }

    /// Issues a throwaway certificate and checks that its issuer name is
    /// byte-identical to the CA's subject, since chain building compares
    /// names byte for byte and rcgen re-encodes the CA's subject.
    fn self_test(&self) -> Result<()> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![uri_san("spiffe://self-test")?];
        let probe = params
            .signed_by(self.issuer.key(), &self.issuer)
            .map_err(|e| Error::InvalidCa(format!("the CA key cannot sign: {e}")))?;
        let (_, leaf) = x509_parser::parse_x509_certificate(probe.der())
            .map_err(|e| Error::InvalidCa(format!("issued certificate does not parse: {e}")))?;
        let (_, ca) = x509_parser::parse_x509_certificate(&self.cert_der)
            .map_err(|e| Error::InvalidCa(format!("CA certificate does not parse: {e}")))?;
        if leaf.issuer().as_raw() != ca.subject().as_raw() {
            return Err(Error::InvalidCa(format!(
                "the CA subject {:?} cannot be reproduced exactly in issued certificates \
                 (unusual string types or attribute order); re-issue the CA certificate",
                self.subject
            )));
        }
        Ok(())
    }

    /// The CA certificate as PEM: the trust bundle proxies get.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for
    /// the control plane to persist in a mesh Secret. Never send it to a
    /// proxy. Provided PKCS#1/SEC1 keys come back converted to PKCS#8.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        system_time(self.not_after.unix_timestamp())
    }

    /// Issues a workload certificate (leaf PEM) for the public key in
    /// `csr_pem` with exactly `uri_sans` as its identity.
    ///
    /// The CSR's self-signature must verify (proof that the proxy holds the
    /// private key); only its public key is used: its subject, SANs and
    /// extensions are ignored. The key must be ECDSA P-256/P-384, RSA 2048 to
    /// 8192 bits or Ed25519. `uri_sans` must not be empty and each must be an
    /// ASCII URI (`spiffe://<mesh>/<service>`, `kuma://<tag>/<value>`).
    ///
    /// The certificate is valid from `now - 10 s` to `now + validity`,
    /// capped at the CA's NotAfter; it is not a CA, has an empty subject, EKU
    /// serverAuth+clientAuth, keyUsage digitalSignature+keyEncipherment and a
    /// random serial number.
    pub fn sign_workload(
        &self,
        csr_pem: &str,
        uri_sans: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<String> {
        if uri_sans.is_empty() {
            return Err(Error::InvalidCertificateParams(
                "a workload certificate needs at least one URI SAN".to_string(),
            ));
        }
        let sans = uri_sans
            .iter()
            .map(|s| uri_san(s))
            .collect::<Result<Vec<_>>>()?;
        if validity.is_zero() {
            return Err(Error::InvalidCertificateParams(
                "workload certificate validity must be positive".to_string(),
            ));
        }
        let public_key = csr_public_key(csr_pem)?;

        let now = offset_date_time(now)?;
        if now >= self.not_after {
            return Err(Error::InvalidCa(format!(
                "CA {:?} expired at {}",
                self.subject, self.not_after
            )));
        }
        let not_after =
            checked_add(now, validity).map_or(self.not_after, |t| t.min(self.not_after));
        let not_before = checked_sub(now, NOT_BEFORE_BACKDATE).unwrap_or(now);

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(cert.pem())
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Mesh names end up in `spiffe://<mesh>` and the CA's CN: require a
/// non-empty name of URI-safe characters (Kuma mesh names are DNS labels).
fn validate_mesh_name(mesh: &str) -> Result<()> {
    let ok = !mesh.is_empty()
        && mesh.len() <= 253
        && mesh
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidCertificateParams(format!(
            "invalid mesh name {mesh:?}: expected letters, digits, '-', '.' or '_'"
        )))
    }
}

/// A URI SAN: printable ASCII with a `scheme://` prefix.
fn uri_san(uri: &str) -> Result<SanType> {
    let scheme_ok = uri.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && !rest.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    if !scheme_ok || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidCertificateParams(format!(
            "invalid URI SAN {uri:?}: expected an ASCII URI such as spiffe://<mesh>/<service>"
        )));
    }
    let ia5 = uri
        .try_into()
        .map_err(|e| Error::InvalidCertificateParams(format!("invalid URI SAN {uri:?}: {e}")))?;
    Ok(SanType::URI(ia5))
}

/// 16 random bytes, made positive and non-zero (RFC 5280 §4.1.2.2).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto("generating a certificate serial number"))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Parses a CSR, checks its self-signature and key type, and returns its
/// public key.
fn csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
        let missing =
            Error::InvalidCsr("no '-----BEGIN CERTIFICATE REQUEST-----' section found".to_string());
        pem::map_error(e, csr_pem, "CERTIFICATE REQUEST", missing)
    })?;
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| Error::InvalidCsr(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::InvalidCsr(
            "trailing data after the request".to_string(),
        ));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let key = SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| Error::InvalidCsr(format!("unsupported public key type: {e}")))?;
    let alg = key.algorithm();
    if alg == &PKCS_RSA_SHA256 {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => 0,
        };
        if !(2048..=8192).contains(&bits) {
            return Err(Error::InvalidCsr(format!(
                "unsupported RSA key size {bits} bits (2048 to 8192 are accepted)"
            )));
        }
    } else if alg != &PKCS_ECDSA_P256_SHA256
        && alg != &PKCS_ECDSA_P384_SHA384
        && alg != &PKCS_ED25519
    {
        return Err(Error::InvalidCsr(
            "unsupported public key type (ECDSA P-256/P-384, RSA or Ed25519 are accepted)"
                .to_string(),
        ));
    }
    csr.verify_signature().map_err(|e| {
        Error::InvalidCsr(format!(
            "the request's self-signature does not verify ({e}): the requester must sign it \
             with the private key of the public key it contains"
        ))
    })?;
    Ok(key)
}

/// Size in bits of a big-endian unsigned integer.
/// Whether yasna (rcgen's DER writer) accepts `b` in a PrintableString: X.680's set without
/// `?`, which yasna refuses by panicking although rcgen reads it.
fn printable_survives_rcgen(b: u8) -> bool {
    b == b' ' || (b'\''..=b':').contains(&b) && b != b'*' || b == b'=' || b.is_ascii_alphabetic()
}

/// Whether rcgen, which re-encodes the CA's subject into every certificate it issues, writes
/// this OID back byte for byte. rcgen reads an OID's arcs through asn1-rs (which takes the
/// first two arcs from the first byte alone, so `2.999` comes back as `3.16...`) and writes
/// them with yasna, which panics on a first arc above 2; an OID whose arcs do not survive
/// that round trip would panic or produce certificates that do not chain.
fn oid_survives_rcgen(oid: &x509_parser::der_parser::oid::Oid<'_>) -> bool {
    let Some(arcs) = oid.iter() else {
        return false; // an arc wider than 64 bits
    };
    let arcs: Vec<u64> = arcs.collect();
    let [first, second, rest @ ..] = arcs.as_slice() else {
        return false;
    };
    // yasna's own preconditions, checked before it would assert them.
    if *first > 2 || (*first < 2 && *second >= 40) || *second >= u64::MAX - 80 {
        return false;
    }
    let mut encoded = Vec::with_capacity(oid.as_bytes().len());
    for arc in std::iter::once(first * 40 + second).chain(rest.iter().copied()) {
        let groups = (64 - (arc | 1).leading_zeros()).div_ceil(7);
        for i in (0..groups).rev() {
            let group = ((arc >> (7 * i)) & 0x7f) as u8;
            encoded.push(if i == 0 { group } else { group | 0x80 });
        }
    }
    encoded == oid.as_bytes()
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let trimmed = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

/// Loads a CA private key from PEM, converting PKCS#1 and SEC1 to PKCS#8
/// (ring, and so rcgen, only read PKCS#8).
fn load_ca_key(key_pem: &str) -> Result<KeyPair> {
    let key = crate::load_private_key(key_pem)
        .map_err(|e| Error::InvalidCa(format!("CA private key: {e}")))?;
    let unusable = |what: &str, e: rcgen::Error| {
        Error::InvalidCa(format!(
            "CA private key: unusable {what} key ({e}); supported: ECDSA P-256/P-384, RSA \
             2048-4096 bits, Ed25519 (PKCS#8)"
        ))
    };
    match key {
        PrivateKeyDer::Pkcs8(der) => KeyPair::try_from(&der).map_err(|e| unusable("PKCS#8", e)),
        PrivateKeyDer::Pkcs1(der) => {
            let pkcs8 = wrap_pkcs8(RSA_ENCRYPTION_ALG_ID, der.secret_pkcs1_der());
            KeyPair::try_from(pkcs8.as_slice()).map_err(|e| unusable("PKCS#1 RSA", e))
        }
        PrivateKeyDer::Sec1(der) => {
            let p256 = wrap_pkcs8(EC_P256_ALG_ID, der.secret_sec1_der());
            KeyPair::try_from(p256.as_slice())
                .or_else(|_| {
                    let p384 = wrap_pkcs8(EC_P384_ALG_ID, der.secret_sec1_der());
                    KeyPair::try_from(p384.as_slice())
                })
                .map_err(|e| unusable("SEC1 EC", e))
        }
        _ => Err(Error::InvalidCa(
            "CA private key: unsupported private key format".to_string(),
        )),
    }
}

/// Whether `key_pem` is the private key of the first certificate in `cert_pem`: the two
/// halves of a CA kept apart (a builtin CA's two mesh Secrets, which reach a zone one at a
/// time) belong together. `Err` when either does not parse.
pub fn key_matches_cert(cert_pem: &str, key_pem: &str) -> Result<bool> {
    let certs = crate::load_cert_chain(cert_pem)
        .map_err(|e| Error::InvalidCa(format!("CA certificate: {e}")))?;
    let cert = certs.first().ok_or(Error::NoCertificate)?;
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| Error::InvalidCa(format!("CA certificate does not parse: {e}")))?;
    let key = load_ca_key(key_pem)?;
    Ok(key.public_key_raw() == x509.public_key().subject_public_key.data.as_ref())
}

/// `PrivateKeyInfo ::= SEQUENCE { 0, algorithm, OCTET STRING key }`.
fn wrap_pkcs8(alg_id: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(alg_id);
    body.extend(der_tlv(0x04, key));
    der_tlv(0x30, &body)
}

/// A DER tag-length-value.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn checked_add(t: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    t.checked_add(time::Duration::try_from(d).ok()?)
}

fn checked_sub(t: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    t.checked_sub(time::Duration::try_from(d).ok()?)
}

/// `SystemTime` to `OffsetDateTime` (whole seconds) without panicking on
/// out-of-range times.
fn offset_date_time(t: SystemTime) -> Result<OffsetDateTime> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    };
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| Error::InvalidCertificateParams(format!("time {t:?} is out of range")))
}

/// Unix seconds to `SystemTime`, saturating instead of panicking.
pub(crate) fn system_time(unix_secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_secs.unsigned_abs());
    let t = if unix_secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    t.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests;
