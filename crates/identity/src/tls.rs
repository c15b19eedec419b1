//! TLS material for the control plane's servers: a self-signed certificate
//! for when the user configures none, and PEM loaders.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::{Error, Result, pem};

/// Validity of [`self_signed_server_cert`] certificates: 10 years.
pub const SELF_SIGNED_VALIDITY: Duration = Duration::days(3650);
/// Common name used when no hostname is given.
const DEFAULT_COMMON_NAME: &str = "aerie-control-plane";

/// Generates a self-signed ECDSA P-256 server certificate valid for 10 years
/// (from one hour ago, to tolerate clock skew), with a DNS SAN for each
/// hostname and an IP SAN for each address. Returns `(cert PEM, key PEM)`;
/// the key is PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
///
/// At least one hostname or IP is required: clients check the SAN.
pub fn self_signed_server_cert(hostnames: &[String], ips: &[IpAddr]) -> Result<(String, String)> {
    if hostnames.is_empty() && ips.is_empty() {
        return Err(Error::InvalidCertificateParams(
            "at least one hostname or IP address is required".to_string(),
        ));
    }
    let mut sans = Vec::with_capacity(hostnames.len() + ips.len());
    for host in hostnames {
        if host.is_empty() {
            return Err(Error::InvalidCertificateParams(
                "empty hostname".to_string(),
            ));
        }
        let name = host.as_str().try_into().map_err(|_| {
            Error::InvalidCertificateParams(format!("hostname {host:?} is not ASCII"))
        })?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(ips.iter().copied().map(SanType::IpAddress));

    let common_name = match (hostnames.first(), ips.first()) {
        (Some(host), _) => host.clone(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => DEFAULT_COMMON_NAME.to_string(),
    };
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, common_name);
    distinguished_name.push(DnType::OrganizationName, "Aerie");

    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name;
    params.subject_alt_names = sans;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + SELF_SIGNED_VALIDITY;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Parses every `CERTIFICATE` section of `pem`, in order (leaf first, as
/// TLS servers send them). Other sections (e.g. a private key) are ignored.
pub fn load_cert_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    if !pem::looks_like_pem(pem) {
        return Err(Error::NotPem {
            expected: "CERTIFICATE",
        });
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem::map_error(e, pem, "CERTIFICATE", Error::NoCertificate))?;
    if certs.is_empty() {
        return Err(Error::NoCertificate);
    }
    Ok(certs)
}

/// Parses the first private key of `pem`: PKCS#8 (`PRIVATE KEY`), SEC1
/// (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
pub fn load_private_key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| pem::map_error(e, pem, "PRIVATE KEY", Error::NoPrivateKey))
}

/// Whom a TLS client trusts to be the server it dials.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Servers whose chain ends at one of these certificates.
    Roots(Vec<CertificateDer<'static>>),
    /// Any server: the certificate is not verified (`--skip-verify`, `tlsSkipVerify`). Not
    /// for production; callers say so in their logs.
    SkipVerify,
}

