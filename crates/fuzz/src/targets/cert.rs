//! Certificates from untrusted hands: the CSR a proxy sends (the control plane's admission
//! and signing path, `CertificateAuthority::sign_workload`), a user's provided CA
//! (`CertificateAuthority::from_pem`, then used to issue), and a peer's certificate on the
//! data path (`peer_uri_sans`, `verify::not_after`, chain validation by
//! `SpiffeServerVerifier`, trust bundles, `key_matches_cert`).
//!
//! Structure-aware: valid DER (CSRs for every key type, CA certificates with several subject
//! shapes, issued leaves) is mutated and wrapped back in PEM, so mutations reach the X.509
//! parsers rather than stopping at the PEM armour. The first byte picks the surface; the
//! rest is [`crate::pack`]ed fields.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aerie_identity::ca::key_matches_cert;
use aerie_identity::verify::not_after;
use aerie_identity::{
    CertificateAuthority, SpiffeServerVerifier, TrustBundle, WorkloadKey, load_cert_chain,
    peer_uri_sans,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, ServerName, UnixTime};

use super::token::FUZZ_KEY_PEM;
use crate::{Rng, Target, mutate_bytes, pack, unpack};

const EC_CA: &str = include_str!("../../../identity/src/testdata/ec-ca.crt");
const EC_CA_KEY: &str = include_str!("../../../identity/src/testdata/ec-ca-key.sec1.pem");
const RSA_CA: &str = include_str!("../../../identity/src/testdata/rsa-ca.crt");
const RSA_CA_KEY_PKCS1: &str = include_str!("../../../identity/src/testdata/rsa-ca-key.pkcs1.pem");
const P521_CSR: &str = include_str!("../../../identity/src/testdata/p521.csr");
const RSA1024_CSR: &str = include_str!("../../../identity/src/testdata/rsa1024.csr");

/// The keys a provided CA may come with (chosen by a byte of the input).
const CA_KEYS: [&str; 3] = [FUZZ_KEY_PEM, EC_CA_KEY, RSA_CA_KEY_PKCS1];

/// Workload certificate validities, at and past every limit.
const VALIDITIES: [Duration; 7] = [
    Duration::from_secs(1),
    Duration::from_secs(86_400),
    Duration::from_secs(10 * 365 * 86_400),
    Duration::from_secs(9_223_372_036),
    Duration::from_secs(u64::MAX),
    Duration::MAX,
    Duration::ZERO,
];

const SANS: &[&str] = &[
    "spiffe://default/web",
    "kuma://version/v1",
    "spiffe://default/backend",
    "kuma://kuma.io/zone/zone-1",
    "",
    "not a uri",
    "spiffe://\u{e9}",
];

const DER_TOKENS: &[&[u8]] = &[
    &[0x30, 0x80],
    &[0x30, 0x82, 0xff, 0xff],
    &[0x06, 0x00],
    &[0x06, 0x03, 0x88, 0x37, 0x01],
    &[0x06, 0x01, 0x00],
    &[0x13, 0x00],
    &[0x1e, 0x01, 0x00],
    &[0x17, 0x0d],
    &[0x18, 0x0f],
    b"99991231235959Z",
    b"00000101000000Z",
    &[0x02, 0x00],
    &[0x01, 0x01, 0xff],
    &[0x05, 0x00],
    &[0x86, 0x00],
];

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// PEM text as given, or DER wrapped in PEM under `label`.
fn as_pem(bytes: &[u8], label: &str) -> String {
    if bytes.starts_with(b"-----BEGIN") {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        pem(label, bytes)
    }
}

/// A CA certificate over the fuzzer's key with `edit` applied, valid for ten years.
fn ca_cert(key: &KeyPair, edit: impl FnOnce(&mut CertificateParams)) -> Option<Vec<u8>> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    edit(&mut params);
    Some(params.self_signed(key).ok()?.der().to_vec())
}

pub struct Cert {
    ca: CertificateAuthority,
    verifier: Arc<SpiffeServerVerifier>,
    csrs: Vec<Vec<u8>>,
    cas: Vec<Vec<u8>>,
    leaves: Vec<Vec<u8>>,
    good_csr: String,
}

