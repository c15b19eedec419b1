//! Compact JWS tokens (`alg: ES256`) with Kuma-compatible claims.
//!
//! A token is `base64url(header) . base64url(claims) . base64url(signature)`
//! (RFC 7515 compact serialization, no padding). The header is
//! `{"alg":"ES256","typ":"JWT","kid":"<key id>"}`; the `kid` names the
//! signing key so verification needs no trial of every key (rotation keeps
//! old keys around until their tokens expire).
//!
//! Verification ([`verify_token`]) is strict and never trusts the header to
//! choose the algorithm: only `ES256` is accepted, so `alg: none` and
//! algorithm-confusion tokens are rejected before any key is looked up.
//! The claims are parsed only after the signature checked out.
//!
//! Claim names follow Kuma (Go structs without JSON tags, so the JSON names
//! are the Go field names): user tokens carry `Name` and `Groups`
//! ([`UserClaims`]), data plane tokens `Name`, `Mesh`, `Tags` and `Type`
//! ([`DataplaneClaims`]), zone tokens `Zone` and `Scope` ([`ZoneClaims`]); all
//! add the registered claims `jti`, `iat`, `nbf` and `exp`
//! ([`RegisteredClaims`], combined through [`Claims`]).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result, SigningKey, VerifyingKey};

/// The only JWS algorithm Aerie signs with and accepts.
pub const ALGORITHM: &str = "ES256";
/// Tolerated clock skew for `nbf` and `iat`, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// How far [`RegisteredClaims::new`] back-dates `nbf` (as Kuma does: 5 min).
pub const NOT_BEFORE_BACKDATE_SECS: u64 = 300;
/// Tokens longer than this are rejected without further parsing.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed compact JWS (wrong number of parts, bad base64,
    /// header not a JSON object, missing `kid`, ...).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm other than `ES256`.
    #[error("unsupported token algorithm {0:?}: only ES256 is accepted")]
    UnsupportedAlgorithm(String),
    /// No verification key is known for the header's `kid`.
    #[error("unknown token signing key id {0:?}")]
    UnknownKeyId(String),
    /// The signature does not match the header and claims.
    #[error("invalid token signature")]
    BadSignature,
    /// The token's `exp` is not after the current time.
    #[error("token expired at {} (now {})", fmt_unix(*expired_at), fmt_unix(*now))]
    Expired {
        /// The token's `exp` (Unix seconds).
        expired_at: u64,
        /// The verification time (Unix seconds).
        now: u64,
    },
    /// The token's `nbf` or `iat` lies in the future (beyond the allowed skew).
    #[error("token not valid before {} (now {})", fmt_unix(*valid_from), fmt_unix(*now))]
    NotYetValid {
        /// The offending `nbf` or `iat` (Unix seconds).
        valid_from: u64,
        /// The verification time (Unix seconds).
        now: u64,
    },
    /// The claims are not what was expected (missing `exp`, wrong types, ...).
    #[error("invalid token claims: {0}")]
    BadClaims(String),
}

/// Formats Unix seconds as RFC 3339, falling back to the number.
fn fmt_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("unix time {secs}"))
}

/// The registered JWT claims Aerie (and Kuma) put in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredClaims {
    /// Unique token id, used for revocation.
    pub jti: String,
    /// Issued at (Unix seconds); 0 when absent.
    #[serde(default)]
    pub iat: u64,
    /// Not before (Unix seconds); 0 when absent.
    #[serde(default)]
    pub nbf: u64,
    /// Expiry (Unix seconds); required.
    pub exp: u64,
}

impl RegisteredClaims {
    /// Claims for a token issued at `now_unix` and valid for `valid_for`:
    /// a fresh random `jti`, `iat = now`, `nbf = now - 5 min` (as Kuma does,
    /// to tolerate clock skew) and `exp = now + valid_for`.
    pub fn new(now_unix: u64, valid_for: Duration) -> Result<Self> {
        Ok(Self {
            jti: generate_jti()?,
            iat: now_unix,
            nbf: now_unix.saturating_sub(NOT_BEFORE_BACKDATE_SECS),
            exp: now_unix.saturating_add(valid_for.as_secs()),
        })
    }
}

