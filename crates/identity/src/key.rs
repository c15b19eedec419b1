//! ECDSA P-256 token signing keys.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

use crate::{Error, Result, pem};

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point:
/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes) }`.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Length of an uncompressed SEC1 P-256 point (`0x04 || X || Y`).
const P256_POINT_LEN: usize = 65;

/// An ECDSA P-256 key pair that signs tokens (`ES256`).
///
/// Created by the control plane and stored as PKCS#8 PEM in its own database;
/// it is never sent anywhere. `Debug` does not print key material.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl SigningKey {
    /// Generates a new random key pair.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Crypto("generating an ECDSA P-256 key pair"))?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Parses a PKCS#8 (DER) ECDSA P-256 private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(|e| {
                Error::InvalidKey(format!("not a PKCS#8 ECDSA P-256 private key ({e})"))
            })?;
        Ok(Self {
            pair,
            pkcs8: der.to_vec(),
            rng,
        })
    }

    /// Parses a PEM `PRIVATE KEY` (PKCS#8) ECDSA P-256 key, as written by
    /// [`SigningKey::to_pkcs8_pem`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            let missing = Error::InvalidKey(
                "no '-----BEGIN PRIVATE KEY-----' (PKCS#8) section found".to_string(),
            );
            pem::map_error(e, pem, "PRIVATE KEY", missing)
        })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// The private key as PEM (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.verifying_key().to_public_key_der()
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> String {
        self.verifying_key().to_public_key_pem()
    }

    /// The public half, to verify tokens signed by this key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `message`, returning the 64-byte `r || s` signature.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| Error::Crypto("ECDSA signing"))?;
        Ok(sig.as_ref().to_vec())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &"ES256")
            .finish_non_exhaustive()
    }
}

/// The public half of a [`SigningKey`]: verifies `ES256` signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// Uncompressed SEC1 point.
    point: Vec<u8>,
}

impl VerifyingKey {
    /// Parses a DER SubjectPublicKeyInfo holding an uncompressed P-256 key.
    pub fn from_public_key_der(spki: &[u8]) -> Result<Self> {
        match spki.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == P256_POINT_LEN && point[0] == 0x04 => Ok(Self {
                point: point.to_vec(),
            }),
            _ => Err(Error::InvalidKey(
                "not an uncompressed ECDSA P-256 public key (SubjectPublicKeyInfo)".to_string(),
            )),
        }
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) P-256 key.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            let missing =
                Error::InvalidKey("no '-----BEGIN PUBLIC KEY-----' section found".to_string());
            pem::map_error(e, pem, "PUBLIC KEY", missing)
        })?;
        Self::from_public_key_der(der.as_ref())
    }

    /// The key as a DER SubjectPublicKeyInfo.
    pub fn to_public_key_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + self.point.len());
        der.extend_from_slice(&P256_SPKI_PREFIX);
        der.extend_from_slice(&self.point);
        der
    }

    /// The key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_public_key_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.to_public_key_der())
    }

    /// Whether `signature` (64-byte `r || s`) is valid for `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &"ES256")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData as _;

    #[test]
    fn pkcs8_pem_round_trip() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.to_pkcs8_pem(), pem);
        assert_eq!(back.public_key_der(), key.public_key_der());
        // A signature made by the reloaded key verifies with the original's public key.
        let sig = back.sign(b"hello").unwrap();
        assert!(key.verifying_key().verify(b"hello", &sig));
        assert!(!key.verifying_key().verify(b"hellO", &sig));
    }

    #[test]
    fn public_key_der_matches_rcgen() {
        let key = SigningKey::generate().unwrap();
        let rc = rcgen::KeyPair::from_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(key.public_key_der(), rc.subject_public_key_info());
        let vk = VerifyingKey::from_public_key_pem(&key.public_key_pem()).unwrap();
        assert_eq!(vk, key.verifying_key());
    }

    #[test]
    fn rcgen_generated_key_loads() {
        let rc = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = SigningKey::from_pkcs8_pem(&rc.serialize_pem()).unwrap();
        assert_eq!(key.public_key_der(), rc.subject_public_key_info());
    }

    #[test]
    fn bad_keys_are_rejected_with_clear_errors() {
        let err = SigningKey::from_pkcs8_pem("not a key").unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotPem {
                    expected: "PRIVATE KEY"
                }
            ),
            "{err}"
        );
        let cert_only = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = SigningKey::from_pkcs8_pem(cert_only).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{err}");
        let garbage = pem::encode("PRIVATE KEY", b"garbage");
        let err = SigningKey::from_pkcs8_pem(&garbage).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{err}");
        // A P-384 key is not accepted.
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let err = SigningKey::from_pkcs8_pem(&p384.serialize_pem()).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{err}");
        assert!(VerifyingKey::from_public_key_der(&p384.subject_public_key_info()).is_err());
        assert!(VerifyingKey::from_public_key_der(&[]).is_err());
    }

    #[test]
    fn debug_does_not_leak_key_material() {
        let key = SigningKey::generate().unwrap();
        let dbg = format!("{key:?}");
        assert_eq!(dbg, "SigningKey { algorithm: \"ES256\", .. }");
    }
}