impl Cert {
    pub fn new() -> Cert {
        let ca = match CertificateAuthority::generate("default", Duration::from_secs(3650 * 86_400))
        {
            Ok(ca) => ca,
            Err(e) => panic!("cannot make the fuzzer's CA: {e}"),
        };
        let verifier = match SpiffeServerVerifier::new(
            &[ca.cert_der().clone()],
            "spiffe://default/web".into(),
        ) {
            Ok(v) => v,
            Err(e) => panic!("cannot make the verifier: {e}"),
        };
        let good_csr = WorkloadKey::generate()
            .and_then(|k| k.csr_pem())
            .unwrap_or_default();
        let mut csrs: Vec<Vec<u8>> = Vec::new();
        for text in [good_csr.as_str(), P521_CSR, RSA1024_CSR] {
            if let Ok(der) = CertificateSigningRequestDer::from_pem_slice(text.as_bytes()) {
                csrs.push(der.as_ref().to_vec());
            }
        }
        for alg in [&PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
            let Ok(key) = KeyPair::generate_for(alg) else {
                continue;
            };
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, "x");
            if let Ok(name) = rcgen::string::Ia5String::try_from("web") {
                params.subject_alt_names = vec![rcgen::SanType::DnsName(name)];
            }
            if let Ok(csr) = params.serialize_request(&key) {
                csrs.push(csr.der().as_ref().to_vec());
            }
        }
        let mut cas: Vec<Vec<u8>> = Vec::new();
        if let Ok(key) = KeyPair::from_pem(FUZZ_KEY_PEM) {
            let subjects: [&dyn Fn(&mut CertificateParams); 3] = [
                &|p| {
                    p.distinguished_name.push(DnType::OrganizationName, "Kuma");
                    p.distinguished_name.push(DnType::CommonName, "default");
                },
                &|p| {
                    if let Ok(us) = rcgen::string::PrintableString::try_from("US") {
                        p.distinguished_name
                            .push(DnType::CountryName, DnValue::PrintableString(us));
                    }
                    p.distinguished_name
                        .push(DnType::CustomDnType(vec![2, 5, 4, 97]), "VAT-1");
                    p.distinguished_name.push(
                        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                        "ca@example.com",
                    );
                },
                &|p| {
                    if let Ok(cn) = rcgen::string::BmpString::try_from("bmp") {
                        p.distinguished_name
                            .push(DnType::CommonName, DnValue::BmpString(cn));
                    }
                    if let Ok(uri) = rcgen::string::Ia5String::try_from("spiffe://default") {
                        p.subject_alt_names = vec![rcgen::SanType::URI(uri)];
                    }
                },
            ];
            for subject in subjects {
                cas.extend(ca_cert(&key, subject));
            }
        }
        for text in [EC_CA, RSA_CA] {
            if let Ok(der) = CertificateDer::from_pem_slice(text.as_bytes()) {
                cas.push(der.as_ref().to_vec());
            }
        }
        let leaves = [
            vec![
                "spiffe://default/web".to_string(),
                "kuma://version/v1".to_string(),
            ],
            vec!["spiffe://default/backend".to_string()],
        ]
        .iter()
        .filter_map(|sans| {
            let chain = ca
                .sign_workload(
                    &good_csr,
                    sans,
                    Duration::from_secs(86_400),
                    SystemTime::now(),
                )
                .ok()?;
            let der = CertificateDer::from_pem_slice(chain.as_bytes()).ok()?;
            Some(der.as_ref().to_vec())
        })
        .collect();
        Cert {
            ca,
            verifier,
            csrs,
            cas,
            leaves,
            good_csr,
        }
    }

    fn sign(&self, fields: [&[u8]; 3]) {
        let [sans, validity, csr] = fields;
        let sans: Vec<String> = String::from_utf8_lossy(sans)
            .split('\n')
            .map(str::to_string)
            .collect();
        let validity =
            VALIDITIES[usize::from(validity.first().copied().unwrap_or(0)) % VALIDITIES.len()];
        let csr = as_pem(csr, "CERTIFICATE REQUEST");
        if let Ok(chain) = self
            .ca
            .sign_workload(&csr, &sans, validity, SystemTime::now())
        {
            // What the control plane issued, the proxy must be able to read.
            let certs = load_cert_chain(&chain).unwrap_or_default();
            let leaf = certs.first();
            assert!(leaf.is_some(), "an issued chain does not load");
            if let Some(leaf) = leaf {
                let issued = peer_uri_sans(leaf).unwrap_or_default();
                assert_eq!(
                    issued, sans,
                    "the certificate does not carry exactly the SANs asked for"
                );
                assert!(
                    not_after(leaf).is_ok_and(|t| t <= self.ca.not_after()),
                    "a leaf outlives its CA"
                );
            }
        }
    }

    fn provided_ca(&self, fields: [&[u8]; 3]) {
        let [cert, key, _] = fields;
        let key = CA_KEYS[usize::from(key.first().copied().unwrap_or(0)) % CA_KEYS.len()];
        let cert = as_pem(cert, "CERTIFICATE");
        let _ = key_matches_cert(&cert, key);
        if let Ok(ca) = CertificateAuthority::from_pem(&cert, key) {
            // An accepted CA can issue.
            let issued = ca.sign_workload(
                &self.good_csr,
                &["spiffe://default/web".to_string()],
                Duration::from_secs(3600),
                SystemTime::now(),
            );
            assert!(
                issued.is_ok(),
                "an accepted provided CA cannot issue: {issued:?}"
            );
        }
    }

    fn peer_cert(&self, fields: [&[u8]; 3]) {
        let [leaf, _, _] = fields;
        let der = CertificateDer::from(leaf.to_vec());
        let _ = peer_uri_sans(&der);
        let _ = not_after(&der);
        let name = ServerName::try_from("backend.default.mesh").ok();
        if let Some(name) = name {
            let _ = self
                .verifier
                .verify_server_cert(&der, &[], &name, &[], UnixTime::now());
        }
        let text = as_pem(leaf, "CERTIFICATE");
        let _ = load_cert_chain(&text);
        let _ = TrustBundle::from_pems([text.as_str()]);
    }
}

