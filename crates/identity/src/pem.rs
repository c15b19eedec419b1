//! Minimal PEM helpers: encoding (pki-types only decodes) and error mapping.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Error;

/// Encodes `der` as a PEM section with the given label (64-column lines).
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Whether `input` contains anything that looks like a PEM section start.
pub(crate) fn looks_like_pem(input: &str) -> bool {
    input.contains("-----BEGIN ")
}

/// Maps a pki-types PEM error to ours; `missing` is returned when the input
/// is PEM but holds no section of the wanted kind.
pub(crate) fn map_error(
    err: rustls_pki_types::pem::Error,
    input: &str,
    expected: &'static str,
    missing: Error,
) -> Error {
    use rustls_pki_types::pem::Error as PemError;
    match err {
        PemError::NoItemsFound if !looks_like_pem(input) => Error::NotPem { expected },
        PemError::NoItemsFound => missing,
        other => Error::InvalidPem(other.to_string()),
    }
}
