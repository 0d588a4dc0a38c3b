//! The residents' pages: the list of open surveys, a survey as an accessible HTML form
//! that works without JavaScript, and its submission (urlencoded), in the visitor's language.

use super::i18n::{self, language_name, Catalog};
use super::{read_limited, ApiError, AppState};
use crate::form::{Form, Question, QuestionType};
use crate::submit::{self, FieldError, Stored};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;

/// How long a rendered form may be sent back.
const TOKEN_LIFETIME_SECS: i64 = 24 * 3600;

pub struct LangLink {
    pub code: String,
    pub name: String,
    pub href: String,
    pub current: bool,
}

/// What every page shares: its language, the switcher, the skip link.
pub struct Chrome {
    pub lang: String,
    pub switcher: Vec<LangLink>,
    pub language_label: String,
    pub skip_text: String,
}

impl Chrome {
    pub(super) fn new(catalog: &Catalog, lang: &str, languages: &[&str], path: &str) -> Chrome {
        let ui = i18n::ui_language(lang);
        Chrome {
            lang: lang.to_owned(),
            switcher: languages
                .iter()
                .map(|code| LangLink {
                    code: (*code).to_owned(),
                    name: language_name(code).to_owned(),
                    href: format!("{path}?lang={code}"),
                    current: *code == lang,
                })
                .collect(),
            language_label: catalog.text(ui, "language", &[]),
            skip_text: catalog.text(ui, "skip-to-questions", &[]),
        }
    }

    /// Keeps the page's other query parameters (filters…) in the switcher's links.
    pub(super) fn keeping_query(mut self, query: &str) -> Chrome {
        let kept: Vec<(String, String)> =
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "lang")
                .collect();
        if let Ok(rest) = serde_urlencoded::to_string(&kept) {
            if !rest.is_empty() {
                for link in &mut self.switcher {
                    link.href.push('&');
                    link.href.push_str(&rest);
                }
            }
        }
        self
    }
}

pub struct FormLink {
    pub id: String,
    pub lang: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    chrome: Chrome,
    heading: String,
    empty: String,
    forms: Vec<FormLink>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(super) struct MessagePage<'a> {
    pub chrome: &'a Chrome,
    pub heading: String,
    pub body: String,
    pub notes: Vec<String>,
    pub back: String,
    pub back_href: String,
}

pub enum FieldKind {
    GroupStart,
    GroupEnd,
    Note,
    Choices,
    Input,
}

