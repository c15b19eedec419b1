//! Tokens, Kuma-style: JWTs (ES256) signed by keys the control plane keeps as secrets.
//!
//! - User tokens: GlobalSecret `user-token-signing-key-1` (created at start); revoked ids
//!   (comma-separated) in the GlobalSecret `user-token-revocations`.
//! - Dataplane tokens: Secret `dataplane-token-signing-key-<mesh>` in each mesh, created with
//!   the mesh (and at start for meshes that lack one), so that on a multi-zone global it
//!   reaches the zones before any token exists; revoked ids in the Secret
//!   `dataplane-token-revocations-<mesh>` (synced to zones with the mesh's other secrets).
//! - Zone tokens (a zone control plane connecting to the global, scope `cp`; zone proxies,
//!   scopes `ingress` and `egress`): GlobalSecret `zone-token-signing-key-1` on the global
//!   (created at its start), revoked ids in the GlobalSecret `zone-token-revocations`. Its
//!   public half is kept in the GlobalSecret `zone-token-signing-public-key-1`; the global
//!   sends zones that and the revocations, so a zone control plane checks ingress tokens
//!   without holding the private key.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerie_core::duration::parse_go_duration;
pub use aerie_core::multizone::ZONE_TOKEN_REVOCATIONS;
use aerie_core::multizone::{ORIGIN_GLOBAL, ORIGIN_LABEL, ZONE_TOKEN_PUBLIC_KEY};
use aerie_core::spec::SecretSpec;
use aerie_core::{Meta, Resource, ResourceType, Spec, ValidationError};
use aerie_identity::{
    Claims, DataplaneClaims, SigningKey, UserClaims, VerifyingKey, ZoneClaims, sign_token,
    verify_token,
};
use aerie_store::{SharedStore, StoreError};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::api::{ApiError, AppState, Caller};

pub const USER_TOKEN_SIGNING_KEY: &str = "user-token-signing-key-1";
pub const USER_TOKEN_REVOCATIONS: &str = "user-token-revocations";
/// The private key that signs zone tokens (on the global control plane only).
pub const ZONE_TOKEN_SIGNING_KEY: &str = "zone-token-signing-key-1";
/// The scopes a zone token may carry (Kuma's); a token without `--scope` gets all of them.
pub const ZONE_TOKEN_SCOPES: [&str; 3] = ["cp", "ingress", "egress"];
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

/// Why a presented token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Retrying cannot help: the token is malformed, forged, expired, revoked, or for
    /// something else.
    Invalid(String),
    /// The token cannot be checked yet: the key that checks it has not arrived from the
    /// global control plane, or the store could not be read. Retrying may help.
    NotYet(String),
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenRefusal::Invalid(m) | TokenRefusal::NotYet(m) => f.write_str(m),
        }
    }
}

impl TokenRefusal {
    /// The gRPC status a proxy gets: `Unauthenticated` (kuma-dp gives up) for an invalid
    /// token, `Unavailable` (kuma-dp retries with backoff) for one that cannot be checked yet.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            TokenRefusal::Invalid(m) => tonic::Status::unauthenticated(m.clone()),
            TokenRefusal::NotYet(m) => tonic::Status::unavailable(m.clone()),
        }
    }
}

/// The claims of an accepted token, and its id (`jti`, what revocations list).
#[derive(Debug, Clone)]
pub struct Verified<T> {
    pub claims: T,
    pub id: String,
}

/// Signs and verifies tokens. Private keys stay inside this process and the store.
pub struct TokenIssuer {
    store: SharedStore,
    user_key: SigningKey,
    /// On a zone connected to a global, dataplane-token keys and the zone-token public key
    /// come from the global: never create them here (tokens the global issues must verify
    /// in every zone, and a local key would be replaced by the global's on the next sync).
    federated: bool,
}

