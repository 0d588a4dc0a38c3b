//! The opt-out link in every owner's mail. `GET` shows exactly which mail stops and asks
//! to confirm: it changes nothing, as mail scanners fetch links. `POST` records the
//! choice, from that page or straight from the mail provider (RFC 8058 one-click). The
//! signature in the path is the only authority, so there is no CSRF token: owners have
//! no account, and the link is what the mail gave them.

use super::i18n::Arg;
use super::pages::{html, message, Chrome};
use super::{read_limited, AppState};
use crate::db::outbox::{self, OptOut};
use crate::db::DbError;
use crate::form::Form;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "optout.html")]
struct OptOutPage {
    chrome: Chrome,
    heading: String,
    body: String,
    button: Option<String>,
    /// What the button asks for: `opt-out` or `opt-in`.
    action: &'static str,
}

/// What the page shows.
enum Shown {
    Receiving,
    Resumed,
    Stopped,
    /// Stopped for every form from the command line; the link cannot undo that.
    StoppedEverywhere,
}

/// The form of a link whose signature holds for its form and email.
fn verified(
    state: &AppState,
    (form, email, signature): &(String, String, String),
) -> Option<std::sync::Arc<Form>> {
    state
        .forms
        .get(form)
        .filter(|f| crate::notify::opt_out_signature_valid(&state.secret, &f.id, email, signature))
}

fn invalid(state: &AppState) -> HttpResponse {
    message(
        state,
        "en",
        StatusCode::NOT_FOUND,
        "optout-invalid-title",
        "optout-invalid-body",
        Vec::new(),
    )
}

fn render(state: &AppState, form: &Form, email: &str, shown: Shown) -> HttpResponse {
    let lang = crate::notify::mail_language(form);
    let c = &state.catalog;
    let args = [
        ("email", Arg::Text(email)),
        (
            "survey",
            Arg::Text(form.title.get(lang, form.default_language())),
        ),
    ];
    let (heading, body, button, action) = match shown {
        Shown::Receiving => (
            "optout-title",
            "optout-body",
            Some("optout-button"),
            "opt-out",
        ),
        Shown::Resumed => (
            "optout-resumed-title",
            "optout-body",
            Some("optout-button"),
            "opt-out",
        ),
        Shown::Stopped => (
            "optout-done-title",
            "optout-done-body",
            Some("optout-again"),
            "opt-in",
        ),
        Shown::StoppedEverywhere => ("optout-done-title", "optout-everywhere-body", None, ""),
    };
    let page = OptOutPage {
        chrome: Chrome::new(c, lang, &[], ""),
        heading: c.text_args(lang, heading, &args),
        body: c.text_args(lang, body, &args),
        button: button.map(|b| c.text(lang, b, &[])),
        action,
    };
    let mut response = html(StatusCode::OK, page.render());
    // The page names an email address: keep it out of shared caches and history.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unavailable(state: &AppState, form: &Form, err: DbError) -> HttpResponse {
    tracing::error!(error = %err, "reading or recording an opt-out failed");
    message(
        state,
        crate::notify::mail_language(form),
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable-title",
        "optout-unavailable-body",
        Vec::new(),
    )
}

fn shown_for(opt_out: OptOut) -> Shown {
    match opt_out {
        OptOut::None => Shown::Receiving,
        OptOut::ThisForm => Shown::Stopped,
        OptOut::EveryForm => Shown::StoppedEverywhere,
    }
}

/// Says which mail the link stops and asks to confirm; changes nothing.
#[utoipa::path(get, path = "/unsubscribe/{form}/{email}/{signature}", tag = "owners",
    params(("form" = String, Path), ("email" = String, Path), ("signature" = String, Path)),
    responses(
        (status = 200, description = "What stops, and a button to confirm (or to opt in again)", content_type = "text/html", body = String),
        (status = 404, description = "Not a valid link", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn page(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let Some(form) = verified(&state, &path) else {
        return invalid(&state);
    };
    let (form_id, email) = (form.id.clone(), path.1.clone());
    let current = state
        .db
        .run(move |c| outbox::opt_out_of(c, &email, &form_id).map_err(DbError::from))
        .await;
    match current {
        Ok(current) => render(&state, &form, &path.1, shown_for(current)),
        Err(err) => unavailable(&state, &form, err),
    }
}

/// Records the choice: `action=opt-in` resumes the mail; anything else — the mail
/// provider's `List-Unsubscribe=One-Click`, or `action=opt-out` — stops it.
#[utoipa::path(post, path = "/unsubscribe/{form}/{email}/{signature}", tag = "owners",
    params(("form" = String, Path), ("email" = String, Path), ("signature" = String, Path)),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`List-Unsubscribe=One-Click` (RFC 8058) or `action=opt-out`: stop; `action=opt-in`: resume"),
    responses(
        (status = 200, description = "Recorded; the page says what now reaches the owner", content_type = "text/html", body = String),
        (status = 404, description = "Not a valid link", content_type = "text/html", body = String),
        (status = 413, description = "The body is over the limit", content_type = "application/json", body = super::error::ErrorBody),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn record(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: web::Payload,
) -> Result<HttpResponse, super::ApiError> {
    let Some(form) = verified(&state, &path) else {
        return Ok(invalid(&state));
    };
    let body = read_limited(body, 4096).await?;
    // Not a urlencoded body (RFC 8058 also allows multipart): the one-click opt-out.
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let opt_in = fields.iter().any(|(k, v)| k == "action" && v == "opt-in");
    let (form_id, email) = (form.id.clone(), path.1.clone());
    let now = state
        .db
        .run(move |c| {
            if opt_in {
                outbox::opt_in(c, &email, Some(&form_id))?;
            } else {
                outbox::opt_out(c, &email, Some(&form_id))?;
            }
            outbox::opt_out_of(c, &email, &form_id).map_err(DbError::from)
        })
        .await;
    Ok(match now {
        Ok(OptOut::None) => render(&state, &form, &path.1, Shown::Resumed),
        Ok(current) => render(&state, &form, &path.1, shown_for(current)),
        Err(err) => unavailable(&state, &form, err),
    })
}