pub struct OptionView {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// One question (or group boundary) as the template renders it.
pub struct Field {
    pub kind: FieldKind,
    pub id: String,
    pub label: String,
    pub hint: Option<String>,
    pub required: bool,
    pub error: Option<String>,
    /// Expressions as JSON for the page's script (empty when none).
    pub relevant: String,
    pub constraint: String,
    pub constraint_message: String,
    pub input_type: &'static str,
    pub likert: bool,
    pub options: Vec<OptionView>,
    pub value: String,
    pub inputmode: Option<&'static str>,
    pub step: Option<&'static str>,
    pub min: Option<String>,
    pub max: Option<String>,
    pub maxlength: Option<u32>,
    pub described_by: String,
}

pub struct SummaryError {
    pub target: String,
    pub label: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    chrome: Chrome,
    title: String,
    description: Option<String>,
    action: String,
    token: String,
    submission_id: String,
    calculations: String,
    fields: Vec<Field>,
    errors: Vec<SummaryError>,
    error_title: String,
    notes: Vec<String>,
    required: String,
    submit: String,
    choose_all: String,
    honeypot: String,
    /// What the live check says when a question has no `constraint_message`, as the
    /// server does.
    constraint_default: String,
}

pub(super) fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    match body {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(err) => {
            tracing::error!(error = %err, "rendering a page failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LangQuery {
    /// Language code (uk, kk, ru, en…); else `Accept-Language`, else the form's default.
    pub lang: Option<String>,
}

/// The open forms, in the visitor's language.
#[utoipa::path(get, path = "/", tag = "residents", params(LangQuery),
    responses(
        (status = 200, description = "The list of open forms", content_type = "text/html", body = String)))]
pub async fn index(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LangQuery>,
) -> HttpResponse {
    let lang = i18n::interface_language(&req, query.lang.as_deref());
    let now = Utc::now();
    let forms = state
        .forms
        .all()
        .filter(|f| f.is_open(now))
        .map(|f| {
            // Each survey in the visitor's language when it has it, else its own default.
            let form_lang = if f.languages.contains(&lang) {
                lang.clone()
            } else {
                f.default_language().to_owned()
            };
            FormLink {
                id: f.id.clone(),
                title: f.title.get(&form_lang, f.default_language()).to_owned(),
                description: f
                    .description
                    .as_ref()
                    .map(|d| d.get(&form_lang, f.default_language()).to_owned()),
                lang: form_lang,
            }
        })
        .collect();
    let page = IndexPage {
        chrome: Chrome::new(&state.catalog, &lang, &i18n::UI_LANGUAGES, "/"),
        heading: state.catalog.text(&lang, "open-surveys", &[]),
        empty: state.catalog.text(&lang, "no-open-surveys", &[]),
        forms,
    };
    html(StatusCode::OK, page.render())
}

pub(super) fn message(
    state: &AppState,
    lang: &str,
    status: StatusCode,
    title_id: &str,
    body_id: &str,
    notes: Vec<String>,
) -> HttpResponse {
    let ui = i18n::ui_language(lang);
    let page = MessagePage {
        chrome: &Chrome::new(&state.catalog, lang, &[], "/"),
        heading: state.catalog.text(ui, title_id, &[]),
        body: state.catalog.text(ui, body_id, &[]),
        notes,
        back: state.catalog.text(ui, "back-to-surveys", &[]),
        back_href: format!("/?lang={lang}"),
    };
    html(status, page.render())
}

/// The form named in the path, or the not-found page in the visitor's language.
fn find_form(
    state: &AppState,
    id: &str,
    query: &LangQuery,
    req: &HttpRequest,
) -> Result<std::sync::Arc<Form>, Box<HttpResponse>> {
    state.forms.get(id).ok_or_else(|| {
        let lang = i18n::interface_language(req, query.lang.as_deref());
        Box::new(message(
            state,
            &lang,
            StatusCode::NOT_FOUND,
            "not-found-title",
            "not-found-body",
            Vec::new(),
        ))
    })
}

/// The language of a page about `form`: `?lang=`, else the browser's choice among the
/// form's languages, else the form's default.
pub(super) fn form_language(form: &Form, query: Option<&str>, req: &HttpRequest) -> String {
    let available: Vec<&str> = form.languages.iter().map(String::as_str).collect();
    i18n::negotiate(
        query,
        i18n::accept_language(req),
        &available,
        form.default_language(),
    )
}

fn sign(secret: &[u8], form: &str, submission: &str, issued: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{form}|{submission}|{issued}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An anti-forgery token bound to the form, the submission id and the time it was issued.
fn issue_token(secret: &[u8], form: &str, submission: &str) -> String {
    let issued = Utc::now().timestamp();
    format!("{issued}.{}", sign(secret, form, submission, issued))
}

fn token_is_valid(secret: &[u8], form: &str, submission: &str, token: &str) -> bool {
    let Some((issued, signature)) = token.split_once('.') else {
        return false;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return false;
    };
    let age = Utc::now().timestamp() - issued;
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{form}|{submission}|{issued}").as_bytes());
    (0..=TOKEN_LIFETIME_SECS).contains(&age) && mac.verify_slice(&given).is_ok()
}

fn expr_json<T: serde::Serialize>(expr: &Option<T>) -> String {
    expr.as_ref()
        .and_then(|e| serde_json::to_string(e).ok())
        .unwrap_or_default()
}

/// The error message a resident reads, in their language.
fn error_text(
    state: &AppState,
    form: &Form,
    lang: &str,
    question: &Question,
    error: &FieldError,
) -> String {
    let ui = i18n::ui_language(lang);
    let c = &state.catalog;
    match error.code {
        "required" => c.text(ui, "error-required", &[]),
        "type" => c.text(ui, "error-type", &[]),
        "integer" => c.text(ui, "error-integer", &[]),
        "min" => c.text(
            ui,
            "error-min",
            &[("min", question.min.unwrap_or_default())],
        ),
        "max" => c.text(
            ui,
            "error-max",
            &[("max", question.max.unwrap_or_default())],
        ),
        "max_length" => c.text(
            ui,
            "error-max-length",
            &[("max", f64::from(question.max_length.unwrap_or(10_000)))],
        ),
        "choice" => c.text(ui, "error-choice", &[]),
        "date" => c.text(ui, "error-date", &[]),
        "constraint" => question
            .constraint_message
            .as_ref()
            .map(|m| m.get(lang, form.default_language()).to_owned())
            .unwrap_or_else(|| c.text(ui, "error-constraint", &[])),
        _ => c.text(ui, "error-constraint", &[]),
    }
}

struct Rendering<'a> {
    form: &'a Form,
    lang: &'a str,
    values: &'a HashMap<String, Vec<String>>,
    errors: &'a HashMap<String, String>,
}

pub(super) fn label_of(form: &Form, q: &Question, lang: &str) -> String {
    q.label
        .as_ref()
        .map(|l| l.get(lang, form.default_language()).to_owned())
        .unwrap_or_else(|| q.id.clone())
}

impl Rendering<'_> {
    fn field(&self, q: &Question) -> Field {
        let (form, lang) = (self.form, self.lang);
        let value = self
            .values
            .get(&q.id)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default();
        let hint = q
            .hint
            .as_ref()
            .map(|h| h.get(lang, form.default_language()).to_owned());
        let error = self.errors.get(&q.id).cloned();
        let mut described_by = vec![format!("error-{}", q.id)];
        if hint.is_some() {
            described_by.insert(0, format!("hint-{}", q.id));
        }
        let (kind, input_type) = match q.kind {
            QuestionType::SelectOne | QuestionType::Likert => (FieldKind::Choices, "radio"),
            QuestionType::SelectMultiple => (FieldKind::Choices, "checkbox"),
            QuestionType::Integer | QuestionType::Decimal => (FieldKind::Input, "number"),
            QuestionType::Date => (FieldKind::Input, "date"),
            QuestionType::Text if q.max_length.is_none_or(|m| m > 200) => {
                (FieldKind::Input, "textarea")
            }
            QuestionType::Text => (FieldKind::Input, "text"),
            QuestionType::Note => (FieldKind::Note, ""),
            QuestionType::Group => (FieldKind::GroupStart, ""),
            QuestionType::Calculate => (FieldKind::Note, ""),
        };
        if q.kind == QuestionType::SelectMultiple {
            described_by.push(format!("all-{}", q.id));
        }
        let chosen = self.values.get(&q.id);
        let options = form
            .choices_of(q)
            .iter()
            .map(|c| OptionView {
                value: c.value.clone(),
                label: c.label.get(lang, form.default_language()).to_owned(),
                checked: chosen.is_some_and(|v| v.contains(&c.value)),
            })
            .collect();
        let number = |x: Option<f64>| x.map(|v| v.to_string());
        Field {
            kind,
            id: q.id.clone(),
            // A group without a label only lays questions out: no heading.
            label: match (&q.label, q.kind) {
                (None, QuestionType::Group) => String::new(),
                _ => label_of(form, q, lang),
            },
            hint,
            required: q.required || form.sex.question == form.index[&q.id],
            error,
            relevant: expr_json(&q.compiled.relevant),
            constraint: expr_json(&q.compiled.constraint),
            constraint_message: q
                .constraint_message
                .as_ref()
                .map(|m| m.get(lang, form.default_language()).to_owned())
                .unwrap_or_default(),
            input_type,
            likert: q.kind == QuestionType::Likert,
            options,
            value,
            inputmode: match q.kind {
                QuestionType::Integer => Some("numeric"),
                QuestionType::Decimal => Some("decimal"),
                _ => None,
            },
            step: match q.kind {
                QuestionType::Integer => Some("1"),
                QuestionType::Decimal => Some("any"),
                _ => None,
            },
            min: number(q.min),
            max: number(q.max),
            maxlength: q.max_length,
            described_by: described_by.join(" "),
        }
    }

