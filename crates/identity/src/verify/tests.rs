use std::io::{Read as _, Write as _};
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use super::*;
use crate::{CertificateAuthority, WorkloadKey, load_cert_chain};

const HOUR: Duration = Duration::from_secs(3600);

/// A leaf certificate chain and its key.
struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn issue_at(ca: &CertificateAuthority, sans: &[&str], now: SystemTime, validity: Duration) -> Leaf {
    let key = WorkloadKey::generate().unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let pem = ca
        .sign_workload(&key.csr_pem().unwrap(), &sans, validity, now)
        .unwrap();
    Leaf {
        chain: load_cert_chain(&pem).unwrap(),
        key: key.private_key_der(),
    }
}

fn issue(ca: &CertificateAuthority, sans: &[&str]) -> Leaf {
    issue_at(ca, sans, SystemTime::now(), HOUR)
}

/// A self-signed certificate carrying a mesh identity.
fn self_signed(uri: &str) -> Leaf {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).unwrap();
    Leaf {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Setup<'a> {
    server: &'a Leaf,
    server_roots: &'a [CertificateDer<'static>],
    client: Option<&'a Leaf>,
    client_roots: &'a [CertificateDer<'static>],
    expected: &'a str,
    tls12: bool,
}

/// Which side failed.
#[derive(Debug)]
enum Failed {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// An in-memory mTLS handshake; on success returns the URI SANs of the
/// client certificate as the server saw it, after checking that data flows.
fn handshake(s: &Setup<'_>) -> Result<Vec<String>, Failed> {
    let versions: &[&rustls::SupportedProtocolVersion] = if s.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(client_cert_verifier(s.server_roots).unwrap())
        .with_single_cert(s.server.chain.clone(), s.server.key.clone_key())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(
            SpiffeServerVerifier::new(s.client_roots, s.expected.to_string()).unwrap(),
        );
    let client_config = match s.client {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    // An IP server name: no SNI, and the verifier ignores it anyway.
    let name = ServerName::try_from("10.0.0.1").unwrap();
    let mut client = ClientConnection::new(Arc::new(client_config), name).unwrap();
    let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();

    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets().map_err(Failed::Server)?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets().map_err(Failed::Client)?;
        }
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    client.writer().write_all(b"ping").unwrap();
    let mut buf = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut buf).unwrap();
    }
    server.read_tls(&mut buf.as_slice()).unwrap();
    server.process_new_packets().map_err(Failed::Server)?;
    let mut got = [0u8; 4];
    server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    let peer = server.peer_certificates().expect("client certificate");
    Ok(peer_uri_sans(&peer[0]).unwrap())
}

struct Mesh {
    ca: CertificateAuthority,
    roots: Vec<CertificateDer<'static>>,
    backend: Leaf,
    frontend: Leaf,
}

fn mesh() -> Mesh {
    let ca = CertificateAuthority::generate("default", HOUR * 24).unwrap();
    let roots = vec![ca.cert_der().clone()];
    let backend = issue(&ca, &["spiffe://default/backend", "kuma://version/v1"]);
    let frontend = issue(&ca, &["spiffe://default/frontend"]);
    Mesh {
        ca,
        roots,
        backend,
        frontend,
    }
}

fn setup<'a>(m: &'a Mesh, expected: &'a str) -> Setup<'a> {
    Setup {
        server: &m.backend,
        server_roots: &m.roots,
        client: Some(&m.frontend),
        client_roots: &m.roots,
        expected,
        tls12: false,
    }
}

fn client_cert_error(result: Result<Vec<String>, Failed>) -> CertificateError {
    match result {
        Err(Failed::Client(rustls::Error::InvalidCertificate(e))) => e,
        other => panic!("expected the client to refuse the server certificate, got {other:?}"),
    }
}

fn server_error(result: Result<Vec<String>, Failed>) -> rustls::Error {
    match result {
        Err(Failed::Server(e)) => e,
        other => panic!("expected the server to refuse the client, got {other:?}"),
    }
}

#[test]
fn mtls_succeeds_with_the_right_identity() {
    let m = mesh();
    for tls12 in [false, true] {
        for expected in ["spiffe://default/backend", "kuma://version/v1"] {
            let peer = handshake(&Setup {
                tls12,
                ..setup(&m, expected)
            })
            .unwrap();
            assert_eq!(peer, ["spiffe://default/frontend"]);
        }
    }
}

