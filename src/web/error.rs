//! The one place where errors become HTTP: every error body is JSON with a stable
//! snake_case `error` code and a human `message`, except on planners' pages, which answer
//! the same status as an HTML page in the planner's language; internal causes are logged,
//! not sent.

use super::pages::{html, MessagePage};
use super::planner::PageContext;
use crate::db::DbError;
use crate::import::ImportError;
use crate::submit::FieldError;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
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
    #[error("the page expired; reload it and try again")]
    CsrfExpired,
}

/// Storage outages are usually short (a restart, space freed): clients are asked to come
/// back after this many seconds rather than hammer.
const RETRY_AFTER_SECS: &str = "5";

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
            ApiError::CsrfExpired => "csrf_expired",
        }
    }

    fn log(&self) {
        if let ApiError::Unavailable(cause) = self {
            tracing::error!(error = %cause, "request failed on storage");
        }
    }

    /// This error as a planner's page: 401 is the sign-in form, returning to the page
    /// asked for; the others a short page saying what happened.
    pub(super) fn page(&self, ctx: &PageContext) -> HttpResponse {
        self.log();
        let status = self.status_code();
        let t = &ctx.t;
        let mut response = if let ApiError::Unauthorized = self {
            super::session::login_page(
                ctx,
                status,
                "",
                &ctx.next,
                None,
                Some(t.get("sign-in-needed")),
            )
        } else {
            let (heading, body) = match self {
                ApiError::UnknownForm(_) | ApiError::NotFound => {
                    (t.get("not-found-title"), t.get("not-found-body"))
                }
                ApiError::Forbidden => {
                    (t.get("page-forbidden-title"), t.get("page-forbidden-body"))
                }
                ApiError::CsrfExpired => (t.get("page-expired-title"), t.get("page-expired-body")),
                ApiError::Unavailable(_) => {
                    (t.get("unavailable-title"), t.get("page-unavailable-body"))
                }
                ApiError::PayloadTooLarge(bytes) => (
                    t.get("page-too-large-title"),
                    t.with(
                        "page-too-large-body",
                        &[("mb", super::i18n::Arg::Number((bytes / 1024 / 1024) as f64))],
                    ),
                ),
                _ => (
                    t.get("page-bad-request-title"),
                    t.get("page-bad-request-body"),
                ),
            };
            let page = MessagePage {
                chrome: &ctx.chrome,
                heading,
                body,
                notes: Vec::new(),
                back: t.get("all-surveys"),
                back_href: format!("/dashboard?lang={}", ctx.lang),
            };
            html(status, page.render())
        };
        if matches!(self, ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::Db(db) => ApiError::Unavailable(db),
            ImportError::Csv(csv) => ApiError::BadRequest(format!("the CSV cannot be read: {csv}")),
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
            ApiError::Forbidden | ApiError::CsrfExpired => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable(_)) {
            response.insert_header((RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
            errors,
        })
    }
}
