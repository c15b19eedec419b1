//! Identity material for the Aerie control plane: token signing keys, JWTs
//! (Kuma-compatible user and data plane tokens) and TLS certificates.
//!
//! # Design
//!
//! * **ES256 everywhere.** Kuma signs its tokens with RS256, but Aerie uses
//!   only [`ring`] for cryptography (no aws-lc, no RustCrypto), and ring can
//!   verify RSA but cannot *generate* RSA keys. ECDSA P-256 with SHA-256
//!   (`ES256`, RFC 7518 §3.4) is the strongest widely supported JWS algorithm
//!   ring can both generate keys for and sign with, and its tokens are short.
//! * **Keys stay in the control plane.** A [`SigningKey`] is created by the
//!   control plane, stored as a PKCS#8 PEM in a Secret in the control plane's
//!   own database ([`SigningKey::to_pkcs8_pem`] / [`SigningKey::from_pkcs8_pem`])
//!   and never sent anywhere. Only the control plane verifies the tokens it
//!   issued, so nothing else ever needs the key; the public half
//!   ([`SigningKey::public_key_der`], [`VerifyingKey`]) exists for rotation
//!   (old keys verify, the newest signs) and for static verification setups.
//! * **Hand-written JWS.** The maintained JWT crates pull in aws-lc or
//!   RustCrypto, so the compact JWS encoding lives in [`token`] (a few hundred
//!   lines on top of ring). Verification is deliberately strict: exactly one
//!   algorithm (`ES256`) is accepted, whatever the header claims, so
//!   `alg: none` and algorithm-confusion (`HS256` with a public key as the
//!   HMAC secret) attacks cannot work.
//! * **Self-signed TLS** ([`self_signed_server_cert`]) for the control plane's
//!   HTTPS API and gRPC server when the user configures no certificate, plus
//!   PEM loaders ([`load_cert_chain`], [`load_private_key`]) with clear errors.
//! * **The mesh CA** ([`CertificateAuthority`], module [`ca`]): one root per
//!   mesh (builtin: generated here; provided: loaded from the user's PEMs)
//!   that signs workload certificates (SVIDs) from proxies' CSRs. The CA
//!   decides the identity (URI SANs); nothing the proxy asks for is copied.
//! * **Workload keys** ([`WorkloadKey`], module [`workload`]): the proxy
//!   generates its own key and sends only a CSR, so private keys never cross
//!   the network (unlike Kuma, whose control plane generates them).
//! * **SPIFFE verification** (module [`verify`]): rustls verifiers for mesh
//!   mTLS. Mesh certificates carry URI SANs only, which the stock rustls
//!   server verifier rejects (it wants a DNS name or IP), so the client side
//!   uses [`SpiffeServerVerifier`]: the usual webpki chain check, then an
//!   exact SPIFFE ID match instead of a host name match.

#![forbid(unsafe_code)]

pub mod ca;
mod key;
mod pem;
pub mod tls;
pub mod token;
pub mod verify;
pub mod workload;

pub use ca::CertificateAuthority;
pub use key::{SigningKey, VerifyingKey};
pub use tls::{
    ServerTrust, client_config, load_cert_chain, load_private_key, self_signed_server_cert,
};
pub use token::{
    Claims, DataplaneClaims, RegisteredClaims, TokenError, UserClaims, ZoneClaims, generate_jti,
    sign_token, verify_token,
};
pub use verify::{
    SpiffeIdMismatch, SpiffeServerVerifier, TrustBundle, client_cert_verifier, peer_uri_sans,
};
pub use workload::WorkloadKey;

/// Errors from key handling, token signing and certificate work.
///
/// Token *verification* has its own error type, [`TokenError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The system random number generator or a ring primitive failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// A key could not be parsed or is not an ECDSA P-256 key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The claims could not be serialized into a JSON object.
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// rcgen failed to build a certificate.
    #[error("could not generate certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The requested certificate parameters are unusable.
    #[error("invalid certificate parameters: {0}")]
    InvalidCertificateParams(String),
    /// The input holds no `-----BEGIN ...-----` section at all.
    #[error("input is not PEM: expected a '-----BEGIN {expected}-----' section")]
    NotPem {
        /// The PEM label that was expected.
        expected: &'static str,
    },
    /// The input looks like PEM but a section is broken.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// The PEM input holds no certificate.
    #[error("no certificate found in PEM input (expected a '-----BEGIN CERTIFICATE-----' section)")]
    NoCertificate,
    /// The PEM input holds no private key.
    #[error(
        "no private key found in PEM input (expected a '-----BEGIN PRIVATE KEY-----', \
         '-----BEGIN EC PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----' section)"
    )]
    NoPrivateKey,
    /// A CA certificate or key was refused (not a CA, expired, key mismatch,
    /// unsupported key type...).
    #[error("invalid CA: {0}")]
    InvalidCa(String),
    /// A certificate signing request was refused (unparseable, bad
    /// self-signature, unsupported key type).
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// A certificate could not be parsed.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
}

/// Result type of this crate; the error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