#[test]
fn mtls_fails_for_the_wrong_identity() {
    let m = mesh();
    for expected in [
        "spiffe://default/frontend",
        "spiffe://other/backend",
        "spiffe://default/backend/",
        "spiffe://default/back",
        "spiffe://default",
    ] {
        let err = client_cert_error(handshake(&setup(&m, expected)));
        let CertificateError::Other(OtherError(inner)) = &err else {
            panic!("{expected}: {err:?}");
        };
        let mismatch = inner.downcast_ref::<SpiffeIdMismatch>().unwrap();
        assert_eq!(mismatch.expected, expected);
        assert_eq!(
            mismatch.presented,
            ["spiffe://default/backend", "kuma://version/v1"]
        );
        let msg = err.to_string();
        assert!(
            msg.contains(expected) && msg.contains("spiffe://default/backend"),
            "{msg}"
        );
    }
}

#[test]
fn mtls_fails_for_a_server_from_another_ca() {
    let m = mesh();
    // Another mesh.
    let other = CertificateAuthority::generate("other", HOUR).unwrap();
    let server = issue(&other, &["spiffe://default/backend"]);
    let err = client_cert_error(handshake(&Setup {
        server: &server,
        ..setup(&m, "spiffe://default/backend")
    }));
    assert_eq!(err, CertificateError::UnknownIssuer);
    // Same mesh name, same subject, different key (e.g. another control plane).
    let twin = CertificateAuthority::generate("default", HOUR).unwrap();
    let server = issue(&twin, &["spiffe://default/backend"]);
    let err = client_cert_error(handshake(&Setup {
        server: &server,
        ..setup(&m, "spiffe://default/backend")
    }));
    assert_eq!(err, CertificateError::BadSignature);
    // Self-signed.
    let server = self_signed("spiffe://default/backend");
    let err = client_cert_error(handshake(&Setup {
        server: &server,
        ..setup(&m, "spiffe://default/backend")
    }));
    assert_eq!(err, CertificateError::UnknownIssuer);
    // The CA certificate itself as a server certificate (it has the mesh's
    // SPIFFE ID but is a CA): refused.
    let ca_as_leaf = Leaf {
        chain: vec![m.ca.cert_der().clone()],
        key: load_private_key(m.ca.key_pem()),
    };
    let result = handshake(&Setup {
        server: &ca_as_leaf,
        ..setup(&m, "spiffe://default")
    });
    assert!(matches!(result, Err(Failed::Client(_))), "{result:?}");
}

fn load_private_key(pem: &str) -> PrivateKeyDer<'static> {
    crate::load_private_key(pem).unwrap()
}

#[test]
fn mtls_fails_for_an_untrusted_or_missing_client_certificate() {
    let m = mesh();
    let other = CertificateAuthority::generate("other", HOUR).unwrap();
    let client = issue(&other, &["spiffe://default/frontend"]);
    let err = server_error(handshake(&Setup {
        client: Some(&client),
        ..setup(&m, "spiffe://default/backend")
    }));
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    let client = self_signed("spiffe://default/frontend");
    let err = server_error(handshake(&Setup {
        client: Some(&client),
        ..setup(&m, "spiffe://default/backend")
    }));
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    for tls12 in [false, true] {
        let err = server_error(handshake(&Setup {
            client: None,
            tls12,
            ..setup(&m, "spiffe://default/backend")
        }));
        assert_eq!(err, rustls::Error::NoCertificatesPresented);
    }
}