    /// Every question in form order, with group boundaries, calculations left out.
    fn fields(&self) -> Vec<Field> {
        let form = self.form;
        let mut out = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for (i, q) in form.questions.iter().enumerate() {
            while let Some(&top) = open.last() {
                if is_ancestor(form, top, i) {
                    break;
                }
                open.pop();
                out.push(group_end());
            }
            if q.kind == QuestionType::Calculate {
                continue;
            }
            out.push(self.field(q));
            if q.kind == QuestionType::Group {
                open.push(i);
            }
        }
        out.extend(open.iter().map(|_| group_end()));
        out
    }
}

fn is_ancestor(form: &Form, ancestor: usize, mut i: usize) -> bool {
    while let Some(p) = form.questions[i].compiled.parent {
        if p == ancestor {
            return true;
        }
        i = p;
    }
    false
}

fn group_end() -> Field {
    Field {
        kind: FieldKind::GroupEnd,
        id: String::new(),
        label: String::new(),
        hint: None,
        required: false,
        error: None,
        relevant: String::new(),
        constraint: String::new(),
        constraint_message: String::new(),
        input_type: "",
        likert: false,
        options: Vec::new(),
        value: String::new(),
        inputmode: None,
        step: None,
        min: None,
        max: None,
        maxlength: None,
        described_by: String::new(),
    }
}

