use std::sync::Arc;

use proptest::prelude::*;
use rcgen::{CertificateParams, DnValue};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::*;
use crate::{SpiffeServerVerifier, WorkloadKey, load_cert_chain};

const RSA_KEY_PKCS8: &str = include_str!("../testdata/rsa-ca-key.pkcs8.pem");
const RSA_KEY_PKCS1: &str = include_str!("../testdata/rsa-ca-key.pkcs1.pem");
const RSA_CA: &str = include_str!("../testdata/rsa-ca.crt");
const EC_KEY_SEC1: &str = include_str!("../testdata/ec-ca-key.sec1.pem");
const EC_CA: &str = include_str!("../testdata/ec-ca.crt");
const P521_CSR: &str = include_str!("../testdata/p521.csr");
const RSA1024_CSR: &str = include_str!("../testdata/rsa1024.csr");

const HOUR: Duration = Duration::from_secs(3600);

fn der(pem: &str) -> CertificateDer<'static> {
    load_cert_chain(pem).unwrap().remove(0)
}

/// Runs `f` on the parsed certificate.
fn with_cert<R>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let der = der(pem);
    let (rest, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(rest.is_empty());
    f(&x509)
}

fn uri_sans_of(x509: &X509Certificate<'_>) -> Vec<String> {
    x509.subject_alternative_name()
        .unwrap()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::URI(u) => u.to_string(),
                    other => format!("non-URI SAN {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sans(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Whether `leaf_pem` chains to `roots` as a server certificate for `uri`.
fn chains(
    leaf_pem: &str,
    roots: &[CertificateDer<'static>],
    uri: &str,
) -> Result<(), rustls::Error> {
    let verifier = SpiffeServerVerifier::new(roots, uri.to_string()).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    verifier
        .verify_server_cert(&der(leaf_pem), &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

fn csr() -> String {
    WorkloadKey::generate().unwrap().csr_pem().unwrap()
}

#[test]
fn generated_ca_has_kuma_fields() {
    let before = SystemTime::now();
    let ca = CertificateAuthority::generate("default", DEFAULT_CA_VALIDITY).unwrap();
    let after = SystemTime::now();
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(der(ca.cert_pem()), *ca.cert_der());
    with_cert(ca.cert_pem(), |x509| {
        assert_eq!(x509.subject().to_string(), "O=Kuma, OU=Mesh, CN=default");
        assert_eq!(x509.issuer().as_raw(), x509.subject().as_raw());
        let bc = x509.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
        assert!(!ku.key_encipherment());
        assert_eq!(uri_sans_of(x509), ["spiffe://default"]);
        // P-256 key, ECDSA-SHA256 signature.
        assert_eq!(
            x509.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        assert_eq!(
            x509.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );
        // NotBefore backdated 10 s, NotAfter 10 years on.
        let nb = x509.validity().not_before.timestamp();
        assert!(nb >= unix(before) - 11 && nb <= unix(after) - 9, "{nb}");
        let na = x509.validity().not_after.timestamp();
        let ten_years = DEFAULT_CA_VALIDITY.as_secs() as i64;
        assert!(na >= unix(before) + ten_years - 1 && na <= unix(after) + ten_years);
        assert_eq!(unix(ca.not_after()), na);
        // A random, positive serial.
        let serial = x509.raw_serial();
        assert!(!serial.is_empty() && serial[0] & 0x80 == 0);
        x509.verify_signature(None).unwrap();
    });
    // The key is PKCS#8 P-256 (loads as a token signing key too).
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    crate::SigningKey::from_pkcs8_pem(ca.key_pem()).unwrap();
    // Debug shows no key material.
    let dbg = format!("{ca:?}");
    assert!(
        dbg.contains("CN=default") && !dbg.contains("PRIVATE"),
        "{dbg}"
    );

    // Two CAs for one mesh differ (serial, key).
    let other = CertificateAuthority::generate("default", DEFAULT_CA_VALIDITY).unwrap();
    assert_ne!(other.cert_der(), ca.cert_der());
}

#[test]
fn generate_rejects_bad_input() {
    for mesh in ["", "a/b", "my mesh", "mésh", "a:b", "x?y"] {
        let err = CertificateAuthority::generate(mesh, HOUR).unwrap_err();
        assert!(
            matches!(err, Error::InvalidCertificateParams(_)),
            "{mesh}: {err}"
        );
    }
    for validity in [
        Duration::ZERO,
        Duration::MAX,
        Duration::from_secs(10_000 * 365 * 86400),
    ] {
        let err = CertificateAuthority::generate("default", validity).unwrap_err();
        assert!(matches!(err, Error::InvalidCertificateParams(_)), "{err}");
    }
    CertificateAuthority::generate("my-mesh.prod_1", HOUR).unwrap();
}

#[test]
fn from_pem_round_trip() {
    let ca = CertificateAuthority::generate("default", DEFAULT_CA_VALIDITY).unwrap();
    let loaded = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.key_pem(), ca.key_pem());
    assert_eq!(loaded.not_after(), ca.not_after());
    // A leaf issued by the reloaded CA chains to the original certificate.
    let leaf = loaded
        .sign_workload(
            &csr(),
            &sans(&["spiffe://default/web"]),
            HOUR,
            SystemTime::now(),
        )
        .unwrap();
    chains(&leaf, &[ca.cert_der().clone()], "spiffe://default/web").unwrap();
    // The AKI of the leaf is the SKI of the CA.
    let ski = with_cert(ca.cert_pem(), |x| {
        x.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .unwrap()
    });
    let aki = with_cert(&leaf, |x| {
        x.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(k) => {
                    k.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .unwrap()
    });
    assert_eq!(aki, ski);
}

#[test]
fn from_pem_accepts_openssl_made_cas() {
    // RSA CA, key as PKCS#8 and as PKCS#1.
    for key in [RSA_KEY_PKCS8, RSA_KEY_PKCS1] {
        let ca = CertificateAuthority::from_pem(RSA_CA, key).unwrap();
        assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        // The normalised key loads again.
        CertificateAuthority::from_pem(RSA_CA, ca.key_pem()).unwrap();
        let leaf = ca
            .sign_workload(
                &csr(),
                &sans(&["spiffe://default/web"]),
                HOUR,
                SystemTime::now(),
            )
            .unwrap();
        with_cert(&leaf, |x| {
            assert_eq!(
                x.signature_algorithm.algorithm,
                x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
            );
        });
        chains(&leaf, &[der(RSA_CA)], "spiffe://default/web").unwrap();
    }
    // EC CA with a SEC1 key and a PrintableString subject with C, O, OU, CN.
    let ca = CertificateAuthority::from_pem(EC_CA, EC_KEY_SEC1).unwrap();
    let leaf = ca
        .sign_workload(
            &csr(),
            &sans(&["spiffe://acme-mesh/api"]),
            HOUR,
            SystemTime::now(),
        )
        .unwrap();
    chains(&leaf, &[der(EC_CA)], "spiffe://acme-mesh/api").unwrap();
    // The cert and key may come in one PEM (the key section is ignored by the cert loader).
    let both = format!("{EC_KEY_SEC1}{EC_CA}");
    CertificateAuthority::from_pem(&both, &both).unwrap();
}

/// A self-signed certificate with custom parameters, as (cert PEM, key PEM).
fn custom_cert(edit: impl FnOnce(&mut CertificateParams)) -> (String, String) {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::hours(1);
    edit(&mut params);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn invalid_ca(cert: &str, key: &str) -> String {
    match CertificateAuthority::from_pem(cert, key) {
        Err(Error::InvalidCa(msg)) => msg,
        other => panic!("expected InvalidCa, got {other:?}"),
    }
}

#[test]
fn from_pem_refusals() {
    // The custom CA itself is fine.
    let (cert, key) = custom_cert(|_| {});
    CertificateAuthority::from_pem(&cert, &key).unwrap();

    let (cert, key) = custom_cert(|p| p.is_ca = IsCa::ExplicitNoCa);
    assert!(invalid_ca(&cert, &key).contains("is not a CA"));
    let (cert, key) = custom_cert(|p| p.is_ca = IsCa::NoCa);
    assert!(invalid_ca(&cert, &key).contains("is not a CA"));

    let (cert, key) = custom_cert(|p| p.key_usages = vec![KeyUsagePurpose::DigitalSignature]);
    assert!(invalid_ca(&cert, &key).contains("keyCertSign"));

    let (cert, key) = custom_cert(|p| {
        p.not_before = OffsetDateTime::now_utc() - time::Duration::days(30);
        p.not_after = OffsetDateTime::now_utc() - time::Duration::days(1);
    });
    assert!(invalid_ca(&cert, &key).contains("expired"));

    let (cert, key) = custom_cert(|p| {
        p.not_before = OffsetDateTime::now_utc() + time::Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    });
    assert!(invalid_ca(&cert, &key).contains("not valid before"));

    // Key from another CA.
    let a = CertificateAuthority::generate("default", HOUR).unwrap();
    let b = CertificateAuthority::generate("default", HOUR).unwrap();
    assert!(invalid_ca(a.cert_pem(), b.key_pem()).contains("does not match"));
    // An RSA key for an EC certificate and the other way round.
    assert!(invalid_ca(a.cert_pem(), RSA_KEY_PKCS8).contains("does not match"));
    assert!(invalid_ca(RSA_CA, a.key_pem()).contains("does not match"));

    // Two certificates.
    let two = format!("{}{}", a.cert_pem(), b.cert_pem());
    assert!(invalid_ca(&two, a.key_pem()).contains("exactly one"));

    // Garbage in each slot.
    let garbage_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    for (cert, key) in [
        ("", a.key_pem()),
        ("garbage", a.key_pem()),
        (a.key_pem(), a.key_pem()),
        (garbage_cert, a.key_pem()),
        (a.cert_pem(), ""),
        (a.cert_pem(), "garbage"),
        (a.cert_pem(), a.cert_pem()),
        (a.cert_pem(), garbage_key),
    ] {
        invalid_ca(cert, key);
    }
    // Messages say what is wrong.
    assert!(invalid_ca("garbage", a.key_pem()).contains("not PEM"));
    assert!(invalid_ca(a.cert_pem(), a.cert_pem()).contains("no private key"));
}

#[test]
fn sign_workload_sets_exactly_the_given_identity() {
    let ca = CertificateAuthority::generate("default", DEFAULT_CA_VALIDITY).unwrap();
    // A CSR asking for lots of things: all of it must be ignored.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "admin");
    params
        .subject_alt_names
        .push(uri_san("spiffe://default/admin").unwrap());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();

    let wanted = sans(&[
        "spiffe://default/backend",
        "spiffe://default/backend-admin",
        "kuma://kuma.io/zone/east",
        "kuma://version/v1",
    ]);
    let now = SystemTime::now();
    let leaf = ca
        .sign_workload(&csr, &wanted, DEFAULT_WORKLOAD_VALIDITY, now)
        .unwrap();
    assert!(leaf.starts_with("-----BEGIN CERTIFICATE-----\n"));
    with_cert(&leaf, |x| {
        assert_eq!(uri_sans_of(x), wanted);
        assert!(x.subject_alternative_name().unwrap().unwrap().critical);
        assert_eq!(x.subject().iter().count(), 0, "{}", x.subject());
        assert_eq!(
            x.issuer().as_raw(),
            with_cert(ca.cert_pem(), |c| c.subject().as_raw().to_vec())
        );
        assert_eq!(x.public_key().raw, key.subject_public_key_info().as_slice());
        let bc = x.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        let ku = x.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment());
        assert!(!ku.key_cert_sign() && !ku.crl_sign());
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!eku.code_signing && !eku.any && eku.other.is_empty());
        assert_eq!(x.validity().not_before.timestamp(), unix(now) - 10);
        assert_eq!(x.validity().not_after.timestamp(), unix(now) + 24 * 3600);
        assert!(x.raw_serial()[0] & 0x80 == 0);
    });
    chains(&leaf, &[ca.cert_der().clone()], "kuma://version/v1").unwrap();

    // Two certificates for the same CSR have different serials.
    let again = ca.sign_workload(&csr, &wanted, HOUR, now).unwrap();
    let s1 = with_cert(&leaf, |x| x.raw_serial().to_vec());
    let s2 = with_cert(&again, |x| x.raw_serial().to_vec());
    assert_ne!(s1, s2);
}

#[test]
fn sign_workload_caps_validity_at_the_ca() {
    let ca = CertificateAuthority::generate("default", HOUR).unwrap();
    let now = SystemTime::now();
    let leaf = ca
        .sign_workload(
            &csr(),
            &sans(&["spiffe://default/a"]),
            DEFAULT_WORKLOAD_VALIDITY,
            now,
        )
        .unwrap();
    with_cert(&leaf, |x| {
        assert_eq!(x.validity().not_after.timestamp(), unix(ca.not_after()));
    });
    // Huge validities are capped too, not an error or a panic.
    let leaf = ca
        .sign_workload(&csr(), &sans(&["spiffe://default/a"]), Duration::MAX, now)
        .unwrap();
    with_cert(&leaf, |x| {
        assert_eq!(x.validity().not_after.timestamp(), unix(ca.not_after()));
    });
    // After the CA expired nothing is issued.
    let late = ca.not_after() + Duration::from_secs(1);
    let err = ca
        .sign_workload(&csr(), &sans(&["spiffe://default/a"]), HOUR, late)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidCa(ref m) if m.contains("expired")),
        "{err}"
    );
    // Absurd clocks are errors, not panics.
    for now in [
        UNIX_EPOCH - Duration::from_secs(1 << 40),
        UNIX_EPOCH + Duration::from_secs(1 << 40),
    ] {
        ca.sign_workload(&csr(), &sans(&["spiffe://default/a"]), HOUR, now)
            .unwrap_err();
    }
}

#[test]
fn sign_workload_accepts_other_key_types() {
    let ca = CertificateAuthority::generate("default", HOUR).unwrap();
    let rsa = KeyPair::from_pem(RSA_KEY_PKCS8).unwrap();
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    for key in [rsa, p384, ed] {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let leaf = ca
            .sign_workload(
                &csr,
                &sans(&["spiffe://default/a"]),
                HOUR,
                SystemTime::now(),
            )
            .unwrap();
        with_cert(&leaf, |x| {
            assert_eq!(x.public_key().raw, key.subject_public_key_info().as_slice());
        });
        chains(&leaf, &[ca.cert_der().clone()], "spiffe://default/a").unwrap();
    }
}

fn invalid_csr(ca: &CertificateAuthority, csr: &str) -> String {
    match ca.sign_workload(csr, &sans(&["spiffe://default/a"]), HOUR, SystemTime::now()) {
        Err(Error::InvalidCsr(msg)) => msg,
        other => panic!("expected InvalidCsr, got {other:?}"),
    }
}

#[test]
fn sign_workload_refuses_bad_csrs_and_sans() {
    let ca = CertificateAuthority::generate("default", HOUR).unwrap();
    let good = csr();

    // Unsupported keys.
    assert!(invalid_csr(&ca, P521_CSR).contains("unsupported public key type"));
    assert!(invalid_csr(&ca, RSA1024_CSR).contains("RSA key size 1024"));

    // Tampered: flip one bit in the DER, at several places (subject/key/signature).
    let der = CertificateSigningRequestDer::from_pem_slice(good.as_bytes()).unwrap();
    let der = der.as_ref().to_vec();
    let mut refused_as_signature = 0;
    for pos in [der.len() / 3, der.len() / 2, der.len() - 5] {
        let mut bad = der.clone();
        bad[pos] ^= 0x01;
        let msg = invalid_csr(&ca, &pem::encode("CERTIFICATE REQUEST", &bad));
        if msg.contains("self-signature") {
            refused_as_signature += 1;
        }
    }
    assert!(refused_as_signature >= 1);
    // A CSR whose key was swapped for another one: the signature no longer matches.
    let other = csr();
    let other_der = CertificateSigningRequestDer::from_pem_slice(other.as_bytes()).unwrap();
    let (_, a) = X509CertificationRequest::from_der(&der).unwrap();
    let (_, b) = X509CertificationRequest::from_der(other_der.as_ref()).unwrap();
    let (ka, kb) = (
        a.certification_request_info.subject_pki.raw,
        b.certification_request_info.subject_pki.raw,
    );
    assert_eq!(ka.len(), kb.len());
    let start = der.windows(ka.len()).position(|w| w == ka).unwrap();
    let mut swapped = der.clone();
    swapped[start..start + kb.len()].copy_from_slice(kb);
    assert!(
        invalid_csr(&ca, &pem::encode("CERTIFICATE REQUEST", &swapped)).contains("self-signature")
    );
    // Trailing data.
    let mut trailing = der.clone();
    trailing.push(0);
    invalid_csr(&ca, &pem::encode("CERTIFICATE REQUEST", &trailing));

    // Not a CSR at all.
    invalid_csr(&ca, &pem::encode("CERTIFICATE REQUEST", b"garbage"));
    invalid_csr(&ca, &pem::encode("CERTIFICATE REQUEST", &[]));
    invalid_csr(&ca, &pem::encode("CERTIFICATE REQUEST", ca.cert_der()));
    assert!(invalid_csr(&ca, ca.cert_pem()).contains("no '-----BEGIN CERTIFICATE REQUEST-----'"));
    let err = ca.sign_workload(
        "garbage",
        &sans(&["spiffe://default/a"]),
        HOUR,
        SystemTime::now(),
    );
    assert!(
        matches!(
            err,
            Err(Error::NotPem {
                expected: "CERTIFICATE REQUEST"
            })
        ),
        "{err:?}"
    );
    let err = ca.sign_workload(
        "-----BEGIN CERTIFICATE REQUEST-----\n!!\n",
        &sans(&["spiffe://default/a"]),
        HOUR,
        SystemTime::now(),
    );
    assert!(matches!(err, Err(Error::InvalidPem(_))), "{err:?}");

    // SANs.
    for bad in [
        vec![],
        sans(&[""]),
        sans(&["backend"]),
        sans(&["spiffe://default/back end"]),
        sans(&["spiffe://default/bäckend"]),
        sans(&["://x"]),
        sans(&["spiffe://"]),
        sans(&["spiffe://default/a", "nope"]),
    ] {
        let err = ca
            .sign_workload(&good, &bad, HOUR, SystemTime::now())
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidCertificateParams(_)),
            "{bad:?}: {err}"
        );
    }
    let err = ca
        .sign_workload(
            &good,
            &sans(&["spiffe://default/a"]),
            Duration::ZERO,
            SystemTime::now(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCertificateParams(_)), "{err}");
}

#[test]
fn workload_key_csr_and_private_key() {
    let ca = CertificateAuthority::generate("default", HOUR).unwrap();
    let key = WorkloadKey::generate().unwrap();
    let csr = key.csr_pem().unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let leaf = ca
        .sign_workload(
            &csr,
            &sans(&["spiffe://default/a"]),
            HOUR,
            SystemTime::now(),
        )
        .unwrap();
    with_cert(&leaf, |x| {
        assert_eq!(x.public_key().raw, key.public_key_der().as_slice())
    });
    // The CSR carries an empty subject and no extension request.
    let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
    let (_, parsed) = X509CertificationRequest::from_der(der.as_ref()).unwrap();
    assert_eq!(parsed.certification_request_info.subject.iter().count(), 0);
    assert!(
        parsed
            .requested_extensions()
            .is_none_or(|mut e| e.next().is_none())
    );
    // The private key is PKCS#8 P-256 and matches.
    let PrivateKeyDer::Pkcs8(pkcs8) = key.private_key_der() else {
        panic!("not PKCS#8");
    };
    let signing = crate::SigningKey::from_pkcs8_der(pkcs8.secret_pkcs8_der()).unwrap();
    assert_eq!(signing.public_key_der(), key.public_key_der());
    assert_eq!(
        format!("{key:?}"),
        "WorkloadKey { algorithm: \"ECDSA P-256\", .. }"
    );
    // Two keys differ.
    assert_ne!(
        WorkloadKey::generate().unwrap().public_key_der(),
        key.public_key_der()
    );
}

#[test]
fn der_helpers() {
    assert_eq!(der_tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
    let long = vec![0u8; 300];
    assert_eq!(&der_tlv(0x04, &long)[..4], &[0x04, 0x82, 0x01, 0x2c]);
    assert_eq!(der_tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
    assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
    assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
    assert_eq!(modulus_bits(&[0, 0]), 0);
    assert_eq!(system_time(-5), UNIX_EPOCH - Duration::from_secs(5));
    assert!(system_time(i64::MIN) <= UNIX_EPOCH);
}

fn shared_ca() -> Arc<CertificateAuthority> {
    static CA: std::sync::OnceLock<Arc<CertificateAuthority>> = std::sync::OnceLock::new();
    CA.get_or_init(|| Arc::new(CertificateAuthority::generate("default", HOUR).unwrap()))
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), text in ".{0,200}") {
        let ca = shared_ca();
        let san = sans(&["spiffe://default/a"]);
        for label in ["CERTIFICATE REQUEST", "CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"] {
            let p = pem::encode(label, &bytes);
            let _ = ca.sign_workload(&p, &san, HOUR, SystemTime::now());
            let _ = CertificateAuthority::from_pem(&p, &p);
            let _ = CertificateAuthority::from_pem(ca.cert_pem(), &p);
        }
        let _ = ca.sign_workload(&text, std::slice::from_ref(&text), HOUR, SystemTime::now());
        let _ = CertificateAuthority::from_pem(&text, &text);
        let _ = CertificateAuthority::generate(&text, HOUR);
        let cert = CertificateDer::from(bytes.clone());
        let _ = crate::verify::peer_uri_sans(&cert);
        let _ = crate::verify::not_after(&cert);
        let _ = crate::TrustBundle::from_pems([text.as_str()]);
    }

    #[test]
    fn mutated_csrs_never_panic(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let ca = shared_ca();
        let good = csr();
        let mut der = CertificateSigningRequestDer::from_pem_slice(good.as_bytes()).unwrap().as_ref().to_vec();
        let i = pos.index(der.len());
        der[i] ^= 1 << bit;
        // Any single bit flip is refused (or, if it hits a part the signature
        // does not cover and that we ignore, still yields a valid leaf).
        let _ = ca.sign_workload(&pem::encode("CERTIFICATE REQUEST", &der), &sans(&["spiffe://default/a"]), HOUR, SystemTime::now());
    }
}

#[test]
fn a_key_matches_only_its_own_certificate() {
    let a = CertificateAuthority::generate("m", HOUR).unwrap();
    let b = CertificateAuthority::generate("m", HOUR).unwrap();
    assert!(key_matches_cert(a.cert_pem(), a.key_pem()).unwrap());
    assert!(!key_matches_cert(a.cert_pem(), b.key_pem()).unwrap());
    assert!(!key_matches_cert(b.cert_pem(), a.key_pem()).unwrap());
    // Other key formats of a provided CA.
    assert!(key_matches_cert(RSA_CA, RSA_KEY_PKCS8).unwrap());
    assert!(key_matches_cert(RSA_CA, RSA_KEY_PKCS1).unwrap());
    assert!(key_matches_cert(EC_CA, EC_KEY_SEC1).unwrap());
    assert!(!key_matches_cert(EC_CA, RSA_KEY_PKCS8).unwrap());
    // Halves that do not parse are errors, not a match.
    assert!(key_matches_cert("not a cert", a.key_pem()).is_err());
    assert!(key_matches_cert(a.cert_pem(), "not a key").is_err());
    assert!(key_matches_cert(a.cert_pem(), a.cert_pem()).is_err());
}

/// Found by fuzzing (`aerie-fuzz`, target `cert`): a provided CA whose subject has an
/// attribute type OID that rcgen reads back wrongly (asn1-rs takes the first two arcs from
/// the first byte only, so `2.999.1` comes back as `3.16.55.1`) panicked the control plane
/// when it wrote the CA's name into a certificate. Such a CA is refused up front.
#[test]
fn from_pem_refuses_subject_oids_rcgen_cannot_write() {
    for oid in [vec![2, 999, 1], vec![2, 48], vec![2, 100, 3, 4]] {
        let (cert, key) = custom_cert(|p| {
            p.distinguished_name.push(DnType::CommonName, "ca");
            p.distinguished_name
                .push(DnType::CustomDnType(oid.clone()), "x");
        });
        let msg = invalid_ca(&cert, &key);
        assert!(
            msg.contains("attribute type") && msg.contains("cannot be written"),
            "{oid:?}: {msg}"
        );
    }
    // OIDs under 2.x with x < 48 (one byte) are fine, and so are the usual ones.
    let (cert, key) = custom_cert(|p| {
        p.distinguished_name.push(DnType::CommonName, "ca");
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 97]), "x");
        p.distinguished_name.push(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            "a@b.c",
        );
    });
    CertificateAuthority::from_pem(&cert, &key).unwrap();
}

