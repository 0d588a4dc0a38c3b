//! `DELETE /api/v1/forms/{form}/responses/{id}`: an admin removes one response (by its id
//! or the submission id it was sent with) for a data-subject request.

use super::error::ErrorBody;
use super::viewer::Viewer;
use super::{ApiError, AppState};
use actix_web::{http::header, web, HttpRequest, HttpResponse};

/// Deletes one response (data-subject request); admins only, with a bearer token, audited.
#[utoipa::path(delete, path = "/api/v1/forms/{form}/responses/{id}", tag = "planners", security(("token" = [])),
    params(("form" = String, Path, description = "Form id"),
           ("id" = String, Path, description = "Response id or the submission id it was sent with")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No credentials", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Unknown form or response", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn delete_response(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    viewer: Viewer,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // A signed-in browser could be made to send this by another page; a token cannot.
    // (SameSite=Lax cookies already stop that; deleting data does not rely on it alone.)
    if !request.headers().contains_key(header::AUTHORIZATION) {
        return Err(ApiError::Unauthorized);
    }
    let (form, id) = path.into_inner();
    let form = state
        .forms
        .get(&form)
        .ok_or_else(|| ApiError::UnknownForm(form.clone()))?;
    let actor = viewer.require_admin()?.email.clone();
    // No stored id holds a control character, and PostgreSQL refuses NUL in a parameter.
    if id.chars().any(char::is_control) {
        return Err(ApiError::NotFound);
    }
    let form_id = form.id.clone();
    let deleted = state
        .db
        .run(move |conn| crate::privacy::delete_response(conn, &form_id, &id, &actor))
        .await
        .map_err(ApiError::Unavailable)?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