/// The calculations, in evaluation order, for the page's script.
fn calculations_json(form: &Form) -> String {
    let list: Vec<serde_json::Value> = form
        .eval_order
        .iter()
        .map(|&i| &form.questions[i])
        .filter_map(|q| {
            let calc = q.compiled.calculation.as_ref()?;
            Some(serde_json::json!({ "id": q.id, "expr": calc, "relevant": q.compiled.relevant }))
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

struct Submitted {
    values: HashMap<String, Vec<String>>,
    errors: Vec<FieldError>,
    notes: Vec<String>,
}

fn render_form(
    state: &AppState,
    form: &Form,
    lang: &str,
    submission_id: &str,
    submitted: Option<&Submitted>,
) -> HttpResponse {
    let ui = i18n::ui_language(lang);
    let c = &state.catalog;
    // A fresh form shows each question's `default`; a resubmitted one what was sent.
    let defaults: HashMap<String, Vec<String>> = form
        .questions
        .iter()
        .filter_map(|q| {
            let default = q.default.as_ref()?;
            let values = match q.kind {
                QuestionType::SelectMultiple => {
                    default.split_whitespace().map(str::to_owned).collect()
                }
                _ => vec![default.clone()],
            };
            Some((q.id.clone(), values))
        })
        .collect();
    let values = submitted.map_or(&defaults, |s| &s.values);
    let mut errors_by_question = HashMap::new();
    let mut summary = Vec::new();
    for e in submitted.map(|s| s.errors.as_slice()).unwrap_or(&[]) {
        let Some(q) = form.question(&e.question) else {
            continue;
        };
        let text = error_text(state, form, lang, q, e);
        summary.push(SummaryError {
            target: format!("input-{}", q.id),
            label: label_of(form, q, lang),
            message: text.clone(),
        });
        errors_by_question.entry(q.id.clone()).or_insert(text);
    }
    let rendering = Rendering {
        form,
        lang,
        values,
        errors: &errors_by_question,
    };
    let languages: Vec<&str> = form.languages.iter().map(String::as_str).collect();
    let path = format!("/f/{}", form.id);
    let page = FormPage {
        chrome: Chrome::new(c, lang, &languages, &path),
        title: form.title.get(lang, form.default_language()).to_owned(),
        description: form
            .description
            .as_ref()
            .map(|d| d.get(lang, form.default_language()).to_owned()),
        action: format!("{path}?lang={lang}"),
        token: issue_token(&state.secret, &form.id, submission_id),
        submission_id: submission_id.to_owned(),
        calculations: calculations_json(form),
        fields: rendering.fields(),
        error_title: c.text(
            ui,
            "error-summary-title",
            &[("count", summary.len() as f64)],
        ),
        errors: summary,
        notes: submitted.map(|s| s.notes.clone()).unwrap_or_default(),
        required: c.text(ui, "required", &[]),
        submit: c.text(ui, "submit", &[]),
        choose_all: c.text(ui, "choose-all", &[]),
        honeypot: c.text(ui, "honeypot", &[]),
        constraint_default: c.text(ui, "error-constraint", &[]),
    };
    let status = if submitted.is_some_and(|s| !s.errors.is_empty()) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html(status, page.render())
}

/// The form as accessible HTML that works without JavaScript.
#[utoipa::path(get, path = "/f/{form}", tag = "residents",
    params(("form" = String, Path, description = "Form id"), LangQuery),
    responses(
        (status = 200, description = "The form", content_type = "text/html", body = String),
        (status = 404, description = "Unknown form", content_type = "text/html", body = String),
        (status = 409, description = "The form is closed", content_type = "text/html", body = String)))]
pub async fn form_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<LangQuery>,
) -> HttpResponse {
    let form = match find_form(&state, &path, &query, &req) {
        Ok(form) => form,
        Err(not_found) => return *not_found,
    };
    let lang = form_language(&form, query.lang.as_deref(), &req);
    if !form.is_open(Utc::now()) {
        return message(
            &state,
            &lang,
            StatusCode::CONFLICT,
            "closed-title",
            "closed-body",
            Vec::new(),
        );
    }
    render_form(
        &state,
        &form,
        &lang,
        &uuid::Uuid::new_v4().to_string(),
        None,
    )
}