/// Registered claims plus token-specific claims, flattened into one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims<T> {
    /// `jti`, `iat`, `nbf`, `exp`.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// The token-specific claims, e.g. [`UserClaims`] or [`DataplaneClaims`].
    #[serde(flatten)]
    pub custom: T,
}

impl<T> Claims<T> {
    /// Wraps `custom` with [`RegisteredClaims::new`].
    pub fn new(custom: T, now_unix: u64, valid_for: Duration) -> Result<Self> {
        Ok(Self {
            registered: RegisteredClaims::new(now_unix, valid_for)?,
            custom,
        })
    }
}

/// Claims of a Kuma user token (Kuma `user.User`: `Name`, `Groups`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// The user name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The groups the user belongs to (used by access control).
    #[serde(rename = "Groups", default, deserialize_with = "null_as_default")]
    pub groups: Vec<String>,
}

/// Claims of a Kuma data plane token (Kuma `DataplaneClaims`: `Name`, `Mesh`,
/// `Tags`, `Type`).
///
/// Kuma writes empty strings for unset `Name`/`Type` and `null` for unset
/// `Tags`; those read back as `None` / empty. Unset values are omitted when
/// Aerie writes a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneClaims {
    /// The data plane's name, when the token is bound to one data plane.
    #[serde(
        rename = "Name",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub name: Option<String>,
    /// The mesh the data plane belongs to.
    #[serde(rename = "Mesh")]
    pub mesh: String,
    /// Tags the data plane must carry (each tag may allow several values).
    #[serde(rename = "Tags", default, deserialize_with = "null_as_default")]
    pub tags: BTreeMap<String, Vec<String>>,
    /// The proxy type (Kuma `ProxyType`, e.g. `dataplane` or `ingress`).
    #[serde(
        rename = "Type",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub proxy_type: Option<String>,
}

/// Claims of a Kuma zone token (Kuma `ZoneClaims`: `Zone`, `Scope`): what a zone control
/// plane (scope `cp`) or zone proxy (`ingress`, `egress`) of one zone presents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneClaims {
    /// The zone the token was issued for.
    #[serde(rename = "Zone")]
    pub zone: String,
    /// What the token may identify: any of `cp`, `ingress`, `egress`.
    #[serde(rename = "Scope", default, deserialize_with = "null_as_default")]
    pub scope: Vec<String>,
}

/// Deserializes `null` as the type's default (Go writes nil maps/slices as `null`).
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Deserializes `null` and `""` as `None` (Go writes unset strings as `""`).
fn empty_as_none<'de, D>(de: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(de)?.filter(|s| !s.is_empty()))
}

