//! Planners' web sign-in: a session cookie (signed and encrypted with the secret key,
//! HttpOnly, SameSite=Lax, Secure behind https), a CSRF token kept in the session for every
//! state-changing form, and throttling of repeated failed sign-ins.

use super::i18n::Words;
use super::pages::{Chrome, LangQuery};
use super::planner::PageContext;
use super::ApiError;
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
const MAX_TRACKED_EMAILS: usize = 10_000;

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
        // Emails tried from everywhere must not grow the map without end: lapsed entries
        // go once it is large (the per-address limit keeps one client from filling it).
        if failures.len() >= MAX_TRACKED_EMAILS {
            failures.retain(|_, (_, since)| since.elapsed() < LOCKOUT);
        }
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
struct LoginPage<'a> {
    chrome: &'a Chrome,
    t: &'a Words,
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
}

/// The sign-in form; `next` is where signing in leads (a page of this site).
pub(super) fn login_page(
    ctx: &PageContext,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<String>,
    notice: Option<String>,
) -> HttpResponse {
    let page = LoginPage {
        chrome: &ctx.chrome,
        t: &ctx.t,
        csrf: csrf_token(&ctx.session),
        email: email.to_owned(),
        next: local_path(next).unwrap_or_default().to_owned(),
        error,
        notice,
    };
    super::pages::html(status, page.render())
}

/// `path` if it is a page of this site: a redirect elsewhere (`//host`, `/\host`, a scheme)
/// after signing in would lend the sign-in page's trust to a phishing site.
fn local_path(path: &str) -> Option<&str> {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    local.then_some(path)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// The page to open after signing in (a path on this site).
    next: Option<String>,
}

/// The sign-in page.
#[utoipa::path(get, path = "/login", tag = "planners", params(LangQuery, LoginQuery),
    responses(
        (status = 200, description = "The sign-in form", content_type = "text/html", body = String)))]
pub async fn login_form(ctx: PageContext, query: web::Query<LoginQuery>) -> HttpResponse {
    let next = query.next.as_deref().unwrap_or_default();
    login_page(&ctx, StatusCode::OK, "", next, None, None)
}

#[derive(Deserialize)]
pub struct LoginFields {
    email: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Signs in with email, password and the page's CSRF token.
#[utoipa::path(post, path = "/login", tag = "planners", params(LangQuery),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: to the page asked for, else /dashboard"),
        (status = 401, description = "Wrong email or password", content_type = "text/html", body = String),
        (status = 403, description = "The form expired", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed attempts", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn login(ctx: PageContext, form: web::Form<LoginFields>) -> HttpResponse {
    let LoginFields {
        email,
        password,
        csrf,
        next,
    } = form.into_inner();
    let (state, session) = (&ctx.state, &ctx.session);
    let email = email.trim().to_lowercase();
    let refuse = |status: StatusCode, message: &str| {
        login_page(&ctx, status, &email, &next, Some(ctx.t.get(message)), None)
    };
    if !csrf_ok(session, &csrf) {
        return refuse(StatusCode::FORBIDDEN, "sign-in-expired");
    }
    if state.throttle.locked(&email) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "sign-in-locked");
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
            let to = local_path(&next)
                .map_or_else(|| format!("/dashboard?lang={}", ctx.lang), str::to_owned);
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish()
        }
        Ok(None) => {
            state.throttle.fail(&email);
            refuse(StatusCode::UNAUTHORIZED, "sign-in-wrong")
        }
        Err(err) => {
            tracing::error!(error = %err, "sign-in failed on storage");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable-title")
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfField {
    csrf: String,
}

/// Signs out (CSRF-checked).
#[utoipa::path(post, path = "/logout", tag = "planners", params(LangQuery),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out: to /login"),
        (status = 403, description = "The form expired", content_type = "text/html", body = String)))]
pub async fn logout(ctx: PageContext, form: web::Form<CsrfField>) -> HttpResponse {
    if !csrf_ok(&ctx.session, &form.csrf) {
        return ApiError::CsrfExpired.page(&ctx);
    }
    ctx.session.purge();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/login?lang={}", ctx.lang)))
        .finish()
}
