//! Errors in Kuma's JSON shape (`type, title, status, detail, invalid_parameters[]`).

use aerie_core::{ValidationError, Violation};
use aerie_store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API failure; rendered as Kuma's error body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    pub invalid: Vec<Violation>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            detail: detail.into(),
            invalid: Vec::new(),
        }
    }

    pub fn invalid(errs: ValidationError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Could not process a resource".into(),
            detail: "Resource is not valid".into(),
            invalid: errs.violations,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Could not find a resource", detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthenticated", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Access Denied", detail)
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::AlreadyExists { .. } | StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("{e}; read it again and retry"),
            ),
            StoreError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Store unavailable",
                e.to_string(),
            ),
            StoreError::Corrupt(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let params: Vec<_> = self
            .invalid
            .iter()
            .map(|v| json!({"field": v.field, "reason": v.message}))
            .collect();
        let body = json!({
            "type": "/std-errors",
            "status": self.status.as_u16(),
            "title": self.title,
            "detail": self.detail,
            "invalid_parameters": params,
        });
        (self.status, Json(body)).into_response()
    }
}
