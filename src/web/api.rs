//! JSON API handlers.

use super::error::ErrorBody;
use super::viewer::Viewer;
use super::{read_limited, ApiError, AppState};
use crate::form::Text;
use crate::submit::{self, Stored};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FormSummary<'a> {
    id: &'a str,
    version: u32,
    #[schema(value_type = Object)]
    title: &'a Text,
    #[schema(value_type = Vec<String>)]
    languages: &'a [String],
    open: bool,
}

/// The forms the caller may read.
#[utoipa::path(get, path = "/api/v1/forms", tag = "planners", security(("token" = [])),
    responses(
        (status = 200, description = "The forms the caller may read", body = Vec<FormSummary>),
        (status = 401, description = "No credentials", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn list_forms(
    state: web::Data<AppState>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let account = viewer.account()?;
    let now = Utc::now();
    let forms: Vec<FormSummary> = state
        .forms
        .all()
        .filter(|f| account.can_read(&f.id))
        .map(|f| FormSummary {
            id: &f.id,
            version: f.version,
            title: &f.title,
            languages: &f.languages,
            open: f.is_open(now),
        })
        .collect();
    Ok(HttpResponse::Ok().json(forms))
}

/// The normalized definition of a form.
#[utoipa::path(get, path = "/api/v1/forms/{form}", tag = "planners", security(("token" = [])),
    params(("form" = String, Path, description = "Form id")),
    responses(
        (status = 200, description = "The normalized form definition", body = Object),
        (status = 401, description = "No credentials", body = ErrorBody),
        (status = 403, description = "No grant for this form", body = ErrorBody),
        (status = 404, description = "Unknown form", body = ErrorBody)))]
pub async fn get_form(
    state: web::Data<AppState>,
    path: web::Path<String>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let form = state.forms.get(&id).ok_or(ApiError::UnknownForm(id))?;
    viewer.require(&form.id)?;
    Ok(HttpResponse::Ok().json(&*form))
}

/// The body of `POST /api/v1/forms/{form}/submissions`.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionBody {
    /// Question id → answer: a choice value, an array of values, a number, `YYYY-MM-DD` or text.
    #[schema(value_type = Object)]
    answers: serde_json::Map<String, serde_json::Value>,
    /// A UUID, bare or `uuid:…`; a resend with it stores nothing.
    #[schema(value_type = Option<String>, example = "6f1c7a4e-0d55-4f59-9f3c-1b2a3c4d5e6f")]
    #[validate(length(min = 1, max = 64), custom(function = "validate_submission_id"))]
    submission_id: Option<String>,
}

fn validate_submission_id(id: &str) -> Result<(), validator::ValidationError> {
    normalize_submission_id(id)
        .map(|_| ())
        .ok_or_else(|| validator::ValidationError::new("uuid"))
}

/// Accepts a UUID, bare or as KoboToolbox/ODK write it (`uuid:…`), in canonical form.
fn normalize_submission_id(id: &str) -> Option<String> {
    let bare = id.strip_prefix("uuid:").unwrap_or(id);
    uuid::Uuid::parse_str(bare).ok().map(|u| u.to_string())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Receipt {
    id: String,
    form: String,
    form_version: i32,
    received_at: String,
}

impl From<&crate::db::responses::ResponseMeta> for Receipt {
    fn from(meta: &crate::db::responses::ResponseMeta) -> Self {
        Receipt {
            id: meta.id.clone(),
            form: meta.form_id.clone(),
            form_version: meta.form_version,
            received_at: DateTime::<Utc>::from_naive_utc_and_offset(meta.received_at, Utc)
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }
}

/// Stores one response after validating every answer.
#[utoipa::path(post, path = "/api/v1/forms/{form}/submissions", tag = "residents",
    params(("form" = String, Path, description = "Form id")),
    request_body(content = SubmissionBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored", body = Receipt),
        (status = 200, description = "Sent again with the same answers: stored once, the first receipt", body = Receipt),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 404, description = "Unknown form", body = ErrorBody),
        (status = 409, description = "The form is closed, or the submission id was used with other answers", body = ErrorBody),
        (status = 413, description = "The body is over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid answers, each named", body = ErrorBody),
        (status = 429, description = "Rate limited (with Retry-After)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn submit(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let form = state.forms.get(&id).ok_or(ApiError::UnknownForm(id))?;

    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = state.settings.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let bytes = read_limited(payload, limit).await?;
    let body: SubmissionBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a valid submission: {e}")))?;
    body.validate().map_err(|_| {
        ApiError::BadRequest(
            "submission_id must be a UUID (optionally prefixed with `uuid:`)".into(),
        )
    })?;

    let now = Utc::now();
    if !form.is_open(now) {
        return Err(ApiError::FormClosed(form.id.clone()));
    }
    let valid =
        submit::validate(&form, &body.answers, now.date_naive()).map_err(ApiError::Validation)?;
    let submission_id = match &body.submission_id {
        Some(given) => normalize_submission_id(given).unwrap_or_else(|| given.clone()),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let row = submit::build_row(&form, &valid, &body.answers, submission_id, now);
    match state.writer.store(row).await? {
        Stored::Created(meta) => {
            state.metrics.submission_stored(&meta.form_id);
            Ok(HttpResponse::Created().json(Receipt::from(&meta)))
        }
        Stored::Existing {
            meta,
            same_answers: true,
        } => Ok(HttpResponse::Ok().json(Receipt::from(&meta))),
        Stored::Existing { .. } => Err(ApiError::SubmissionConflict),
    }
}
