//! The proxy's own key pair and its certificate signing request.
//!
//! # Why
//!
//! Kuma's control plane generates every workload key itself and ships the
//! private key to the proxy over SDS. Aerie's proxy instead generates its key
//! locally ([`WorkloadKey::generate`]) and sends the control plane only a
//! PKCS#10 CSR ([`WorkloadKey::csr_pem`]); the control plane signs it with
//! [`crate::CertificateAuthority::sign_workload`], which takes nothing from
//! the CSR but the public key. The private key therefore never leaves the
//! proxy's memory: this type has no method that serialises it for sending,
//! only [`WorkloadKey::private_key_der`] to hand it to rustls.
//!
//! The key is ECDSA P-256: ring cannot generate RSA keys, P-256 is what
//! every TLS stack supports, and its handshakes are cheaper than RSA 2048.

use std::fmt;

use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Result;

/// A proxy's ECDSA P-256 private key. `Debug` does not print key material.
pub struct WorkloadKey {
    key: KeyPair,
}

impl WorkloadKey {
    /// Generates a new random key.
    pub fn generate() -> Result<WorkloadKey> {
        Ok(Self {
            key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// A PKCS#10 certificate signing request (PEM, `CERTIFICATE REQUEST`)
    /// for this key, with an empty subject and no extensions: the control
    /// plane decides the identity, so there is nothing to ask for.
    pub fn csr_pem(&self) -> Result<String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        Ok(params.serialize_request(&self.key)?.pem()?)
    }

    /// The private key (PKCS#8 DER) for rustls's `with_single_cert` /
    /// `with_client_auth_cert`.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// The public key as a DER SubjectPublicKeyInfo (e.g. to check that an
    /// issued certificate is for this key).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }
}

impl fmt::Debug for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadKey")
            .field("algorithm", &"ECDSA P-256")
            .finish_non_exhaustive()
    }
}