impl TokenIssuer {
    /// Loads the user-token signing key, creating it on first start.
    pub async fn load_or_create(store: SharedStore) -> anyhow::Result<TokenIssuer> {
        let user_key = crate::signing::load_or_create(&store, "", USER_TOKEN_SIGNING_KEY).await?;
        Ok(TokenIssuer {
            store,
            user_key,
            federated: false,
        })
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

    /// Marks this issuer as a federated zone's (see the `federated` field).
    pub fn federated(mut self) -> Self {
        self.federated = true;
        self
    }

    /// Whether this is a federated zone's issuer (its keys come from the global).
    pub fn is_federated(&self) -> bool {
        self.federated
    }

    /// The mesh's dataplane-token signing key, to check a token with. Never created here:
    /// a key made now could not have signed any token. A federated zone waits for the
    /// global's (retrying may help); elsewhere a mesh without a key has no valid token.
    async fn dataplane_verifying_key(&self, mesh: &str) -> Result<VerifyingKey, TokenRefusal> {
        let name = dataplane_signing_key_name(mesh);
        match crate::signing::load_existing(&self.store, mesh, &name).await {
            Ok(Some(key)) => Ok(key.verifying_key()),
            Ok(None) if self.federated => Err(TokenRefusal::NotYet(format!(
                "the dataplane token signing key of mesh \"{mesh}\" has not arrived from the global control plane yet"
            ))),
            Ok(None) => Err(TokenRefusal::Invalid(format!(
                "invalid dataplane token: mesh \"{mesh}\" has no dataplane token signing key, so no token for it is valid: generate one with `kumactl generate dataplane-token --mesh {mesh}`"
            ))),
            Err(e) => Err(TokenRefusal::NotYet(format!(
                "cannot load the signing key of mesh \"{mesh}\": {e:#}"
            ))),
        }
    }

    /// Makes sure `mesh` has its dataplane-token signing key (for a mesh that predates
    /// creating the key with the mesh). Never on a federated zone.
    pub async fn ensure_dataplane_key(&self, mesh: &str) -> anyhow::Result<()> {
        if self.federated {
            return Ok(());
        }
        crate::signing::load_or_create(&self.store, mesh, &dataplane_signing_key_name(mesh))
            .await
            .map(|_| ())
    }

    pub async fn issue_dataplane(
        &self,
        claims: DataplaneClaims,
        valid_for: Duration,
    ) -> Result<String, ApiError> {
        let mesh = claims.mesh.clone();
        let name = dataplane_signing_key_name(&mesh);
        let key = if self.federated {
            crate::signing::load_existing(&self.store, &mesh, &name)
                .await
                .map_err(|e| internal(format!("cannot load the mesh's signing key: {e:#}")))?
                .ok_or_else(|| {
                    ApiError::invalid(ValidationError::single(
                        "mesh",
                        format!(
                            "the dataplane token signing key of mesh \"{mesh}\" has not arrived from the global control plane yet: generate dataplane tokens on the global"
                        ),
                    ))
                })?
        } else {
            // Made with the mesh; created here only if it went missing.
            crate::signing::load_or_create(&self.store, &mesh, &name)
                .await
                .map_err(|e| internal(format!("cannot load the mesh's signing key: {e:#}")))?
        };
        let claims = Claims::new(claims, unix_now(), valid_for).map_err(internal)?;
        sign_token(&key, KID, &claims).map_err(internal)
    }

    /// Verifies a dataplane token presented for `mesh`: signature by that mesh's key, expiry,
    /// revocation, and that it was issued for that mesh.
    pub async fn verify_dataplane_token(
        &self,
        mesh: &str,
        token: &str,
    ) -> Result<Verified<DataplaneClaims>, TokenRefusal> {
        let verifying = self.dataplane_verifying_key(mesh).await?;
        let lookup = |kid: &str| (kid == KID).then(|| verifying.clone());
        let claims: Claims<DataplaneClaims> = verify_token(&lookup, token, unix_now())
            .map_err(|e| TokenRefusal::Invalid(format!("invalid dataplane token: {e}")))?;
        if self
            .dataplane_token_revoked(mesh, &claims.registered.jti)
            .await
            .map_err(|e| {
                TokenRefusal::NotYet(format!("cannot read the dataplane token revocations: {e}"))
            })?
        {
            return Err(TokenRefusal::Invalid(
                "invalid dataplane token: it has been revoked".into(),
            ));
        }
        if claims.custom.mesh != mesh {
            return Err(TokenRefusal::Invalid(format!(
                "the dataplane token is for mesh \"{}\", not \"{mesh}\"",
                claims.custom.mesh
            )));
        }
        Ok(Verified {
            id: claims.registered.jti,
            claims: claims.custom,
        })
    }

    /// Whether the dataplane token `id` of `mesh` is listed in
    /// `dataplane-token-revocations-<mesh>` (here, or as received from the global).
    pub async fn dataplane_token_revoked(&self, mesh: &str, id: &str) -> Result<bool, StoreError> {
        let revoked =
            crate::signing::revoked_ids(&self.store, mesh, &dataplane_revocations_name(mesh))
                .await?;
        Ok(!id.is_empty() && revoked.iter().any(|r| r == id))
    }

    /// Whether the zone token `id` is listed in `zone-token-revocations` (on a zone, the
    /// copy received from the global).
    pub async fn zone_token_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let revoked = crate::signing::revoked_ids(&self.store, "", ZONE_TOKEN_REVOCATIONS).await?;
        Ok(!id.is_empty() && revoked.iter().any(|r| r == id))
    }

