//! `GET /api/v1/forms/{form}/indicators` and `…/indicators.csv`.

use super::error::ErrorBody;
use super::viewer::Viewer;
use super::{ApiError, AppState};
use crate::indicators::{self, IndicatorError, IndicatorsReport, Query};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// A `disaggregation.by` dimension for sex × dimension cells.
    by: Option<String>,
    /// Small-cell threshold (at least the configured one).
    min_cell: Option<u64>,
    /// Significance level, 0 < alpha ≤ 0.5 (default 0.05).
    alpha: Option<f64>,
    /// Use the form's design weight.
    weighted: Option<bool>,
}

impl From<IndicatorError> for ApiError {
    fn from(err: IndicatorError) -> Self {
        match err {
            IndicatorError::Db(db) => ApiError::Unavailable(db),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

async fn report(
    state: &AppState,
    form: String,
    params: Params,
    viewer: Viewer,
) -> Result<IndicatorsReport, ApiError> {
    let form = state.forms.get(&form).ok_or(ApiError::UnknownForm(form))?;
    // Anyone reads a public form's indicators, with the public suppression rules;
    // otherwise a planner with the grant.
    let public = match viewer.require(&form.id) {
        Ok(_) => false,
        Err(_) if form.public_indicators && matches!(viewer, Viewer::Anonymous) => true,
        Err(err) => return Err(err),
    };
    let query = Query {
        by: params.by,
        min_cell: indicators::min_cell(params.min_cell, state.settings.min_cell),
        alpha: params.alpha.unwrap_or(0.05),
        weighted: params.weighted.unwrap_or(false),
        public,
    };
    state
        .db
        .run_read(move |conn| indicators::compute(conn, &form, &query))
        .await
        .map_err(ApiError::from)
}

/// Every answer by sex, with intervals, gaps, tests and suppression.
#[utoipa::path(get, path = "/api/v1/forms/{form}/indicators", tag = "planners",
    security((), ("token" = [])),
    params(("form" = String, Path, description = "Form id"), Params),
    responses(
        (status = 200, description = "The indicators report (public forms: no token, public suppression)", body = super::openapi::Indicators),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, description = "No credentials (private form)", body = ErrorBody),
        (status = 403, description = "No grant for this form", body = ErrorBody),
        (status = 404, description = "Unknown form", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn json(
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<Params>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let report = report(&state, path.into_inner(), params.into_inner(), viewer).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The indicators report as CSV, one row per indicator.
#[utoipa::path(get, path = "/api/v1/forms/{form}/indicators.csv", tag = "planners",
    security((), ("token" = [])),
    params(("form" = String, Path, description = "Form id"), Params),
    responses(
        (status = 200, description = "The indicators as CSV", content_type = "text/csv", body = String),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, description = "No credentials (private form)", body = ErrorBody),
        (status = 403, description = "No grant for this form", body = ErrorBody),
        (status = 404, description = "Unknown form", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn csv(
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<Params>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let report = report(&state, path.into_inner(), params.into_inner(), viewer).await?;
    let body = indicators::to_csv(&report).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{}-indicators.csv\"", report.form),
        ))
        .body(body))
}
