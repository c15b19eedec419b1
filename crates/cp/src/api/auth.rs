//! Who is calling: loopback clients are admins (Kuma's `localhostIsAdmin`); everyone else
//! proves themselves with a user token (`Authorization: Bearer <jwt>`).
//!
//! A connection a mesh proxy relays to this host's loopback (an ingress forwarding a remote
//! caller, a sidecar forwarding to its application) arrives from
//! [`aerie_core::net::RELAY_SOURCE_V4`] and is not a local client: it needs a token like any
//! remote one.

use std::net::SocketAddr;

use aerie_core::net::is_local_client;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::{ApiError, AppState};

/// The group whose members may do anything (Kuma's name).
pub const ADMIN_GROUP: &str = "mesh-system:admin";

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Loopback client, or a token in the admin group.
    Admin,
    /// A valid token without the admin group.
    User { name: String },
    /// No token (reads of non-secret resources only).
    Anonymous,
}

impl Caller {
    /// Refuses anything but an admin: 401 without credentials, 403 with insufficient ones.
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::User { name } => Err(ApiError::forbidden(format!(
                "user \"{name}\" is not allowed to {what}: it needs the group {ADMIN_GROUP}"
            ))),
            Caller::Anonymous => Err(ApiError::unauthenticated(format!(
                "{what} requires a user token from clients outside this host: create one with `kumactl generate user-token` and add it with `kumactl config control-planes add --auth-type tokens --auth-conf token=...`"
            ))),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let header = parts.headers.get(axum::http::header::AUTHORIZATION);
        if let Some(h) = header {
            let value = h
                .to_str()
                .map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
            let token = value.strip_prefix("Bearer ").ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <user token>`")
            })?;
            let claims = state.tokens.verify_user_token(token.trim()).await?;
            return Ok(if claims.groups.iter().any(|g| g == ADMIN_GROUP) {
                Caller::Admin
            } else {
                Caller::User { name: claims.name }
            });
        }
        match peer {
            Some(addr) if state.localhost_is_admin && is_local_client(addr.ip()) => {
                Ok(Caller::Admin)
            }
            _ => Ok(Caller::Anonymous),
        }
    }
}