#[test]
fn mtls_fails_for_expired_certificates() {
    let m = mesh();
    let two_days_ago = SystemTime::now() - 48 * HOUR;
    let server = issue_at(&m.ca, &["spiffe://default/backend"], two_days_ago, HOUR);
    let err = client_cert_error(handshake(&Setup {
        server: &server,
        ..setup(&m, "spiffe://default/backend")
    }));
    assert!(
        matches!(
            err,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{err:?}"
    );
    let client = issue_at(&m.ca, &["spiffe://default/frontend"], two_days_ago, HOUR);
    let err = server_error(handshake(&Setup {
        client: Some(&client),
        ..setup(&m, "spiffe://default/backend")
    }));
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
}

#[test]
fn trust_bundle_with_two_cas_during_a_ca_change() {
    let old = mesh();
    let new_ca = CertificateAuthority::generate("default", HOUR).unwrap();
    let bundle =
        TrustBundle::from_pems([old.ca.cert_pem(), new_ca.cert_pem(), old.ca.cert_pem()]).unwrap();
    assert_eq!(bundle.roots().len(), 2);
    assert!(!bundle.is_empty());
    assert_eq!(TrustBundle::from_pems([bundle.to_pem()]).unwrap(), bundle);
    // Server with a new-CA leaf, client with an old-CA leaf: both trust both.
    let server = issue(&new_ca, &["spiffe://default/backend"]);
    let peer = handshake(&Setup {
        server: &server,
        server_roots: bundle.roots(),
        client: Some(&old.frontend),
        client_roots: bundle.roots(),
        expected: "spiffe://default/backend",
        tls12: false,
    })
    .unwrap();
    assert_eq!(peer, ["spiffe://default/frontend"]);
    // Without the new root, the client refuses the server (same subject,
    // other key: webpki finds the name but the signature does not verify).
    let err = client_cert_error(handshake(&Setup {
        server: &server,
        server_roots: bundle.roots(),
        client: Some(&old.frontend),
        client_roots: &old.roots,
        expected: "spiffe://default/backend",
        tls12: false,
    }));
    assert_eq!(err, CertificateError::BadSignature);

    let roots: Vec<CertificateDer<'static>> = bundle.into();
    assert_eq!(roots.len(), 2);
    assert!(TrustBundle::from_pems(["garbage"]).is_err());
    assert!(TrustBundle::default().is_empty());
    let mut b = TrustBundle::default();
    assert!(b.push(CertificateDer::from(vec![1, 2, 3])).is_err());
}

#[test]
fn verifier_construction_errors() {
    let m = mesh();
    assert!(matches!(
        SpiffeServerVerifier::new(&[], "spiffe://default/a".into()),
        Err(Error::InvalidCertificateParams(_))
    ));
    assert!(matches!(
        SpiffeServerVerifier::new(&m.roots, String::new()),
        Err(Error::InvalidCertificateParams(_))
    ));
    let garbage = vec![CertificateDer::from(b"garbage".to_vec())];
    assert!(matches!(
        SpiffeServerVerifier::new(&garbage, "spiffe://default/a".into()),
        Err(Error::InvalidCertificate(_))
    ));
    assert!(client_cert_verifier(&[]).is_err());
    assert!(matches!(
        client_cert_verifier(&garbage),
        Err(Error::InvalidCertificate(_))
    ));
    let v = SpiffeServerVerifier::new(&m.roots, "spiffe://default/a".into()).unwrap();
    assert_eq!(v.expected_uri(), "spiffe://default/a");
    assert_eq!(
        format!("{v:?}"),
        "SpiffeServerVerifier { roots: 1, expected_uri: \"spiffe://default/a\" }"
    );
    assert!(!v.supported_verify_schemes().is_empty());
    // Garbage as the server certificate: an error, not a panic.
    let name = ServerName::try_from("10.0.0.1").unwrap();
    let err = v
        .verify_server_cert(&garbage[0], &[], &name, &[], UnixTime::now())
        .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn uri_sans_and_not_after() {
    let m = mesh();
    assert_eq!(
        peer_uri_sans(&m.backend.chain[0]).unwrap(),
        ["spiffe://default/backend", "kuma://version/v1"]
    );
    assert_eq!(
        peer_uri_sans(m.ca.cert_der()).unwrap(),
        ["spiffe://default"]
    );
    assert_eq!(not_after(m.ca.cert_der()).unwrap(), m.ca.not_after());
    let leaf_end = not_after(&m.backend.chain[0]).unwrap();
    let expected = SystemTime::now() + HOUR;
    let diff = expected
        .duration_since(leaf_end)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(5), "{diff:?}");
    // A certificate without SANs (a DNS-only cert has no URI SANs either).
    let (cert, _) = crate::self_signed_server_cert(&["localhost".into()], &[]).unwrap();
    let cert = load_cert_chain(&cert).unwrap().remove(0);
    assert!(peer_uri_sans(&cert).unwrap().is_empty());
    let mut params = CertificateParams::default();
    params.subject_alt_names.clear();
    let key = KeyPair::generate().unwrap();
    let bare = params.self_signed(&key).unwrap();
    assert!(peer_uri_sans(bare.der()).unwrap().is_empty());
    // Garbage.
    for bad in [&b""[..], b"garbage", &[0x30, 0x03, 0x02, 0x01, 0x00]] {
        let cert = CertificateDer::from(bad.to_vec());
        assert!(matches!(
            peer_uri_sans(&cert),
            Err(Error::InvalidCertificate(_))
        ));
        assert!(matches!(
            not_after(&cert),
            Err(Error::InvalidCertificate(_))
        ));
    }
}
