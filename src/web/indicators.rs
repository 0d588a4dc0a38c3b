//! `GET /api/v1/forms/{form}/indicators` and `…/indicators.csv`.

use super::viewer::Viewer;
use super::{ApiError, AppState};
use crate::indicators::{self, IndicatorError, IndicatorsReport, Query};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    by: Option<String>,
    min_cell: Option<u64>,
    alpha: Option<f64>,
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
        // A reader may raise the suppression threshold, never lower it.
        min_cell: params.min_cell.unwrap_or(0).max(state.settings.min_cell),
        alpha: params.alpha.unwrap_or(0.05),
        weighted: params.weighted.unwrap_or(false),
        public,
    };
    state
        .db
        .run(move |conn| indicators::compute(conn, &form, &query))
        .await
        .map_err(ApiError::from)
}

pub async fn json(
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<Params>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let report = report(&state, path.into_inner(), params.into_inner(), viewer).await?;
    Ok(HttpResponse::Ok().json(report))
}

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
