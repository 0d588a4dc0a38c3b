//! Planners' web sign-in: a session cookie (signed and encrypted with the secret key,
//! HttpOnly, SameSite=Lax, Secure behind https), a CSRF token kept in the session for every
//! state-changing form, and throttling of repeated failed sign-ins.

use super::pages::Chrome;
use super::AppState;
use crate::auth;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{time, Key, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const USER_KEY: &str = "user_id";
const CSRF_KEY: &str = "csrf";
/// Failed sign-ins for one email before it is locked out for `LOCKOUT`.
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(15 * 60);

pub fn middleware(secret: &[u8], secure: bool) -> SessionMiddleware<CookieSessionStore> {
    // A 64-byte key derived from the secret, whatever its length.
    let key = Key::from(Sha512::digest(secret).as_slice());
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name("genderlens_session".into())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(secure)
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(PersistentSession::default().session_ttl(time::Duration::hours(12)))
        .build()
}

/// The signed-in user's id, if any.
pub fn user_id(session: &Session) -> Option<String> {
    session.get::<String>(USER_KEY).ok().flatten()
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Some(token) = session.get::<String>(CSRF_KEY).ok().flatten() {
        return token;
    }
    let token = hex::encode(rand::random::<[u8; 16]>());
    let _ = session.insert(CSRF_KEY, &token);
    token
}

/// Whether a posted CSRF token is this session's.
pub fn csrf_ok(session: &Session, posted: &str) -> bool {
    session
        .get::<String>(CSRF_KEY)
        .ok()
        .flatten()
        .is_some_and(|t| !posted.is_empty() && t == posted)
}

/// Failed sign-ins per email, in this instance (documented: not shared between instances).
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    fn locked(&self, email: &str) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(email)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < LOCKOUT)
    }

    fn fail(&self, email: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures
            .entry(email.to_owned())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOCKOUT {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    fn clear(&self, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(email);
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    error: Option<String>,
}

fn login_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let page = LoginPage {
        chrome: Chrome::new(&state.catalog, "en", &[], "/login"),
        csrf: csrf_token(session),
        email: email.to_owned(),
        error: error.map(str::to_owned),
    };
    super::pages::html(status, page.render())
}

/// The sign-in page.
#[utoipa::path(get, path = "/login", tag = "planners",
    responses(
        (status = 200, description = "The sign-in form", content_type = "text/html", body = String)))]
pub async fn login_form(state: web::Data<AppState>, session: Session) -> HttpResponse {
    login_page(&state, &session, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
pub struct LoginFields {
    email: String,
    password: String,
    csrf: String,
}

/// Signs in with email, password and the page's CSRF token.
#[utoipa::path(post, path = "/login", tag = "planners",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: to /dashboard"),
        (status = 401, description = "Wrong email or password", content_type = "text/html", body = String),
        (status = 403, description = "The form expired", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed attempts", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn login(
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<LoginFields>,
) -> HttpResponse {
    let LoginFields {
        email,
        password,
        csrf,
    } = form.into_inner();
    let email = email.trim().to_lowercase();
    if !csrf_ok(&session, &csrf) {
        return login_page(
            &state,
            &session,
            StatusCode::FORBIDDEN,
            &email,
            Some("The form expired; please sign in again."),
        );
    }
    if state.throttle.locked(&email) {
        return login_page(
            &state,
            &session,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            Some("Too many failed attempts; try again in 15 minutes."),
        );
    }
    let lookup_email = email.clone();
    // argon2 is deliberately slow: verify on a blocking thread.
    let account = state
        .db
        .run(move |conn| {
            auth::authenticate_password(conn, &lookup_email, &password)
                .map_err(|e| crate::db::DbError::Unavailable(e.to_string()))
        })
        .await;
    match account {
        Ok(Some(account)) => {
            state.throttle.clear(&email);
            session.renew();
            let _ = session.insert(USER_KEY, &account.id);
            let _ = session.remove(CSRF_KEY);
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/dashboard"))
                .finish()
        }
        Ok(None) => {
            state.throttle.fail(&email);
            login_page(
                &state,
                &session,
                StatusCode::UNAUTHORIZED,
                &email,
                Some("The email or password is not right."),
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "sign-in failed on storage");
            login_page(
                &state,
                &session,
                StatusCode::SERVICE_UNAVAILABLE,
                &email,
                Some("Please try again in a moment."),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfField {
    csrf: String,
}

/// Signs out (CSRF-checked).
#[utoipa::path(post, path = "/logout", tag = "planners",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out: to /"),
        (status = 403, description = "The form expired", content_type = "text/html", body = String)))]
pub async fn logout(session: Session, form: web::Form<CsrfField>) -> HttpResponse {
    if !csrf_ok(&session, &form.csrf) {
        return HttpResponse::Forbidden()
            .body("The form expired; reload the page and sign out again.");
    }
    session.purge();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish()
}