/// The form's urlencoded answers; the thank-you page, or the form again with each error.
#[utoipa::path(post, path = "/f/{form}", tag = "residents",
    params(("form" = String, Path, description = "Form id"), LangQuery),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "Thank you: stored", content_type = "text/html", body = String),
        (status = 400, description = "Not a urlencoded form", content_type = "text/html", body = String),
        (status = 403, description = "The anti-forgery token is missing or expired", content_type = "text/html", body = String),
        (status = 404, description = "Unknown form", content_type = "text/html", body = String),
        (status = 409, description = "The form is closed, or answers changed under a used submission id", content_type = "text/html", body = String),
        (status = 413, description = "The body is over the limit", content_type = "text/html", body = String),
        (status = 422, description = "The form again, answers kept, each error beside its question", content_type = "text/html", body = String),
        (status = 429, description = "Rate limited", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn form_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<LangQuery>,
    payload: web::Payload,
) -> HttpResponse {
    let form = match find_form(&state, &path, &query, &req) {
        Ok(form) => form,
        Err(not_found) => return *not_found,
    };
    let lang = form_language(&form, query.lang.as_deref(), &req);
    let body = match read_limited(payload, state.settings.max_body_bytes).await {
        Ok(body) => body,
        Err(ApiError::PayloadTooLarge(_)) => {
            return message(
                &state,
                &lang,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large-title",
                "too-large-body",
                Vec::new(),
            )
        }
        Err(_) => {
            return message(
                &state,
                &lang,
                StatusCode::BAD_REQUEST,
                "expired-title",
                "expired-body",
                Vec::new(),
            )
        }
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        values.entry(k).or_default().push(v);
    }
    let field = |name: &str| {
        values
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    if !form.is_open(Utc::now()) {
        return message(
            &state,
            &lang,
            StatusCode::CONFLICT,
            "closed-title",
            "closed-body",
            Vec::new(),
        );
    }
    let submission_id = uuid::Uuid::parse_str(&field("_submission_id")).map(|u| u.to_string());
    let Ok(submission_id) = submission_id else {
        return message(
            &state,
            &lang,
            StatusCode::FORBIDDEN,
            "expired-title",
            "expired-body",
            Vec::new(),
        );
    };
    if !token_is_valid(&state.secret, &form.id, &submission_id, &field("_token")) {
        return message(
            &state,
            &lang,
            StatusCode::FORBIDDEN,
            "expired-title",
            "expired-body",
            Vec::new(),
        );
    }
    if !field("_website").is_empty() {
        // A bot filled the hidden field: thank it and keep nothing.
        return message(
            &state,
            &lang,
            StatusCode::CREATED,
            "thanks-title",
            "thanks-body",
            Vec::new(),
        );
    }

    let (mut answers, type_errors) = submit::answers_from_text(&form, &values);
    let today = Utc::now().date_naive();
    // Without JavaScript every question shows: answers that turn out not to apply are
    // dropped with a note, as the resident could not have known.
    let mut dropped = Vec::new();
    let outcome = loop {
        match submit::validate(&form, &answers, today) {
            Err(errors) if errors.iter().any(|e| e.code == "not_relevant") => {
                for e in errors.iter().filter(|e| e.code == "not_relevant") {
                    answers.remove(&e.question);
                    if let Some(q) = form.question(&e.question) {
                        dropped.push(label_of(&form, q, &lang));
                    }
                }
            }
            other => break other,
        }
    };
    let ui = i18n::ui_language(&lang);
    let notes: Vec<String> = if dropped.is_empty() {
        Vec::new()
    } else {
        vec![state
            .catalog
            .text_with(ui, "dropped-answers", "questions", &dropped.join("; "))]
    };
    let mut errors = type_errors;
    let valid = match outcome {
        Ok(valid) => Some(valid),
        Err(more) => {
            errors.extend(more);
            None
        }
    };
    let valid = match valid {
        Some(valid) if errors.is_empty() => valid,
        _ => {
            errors.sort_by_key(|e| form.index.get(&e.question).copied().unwrap_or(usize::MAX));
            let submitted = Submitted {
                values,
                errors,
                notes,
            };
            return render_form(&state, &form, &lang, &submission_id, Some(&submitted));
        }
    };
    let row = submit::build_row(&form, &valid, &answers, submission_id, Utc::now());
    let stored = state.writer.store(row).await;
    if let Ok(Stored::Created(meta)) = &stored {
        state.metrics.submission_stored(&meta.form_id);
    }
    match stored {
        Ok(
            Stored::Created(_)
            | Stored::Existing {
                same_answers: true, ..
            },
        ) => message(
            &state,
            &lang,
            StatusCode::CREATED,
            "thanks-title",
            "thanks-body",
            notes,
        ),
        Ok(Stored::Existing { .. }) => message(
            &state,
            &lang,
            StatusCode::CONFLICT,
            "already-sent-title",
            "already-sent-body",
            Vec::new(),
        ),
        Err(err) => {
            tracing::error!(error = %err, "storing a response from the form page failed");
            message(
                &state,
                &lang,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable-title",
                "unavailable-body",
                Vec::new(),
            )
        }
    }
}
