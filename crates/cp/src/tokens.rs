//! Tokens, Kuma-style: JWTs (ES256) signed by keys the control plane creates on first use and
//! keeps as secrets.
//!
//! - User tokens: GlobalSecret `user-token-signing-key-1`; revoked ids (comma-separated) in
//!   the GlobalSecret `user-token-revocations`.
//! - Dataplane tokens: Secret `dataplane-token-signing-key-<mesh>` in each mesh; revoked ids
//!   in the Secret `dataplane-token-revocations-<mesh>`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerie_core::ValidationError;
use aerie_core::duration::parse_go_duration;
use aerie_identity::{Claims, DataplaneClaims, SigningKey, UserClaims, sign_token, verify_token};
use aerie_store::SharedStore;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::api::{ApiError, AppState, Caller};

pub const USER_TOKEN_SIGNING_KEY: &str = "user-token-signing-key-1";
pub const USER_TOKEN_REVOCATIONS: &str = "user-token-revocations";
/// Key id of the first (and so far only) key of each kind.
pub const KID: &str = "1";
/// Longest validity a token may ask for.
const MAX_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

pub fn dataplane_signing_key_name(mesh: &str) -> String {
    format!("dataplane-token-signing-key-{mesh}")
}

pub fn dataplane_revocations_name(mesh: &str) -> String {
    format!("dataplane-token-revocations-{mesh}")
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
        e.to_string(),
    )
}

/// Signs and verifies tokens. Private keys stay inside this process and the store.
pub struct TokenIssuer {
    store: SharedStore,
    user_key: SigningKey,
}

impl TokenIssuer {
    /// Loads the user-token signing key, creating it on first start.
    pub async fn load_or_create(store: SharedStore) -> anyhow::Result<TokenIssuer> {
        let user_key = crate::signing::load_or_create(&store, "", USER_TOKEN_SIGNING_KEY).await?;
        Ok(TokenIssuer { store, user_key })
    }

    pub fn issue_user(
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
        .map_err(internal)?;
        sign_token(&self.user_key, KID, &claims).map_err(internal)
    }

    /// Verifies a user token: signature, expiry, and that its id is not revoked.
    pub async fn verify_user_token(&self, token: &str) -> Result<UserClaims, ApiError> {
        let verifying = self.user_key.verifying_key();
        let lookup = |kid: &str| (kid == KID).then(|| verifying.clone());
        let claims: Claims<UserClaims> = verify_token(&lookup, token, unix_now())
            .map_err(|e| ApiError::unauthenticated(format!("invalid user token: {e}")))?;
        let revoked = crate::signing::revoked_ids(&self.store, "", USER_TOKEN_REVOCATIONS).await?;
        if revoked.contains(&claims.registered.jti) {
            return Err(ApiError::unauthenticated(
                "invalid user token: it has been revoked",
            ));
        }
        Ok(claims.custom)
    }

    pub async fn issue_dataplane(
        &self,
        claims: DataplaneClaims,
        valid_for: Duration,
    ) -> Result<String, ApiError> {
        let key = crate::signing::load_or_create(
            &self.store,
            &claims.mesh,
            &dataplane_signing_key_name(&claims.mesh),
        )
        .await
        .map_err(internal)?;
        let claims = Claims::new(claims, unix_now(), valid_for).map_err(internal)?;
        sign_token(&key, KID, &claims).map_err(internal)
    }

    /// Verifies a dataplane token presented for `mesh`: signature by that mesh's key, expiry,
    /// revocation, and that it was issued for that mesh.
    pub async fn verify_dataplane_token(
        &self,
        mesh: &str,
        token: &str,
    ) -> Result<DataplaneClaims, String> {
        let key =
            crate::signing::load_or_create(&self.store, mesh, &dataplane_signing_key_name(mesh))
                .await
                .map_err(|e| format!("cannot load the mesh's signing key: {e}"))?;
        let verifying = key.verifying_key();
        let lookup = |kid: &str| (kid == KID).then(|| verifying.clone());
        let claims: Claims<DataplaneClaims> = verify_token(&lookup, token, unix_now())
            .map_err(|e| format!("invalid dataplane token: {e}"))?;
        let revoked =
            crate::signing::revoked_ids(&self.store, mesh, &dataplane_revocations_name(mesh))
                .await
                .map_err(|e| e.to_string())?;
        if revoked.contains(&claims.registered.jti) {
            return Err("invalid dataplane token: it has been revoked".into());
        }
        if claims.custom.mesh != mesh {
            return Err(format!(
                "the dataplane token is for mesh \"{}\", not \"{mesh}\"",
                claims.custom.mesh
            ));
        }
        Ok(claims.custom)
    }
}

fn parse_valid_for(valid_for: &str, errs: &mut ValidationError) -> Option<Duration> {
    if valid_for.is_empty() {
        errs.add("validFor", "cannot be empty");
        return None;
    }
    match parse_go_duration(valid_for) {
        Some(d) if d.is_zero() => errs.add("validFor", "must be longer than 0"),
        Some(d) if d > MAX_VALIDITY => errs.add("validFor", "must be at most 10 years"),
        Some(d) => return Some(d),
        None => errs.add(
            "validFor",
            format!("\"{valid_for}\" is not a duration (e.g. 24h, 30m, 7d)"),
        ),
    }
    None
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
    let valid_for = parse_valid_for(&req.valid_for, &mut errs);
    let (Some(valid_for), true) = (valid_for, errs.is_empty()) else {
        return Err(ApiError::invalid(errs));
    };
    let token = state.tokens.issue_user(&req.name, req.groups, valid_for)?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], token))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataplaneTokenRequest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mesh: String,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "type")]
    proxy_type: String,
    #[serde(default)]
    valid_for: String,
    #[serde(default)]
    workload: String,
}

/// `POST /tokens/dataplane` (Kuma's endpoint): a token a proxy presents to join a mesh.
pub async fn issue_dataplane_token(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin("generate dataplane tokens")?;
    let req: DataplaneTokenRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(ValidationError::single(
            "",
            format!("invalid request body: {e}"),
        ))
    })?;
    let mut errs = ValidationError::new();
    if req.mesh.is_empty() {
        errs.add("mesh", "cannot be empty");
    }
    if !matches!(
        req.proxy_type.as_str(),
        "" | "dataplane" | "ingress" | "egress"
    ) {
        errs.add("type", "must be one of dataplane, ingress, egress");
    }
    if !req.workload.is_empty() {
        errs.add("workload", "workload tokens are not supported yet");
    }
    let valid_for = if req.valid_for.is_empty() {
        Some(MAX_VALIDITY)
    } else {
        parse_valid_for(&req.valid_for, &mut errs)
    };
    let (Some(valid_for), true) = (valid_for, errs.is_empty()) else {
        return Err(ApiError::invalid(errs));
    };
    if state
        .store
        .get(aerie_core::ResourceType::Mesh, "", &req.mesh)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid(ValidationError::single(
            "mesh",
            format!("mesh \"{}\" does not exist", req.mesh),
        )));
    }
    let claims = DataplaneClaims {
        name: (!req.name.is_empty()).then_some(req.name),
        mesh: req.mesh,
        tags: req.tags,
        proxy_type: (!req.proxy_type.is_empty()).then_some(req.proxy_type),
    };
    let token = state.tokens.issue_dataplane(claims, valid_for).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], token))
}
