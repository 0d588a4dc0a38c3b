//! `DELETE /api/v1/forms/{form}/responses/{id}`: an admin removes one response (by its id
//! or the submission id it was sent with) for a data-subject request.

use super::viewer::Viewer;
use super::{ApiError, AppState};
use actix_web::{web, HttpResponse};

pub async fn delete_response(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let (form, id) = path.into_inner();
    let form = state
        .forms
        .get(&form)
        .ok_or_else(|| ApiError::UnknownForm(form.clone()))?;
    let actor = viewer.require_admin()?.email.clone();
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
