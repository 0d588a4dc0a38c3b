//! Planners' dashboard: their surveys with responses by sex, and per survey the gaps
//! (largest and most significant first), every answer by sex as a chart with intervals,
//! responses over time, filters by `by` dimension and cell, downloads; the audit log for
//! admins. Signing in is by web session (`/login`).

use super::charts::{self, Row};
use super::pages::{html, Chrome};
use super::session::csrf_token;
use super::viewer::Viewer;
use super::AppState;
use crate::auth::{Account, Role};
use crate::db::{accounts, responses, DbError};
use crate::indicators::{self, IndicatorError, Query};
use crate::stats::{Indicator, Kind};
use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Deserialize;

pub struct FormRow {
    id: String,
    title: String,
    female: i64,
    male: i64,
    other: i64,
    total: i64,
    latest: String,
}

#[derive(Template)]
#[template(path = "dashboard_list.html")]
struct ListPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    admin: bool,
    forms: Vec<FormRow>,
}

pub struct GapRow {
    question: String,
    option: String,
    female: String,
    male: String,
    gap: String,
    q: String,
    significant: bool,
}

pub struct ChartView {
    caption: String,
    svg: String,
}

#[derive(Template)]
#[template(path = "dashboard_form.html")]
struct FormPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    admin: bool,
    id: String,
    title: String,
    responses: u64,
    sex_summary: String,
    min_cell: u64,
    alpha: f64,
    dimensions: Vec<String>,
    by: Option<String>,
    by_query: String,
    cells: Vec<String>,
    cell: Option<String>,
    gaps: Vec<GapRow>,
    suppressed: usize,
    timeline: String,
    charts: Vec<ChartView>,
}

pub struct AuditView {
    at: String,
    actor: String,
    action: String,
    form: String,
    detail: String,
}

pub struct FailedView {
    at: String,
    form: String,
    kind: String,
    to: String,
    attempts: i32,
    error: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    rows: Vec<AuditView>,
    failed: Vec<FailedView>,
}

fn to_login() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish()
}

fn signed_in(viewer: &Viewer) -> Option<&Account> {
    match viewer {
        Viewer::User(account) => Some(account),
        Viewer::Anonymous => None,
    }
}

fn chrome(state: &AppState) -> Chrome {
    Chrome::new(&state.catalog, "en", &[], "/dashboard")
}

fn unavailable(err: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %err, "a dashboard page failed on storage");
    HttpResponse::ServiceUnavailable().body("The database is unavailable; try again shortly.")
}

