//! Errors in Kuma's JSON shape (`type, status, title, detail, invalid_parameters[], details,
//! causes[]`).

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

    /// Kuma's answer to a request it failed on internally: `detail` is always `Internal
    /// Server Error`, `title` says what was being done.
    pub fn internal(title: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            title,
            "Internal Server Error",
        )
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
    /// Kuma's `types.Error` as its `HandleError` writes it: `details` repeats `detail`, and
    /// `invalid_parameters` (with their deprecated copy `causes`) appear only when there
    /// are any.
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "/std-errors",
            "status": self.status.as_u16(),
            "title": self.title,
            "detail": self.detail,
        });
        if !self.invalid.is_empty() {
            body["invalid_parameters"] = self
                .invalid
                .iter()
                .map(|v| json!({"field": v.field, "reason": v.message}))
                .collect();
        }
        body["details"] = json!(self.detail);
        if !self.invalid.is_empty() {
            body["causes"] = self
                .invalid
                .iter()
                .map(|v| json!({"field": v.field, "message": v.message}))
                .collect();
        }
        (self.status, Json(body)).into_response()
    }
}