    /// Issues a zone token for `zone` with the given scopes (each one of
    /// [`ZONE_TOKEN_SCOPES`]; empty means all of them; duplicates are dropped), signed by
    /// `zone-token-signing-key-1`, which is created on first use. Also makes sure
    /// `zone-token-signing-public-key-1` holds that key's public half (and nothing else).
    ///
    /// Refused on a zone control plane that received the public key from its global (the
    /// secret carries `kuma.io/origin: global`): a key made there would not be the one the
    /// global checks, so tokens must come from the global.
    pub async fn issue_zone(
        &self,
        zone: &str,
        scope: Vec<String>,
        valid_for: Duration,
    ) -> Result<String, ApiError> {
        let mut errs = ValidationError::new();
        check_zone_name(zone, &mut errs);
        let scope = normalize_scope(scope, &mut errs);
        if !errs.is_empty() {
            return Err(ApiError::invalid(errs));
        }
        if self.federated {
            return Err(ApiError::bad_request(
                "this is a zone control plane of a multi-zone deployment: generate zone tokens on the global control plane",
            ));
        }
        if self
            .stored_zone_signing_key()
            .await
            .map_err(internal)?
            .is_none()
            && let Some(public) = self
                .store
                .get(ResourceType::GlobalSecret, "", ZONE_TOKEN_PUBLIC_KEY)
                .await?
            && public.meta.labels.get(ORIGIN_LABEL).map(String::as_str) == Some(ORIGIN_GLOBAL)
        {
            return Err(ApiError::bad_request(
                "this is a zone control plane of a multi-zone deployment: generate zone tokens on the global control plane",
            ));
        }
        let key = crate::signing::load_or_create(&self.store, "", ZONE_TOKEN_SIGNING_KEY)
            .await
            .map_err(internal)?;
        self.ensure_zone_public_key(&key).await.map_err(internal)?;
        let claims = Claims::new(
            ZoneClaims {
                zone: zone.to_string(),
                scope,
            },
            unix_now(),
            valid_for,
        )
        .map_err(internal)?;
        sign_token(&key, KID, &claims).map_err(internal)
    }

    /// Verifies a zone token presented for `required_scope` (`cp`, `ingress` or `egress`):
    /// signature, expiry, revocation (`zone-token-revocations`), a zone named, and the scope.
    ///
    /// The key is the local `zone-token-signing-key-1` when it exists (the global), else the
    /// public key in `zone-token-signing-public-key-1` (a zone control plane that got it from
    /// its global). Never creates a key. Refusals are sentences naming the problem.
    pub async fn verify_zone_token(
        &self,
        token: &str,
        required_scope: &str,
    ) -> Result<Verified<ZoneClaims>, TokenRefusal> {
        let verifying = self.zone_verifying_key().await?;
        let lookup = |kid: &str| (kid == KID).then(|| verifying.clone());
        let claims: Claims<ZoneClaims> = verify_token(&lookup, token, unix_now())
            .map_err(|e| TokenRefusal::Invalid(format!("invalid zone token: {e}")))?;
        if self
            .zone_token_revoked(&claims.registered.jti)
            .await
            .map_err(|e| {
                TokenRefusal::NotYet(format!("cannot read the zone token revocations: {e}"))
            })?
        {
            return Err(TokenRefusal::Invalid(
                "invalid zone token: it has been revoked".into(),
            ));
        }
        let ZoneClaims { zone, scope } = &claims.custom;
        if zone.is_empty() {
            return Err(TokenRefusal::Invalid(
                "invalid zone token: it names no zone".into(),
            ));
        }
        if !scope.iter().any(|s| s == required_scope) {
            let has = if scope.is_empty() {
                "no scope".to_string()
            } else {
                format!("scope {}", scope.join(", "))
            };
            return Err(TokenRefusal::Invalid(format!(
                "the zone token of zone \"{zone}\" has {has}, not \"{required_scope}\": generate one with `kumactl generate zone-token --zone {zone} --scope {required_scope}`"
            )));
        }
        Ok(Verified {
            id: claims.registered.jti,
            claims: claims.custom,
        })
    }