/// The forms a planner may read, with response counts by sex.
#[utoipa::path(get, path = "/dashboard", tag = "planners",
    responses(
        (status = 200, description = "The list", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /login"),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn list(state: web::Data<AppState>, viewer: Viewer, session: Session) -> HttpResponse {
    let Some(account) = signed_in(&viewer) else {
        return to_login();
    };
    let forms: Vec<_> = state
        .forms
        .all()
        .filter(|f| account.can_read(&f.id))
        .cloned()
        .collect();
    let ids: Vec<String> = forms.iter().map(|f| f.id.clone()).collect();
    let summaries = state
        .db
        .run_read(move |conn| {
            ids.iter()
                .map(|id| responses::sex_summary(conn, id).map_err(DbError::from))
                .collect::<Result<Vec<_>, DbError>>()
        })
        .await;
    let summaries = match summaries {
        Ok(s) => s,
        Err(err) => return unavailable(err),
    };
    let rows = forms
        .iter()
        .zip(summaries)
        .map(|(f, summary)| {
            let count = |value: &str| {
                summary
                    .iter()
                    .filter(|(s, _, _)| s.as_deref() == Some(value))
                    .map(|r| r.1)
                    .sum::<i64>()
            };
            let total: i64 = summary.iter().map(|r| r.1).sum();
            let (female, male) = (
                count(&f.disaggregation.sex.female),
                count(&f.disaggregation.sex.male),
            );
            FormRow {
                id: f.id.clone(),
                title: f.title.get("en", f.default_language()).to_owned(),
                female,
                male,
                other: total - female - male,
                total,
                latest: summary
                    .iter()
                    .filter_map(|r| r.2)
                    .max()
                    .map_or("—".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
            }
        })
        .collect();
    let page = ListPage {
        chrome: chrome(&state),
        csrf: csrf_token(&session),
        email: account.email.clone(),
        admin: account.role == Role::Admin,
        forms: rows,
    };
    html(StatusCode::OK, page.render())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// A `by` dimension.
    by: Option<String>,
    /// One level of that dimension.
    cell: Option<String>,
    /// Language of the labels.
    lang: Option<String>,
}

fn estimate(side: &crate::stats::Side, percent: bool) -> String {
    match side.estimate.flatten() {
        Some(e) if percent => format!("{:.1}%", e * 100.0),
        Some(e) => format!("{e:.2}"),
        None => "suppressed".to_owned(),
    }
}

fn gap_text(ind: &Indicator, percent: bool) -> String {
    let scale = if percent { 100.0 } else { 1.0 };
    let unit = if percent { " pp" } else { "" };
    match (ind.gap.difference, ind.gap.ci) {
        (Some(d), Some([lo, hi])) => format!(
            "{:+.1}{unit} [{:+.1}, {:+.1}]",
            d * scale,
            lo * scale,
            hi * scale
        ),
        (Some(d), None) => format!("{:+.1}{unit}", d * scale),
        _ => "—".to_owned(),
    }
}

fn side_point(side: &crate::stats::Side) -> Option<(f64, Option<[f64; 2]>)> {
    side.estimate.flatten().map(|e| (e, side.ci.flatten()))
}

/// Charts and the gap table of one form.
#[utoipa::path(get, path = "/dashboard/{form}", tag = "planners",
    params(("form" = String, Path, description = "Form id"), Filter),
    responses(
        (status = 200, description = "The dashboard", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /login"),
        (status = 403, description = "No grant for this form", content_type = "text/html", body = String),
        (status = 404, description = "Unknown form", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn form(
    state: web::Data<AppState>,
    viewer: Viewer,
    session: Session,
    path: web::Path<String>,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let Some(account) = signed_in(&viewer) else {
        return to_login();
    };
    let Some(form) = state.forms.get(&path) else {
        return HttpResponse::NotFound().body("No such survey.");
    };
    if !account.can_read(&form.id) {
        return HttpResponse::Forbidden().body("Your account has no access to this survey.");
    }
    let by = filter
        .by
        .clone()
        .filter(|b| form.disaggregation.by.contains(b));
    let query = Query {
        by: by.clone(),
        min_cell: state.settings.min_cell,
        alpha: 0.05,
        weighted: false,
        public: false,
    };
    let report_form = form.clone();
    let (female, male) = (
        form.disaggregation.sex.female.clone(),
        form.disaggregation.sex.male.clone(),
    );
    let form_id = form.id.clone();
    let result = state
        .db
        .run_read(move |conn| {
            let report = indicators::compute(conn, &report_form, &query)?;
            let days = responses::daily_counts(conn, &form_id, &female, &male, None)
                .map_err(DbError::from)?;
            Ok::<_, IndicatorError>((report, days))
        })
        .await;
    let (report, days) = match result {
        Ok(r) => r,
        Err(err) => return unavailable(err),
    };
    let cells: Vec<String> = by
        .as_ref()
        .and_then(|b| form.question(b))
        .map(|q| form.choices_of(q).iter().map(|c| c.value.clone()).collect())
        .unwrap_or_default();
    let cell = filter.cell.clone().filter(|c| cells.contains(c));
    let in_view = |ind: &&Indicator| match (&cell, &ind.group) {
        (None, None) => true,
        (Some(c), Some(g)) => &g.level == c,
        _ => false,
    };
    // Question and answer labels in the planner's chosen language (`?lang=`).
    let languages: Vec<&str> = form.languages.iter().map(String::as_str).collect();
    let lang = super::i18n::negotiate(
        filter.lang.as_deref(),
        None,
        &languages,
        form.default_language(),
    );
    let label = |id: &str| {
        form.question(id)
            .and_then(|q| q.label.as_ref())
            .map_or(id.to_owned(), |l| {
                l.get(&lang, form.default_language()).to_owned()
            })
    };
    let option_label = |question: &str, option: &Option<String>| {
        let Some(o) = option else {
            return String::new();
        };
        form.question(question)
            .and_then(|q| form.choices_of(q).iter().find(|c| &c.value == o))
            .map_or(o.clone(), |c| {
                c.label.get(&lang, form.default_language()).to_owned()
            })
    };
    let view: Vec<&Indicator> = report.report.indicators.iter().filter(in_view).collect();

    let mut ranked: Vec<&&Indicator> = view
        .iter()
        .filter(|i| {
            i.kind != Kind::Distribution && !i.suppressed && i.test.q_value.flatten().is_some()
        })
        .collect();
    let alpha = 0.05;
    let size = |i: &Indicator| {
        let d = i.gap.difference.unwrap_or(0.0).abs();
        // Means on their own scale: compare by the standardised difference.
        if i.kind == Kind::Mean {
            i.gap.hedges_g.flatten().unwrap_or(0.0).abs()
        } else {
            d
        }
    };
    ranked.sort_by(|a, b| {
        let sig = |i: &Indicator| i.test.q_value.flatten().is_some_and(|q| q < alpha);
        sig(b).cmp(&sig(a)).then(size(b).total_cmp(&size(a)))
    });
    let gaps = ranked
        .iter()
        .take(20)
        .map(|i| {
            let percent = i.kind == Kind::Proportion;
            let q = i.test.q_value.flatten().unwrap_or(1.0);
            GapRow {
                question: label(&i.question),
                option: if i.kind == Kind::Mean {
                    "mean".to_owned()
                } else {
                    option_label(&i.question, &i.option)
                },
                female: estimate(&i.female, percent),
                male: estimate(&i.male, percent),
                gap: gap_text(i, percent),
                q: format!("{q:.2e}"),
                significant: q < alpha,
            }
        })
        .collect();

    let mut charts = Vec::new();
    let mut questions: Vec<&str> = Vec::new();
    for i in &view {
        if !questions.contains(&i.question.as_str()) {
            questions.push(&i.question);
        }
    }
    for (n, question) in questions.iter().enumerate() {
        let shares: Vec<Row> = view
            .iter()
            .filter(|i| i.question == *question && i.kind == Kind::Proportion)
            .map(|i| Row {
                label: option_label(question, &i.option),
                female: side_point(&i.female),
                male: side_point(&i.male),
            })
            .collect();
        if !shares.is_empty() {
            let caption = format!("{}: share answering each option", label(question));
            let svg = charts::bars(&format!("c{n}p"), &caption, &shares, 1.0, true);
            charts.push(ChartView { caption, svg });
        }
        if let Some(mean) = view
            .iter()
            .find(|i| i.question == *question && i.kind == Kind::Mean)
        {
            let rows = [Row {
                label: "mean".to_owned(),
                female: side_point(&mean.female),
                male: side_point(&mean.male),
            }];
            let top = [mean.female.ci.flatten(), mean.male.ci.flatten()]
                .iter()
                .flatten()
                .map(|c| c[1])
                .fold(0.0f64, f64::max)
                .max(mean.female.estimate.flatten().unwrap_or(0.0))
                .max(mean.male.estimate.flatten().unwrap_or(0.0));
            let caption = format!("{}: mean by sex", label(question));
            let svg = charts::bars(&format!("c{n}m"), &caption, &rows, top * 1.1, false);
            charts.push(ChartView { caption, svg });
        }
    }
    let sex_summary = report
        .report
        .sex_counts
        .0
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                v.map_or("suppressed".to_owned(), |c| c.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let path = format!("/dashboard/{}", form.id);
    let mut chrome = Chrome::new(&state.catalog, &lang, &languages, &path);
    if let Some(b) = &by {
        for link in &mut chrome.switcher {
            link.href.push_str(&format!("&by={b}"));
        }
    }
    let page = FormPage {
        chrome,
        csrf: csrf_token(&session),
        email: account.email.clone(),
        admin: account.role == Role::Admin,
        id: form.id.clone(),
        title: form.title.get(&lang, form.default_language()).to_owned(),
        responses: report.report.responses,
        sex_summary,
        min_cell: report.report.min_cell,
        alpha,
        dimensions: form.disaggregation.by.clone(),
        by_query: by.as_ref().map_or(String::new(), |b| format!("?by={b}")),
        by,
        cells,
        cell,
        suppressed: view.iter().filter(|i| i.suppressed).count(),
        gaps,
        timeline: charts::timeline("Responses per day: women (solid) and men (dashed)", &days),
        charts,
    };
    html(StatusCode::OK, page.render())
}

/// Exports, imports and deletions, and notifications that failed; admins only.
#[utoipa::path(get, path = "/admin/audit", tag = "planners",
    responses(
        (status = 200, description = "The audit log", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /login"),
        (status = 403, description = "Not an admin", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn audit(state: web::Data<AppState>, viewer: Viewer, session: Session) -> HttpResponse {
    let Some(account) = signed_in(&viewer) else {
        return to_login();
    };
    if account.role != Role::Admin {
        return HttpResponse::Forbidden().body("Only admins see the audit log.");
    }
    let rows = match state
        .db
        .run(|conn| {
            let audit = accounts::recent_audit(conn, 500)?;
            let failed = crate::db::outbox::with_status(conn, "failed")?;
            Ok::<_, DbError>((audit, failed))
        })
        .await
    {
        Ok(rows) => rows,
        Err(err) => return unavailable(err),
    };
    let page = AuditPage {
        chrome: chrome(&state),
        csrf: csrf_token(&session),
        email: account.email.clone(),
        failed: rows
            .1
            .into_iter()
            .map(|f| FailedView {
                at: f.created_at.format("%Y-%m-%d %H:%M").to_string(),
                form: f.form_id,
                kind: f.kind,
                to: f.recipient,
                attempts: f.attempts,
                error: f.last_error.unwrap_or_default(),
            })
            .collect(),
        rows: rows
            .0
            .into_iter()
            .map(|r| AuditView {
                at: r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                actor: r.actor,
                action: r.action,
                form: r.form_id.unwrap_or_default(),
                detail: r.detail,
            })
            .collect(),
    };
    html(StatusCode::OK, page.render())
}

pub struct RejectedView {
    line: u64,
    reason: String,
}

#[derive(Template)]
#[template(path = "import_result.html")]
struct ImportPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    id: String,
    title: String,
    summary: String,
    rejected: Vec<RejectedView>,
}

/// Largest CSV accepted through the dashboard (the CLI takes any size).
const MAX_UPLOAD: usize = 20 * 1024 * 1024;

/// The fields of the import form: CSRF token, the option and the file.
async fn read_upload(mut multipart: Multipart) -> Result<(String, bool, Vec<u8>), String> {
    let (mut csrf, mut skip_invalid, mut file) = (String::new(), false, Vec::new());
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| e.to_string())?;
        let name = field.name().unwrap_or_default().to_owned();
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if data.len() + chunk.len() > MAX_UPLOAD {
                return Err(format!(
                    "the file is larger than {} MB",
                    MAX_UPLOAD / 1024 / 1024
                ));
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&data).into_owned(),
            "skip_invalid" => skip_invalid = !data.is_empty(),
            "file" => file = data,
            _ => {}
        }
    }
    Ok((csrf, skip_invalid, file))
}

/// A CSV of paper surveys uploaded by an admin (multipart, with the CSRF token).
#[utoipa::path(post, path = "/dashboard/{form}/import", tag = "planners",
    params(("form" = String, Path, description = "Form id")),
    request_body(content = Object, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The import report", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /login"),
        (status = 400, description = "Not a CSV upload", content_type = "text/html", body = String),
        (status = 403, description = "Not an admin, or the form expired", content_type = "text/html", body = String),
        (status = 404, description = "Unknown form", content_type = "text/html", body = String),
        (status = 422, description = "Rows were rejected: the report", content_type = "text/html", body = String)))]
pub async fn import(
    state: web::Data<AppState>,
    viewer: Viewer,
    session: Session,
    path: web::Path<String>,
    multipart: Multipart,
) -> HttpResponse {
    let Some(account) = signed_in(&viewer) else {
        return to_login();
    };
    if account.role != Role::Admin {
        return HttpResponse::Forbidden().body("Only admins import responses.");
    }
    let Some(form) = state.forms.get(&path) else {
        return HttpResponse::NotFound().body("No such survey.");
    };
    let (csrf, skip_invalid, file) = match read_upload(multipart).await {
        Ok(upload) => upload,
        Err(err) => {
            return HttpResponse::BadRequest().body(format!("The upload could not be read: {err}"))
        }
    };
    if !super::session::csrf_ok(&session, &csrf) {
        return HttpResponse::Forbidden()
            .body("The form expired; reload the page and import again.");
    }
    let import_form = form.clone();
    let actor = account.email.clone();
    let result = state
        .db
        .run(move |conn| {
            let report =
                crate::import::import_csv(conn, &import_form, file.as_slice(), skip_invalid)
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
            let detail = format!(
                "{} stored, {} rejected (dashboard upload)",
                report.stored,
                report.rejected.len()
            );
            crate::auth::audit(conn, &actor, "import", Some(&import_form.id), &detail)?;
            Ok::<_, DbError>(report)
        })
        .await;
    let report = match result {
        Ok(report) => report,
        Err(err) => return unavailable(err),
    };
    let nothing_stored = !skip_invalid && !report.rejected.is_empty();
    let summary = format!(
        "{} stored, {} already present, {} rejected.{}",
        report.stored,
        report.already_present,
        report.rejected.len(),
        if nothing_stored {
            " Nothing was stored: fix the rows below, or import the valid rows only."
        } else {
            ""
        }
    );
    let page = ImportPage {
        chrome: chrome(&state),
        csrf: csrf_token(&session),
        email: account.email.clone(),
        id: form.id.clone(),
        title: form.title.get("en", form.default_language()).to_owned(),
        summary,
        rejected: report
            .rejected
            .into_iter()
            .map(|r| RejectedView {
                line: r.line,
                reason: r.reason,
            })
            .collect(),
    };
    let status = if nothing_stored {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html(status, page.render())
}