impl Default for Cert {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Cert {
    fn name(&self) -> &'static str {
        "cert"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let surface = rng.below(3) as u8;
        let pool = match surface {
            0 => &self.csrs,
            1 => &self.cas,
            _ => &self.leaves,
        };
        let mut der = rng.pick(pool).cloned().unwrap_or_default();
        let other = rng.pick(pool).cloned().unwrap_or_default();
        let mutated = rng.chance(85);
        if mutated {
            mutate_bytes(&mut der, rng, DER_TOKENS, &other);
        }
        if rng.chance(5) {
            // The PEM armour itself.
            let label = if surface == 0 {
                "CERTIFICATE REQUEST"
            } else {
                "CERTIFICATE"
            };
            let mut text = pem(label, &der).into_bytes();
            mutate_bytes(&mut text, rng, &[b"-----", b"BEGIN ", b"\n", b"="], &[]);
            der = text;
        }
        let mut sans: Vec<&str> = (0..1 + rng.below(3))
            .filter_map(|_| rng.pick(SANS).copied())
            .collect();
        if !mutated && rng.chance(70) {
            sans.retain(|s| s.starts_with("spiffe://default") || s.starts_with("kuma://"));
        }
        let sans = sans.join("\n");
        let choice = [rng.next_u64() as u8];
        let mut input = vec![surface];
        input.extend(match surface {
            0 => pack(&[sans.as_bytes(), &choice, &der]),
            1 => pack(&[&der, &choice]),
            _ => pack(&[&der]),
        });
        input
    }

    fn run(&mut self, input: &[u8]) {
        let Some((surface, rest)) = input.split_first() else {
            return;
        };
        let fields = unpack::<3>(rest);
        match surface % 3 {
            0 => self.sign(fields),
            1 => self.provided_ca(fields),
            _ => self.peer_cert(fields),
        }
    }
}