/// A random 128-bit token id, as 32 lowercase hex digits.
pub fn generate_jti() -> Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto("generating a random token id"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The time claims [`verify_token`] checks, whatever the caller's claim type.
#[derive(Deserialize)]
struct TimeClaims {
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
}

/// Signs `claims` (which must serialize to a JSON object) as an `ES256`
/// compact JWS with `kid` in the header.
///
/// The caller puts the registered claims in, usually via [`Claims::new`];
/// [`verify_token`] requires at least `exp`.
pub fn sign_token<C: Serialize>(key: &SigningKey, kid: &str, claims: &C) -> Result<String> {
    let header = serde_json::to_vec(&HeaderOut {
        alg: ALGORITHM,
        typ: "JWT",
        kid,
    })
    .map_err(|e| Error::InvalidClaims(format!("header: {e}")))?;
    let payload = serde_json::to_value(claims).map_err(|e| Error::InvalidClaims(e.to_string()))?;
    if !payload.is_object() {
        return Err(Error::InvalidClaims(
            "claims must serialize to a JSON object".to_string(),
        ));
    }
    let payload = serde_json::to_vec(&payload).map_err(|e| Error::InvalidClaims(e.to_string()))?;

    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// Verifies `token` and returns its claims.
///
/// Checks, in order: exactly three base64url (unpadded) parts; a JSON header
/// with `alg` exactly `ES256`, `typ` (if present) `JWT`, no `crit`, and a
/// `kid` that `keys` knows; the signature; then the claims: a JSON object
/// with `exp > now_unix`, `nbf` and `iat` (when present) not more than
/// [`CLOCK_SKEW_SECS`] after `now_unix`; finally the claims deserialize as `C`.
/// Revocation (by `jti`) is the caller's business.
pub fn verify_token<C: DeserializeOwned>(
    keys: &dyn Fn(&str) -> Option<VerifyingKey>,
    token: &str,
    now_unix: u64,
) -> Result<C, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Malformed("empty token".to_string()));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed(format!(
            "token is {} bytes long, more than the {MAX_TOKEN_LEN} allowed",
            token.len()
        )));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(TokenError::Malformed(format!(
            "expected 3 dot-separated parts, found {}",
            parts.len()
        )));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| TokenError::Malformed(format!("{what} is not unpadded base64url: {e}")))
    };
    let header = decode(header_b64, "header")?;
    let payload = decode(payload_b64, "payload")?;
    let signature = decode(signature_b64, "signature")?;

    // Header: the algorithm is fixed, whatever the token says.
    // Parsed straight into the struct (not via `Value`) so that duplicate
    // `alg`/`kid`/... members are an error rather than "last one wins".
    if header.trim_ascii_start().first() != Some(&b'{') {
        return Err(TokenError::Malformed("header is not a JSON object".into()));
    }
    let header: HeaderIn = serde_json::from_slice(&header)
        .map_err(|e| TokenError::Malformed(format!("invalid header: {e}")))?;
    match header.alg.as_deref() {
        Some(ALGORITHM) => {}
        Some(other) => return Err(TokenError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(TokenError::Malformed("header has no \"alg\"".into())),
    }
    if let Some(typ) = header.typ.as_deref()
        && typ != "JWT"
    {
        return Err(TokenError::Malformed(format!(
            "header \"typ\" is {typ:?}, expected \"JWT\""
        )));
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed(
            "header \"crit\" extensions are not supported".into(),
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| TokenError::Malformed("header has no \"kid\"".into()))?;
    let key = keys(&kid).ok_or(TokenError::UnknownKeyId(kid))?;

    // Signature over the encoded `header.payload`, exactly as received.
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    if !key.verify(&token.as_bytes()[..signed_len], &signature) {
        return Err(TokenError::BadSignature);
    }

    // Claims: only now that they are authentic.
    let claims = match serde_json::from_slice::<serde_json::Value>(&payload) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return Err(TokenError::BadClaims("claims are not a JSON object".into())),
        Err(e) => return Err(TokenError::BadClaims(format!("claims are not JSON: {e}"))),
    };
    let times = TimeClaims::deserialize(&claims)
        .map_err(|e| TokenError::BadClaims(format!("registered claims: {e}")))?;
    let exp = times
        .exp
        .ok_or_else(|| TokenError::BadClaims("missing \"exp\" claim".into()))?;
    if exp <= now_unix {
        return Err(TokenError::Expired {
            expired_at: exp,
            now: now_unix,
        });
    }
    for valid_from in [times.nbf, times.iat].into_iter().flatten() {
        if valid_from > now_unix.saturating_add(CLOCK_SKEW_SECS) {
            return Err(TokenError::NotYetValid {
                valid_from,
                now: now_unix,
            });
        }
    }
    serde_json::from_value(claims).map_err(|e| TokenError::BadClaims(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;
    const KID: &str = "1";

    fn key() -> SigningKey {
        SigningKey::generate().unwrap()
    }

    fn lookup(key: &SigningKey) -> impl Fn(&str) -> Option<VerifyingKey> + use<> {
        let vk = key.verifying_key();
        move |kid| (kid == KID).then(|| vk.clone())
    }

    fn user_claims() -> Claims<UserClaims> {
        Claims::new(
            UserClaims {
                name: "john.doe@example.com".into(),
                groups: vec!["users".into(), "mesh-system:admin".into()],
            },
            NOW,
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn verify_user(
        keys: &dyn Fn(&str) -> Option<VerifyingKey>,
        token: &str,
        now: u64,
    ) -> Result<Claims<UserClaims>, TokenError> {
        verify_token(keys, token, now)
    }

    /// Signs an arbitrary header and payload (raw JSON text) with `key`.
    fn sign_raw(key: &SigningKey, header: &str, payload: &str) -> String {
        let signed = format!("{}.{}", b64(header), b64(payload));
        let sig = key.sign(signed.as_bytes()).unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    const ES256_HEADER: &str = r#"{"alg":"ES256","typ":"JWT","kid":"1"}"#;

    #[test]
    fn sign_verify_round_trip_user() {
        let key = key();
        let claims = user_claims();
        let token = sign_token(&key, KID, &claims).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert!(!token.contains('='));
        let back = verify_user(&lookup(&key), &token, NOW + 10).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.registered.iat, NOW);
        assert_eq!(back.registered.nbf, NOW - NOT_BEFORE_BACKDATE_SECS);
        assert_eq!(back.registered.exp, NOW + 3600);
        // Header is exactly what Kuma-style verifiers expect.
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"ES256","typ":"JWT","kid":"1"}"#);
        // Payload uses Kuma's claim names.
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["Name"], "john.doe@example.com");
        assert_eq!(v["Groups"][1], "mesh-system:admin");
        assert_eq!(v["jti"].as_str().unwrap().len(), 32);
    }

    #[test]
    fn zone_claims_use_kuma_names() {
        let key = key();
        let claims = Claims::new(
            ZoneClaims {
                zone: "zone-1".into(),
                scope: vec!["cp".into(), "ingress".into()],
            },
            NOW,
            Duration::from_secs(60),
        )
        .unwrap();
        let token = sign_token(&key, KID, &claims).unwrap();
        let back: Claims<ZoneClaims> = verify_token(&lookup(&key), &token, NOW).unwrap();
        assert_eq!(back, claims);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["Zone"], "zone-1");
        assert_eq!(v["Scope"], serde_json::json!(["cp", "ingress"]));
        // Go writes a nil slice as null; a token without a zone is not a zone token.
        let payload = format!(
            r#"{{"Zone":"z","Scope":null,"jti":"j","exp":{}}}"#,
            NOW + 10
        );
        let token = sign_raw(&key, ES256_HEADER, &payload);
        let back: Claims<ZoneClaims> = verify_token(&lookup(&key), &token, NOW).unwrap();
        assert!(back.custom.scope.is_empty());
        let payload = format!(r#"{{"Scope":["cp"],"jti":"j","exp":{}}}"#, NOW + 10);
        let token = sign_raw(&key, ES256_HEADER, &payload);
        assert!(matches!(
            verify_token::<Claims<ZoneClaims>>(&lookup(&key), &token, NOW),
            Err(TokenError::BadClaims(_))
        ));
    }

    #[test]
    fn sign_verify_round_trip_dataplane() {
        let key = key();
        let claims = Claims::new(
            DataplaneClaims {
                name: Some("backend-01".into()),
                mesh: "default".into(),
                tags: BTreeMap::from([(
                    "kuma.io/service".to_string(),
                    vec!["backend".to_string()],
                )]),
                proxy_type: Some("dataplane".into()),
            },
            NOW,
            Duration::from_secs(60),
        )
        .unwrap();
        let token = sign_token(&key, KID, &claims).unwrap();
        let back: Claims<DataplaneClaims> = verify_token(&lookup(&key), &token, NOW).unwrap();
        assert_eq!(back, claims);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["Mesh"], "default");
        assert_eq!(v["Type"], "dataplane");
        assert_eq!(v["Tags"]["kuma.io/service"][0], "backend");
    }

    #[test]
    fn kuma_shaped_dataplane_claims_parse() {
        // What Kuma's Go structs produce for a mesh-wide token: empty Name and
        // Type, nil Tags.
        let key = key();
        let payload = format!(
            r#"{{"Name":"","Mesh":"demo","Tags":null,"Type":"","jti":"abc","iat":{NOW},"nbf":{},"exp":{}}}"#,
            NOW - 300,
            NOW + 100
        );
        let token = sign_raw(&key, ES256_HEADER, &payload);
        let back: Claims<DataplaneClaims> = verify_token(&lookup(&key), &token, NOW).unwrap();
        assert_eq!(back.custom.name, None);
        assert_eq!(back.custom.proxy_type, None);
        assert!(back.custom.tags.is_empty());
        assert_eq!(back.custom.mesh, "demo");
        assert_eq!(back.registered.jti, "abc");

        let payload = format!(
            r#"{{"Name":"admin","Groups":null,"jti":"x","exp":{}}}"#,
            NOW + 1
        );
        let token = sign_raw(&key, ES256_HEADER, &payload);
        let back = verify_user(&lookup(&key), &token, NOW).unwrap();
        assert_eq!(back.custom.name, "admin");
        assert!(back.custom.groups.is_empty());
        assert_eq!((back.registered.iat, back.registered.nbf), (0, 0));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let key = key();
        let token = sign_token(&key, KID, &user_claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = user_claims();
        claims.custom.groups = vec!["mesh-system:admin".into()];
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            verify_user(&lookup(&key), &forged, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let key = key();
        let token = sign_token(&key, KID, &user_claims()).unwrap();
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[10] ^= 0x01;
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            verify_user(&lookup(&key), &forged, NOW),
            Err(TokenError::BadSignature)
        );
        // Truncated and empty signatures too.
        let short = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&sig[..63]));
        assert_eq!(
            verify_user(&lookup(&key), &short, NOW),
            Err(TokenError::BadSignature)
        );
        let empty = format!("{signed}.");
        assert_eq!(
            verify_user(&lookup(&key), &empty, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn signature_from_another_key_is_rejected() {
        let key = key();
        let other = self::key();
        let token = sign_token(&other, KID, &user_claims()).unwrap();
        assert_eq!(
            verify_user(&lookup(&key), &token, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let key = key();
        let payload = serde_json::to_string(&user_claims()).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT","kid":"1"}"#,
            r#"{"alg":"None","kid":"1"}"#,
        ] {
            for token in [
                format!("{}.{}.", b64(header), b64(&payload)),
                format!("{}.{}", b64(header), b64(&payload)),
            ] {
                let err = verify_user(&lookup(&key), &token, NOW).unwrap_err();
                assert!(
                    matches!(
                        err,
                        TokenError::UnsupportedAlgorithm(_) | TokenError::Malformed(_)
                    ),
                    "{token}: {err}"
                );
            }
            let err = verify_user(
                &lookup(&key),
                &format!("{}.{}.", b64(header), b64(&payload)),
                NOW,
            )
            .unwrap_err();
            assert!(matches!(err, TokenError::UnsupportedAlgorithm(_)), "{err}");
        }
    }

    #[test]
    fn hs256_and_other_algorithms_are_rejected() {
        let key = key();
        let payload = serde_json::to_string(&user_claims()).unwrap();
        // Algorithm confusion: HMAC keyed with the public key.
        let signed = format!(
            "{}.{}",
            b64(r#"{"alg":"HS256","typ":"JWT","kid":"1"}"#),
            b64(&payload)
        );
        let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.public_key_der());
        let tag = ring::hmac::sign(&hmac_key, signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag));
        assert_eq!(
            verify_user(&lookup(&key), &token, NOW),
            Err(TokenError::UnsupportedAlgorithm("HS256".into()))
        );
        for alg in ["RS256", "ES384", "es256", "ES256 ", "EdDSA", ""] {
            let header = format!(r#"{{"alg":"{alg}","kid":"1"}}"#);
            let token = sign_raw(&key, &header, &payload);
            assert_eq!(
                verify_user(&lookup(&key), &token, NOW),
                Err(TokenError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
        // Missing or non-string alg.
        for header in [
            r#"{"kid":"1"}"#,
            r#"{"alg":1,"kid":"1"}"#,
            r#"{"alg":null}"#,
        ] {
            let token = sign_raw(&key, header, &payload);
            assert!(matches!(
                verify_user(&lookup(&key), &token, NOW),
                Err(TokenError::Malformed(_))
            ));
        }
    }

    #[test]
    fn header_typ_crit_and_kid_are_checked() {
        let key = key();
        let payload = serde_json::to_string(&user_claims()).unwrap();
        let ok = sign_raw(&key, r#"{"alg":"ES256","kid":"1"}"#, &payload);
        assert!(
            verify_user(&lookup(&key), &ok, NOW).is_ok(),
            "typ is optional"
        );
        for header in [
            r#"{"alg":"ES256","typ":"JWS","kid":"1"}"#,
            r#"{"alg":"ES256","kid":"1","crit":["exp"]}"#,
            r#"{"alg":"ES256","typ":"JWT"}"#,
            r#"{"alg":"ES256","kid":1}"#,
            r#"["ES256"]"#,
            r#"{"alg":"ES256","alg":"ES256","kid":"1"}"#,
            "not json",
        ] {
            let token = sign_raw(&key, header, &payload);
            let err = verify_user(&lookup(&key), &token, NOW).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{header}: {err}");
        }
    }

    #[test]
    fn unknown_kid_is_rejected() {
        let key = key();
        let token = sign_token(&key, "2", &user_claims()).unwrap();
        let err = verify_user(&lookup(&key), &token, NOW).unwrap_err();
        assert_eq!(err, TokenError::UnknownKeyId("2".into()));
        assert_eq!(err.to_string(), "unknown token signing key id \"2\"");
    }

    #[test]
    fn key_rotation_by_kid() {
        let old = key();
        let new = key();
        let (old_vk, new_vk) = (old.verifying_key(), new.verifying_key());
        let keys = move |kid: &str| match kid {
            "1" => Some(old_vk.clone()),
            "2" => Some(new_vk.clone()),
            _ => None,
        };
        let t1 = sign_token(&old, "1", &user_claims()).unwrap();
        let t2 = sign_token(&new, "2", &user_claims()).unwrap();
        assert!(verify_user(&keys, &t1, NOW).is_ok());
        assert!(verify_user(&keys, &t2, NOW).is_ok());
        // Right signature, wrong kid: the kid picks the key, so it fails.
        let t3 = sign_token(&new, "1", &user_claims()).unwrap();
        assert_eq!(verify_user(&keys, &t3, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_is_rejected_with_when() {
        let key = key();
        let claims = user_claims();
        let token = sign_token(&key, KID, &claims).unwrap();
        let exp = claims.registered.exp;
        assert!(verify_user(&lookup(&key), &token, exp - 1).is_ok());
        for now in [exp, exp + 1, exp + 1_000_000] {
            let err = verify_user(&lookup(&key), &token, now).unwrap_err();
            assert_eq!(
                err,
                TokenError::Expired {
                    expired_at: exp,
                    now
                }
            );
        }
        let err = verify_user(&lookup(&key), &token, exp + 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token expired at 2027-01-15T09:00:00Z (now 2027-01-15T09:00:05Z)"
        );
    }

    #[test]
    fn not_yet_valid_is_rejected() {
        let key = key();
        let claims = user_claims();
        let token = sign_token(&key, KID, &claims).unwrap();
        // Our tokens back-date nbf, so iat (= issue time) is the binding bound.
        let iat = claims.registered.iat;
        assert!(verify_user(&lookup(&key), &token, iat - CLOCK_SKEW_SECS).is_ok());
        let now = iat - CLOCK_SKEW_SECS - 1;
        assert_eq!(
            verify_user(&lookup(&key), &token, now),
            Err(TokenError::NotYetValid {
                valid_from: iat,
                now
            })
        );
        // nbf in the future, no iat.
        let payload = format!(
            r#"{{"Name":"a","jti":"j","nbf":{},"exp":{}}}"#,
            NOW + 61,
            NOW + 1000
        );
        let token = sign_raw(&key, ES256_HEADER, &payload);
        assert!(verify_user(&lookup(&key), &token, NOW + 1).is_ok());
        let err = verify_user(&lookup(&key), &token, NOW).unwrap_err();
        assert_eq!(
            err,
            TokenError::NotYetValid {
                valid_from: NOW + 61,
                now: NOW
            }
        );
        // iat in the future is rejected too, even when nbf is fine.
        let payload = format!(
            r#"{{"Name":"a","jti":"j","iat":{},"nbf":{},"exp":{}}}"#,
            NOW + 120,
            NOW - 10,
            NOW + 1000
        );
        let token = sign_raw(&key, ES256_HEADER, &payload);
        let err = verify_user(&lookup(&key), &token, NOW).unwrap_err();
        assert_eq!(
            err,
            TokenError::NotYetValid {
                valid_from: NOW + 120,
                now: NOW
            }
        );
        assert_eq!(
            err.to_string(),
            "token not valid before 2027-01-15T08:02:00Z (now 2027-01-15T08:00:00Z)"
        );
    }

    #[test]
    fn bad_claims_are_rejected() {
        let key = key();
        let cases = [
            // No exp at all.
            r#"{"Name":"a","jti":"j"}"#.to_string(),
            // exp of the wrong type.
            format!(r#"{{"Name":"a","jti":"j","exp":"{}"}}"#, NOW + 10),
            r#"{"Name":"a","jti":"j","exp":-1}"#.to_string(),
            // Not an object.
            "[1,2,3]".to_string(),
            "\"claims\"".to_string(),
            "not json".to_string(),
            // Valid times but the wrong shape for UserClaims / RegisteredClaims.
            format!(r#"{{"jti":"j","exp":{}}}"#, NOW + 10),
            format!(r#"{{"Name":"a","exp":{}}}"#, NOW + 10),
            format!(r#"{{"Name":7,"jti":"j","exp":{}}}"#, NOW + 10),
        ];
        for payload in cases {
            let token = sign_raw(&key, ES256_HEADER, &payload);
            let err = verify_user(&lookup(&key), &token, NOW).unwrap_err();
            assert!(matches!(err, TokenError::BadClaims(_)), "{payload}: {err}");
        }
    }

    #[test]
    fn garbage_is_malformed() {
        let key = key();
        let good = sign_token(&key, KID, &user_claims()).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases: Vec<String> = vec![
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "abc".into(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
            format!("{good}."),
            format!(".{good}"),
            format!("{good}\n"),
            format!(" {good}"),
            format!("Bearer {good}"),
            // Padding and standard-alphabet base64 are not base64url.
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", "ab+/", parts[1], parts[2]),
            format!("{}.{}.{}", "!!!!", parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], "@@@", parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], "%%%"),
            // A base64 string of impossible length (1 mod 4).
            format!("{}.{}.{}", parts[0], parts[1], "A"),
            "\u{0}\u{1}\u{ff}.é.ü".into(),
            long,
        ];
        for token in &cases {
            let err = verify_user(&lookup(&key), token, NOW).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{token:?}: {err}");
        }
        // Random bytes (as lossy UTF-8).
        let rng = SystemRandom::new();
        for len in [1usize, 7, 64, 300] {
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes).unwrap();
            let token = String::from_utf8_lossy(&bytes);
            assert!(verify_user(&lookup(&key), &token, NOW).is_err());
        }
        assert_eq!(
            verify_user(&lookup(&key), "a.b", NOW)
                .unwrap_err()
                .to_string(),
            "malformed token: expected 3 dot-separated parts, found 2"
        );
    }

    #[test]
    fn sign_rejects_non_object_claims() {
        let key = key();
        assert!(matches!(
            sign_token(&key, KID, &[1, 2, 3]),
            Err(Error::InvalidClaims(_))
        ));
        assert!(matches!(
            sign_token(&key, KID, &"x"),
            Err(Error::InvalidClaims(_))
        ));
    }

    #[test]
    fn jti_is_random_128_bit_hex() {
        let a = generate_jti().unwrap();
        let b = generate_jti().unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn error_messages_are_clear() {
        assert_eq!(
            TokenError::UnsupportedAlgorithm("none".into()).to_string(),
            "unsupported token algorithm \"none\": only ES256 is accepted"
        );
        assert_eq!(
            TokenError::BadSignature.to_string(),
            "invalid token signature"
        );
        assert_eq!(
            TokenError::Expired {
                expired_at: u64::MAX,
                now: 0
            }
            .to_string(),
            format!(
                "token expired at unix time {} (now 1970-01-01T00:00:00Z)",
                u64::MAX
            )
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings_never_verify_or_panic(s in any::<String>()) {
            let key = key();
            prop_assert!(verify_user(&lookup(&key), &s, NOW).is_err());
        }

        #[test]
        fn jws_shaped_strings_never_verify_or_panic(
            s in "[A-Za-z0-9_=+/-]{0,40}(\\.[A-Za-z0-9_=+/-]{0,90}){0,4}"
        ) {
            let key = key();
            prop_assert!(verify_user(&lookup(&key), &s, NOW).is_err());
        }

        #[test]
        fn arbitrary_header_and_payload_never_panic(header in any::<String>(), payload in any::<String>()) {
            let key = key();
            let token = sign_raw(&key, &header, &payload);
            // May only succeed for a real ES256 header and valid claims, which
            // random strings never are.
            prop_assert!(verify_user(&lookup(&key), &token, NOW).is_err());
        }

        #[test]
        fn any_single_byte_flip_is_rejected(idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = key();
            let token = sign_token(&key, KID, &user_claims()).unwrap();
            let mut bytes = token.into_bytes();
            let i = idx.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(verify_user(&lookup(&key), &tampered, NOW).is_err());
        }
    }
}