/// Found by fuzzing (`aerie-fuzz`, target `cert`): a provided CA whose subject holds a
/// PrintableString with `?` (legal in X.680, which OpenSSL writes) panicked the control plane:
/// rcgen reads it, and its DER writer (yasna) refuses it with a panic when the CA's name is
/// written into a certificate. Such a CA is refused up front.
#[test]
fn from_pem_refuses_printable_strings_rcgen_cannot_write() {
    let (cert, key) = custom_cert(|p| {
        p.distinguished_name.push(
            DnType::OrganizationName,
            DnValue::PrintableString("WhatX".try_into().unwrap()),
        );
    });
    let mut der = der(&cert).to_vec();
    let at = der.windows(5).rposition(|w| w == b"WhatX").unwrap(); // the subject
    der[at + 4] = b'?';
    let cert = crate::pem::encode("CERTIFICATE", &der);
    let msg = invalid_ca(&cert, &key);
    assert!(
        msg.contains("PrintableString") && msg.contains("'?'"),
        "{msg}"
    );
    // The rest of PrintableString's characters are fine.
    let (cert, key) = custom_cert(|p| {
        p.distinguished_name.push(
            DnType::OrganizationName,
            DnValue::PrintableString("Acme (EU) Ltd., 'x'-y/z:=+0".try_into().unwrap()),
        );
    });
    CertificateAuthority::from_pem(&cert, &key).unwrap();
}
