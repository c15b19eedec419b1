//! User tokens: JWTs (ES256) signed by a key the control plane creates on first start and
//! keeps as the GlobalSecret `user-token-signing-key-1` (Kuma's name). Revoked token ids
//! are listed, comma-separated, in the GlobalSecret `user-token-revocations`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerie_core::duration::parse_go_duration;
use aerie_core::spec::SecretSpec;
use aerie_core::{Meta, Resource, ResourceType, Spec, ValidationError};
use aerie_identity::{Claims, SigningKey, TokenError, UserClaims, sign_token, verify_token};
use aerie_store::{SharedStore, StoreError};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::api::{ApiError, AppState, Caller};

/// Kuma's names for the signing key (serial 1) and the revocation list.
pub const USER_TOKEN_SIGNING_KEY: &str = "user-token-signing-key-1";
pub const USER_TOKEN_KID: &str = "1";
pub const USER_TOKEN_REVOCATIONS: &str = "user-token-revocations";
/// Longest validity a user token may ask for.
const MAX_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Signs and verifies user tokens. The private key stays inside this process and the store.
pub struct TokenIssuer {
    store: SharedStore,
    key: SigningKey,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenIssuer {
    /// Loads the signing key, creating it on first start.
    pub async fn load_or_create(store: SharedStore) -> anyhow::Result<TokenIssuer> {
        let key = match store
            .get(ResourceType::GlobalSecret, "", USER_TOKEN_SIGNING_KEY)
            .await?
        {
            Some(Resource {
                spec: Spec::GlobalSecret(s),
                ..
            }) => {
                let pem = STANDARD.decode(s.data.as_bytes())?;
                SigningKey::from_pkcs8_pem(std::str::from_utf8(&pem)?)?
            }
            _ => {
                let key = SigningKey::generate()?;
                let secret = Resource {
                    meta: Meta {
                        name: USER_TOKEN_SIGNING_KEY.into(),
                        ..Meta::default()
                    },
                    spec: Spec::GlobalSecret(SecretSpec {
                        data: STANDARD.encode(key.to_pkcs8_pem()),
                    }),
                };
                match store.create(secret, &crate::now_rfc3339()).await {
                    Ok(_) => key,
                    // Another replica won the race: use its key.
                    Err(StoreError::AlreadyExists { .. }) => {
                        return Box::pin(Self::load_or_create(store)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(TokenIssuer { store, key })
    }

    pub fn issue(
        &self,
        name: &str,
        groups: Vec<String>,
        valid_for: Duration,
    ) -> Result<String, ApiError> {
        let claims = Claims::new(
            UserClaims {
                name: name.into(),
                groups,
            },
            unix_now(),
            valid_for,
        )
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                e.to_string(),
            )
        })?;
        sign_token(&self.key, USER_TOKEN_KID, &claims).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                e.to_string(),
            )
        })
    }

    /// Verifies a token: signature, expiry, and that its id is not revoked.
    pub async fn verify_user_token(&self, token: &str) -> Result<UserClaims, ApiError> {
        let verifying = self.key.verifying_key();
        let lookup = |kid: &str| (kid == USER_TOKEN_KID).then(|| verifying.clone());
        let claims: Claims<UserClaims> =
            verify_token(&lookup, token, unix_now()).map_err(|e: TokenError| {
                ApiError::unauthenticated(format!("invalid user token: {e}"))
            })?;
        if let Some(Resource {
            spec: Spec::GlobalSecret(s),
            ..
        }) = self
            .store
            .get(ResourceType::GlobalSecret, "", USER_TOKEN_REVOCATIONS)
            .await?
        {
            let list = STANDARD
                .decode(s.data.trim().as_bytes())
                .unwrap_or_default();
            let list = String::from_utf8_lossy(&list);
            if list.split(',').any(|id| id.trim() == claims.registered.jti) {
                return Err(ApiError::unauthenticated(
                    "invalid user token: it has been revoked",
                ));
            }
        }
        Ok(claims.custom)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserTokenRequest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    valid_for: String,
}

/// `POST /tokens/user`: admins mint tokens for others (Kuma's endpoint).
pub async fn issue_user_token(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin("generate user tokens")?;
    let req: UserTokenRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(ValidationError::single(
            "",
            format!("invalid request body: {e}"),
        ))
    })?;
    let mut errs = ValidationError::new();
    if req.name.is_empty() {
        errs.add("name", "cannot be empty");
    }
    let valid_for = if req.valid_for.is_empty() {
        errs.add("validFor", "cannot be empty");
        None
    } else {
        match parse_go_duration(&req.valid_for) {
            Some(d) if d.is_zero() => {
                errs.add("validFor", "must be longer than 0");
                None
            }
            Some(d) if d > MAX_VALIDITY => {
                errs.add("validFor", "must be at most 10 years");
                None
            }
            Some(d) => Some(d),
            None => {
                errs.add(
                    "validFor",
                    format!(
                        "\"{}\" is not a duration (e.g. 24h, 30m, 7d)",
                        req.valid_for
                    ),
                );
                None
            }
        }
    };
    let (Some(valid_for), true) = (valid_for, errs.is_empty()) else {
        return Err(ApiError::invalid(errs));
    };
    let token = state.tokens.issue(&req.name, req.groups, valid_for)?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], token))
}
