//! The one place where errors become HTTP: every error body is JSON with a stable
//! snake_case `error` code and a human `message`; internal causes are logged, not sent.

use crate::db::DbError;
use crate::submit::FieldError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no form `{0}`")]
    UnknownForm(String),
    #[error("form `{0}` is not accepting responses")]
    FormClosed(String),
    #[error("this submission_id was already used with different answers")]
    SubmissionConflict,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("some answers are not valid")]
    Validation(Vec<FieldError>),
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable(#[source] DbError),
    #[error("not found")]
    NotFound,
    #[error("sign in or send a valid token to read this")]
    Unauthorized,
    #[error("your account has no access to this form")]
    Forbidden,
}

/// Every error answer of the API: a stable snake_case code and a message that names the
/// problem; `errors` lists each invalid answer of a submission.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    #[schema(example = "validation_failed")]
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnknownForm(_) => "unknown_form",
            ApiError::FormClosed(_) => "form_closed",
            ApiError::SubmissionConflict => "submission_conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NotFound => "not_found",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        ApiError::Unavailable(err)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownForm(_) | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::FormClosed(_) | ApiError::SubmissionConflict => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unavailable(cause) = self {
            tracing::error!(error = %cause, "request failed on storage");
        }
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable(_)) {
            // Storage outages are usually short (a restart, space freed): ask clients to
            // come back soon rather than hammer.
            response.insert_header(("retry-after", "5"));
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
            errors,
        })
    }
}
