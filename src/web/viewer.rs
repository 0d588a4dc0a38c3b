//! Who is asking: nobody, or a planner/admin identified by an API token or a signed-in
//! web session.

use super::{ApiError, AppState};
use crate::auth::{self, Account};
use actix_session::SessionExt;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

pub enum Viewer {
    Anonymous,
    User(Account),
}

impl Viewer {
    /// Planner access to one form: 401 without credentials, 403 without the grant.
    pub fn require(&self, form: &str) -> Result<&Account, ApiError> {
        match self {
            Viewer::Anonymous => Err(ApiError::Unauthorized),
            Viewer::User(account) if account.can_read(form) => Ok(account),
            Viewer::User(_) => Err(ApiError::Forbidden),
        }
    }

    /// An admin: 401 without credentials, 403 for planners.
    pub fn require_admin(&self) -> Result<&Account, ApiError> {
        match self {
            Viewer::Anonymous => Err(ApiError::Unauthorized),
            Viewer::User(account) if account.role == auth::Role::Admin => Ok(account),
            Viewer::User(_) => Err(ApiError::Forbidden),
        }
    }

    /// Any signed-in user.
    pub fn account(&self) -> Result<&Account, ApiError> {
        match self {
            Viewer::Anonymous => Err(ApiError::Unauthorized),
            Viewer::User(account) => Ok(account),
        }
    }
}

/// The API token of `Authorization: Bearer …`, which takes precedence over a session.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

impl FromRequest for Viewer {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Viewer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let session_user = super::session::user_id(&req.get_session());
        Box::pin(async move {
            let state = state.ok_or(ApiError::Unauthorized)?;
            let storage = |e: auth::AuthError| match e {
                auth::AuthError::Db(db) => db,
                other => crate::db::DbError::Unavailable(other.to_string()),
            };
            match (token, session_user) {
                (Some(token), _) => {
                    let account = state
                        .db
                        .run(move |conn| auth::authenticate_token(conn, &token).map_err(storage))
                        .await
                        .map_err(ApiError::Unavailable)?;
                    account.map(Viewer::User).ok_or(ApiError::Unauthorized)
                }
                (None, Some(id)) => {
                    let account = state
                        .db
                        .run(move |conn| auth::account_by_id(conn, &id).map_err(storage))
                        .await
                        .map_err(ApiError::Unavailable)?;
                    Ok(account.map_or(Viewer::Anonymous, Viewer::User))
                }
                (None, None) => Ok(Viewer::Anonymous),
            }
        })
    }
}