/// The one TLS client builder of kumactl, a zone's KDS client and the proxy's control-plane
/// client: ring, the safe protocol versions, no client certificate, the given ALPN protocol.
/// Roots that hold no usable certificate are refused rather than trusting nothing silently.
pub fn client_config(trust: ServerTrust, alpn: &[u8]) -> Result<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidCa(format!("TLS setup failed: {e}")))?;
    let mut config = match trust {
        ServerTrust::Roots(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::InvalidCa(format!("not a usable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::NoCertificate);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerTrust::SkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(crate::verify::InsecureServerVerifier::new())
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

    use super::*;

    #[test]
    fn the_client_builder_trusts_its_roots_only() {
        let (cert, key) = self_signed_server_cert(&["cp.example".to_string()], &[]).unwrap();
        let (other, _) = self_signed_server_cert(&["cp.example".to_string()], &[]).unwrap();
        let run = |trust: ServerTrust| {
            let config = client_config(trust, b"h2").unwrap();
            assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
            handshake_with(Arc::new(config), &cert, &key, "cp.example")
        };
        assert!(run(ServerTrust::Roots(load_cert_chain(&cert).unwrap())).is_ok());
        assert!(run(ServerTrust::Roots(load_cert_chain(&other).unwrap())).is_err());
        assert!(run(ServerTrust::SkipVerify).is_ok());
        assert!(matches!(
            client_config(ServerTrust::Roots(vec![]), b"h2"),
            Err(Error::NoCertificate)
        ));
        assert!(
            client_config(
                ServerTrust::Roots(vec![CertificateDer::from(vec![1, 2, 3])]),
                b"h2"
            )
            .is_err()
        );
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn server_config(cert_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
        let chain = load_cert_chain(cert_pem).unwrap();
        let key = load_private_key(key_pem).unwrap();
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }

    /// Runs an in-memory TLS handshake against a client that trusts only
    /// `cert_pem` and connects to `name`.
    fn handshake(cert_pem: &str, key_pem: &str, name: &str) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        for cert in load_cert_chain(cert_pem).unwrap() {
            roots.add(cert).unwrap();
        }
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        handshake_with(Arc::new(client_config), cert_pem, key_pem, name)
    }

    fn handshake_with(
        client_config: Arc<ClientConfig>,
        cert_pem: &str,
        key_pem: &str,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let mut client = ClientConnection::new(client_config, server_name).unwrap();
        let mut server = ServerConnection::new(server_config(cert_pem, key_pem)).unwrap();

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
                server.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                client.read_tls(&mut buf.as_slice()).unwrap();
                client.process_new_packets()?;
            }
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        // And application data flows.
        client.writer().write_all(b"ping").unwrap();
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets()?;
        let mut got = [0u8; 4];
        server.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        Ok(())
    }

    #[test]
    fn self_signed_cert_parses_and_serves_its_sans() {
        let hosts = vec!["localhost".to_string(), "cp.example.test".to_string()];
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        let (cert_pem, key_pem) = self_signed_server_cert(&hosts, &ips).unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(load_cert_chain(&cert_pem).unwrap().len(), 1);
        assert!(matches!(
            load_private_key(&key_pem).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        // The key is a P-256 PKCS#8 key usable as a token signing key too.
        crate::SigningKey::from_pkcs8_pem(&key_pem).unwrap();

        for name in ["localhost", "cp.example.test", "127.0.0.1", "::1"] {
            handshake(&cert_pem, &key_pem, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in ["other.example.test", "127.0.0.2"] {
            let err = handshake(&cert_pem, &key_pem, name).unwrap_err();
            assert!(
                matches!(err, rustls::Error::InvalidCertificate(_)),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn self_signed_cert_with_only_ips() {
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap()];
        let (cert_pem, key_pem) = self_signed_server_cert(&[], &ips).unwrap();
        handshake(&cert_pem, &key_pem, "10.0.0.1").unwrap();
    }

    #[test]
    fn self_signed_cert_rejects_bad_params() {
        assert!(matches!(
            self_signed_server_cert(&[], &[]),
            Err(Error::InvalidCertificateParams(_))
        ));
        assert!(matches!(
            self_signed_server_cert(&[String::new()], &[]),
            Err(Error::InvalidCertificateParams(_))
        ));
        assert!(matches!(
            self_signed_server_cert(&["héllo".to_string()], &[]),
            Err(Error::InvalidCertificateParams(_))
        ));
    }

    #[test]
    fn loaders_give_clear_errors() {
        let err = load_cert_chain("hello").unwrap_err();
        assert!(matches!(err, Error::NotPem { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "input is not PEM: expected a '-----BEGIN CERTIFICATE-----' section"
        );
        let err = load_cert_chain("").unwrap_err();
        assert!(matches!(err, Error::NotPem { .. }), "{err}");

        let (cert_pem, key_pem) = self_signed_server_cert(&["a".into()], &[]).unwrap();
        let err = load_cert_chain(&key_pem).unwrap_err();
        assert!(matches!(err, Error::NoCertificate), "{err}");
        let err = load_private_key(&cert_pem).unwrap_err();
        assert!(matches!(err, Error::NoPrivateKey), "{err}");
        let err = load_private_key("garbage").unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotPem {
                    expected: "PRIVATE KEY"
                }
            ),
            "{err}"
        );

        // Broken PEM.
        let truncated = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        let err = load_cert_chain(truncated).unwrap_err();
        assert!(matches!(err, Error::InvalidPem(_)), "{err}");
        let bad_b64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = load_cert_chain(bad_b64).unwrap_err();
        assert!(matches!(err, Error::InvalidPem(_)), "{err}");

        // Cert and key in one file: each loader picks its part.
        let both = format!("{key_pem}{cert_pem}{cert_pem}");
        assert_eq!(load_cert_chain(&both).unwrap().len(), 2);
        assert!(load_private_key(&both).is_ok());
    }
}
