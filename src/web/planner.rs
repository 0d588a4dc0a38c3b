//! What every planner page shares: the planner's language (`?lang=`, else the browser's,
//! else the default), its interface words, the chrome with a language switcher that keeps
//! the page's filters, the session, and the address to come back to after signing in.

use super::i18n::{self, Words};
use super::pages::{form_language, Chrome, LangQuery};
use super::{ApiError, AppState};
use crate::db::DbError;
use crate::form::Form;
use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::{ready, Ready};

pub(super) struct PageContext {
    pub state: web::Data<AppState>,
    pub session: Session,
    /// The language of the content (a form's labels); `t` is the interface's words for it.
    pub lang: String,
    pub t: Words,
    pub chrome: Chrome,
    /// This page (path and query), where signing in returns to.
    pub next: String,
}

fn query_lang(req: &HttpRequest) -> Option<String> {
    web::Query::<LangQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().lang)
}

impl PageContext {
    /// A page at `path` in `lang`, offering `languages`; the request's other query
    /// parameters are kept in the switcher and in `next`.
    fn new(
        state: web::Data<AppState>,
        req: &HttpRequest,
        lang: String,
        languages: &[&str],
        path: &str,
    ) -> PageContext {
        let query = req.query_string();
        PageContext {
            t: Words::new(&state.catalog, &lang),
            chrome: Chrome::new(&state.catalog, &lang, languages, path).keeping_query(query),
            next: if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query}")
            },
            session: req.get_session(),
            state,
            lang,
        }
    }

    /// A page about `form` (at `path`) in the form's languages; about an unknown form, in
    /// the interface's.
    pub fn for_form(
        state: web::Data<AppState>,
        req: &HttpRequest,
        form: Option<&Form>,
        path: &str,
    ) -> PageContext {
        let asked = query_lang(req);
        match form {
            Some(form) => {
                let languages: Vec<&str> = form.languages.iter().map(String::as_str).collect();
                let lang = form_language(form, asked.as_deref(), req);
                PageContext::new(state, req, lang, &languages, path)
            }
            None => {
                let lang = i18n::interface_language(req, asked.as_deref());
                PageContext::new(state, req, lang, &i18n::UI_LANGUAGES, path)
            }
        }
    }

    /// The page, or its error as a page in the planner's language.
    pub fn answer(&self, result: Result<HttpResponse, ApiError>) -> HttpResponse {
        result.unwrap_or_else(|err| err.page(self))
    }
}

/// A page of no one form, in the interface languages.
impl FromRequest for PageContext {
    type Error = ApiError;
    type Future = Ready<Result<PageContext, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let context = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .map(|state| PageContext::for_form(state, req, None, req.path()))
            .ok_or_else(|| {
                ApiError::Unavailable(DbError::Unavailable(
                    "the application state is missing".into(),
                ))
            });
        ready(context)
    }
}