    /// When this control plane holds the zone token signing key, makes sure
    /// `zone-token-signing-public-key-1` holds its public half (for a global to call at
    /// start-up, so zones get the key before the next token is issued). Returns whether the
    /// signing key exists; never creates it.
    pub async fn publish_zone_public_key(&self) -> anyhow::Result<bool> {
        match self
            .stored_zone_signing_key()
            .await
            .map_err(anyhow::Error::msg)?
        {
            Some(key) => {
                self.ensure_zone_public_key(&key).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `zone-token-signing-key-1` if it is stored; never creates it.
    async fn stored_zone_signing_key(&self) -> Result<Option<SigningKey>, String> {
        let stored = self
            .store
            .get(ResourceType::GlobalSecret, "", ZONE_TOKEN_SIGNING_KEY)
            .await
            .map_err(|e| format!("cannot read the zone token signing key: {e}"))?;
        let Some(r) = stored else {
            return Ok(None);
        };
        let pem = secret_text(&r)?;
        SigningKey::from_pkcs8_pem(&pem).map(Some).map_err(|e| {
            format!("secret {ZONE_TOKEN_SIGNING_KEY} holds no usable signing key: {e}")
        })
    }

    /// The key that checks zone tokens here: the signing key's public half, or the public
    /// key received from the global. On a federated zone a missing public key has not
    /// arrived yet (retrying may help); elsewhere no zone token can be valid.
    async fn zone_verifying_key(&self) -> Result<VerifyingKey, TokenRefusal> {
        // A federated zone trusts the global's key, even if it once made its own.
        if !self.federated
            && let Some(key) = self
                .stored_zone_signing_key()
                .await
                .map_err(TokenRefusal::NotYet)?
        {
            return Ok(key.verifying_key());
        }
        let stored = self
            .store
            .get(ResourceType::GlobalSecret, "", ZONE_TOKEN_PUBLIC_KEY)
            .await
            .map_err(|e| {
                TokenRefusal::NotYet(format!("cannot read the zone token public key: {e}"))
            })?;
        let Some(r) = stored else {
            return Err(if self.federated {
                TokenRefusal::NotYet(format!(
                    "the zone token public key ({ZONE_TOKEN_PUBLIC_KEY}) has not arrived from the global control plane yet"
                ))
            } else {
                TokenRefusal::Invalid(
                    "no zone token signing key: generate zone tokens on the global control plane"
                        .into(),
                )
            });
        };
        let pem = secret_text(&r).map_err(TokenRefusal::Invalid)?;
        VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
            TokenRefusal::Invalid(format!(
                "secret {ZONE_TOKEN_PUBLIC_KEY} holds no usable public key: {e}"
            ))
        })
    }

    /// Stores `key`'s public half (SPKI PEM, base64) as `zone-token-signing-public-key-1`,
    /// replacing whatever else is there.
    async fn ensure_zone_public_key(&self, key: &SigningKey) -> anyhow::Result<()> {
        let want = key.verifying_key();
        let data = STANDARD.encode(want.to_public_key_pem());
        for _ in 0..5 {
            let current = self
                .store
                .get(ResourceType::GlobalSecret, "", ZONE_TOKEN_PUBLIC_KEY)
                .await?;
            let result = match current {
                Some(r) => {
                    let holds = secret_text(&r)
                        .ok()
                        .and_then(|pem| VerifyingKey::from_public_key_pem(&pem).ok());
                    if holds.as_ref() == Some(&want) {
                        return Ok(());
                    }
                    let version = r.meta.version;
                    let mut updated = r;
                    updated.spec = Spec::GlobalSecret(SecretSpec { data: data.clone() });
                    self.store
                        .update(updated, version, &crate::now_rfc3339())
                        .await
                        .map(|_| ())
                }
                None => {
                    let resource = Resource {
                        meta: Meta {
                            name: ZONE_TOKEN_PUBLIC_KEY.into(),
                            ..Meta::default()
                        },
                        spec: Spec::GlobalSecret(SecretSpec { data: data.clone() }),
                    };
                    self.store
                        .create(resource, &crate::now_rfc3339())
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Another replica wrote it at the same time: look again.
                Err(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!("could not store the zone token public key {ZONE_TOKEN_PUBLIC_KEY}")
    }
}

/// The text a secret holds (its `data` is base64).
fn secret_text(r: &Resource) -> Result<String, String> {
    let data = match &r.spec {
        Spec::GlobalSecret(s) | Spec::Secret(s) => &s.data,
        _ => return Err(format!("{} is not a secret", r.describe())),
    };
    let bytes = STANDARD
        .decode(data.trim().as_bytes())
        .map_err(|e| format!("secret {} is not base64: {e}", r.name()))?;
    String::from_utf8(bytes).map_err(|_| format!("secret {} is not PEM text", r.name()))
}

/// A zone name must be usable as a Zone resource's name (a lowercase RFC 1123 subdomain).
fn check_zone_name(zone: &str, errs: &mut ValidationError) {
    if zone.is_empty() {
        errs.add("zone", "cannot be empty");
        return;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if zone.len() > 253 || !zone.split('.').all(label_ok) {
        errs.add(
            "zone",
            "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        );
    }
}

/// The scopes of a zone token: each one of [`ZONE_TOKEN_SCOPES`] (errors name `scope[i]`),
/// without duplicates, in the order given; all of them when none is given.
fn normalize_scope(scope: Vec<String>, errs: &mut ValidationError) -> Vec<String> {
    if scope.is_empty() {
        return ZONE_TOKEN_SCOPES.iter().map(|s| s.to_string()).collect();
    }
    let mut out: Vec<String> = Vec::with_capacity(scope.len());
    for (i, s) in scope.into_iter().enumerate() {
        if !ZONE_TOKEN_SCOPES.contains(&s.as_str()) {
            errs.add(
                format!("scope[{i}]"),
                format!(
                    "\"{s}\" is not a valid scope: must be one of {}",
                    ZONE_TOKEN_SCOPES.join(", ")
                ),
            );
        } else if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// A token request's JSON body; a malformed one is a 400 saying why.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(ValidationError::single(
            "",
            format!("invalid request body: {e}"),
        ))
    })
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
    let req: UserTokenRequest = parse_body(&body)?;
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
    let req: DataplaneTokenRequest = parse_body(&body)?;
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneTokenRequest {
    #[serde(default)]
    zone: String,
    #[serde(default)]
    scope: Option<Vec<String>>,
    #[serde(default)]
    valid_for: String,
}

/// `POST /tokens/zone` (Kuma's endpoint): a token a zone control plane (scope `cp`) or zone
/// proxy (`ingress`, `egress`) presents. Body `{zone, scope: [..], validFor}`; no scope means
/// all three, no validFor 10 years.
pub async fn issue_zone_token(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin("generate zone tokens")?;
    let req: ZoneTokenRequest = parse_body(&body)?;
    let mut errs = ValidationError::new();
    check_zone_name(&req.zone, &mut errs);
    let scope = normalize_scope(req.scope.unwrap_or_default(), &mut errs);
    let valid_for = if req.valid_for.is_empty() {
        Some(MAX_VALIDITY)
    } else {
        parse_valid_for(&req.valid_for, &mut errs)
    };
    let (Some(valid_for), true) = (valid_for, errs.is_empty()) else {
        return Err(ApiError::invalid(errs));
    };
    let token = state.tokens.issue_zone(&req.zone, scope, valid_for).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store() -> SharedStore {
        Arc::new(aerie_store::MemoryStore::new())
    }

    async fn issuer(store: &SharedStore) -> TokenIssuer {
        TokenIssuer::load_or_create(store.clone()).await.unwrap()
    }

    async fn secret(store: &SharedStore, name: &str) -> Option<Resource> {
        store
            .get(ResourceType::GlobalSecret, "", name)
            .await
            .unwrap()
    }

    async fn put_secret(store: &SharedStore, name: &str, text: &str, labels: &[(&str, &str)]) {
        let r = Resource {
            meta: Meta {
                name: name.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Meta::default()
            },
            spec: Spec::GlobalSecret(SecretSpec {
                data: STANDARD.encode(text),
            }),
        };
        store.create(r, &crate::now_rfc3339()).await.unwrap();
    }

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[tokio::test]
    async fn issue_and_verify_with_scopes() {
        let store = store();
        let tokens = issuer(&store).await;
        let token = tokens
            .issue_zone("zone-1", scopes(&["ingress", "ingress"]), DAY)
            .await
            .unwrap();
        let claims = tokens
            .verify_zone_token(&token, "ingress")
            .await
            .unwrap()
            .claims;
        assert_eq!(claims.zone, "zone-1");
        assert_eq!(claims.scope, ["ingress"], "duplicates dropped");
        let err = tokens
            .verify_zone_token(&token, "cp")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the zone token of zone \"zone-1\" has scope ingress, not \"cp\": generate one with `kumactl generate zone-token --zone zone-1 --scope cp`"
        );
        assert!(tokens.verify_zone_token(&token, "egress").await.is_err());

        // No scope: all three.
        let all = tokens.issue_zone("zone-2", vec![], DAY).await.unwrap();
        for scope in ZONE_TOKEN_SCOPES {
            let c = tokens.verify_zone_token(&all, scope).await.unwrap().claims;
            assert_eq!(c.zone, "zone-2");
        }
        assert_eq!(
            tokens
                .verify_zone_token(&all, "cp")
                .await
                .unwrap()
                .claims
                .scope,
            ["cp", "ingress", "egress"]
        );
    }

    #[tokio::test]
    async fn the_public_key_secret_holds_only_the_public_key() {
        let store = store();
        let tokens = issuer(&store).await;
        assert!(secret(&store, ZONE_TOKEN_SIGNING_KEY).await.is_none());
        assert!(!tokens.publish_zone_public_key().await.unwrap());
        assert!(secret(&store, ZONE_TOKEN_PUBLIC_KEY).await.is_none());

        tokens
            .issue_zone("zone-1", scopes(&["cp"]), DAY)
            .await
            .unwrap();
        let private = secret_text(&secret(&store, ZONE_TOKEN_SIGNING_KEY).await.unwrap()).unwrap();
        assert!(private.contains("-----BEGIN PRIVATE KEY-----"));
        let public = secret(&store, ZONE_TOKEN_PUBLIC_KEY).await.unwrap();
        let pem = secret_text(&public).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        assert!(!pem.contains("PRIVATE"), "{pem}");
        let key = SigningKey::from_pkcs8_pem(&private).unwrap();
        assert_eq!(
            VerifyingKey::from_public_key_pem(&pem).unwrap(),
            key.verifying_key()
        );
        // A second token changes nothing.
        tokens.issue_zone("zone-1", vec![], DAY).await.unwrap();
        let again = secret(&store, ZONE_TOKEN_PUBLIC_KEY).await.unwrap();
        assert_eq!(again.meta.version, public.meta.version);

        // A stale public key (say the private key was replaced) is corrected.
        let other = SigningKey::generate().unwrap();
        let mut stale = again.clone();
        stale.spec = Spec::GlobalSecret(SecretSpec {
            data: STANDARD.encode(other.public_key_pem()),
        });
        store
            .update(stale, again.meta.version, &crate::now_rfc3339())
            .await
            .unwrap();
        assert!(tokens.publish_zone_public_key().await.unwrap());
        let fixed = secret_text(&secret(&store, ZONE_TOKEN_PUBLIC_KEY).await.unwrap()).unwrap();
        assert_eq!(fixed, key.public_key_pem());
    }

    #[tokio::test]
    async fn expired_revoked_and_forged_tokens_are_refused() {
        let store = store();
        let tokens = issuer(&store).await;
        tokens.issue_zone("zone-1", vec![], DAY).await.unwrap();
        let key = tokens.stored_zone_signing_key().await.unwrap().unwrap();
        let zone = ZoneClaims {
            zone: "zone-1".into(),
            scope: scopes(&["cp"]),
        };

        // Issued 100 s ago, valid for 10 s.
        let old = Claims::new(zone.clone(), unix_now() - 100, Duration::from_secs(10)).unwrap();
        let expired = sign_token(&key, KID, &old).unwrap();
        let err = tokens
            .verify_zone_token(&expired, "cp")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid zone token: token expired at "),
            "{err}"
        );

        let fresh = Claims::new(zone.clone(), unix_now(), DAY).unwrap();
        let token = sign_token(&key, KID, &fresh).unwrap();
        assert!(tokens.verify_zone_token(&token, "cp").await.is_ok());
        put_secret(
            &store,
            ZONE_TOKEN_REVOCATIONS,
            &format!("someone-else, {}", fresh.registered.jti),
            &[],
        )
        .await;
        assert_eq!(
            tokens
                .verify_zone_token(&token, "cp")
                .await
                .unwrap_err()
                .to_string(),
            "invalid zone token: it has been revoked"
        );

        let other = SigningKey::generate().unwrap();
        let forged = sign_token(
            &other,
            KID,
            &Claims::new(zone.clone(), unix_now(), DAY).unwrap(),
        )
        .unwrap();
        assert_eq!(
            tokens
                .verify_zone_token(&forged, "cp")
                .await
                .unwrap_err()
                .to_string(),
            "invalid zone token: invalid token signature"
        );
        let nameless = Claims::new(
            ZoneClaims {
                zone: String::new(),
                scope: scopes(&["cp"]),
            },
            unix_now(),
            DAY,
        )
        .unwrap();
        let nameless = sign_token(&key, KID, &nameless).unwrap();
        assert_eq!(
            tokens
                .verify_zone_token(&nameless, "cp")
                .await
                .unwrap_err()
                .to_string(),
            "invalid zone token: it names no zone"
        );
        // A user token is not a zone token, though signed by a key of this control plane.
        let user = tokens.issue_user("admin", vec![], DAY).unwrap();
        assert!(tokens.verify_zone_token(&user, "cp").await.is_err());
        assert!(
            tokens
                .verify_zone_token("not.a.token", "cp")
                .await
                .unwrap_err()
                .to_string()
                .starts_with("invalid zone token: malformed token")
        );
    }

    #[tokio::test]
    async fn a_zone_verifies_with_the_public_key_alone() {
        let global_store = store();
        let global = issuer(&global_store).await;
        let ingress = global
            .issue_zone("zone-1", scopes(&["ingress"]), DAY)
            .await
            .unwrap();

        // A zone control plane with nothing yet: a clear refusal, and no key made.
        let zone_store = store();
        let zone = issuer(&zone_store).await;
        assert_eq!(
            zone.verify_zone_token(&ingress, "ingress")
                .await
                .unwrap_err()
                .to_string(),
            "no zone token signing key: generate zone tokens on the global control plane"
        );
        assert!(secret(&zone_store, ZONE_TOKEN_SIGNING_KEY).await.is_none());

        // The global's public key arrives (as KDS stores it: labelled origin global).
        let public = secret(&global_store, ZONE_TOKEN_PUBLIC_KEY).await.unwrap();
        put_secret(
            &zone_store,
            ZONE_TOKEN_PUBLIC_KEY,
            &secret_text(&public).unwrap(),
            &[(ORIGIN_LABEL, ORIGIN_GLOBAL)],
        )
        .await;
        let claims = zone
            .verify_zone_token(&ingress, "ingress")
            .await
            .unwrap()
            .claims;
        assert_eq!(claims.zone, "zone-1");
        assert!(zone.verify_zone_token(&ingress, "egress").await.is_err());
        assert!(secret(&zone_store, ZONE_TOKEN_SIGNING_KEY).await.is_none());
        // The zone does not mint tokens of its own (the global would not accept them).
        let err = zone.issue_zone("zone-1", vec![], DAY).await.unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.detail.contains("on the global control plane"),
            "{}",
            err.detail
        );
        assert!(secret(&zone_store, ZONE_TOKEN_SIGNING_KEY).await.is_none());
        assert!(!zone.publish_zone_public_key().await.unwrap());

        // A token from some other key does not pass the public key.
        let stranger_store = store();
        let stranger = issuer(&stranger_store).await;
        let foreign = stranger.issue_zone("zone-1", vec![], DAY).await.unwrap();
        assert_eq!(
            zone.verify_zone_token(&foreign, "ingress")
                .await
                .unwrap_err()
                .to_string(),
            "invalid zone token: invalid token signature"
        );

        // A public key secret holding something else is reported, not trusted.
        let broken_store = store();
        put_secret(&broken_store, ZONE_TOKEN_PUBLIC_KEY, "garbage", &[]).await;
        let broken = issuer(&broken_store).await;
        let err = broken
            .verify_zone_token(&ingress, "ingress")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("secret zone-token-signing-public-key-1 holds no usable public key"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn bad_requests_name_the_field() {
        let store = store();
        let tokens = issuer(&store).await;
        let err = tokens
            .issue_zone("", scopes(&["cp", "dataplane", "Ingress"]), DAY)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let got: Vec<(String, String)> = err
            .invalid
            .iter()
            .map(|v| (v.field.clone(), v.message.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("zone".to_string(), "cannot be empty".to_string()),
                (
                    "scope[1]".to_string(),
                    "\"dataplane\" is not a valid scope: must be one of cp, ingress, egress"
                        .to_string()
                ),
                (
                    "scope[2]".to_string(),
                    "\"Ingress\" is not a valid scope: must be one of cp, ingress, egress"
                        .to_string()
                ),
            ]
        );
        let err = tokens.issue_zone("Zone_1", vec![], DAY).await.unwrap_err();
        assert_eq!(err.invalid[0].field, "zone");
        assert!(err.invalid[0].message.starts_with("invalid characters"));
        // Nothing was created for a refused request.
        assert!(secret(&store, ZONE_TOKEN_SIGNING_KEY).await.is_none());
    }

    async fn create_mesh(store: &SharedStore, name: &str) {
        let mesh = Resource {
            meta: Meta {
                name: name.into(),
                ..Meta::default()
            },
            spec: Spec::Mesh(aerie_core::spec::MeshSpec::default()),
        };
        store.create(mesh, &crate::now_rfc3339()).await.unwrap();
    }

    fn dp_claims(mesh: &str) -> DataplaneClaims {
        DataplaneClaims {
            name: Some("web-1".into()),
            mesh: mesh.into(),
            tags: BTreeMap::new(),
            proxy_type: None,
        }
    }

    /// Copies a mesh secret from one store to another, as KDS delivers it to a zone.
    async fn copy_secret(from: &SharedStore, to: &SharedStore, mesh: &str, name: &str) {
        let mut r = from
            .get(ResourceType::Secret, mesh, name)
            .await
            .unwrap()
            .unwrap();
        r.meta.version = 0;
        r.meta
            .labels
            .insert(ORIGIN_LABEL.into(), ORIGIN_GLOBAL.into());
        to.create(r, &crate::now_rfc3339()).await.unwrap();
    }

    #[tokio::test]
    async fn dataplane_token_refusals_say_whether_retrying_can_help() {
        let global_store = store();
        create_mesh(&global_store, "default").await;
        let global = issuer(&global_store).await;
        // A standalone or global control plane: a mesh without a key has no valid token,
        // and checking one creates no key.
        let token = {
            let other = store();
            create_mesh(&other, "default").await;
            issuer(&other)
                .await
                .issue_dataplane(dp_claims("default"), DAY)
                .await
                .unwrap()
        };
        let err = global
            .verify_dataplane_token("default", &token)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TokenRefusal::Invalid(m) if m.contains("has no dataplane token signing key")),
            "{err:?}"
        );
        assert_eq!(err.to_status().code(), tonic::Code::Unauthenticated);
        let key_name = dataplane_signing_key_name("default");
        assert!(
            crate::signing::load_existing(&global_store, "default", &key_name)
                .await
                .unwrap()
                .is_none(),
            "verifying created no key"
        );
        global.ensure_dataplane_key("default").await.unwrap();
        let token = global
            .issue_dataplane(dp_claims("default"), DAY)
            .await
            .unwrap();

        // A federated zone without the global's key yet: not yet, retry.
        let zone_store = store();
        create_mesh(&zone_store, "default").await;
        let zone = issuer(&zone_store).await.federated();
        let err = zone
            .verify_dataplane_token("default", &token)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            TokenRefusal::NotYet(
                "the dataplane token signing key of mesh \"default\" has not arrived from the global control plane yet".into()
            )
        );
        assert_eq!(err.to_status().code(), tonic::Code::Unavailable);
        zone.ensure_dataplane_key("default").await.unwrap();
        assert!(
            crate::signing::load_existing(&zone_store, "default", &key_name)
                .await
                .unwrap()
                .is_none(),
            "a federated zone never makes the key"
        );
        // The key arrives: the token is accepted, with its id.
        copy_secret(&global_store, &zone_store, "default", &key_name).await;
        let ok = zone
            .verify_dataplane_token("default", &token)
            .await
            .unwrap();
        assert_eq!(ok.claims.mesh, "default");
        assert!(!ok.id.is_empty());
        // Revoked on the global; the revocations arrive: refused for good.
        let revocations = Resource {
            meta: Meta {
                name: dataplane_revocations_name("default"),
                mesh: Some("default".into()),
                ..Meta::default()
            },
            spec: Spec::Secret(SecretSpec {
                data: STANDARD.encode(format!("other,{}", ok.id)),
            }),
        };
        global_store
            .create(revocations, &crate::now_rfc3339())
            .await
            .unwrap();
        copy_secret(
            &global_store,
            &zone_store,
            "default",
            &dataplane_revocations_name("default"),
        )
        .await;
        assert!(
            zone.dataplane_token_revoked("default", &ok.id)
                .await
                .unwrap()
        );
        let err = zone
            .verify_dataplane_token("default", &token)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            TokenRefusal::Invalid("invalid dataplane token: it has been revoked".into())
        );
        assert_eq!(err.to_status().code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn a_federated_zone_waits_for_the_zone_token_public_key() {
        let global_store = store();
        let global = issuer(&global_store).await;
        let ingress = global
            .issue_zone("zone-1", scopes(&["ingress"]), DAY)
            .await
            .unwrap();
        let zone_store = store();
        let zone = issuer(&zone_store).await.federated();
        let err = zone
            .verify_zone_token(&ingress, "ingress")
            .await
            .unwrap_err();
        assert!(matches!(err, TokenRefusal::NotYet(_)), "{err:?}");
        assert!(err.to_string().contains("has not arrived"), "{err}");
        let public = secret(&global_store, ZONE_TOKEN_PUBLIC_KEY).await.unwrap();
        put_secret(
            &zone_store,
            ZONE_TOKEN_PUBLIC_KEY,
            &secret_text(&public).unwrap(),
            &[(ORIGIN_LABEL, ORIGIN_GLOBAL)],
        )
        .await;
        let ok = zone.verify_zone_token(&ingress, "ingress").await.unwrap();
        assert!(!zone.zone_token_revoked(&ok.id).await.unwrap());
        // The global's revocation list, as received.
        put_secret(
            &zone_store,
            ZONE_TOKEN_REVOCATIONS,
            &format!(" {} ,x", ok.id),
            &[(ORIGIN_LABEL, ORIGIN_GLOBAL)],
        )
        .await;
        assert!(zone.zone_token_revoked(&ok.id).await.unwrap());
        assert!(!zone.zone_token_revoked("").await.unwrap());
        let err = zone
            .verify_zone_token(&ingress, "ingress")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            TokenRefusal::Invalid("invalid zone token: it has been revoked".into())
        );
        // A federated zone never mints zone tokens, even holding a key of its own.
        let err = zone.issue_zone("zone-1", vec![], DAY).await.unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }
}
