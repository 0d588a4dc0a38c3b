//! Planners' dashboard: their surveys with responses by sex, and per survey the gaps
//! (largest and most significant first), every answer by sex as a chart with intervals,
//! responses over time, filters by `by` dimension and cell, downloads; the audit log for
//! admins. Signing in is by web session (`/login`).

use super::charts::{self, ChartWords, Row};
use super::i18n::{Arg, Words};
use super::pages::{html, Chrome, LangQuery};
use super::planner::PageContext;
use super::session::csrf_token;
use super::viewer::Viewer;
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::db::{accounts, responses, DbError};
use crate::form::Form;
use crate::import::ImportError;
use crate::indicators::{self, IndicatorError, Query};
use crate::stats::{Indicator, Kind};
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
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
struct ListPage<'a> {
    chrome: &'a Chrome,
    t: &'a Words,
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

/// One option of a filter: the value sent, the label shown.
pub struct FilterOption {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "dashboard_form.html")]
struct FormPage<'a> {
    chrome: &'a Chrome,
    t: &'a Words,
    csrf: String,
    email: String,
    admin: bool,
    id: String,
    title: String,
    summary: String,
    dimensions: Vec<FilterOption>,
    by_query: String,
    cells: Vec<FilterOption>,
    cell_label: Option<String>,
    gaps_caption: String,
    gaps: Vec<GapRow>,
    suppressed_note: Option<String>,
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
struct AuditPage<'a> {
    chrome: &'a Chrome,
    t: &'a Words,
    csrf: String,
    email: String,
    rows: Vec<AuditView>,
    failed: Vec<FailedView>,
}

/// The forms a planner may read, with response counts by sex.
#[utoipa::path(get, path = "/dashboard", tag = "planners", params(LangQuery),
    responses(
        (status = 200, description = "The list", content_type = "text/html", body = String),
        (status = 401, description = "Not signed in: the sign-in form", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn list(ctx: PageContext, viewer: Result<Viewer, ApiError>) -> HttpResponse {
    ctx.answer(list_page(&ctx, viewer).await)
}

async fn list_page(
    ctx: &PageContext,
    viewer: Result<Viewer, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let viewer = viewer?;
    let account = viewer.account()?;
    let state = &ctx.state;
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
        .await?;
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
                title: f.title.get(&ctx.lang, f.default_language()).to_owned(),
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
        chrome: &ctx.chrome,
        t: &ctx.t,
        csrf: csrf_token(&ctx.session),
        email: account.email.clone(),
        admin: account.role == Role::Admin,
        forms: rows,
    };
    Ok(html(StatusCode::OK, page.render()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// A `by` dimension.
    by: Option<String>,
    /// One level of that dimension.
    cell: Option<String>,
}

fn estimate(t: &Words, side: &crate::stats::Side, percent: bool) -> String {
    match side.estimate.flatten() {
        Some(e) if percent => format!("{:.1}%", e * 100.0),
        Some(e) => format!("{e:.2}"),
        None => t.get("suppressed"),
    }
}

fn gap_text(t: &Words, ind: &Indicator, percent: bool) -> String {
    let scale = if percent { 100.0 } else { 1.0 };
    let unit = if percent {
        format!(" {}", t.get("unit-pp"))
    } else {
        String::new()
    };
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
    params(("form" = String, Path, description = "Form id"), Filter, LangQuery),
    responses(
        (status = 200, description = "The dashboard", content_type = "text/html", body = String),
        (status = 401, description = "Not signed in: the sign-in form", content_type = "text/html", body = String),
        (status = 403, description = "No grant for this form", content_type = "text/html", body = String),
        (status = 404, description = "Unknown form", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn form(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Result<Viewer, ApiError>,
    path: web::Path<String>,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let form = state.forms.get(&path);
    let ctx = PageContext::for_form(state, &req, form.as_deref(), req.path());
    ctx.answer(form_page(&ctx, viewer, form, &path, &filter).await)
}

async fn form_page(
    ctx: &PageContext,
    viewer: Result<Viewer, ApiError>,
    form: Option<std::sync::Arc<Form>>,
    id: &str,
    filter: &Filter,
) -> Result<HttpResponse, ApiError> {
    let viewer = viewer?;
    viewer.account()?;
    let form = form.ok_or_else(|| ApiError::UnknownForm(id.to_owned()))?;
    let account = viewer.require(&form.id)?;
    let (state, t, lang) = (&ctx.state, &ctx.t, ctx.lang.as_str());
    let by = filter
        .by
        .clone()
        .filter(|b| form.disaggregation.by.contains(b));
    let levels = by
        .as_ref()
        .and_then(|b| form.question(b))
        .map(|q| form.choices_of(q))
        .unwrap_or_default();
    let cell = filter
        .cell
        .clone()
        .filter(|c| levels.iter().any(|l| &l.value == c));
    // The stored row keeps each `by` answer in the column of its position.
    let timeline_cell = by
        .as_ref()
        .and_then(|b| form.disaggregation.by.iter().position(|d| d == b))
        .zip(cell.clone());
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
    let (report, days) = state
        .db
        .run_read(move |conn| {
            let report = indicators::compute(conn, &report_form, &query)?;
            let cell = timeline_cell.as_ref().map(|(i, c)| (*i, c.as_str()));
            let days = responses::daily_counts(conn, &form_id, &female, &male, cell)
                .map_err(DbError::from)?;
            Ok::<_, IndicatorError>((report, days))
        })
        .await?;
    let in_view = |ind: &&Indicator| match (&cell, &ind.group) {
        (None, None) => true,
        (Some(c), Some(g)) => &g.level == c,
        _ => false,
    };
    // Question and answer labels in the planner's language.
    let label = |id: &str| form.question_label(id, lang);
    let option_label = |question: &str, option: &Option<String>| {
        option
            .as_deref()
            .map_or_else(String::new, |o| form.choice_label(question, o, lang))
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
    let mean = t.get("mean");
    let gaps = ranked
        .iter()
        .take(20)
        .map(|i| {
            let percent = i.kind == Kind::Proportion;
            let q = i.test.q_value.flatten().unwrap_or(1.0);
            GapRow {
                question: label(&i.question),
                option: if i.kind == Kind::Mean {
                    mean.clone()
                } else {
                    option_label(&i.question, &i.option)
                },
                female: estimate(t, &i.female, percent),
                male: estimate(t, &i.male, percent),
                gap: gap_text(t, i, percent),
                q: format!("{q:.2e}"),
                significant: q < alpha,
            }
        })
        .collect();

    let words = ChartWords {
        women: t.get("col-women"),
        men: t.get("col-men"),
        suppressed: t.get("suppressed"),
        interval: t.get("chart-interval"),
    };
    let mut charts = Vec::new();
    let mut questions: Vec<&str> = Vec::new();
    for i in &view {
        if !questions.contains(&i.question.as_str()) {
            questions.push(&i.question);
        }
    }
    for (n, question) in questions.iter().enumerate() {
        let name = label(question);
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
            let caption = t.with("chart-shares", &[("question", Arg::Text(&name))]);
            let svg = charts::bars(&words, &format!("c{n}p"), &caption, &shares, 1.0, true);
            charts.push(ChartView { caption, svg });
        }
        if let Some(m) = view
            .iter()
            .find(|i| i.question == *question && i.kind == Kind::Mean)
        {
            let rows = [Row {
                label: mean.clone(),
                female: side_point(&m.female),
                male: side_point(&m.male),
            }];
            let top = [m.female.ci.flatten(), m.male.ci.flatten()]
                .iter()
                .flatten()
                .map(|c| c[1])
                .fold(0.0f64, f64::max)
                .max(m.female.estimate.flatten().unwrap_or(0.0))
                .max(m.male.estimate.flatten().unwrap_or(0.0));
            let caption = t.with("chart-mean", &[("question", Arg::Text(&name))]);
            let svg = charts::bars(&words, &format!("c{n}m"), &caption, &rows, top * 1.1, false);
            charts.push(ChartView { caption, svg });
        }
    }
    let sex = &form.disaggregation.sex.question;
    let by_sex = report
        .report
        .sex_counts
        .0
        .iter()
        .map(|(value, n)| {
            let n = n.map_or_else(|| t.get("suppressed"), |c| c.to_string());
            format!("{} {n}", form.choice_label(sex, value, lang))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let min_cell = Arg::Number(report.report.min_cell as f64);
    // Planners read non-public reports, where the total is never hidden.
    let responses = report.report.responses.unwrap_or_default();
    let summary = if responses == 0 {
        t.get("dash-summary-empty")
    } else {
        t.with(
            "dash-summary",
            &[
                ("count", Arg::Number(responses as f64)),
                ("by_sex", Arg::Text(&by_sex)),
                ("min", min_cell),
            ],
        )
    };
    let suppressed = view.iter().filter(|i| i.suppressed).count();
    let timeline = {
        let (first, last) = (days.first(), days.last());
        let desc = match (first, last) {
            (Some(first), Some(last)) => t.with(
                "chart-timeline-desc",
                &[
                    ("first", Arg::Text(&first.0)),
                    ("last", Arg::Text(&last.0)),
                    (
                        "female",
                        Arg::Number(days.iter().map(|d| d.1).sum::<u64>() as f64),
                    ),
                    (
                        "male",
                        Arg::Number(days.iter().map(|d| d.2).sum::<u64>() as f64),
                    ),
                    (
                        "max",
                        Arg::Number(days.iter().map(|d| d.1.max(d.2)).max().unwrap_or(0) as f64),
                    ),
                ],
            ),
            _ => t.get("chart-timeline-empty"),
        };
        charts::timeline(&t.get("chart-timeline"), &desc, &days)
    };
    let page = FormPage {
        chrome: &ctx.chrome,
        t,
        csrf: csrf_token(&ctx.session),
        email: account.email.clone(),
        admin: account.role == Role::Admin,
        id: form.id.clone(),
        title: form.title.get(lang, form.default_language()).to_owned(),
        summary,
        dimensions: form
            .disaggregation
            .by
            .iter()
            .map(|d| FilterOption {
                value: d.clone(),
                label: label(d),
                selected: by.as_deref() == Some(d.as_str()),
            })
            .collect(),
        by_query: by.as_ref().map_or(String::new(), |b| format!("?by={b}")),
        cells: levels
            .iter()
            .map(|l| FilterOption {
                value: l.value.clone(),
                label: l.label.get(lang, form.default_language()).to_owned(),
                selected: cell.as_deref() == Some(l.value.as_str()),
            })
            .collect(),
        cell_label: by
            .as_ref()
            .zip(cell.as_ref())
            .map(|(b, c)| form.choice_label(b, c, lang)),
        gaps_caption: t.with("dash-gaps-caption", &[("alpha", Arg::Number(alpha))]),
        gaps,
        suppressed_note: (suppressed > 0).then(|| {
            t.with(
                "dash-suppressed-note",
                &[("count", Arg::Number(suppressed as f64)), ("min", min_cell)],
            )
        }),
        timeline,
        charts,
    };
    Ok(html(StatusCode::OK, page.render()))
}

/// An audit action in the planner's language (unknown ones as recorded).
fn action_label(t: &Words, action: &str) -> String {
    match action {
        "export" => t.get("audit-action-export"),
        "import" => t.get("audit-action-import"),
        "purge" => t.get("audit-action-purge"),
        "delete response" => t.get("audit-action-delete"),
        other => other.to_owned(),
    }
}

/// Exports, imports and deletions, and notifications that failed; admins only.
#[utoipa::path(get, path = "/admin/audit", tag = "planners", params(LangQuery),
    responses(
        (status = 200, description = "The audit log", content_type = "text/html", body = String),
        (status = 401, description = "Not signed in: the sign-in form", content_type = "text/html", body = String),
        (status = 403, description = "Not an admin", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn audit(ctx: PageContext, viewer: Result<Viewer, ApiError>) -> HttpResponse {
    ctx.answer(audit_page(&ctx, viewer).await)
}

async fn audit_page(
    ctx: &PageContext,
    viewer: Result<Viewer, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let viewer = viewer?;
    let account = viewer.require_admin()?;
    let (audit, failed) = ctx
        .state
        .db
        .run(|conn| {
            let audit = accounts::recent_audit(conn, 500)?;
            let failed = crate::db::outbox::with_status(conn, "failed")?;
            Ok::<_, DbError>((audit, failed))
        })
        .await?;
    let page = AuditPage {
        chrome: &ctx.chrome,
        t: &ctx.t,
        csrf: csrf_token(&ctx.session),
        email: account.email.clone(),
        failed: failed
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
        rows: audit
            .into_iter()
            .map(|r| AuditView {
                at: r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                actor: r.actor,
                action: action_label(&ctx.t, &r.action),
                form: r.form_id.unwrap_or_default(),
                detail: r.detail,
            })
            .collect(),
    };
    Ok(html(StatusCode::OK, page.render()))
}

pub struct RejectedView {
    line: u64,
    reason: String,
}

#[derive(Template)]
#[template(path = "import_result.html")]
struct ImportPage<'a> {
    chrome: &'a Chrome,
    t: &'a Words,
    csrf: String,
    email: String,
    id: String,
    heading: String,
    back: String,
    summary: String,
    rejected: Vec<RejectedView>,
}

/// Largest CSV accepted through the dashboard (the CLI takes any size).
const MAX_UPLOAD: usize = 20 * 1024 * 1024;

/// The fields of the import form: CSRF token, the option and the file.
async fn read_upload(mut multipart: Multipart) -> Result<(String, bool, Vec<u8>), ApiError> {
    let unreadable = |e: actix_multipart::MultipartError| {
        ApiError::BadRequest(format!("the upload cannot be read: {e}"))
    };
    let (mut csrf, mut skip_invalid, mut file) = (String::new(), false, Vec::new());
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(unreadable)?;
        let name = field.name().unwrap_or_default().to_owned();
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(unreadable)?;
            if data.len() + chunk.len() > MAX_UPLOAD {
                return Err(ApiError::PayloadTooLarge(MAX_UPLOAD));
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

/// A CSV of paper surveys uploaded by an admin: multipart, with the page's CSRF token when
/// signed in by session (a Bearer token is never sent by a browser on its own, so API
/// callers need none).
#[utoipa::path(post, path = "/dashboard/{form}/import", tag = "planners",
    params(("form" = String, Path, description = "Form id"), LangQuery),
    request_body(content = Object, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The import report", content_type = "text/html", body = String),
        (status = 400, description = "Not a CSV upload", content_type = "text/html", body = String),
        (status = 401, description = "Not signed in: the sign-in form", content_type = "text/html", body = String),
        (status = 403, description = "Not an admin, or the page expired", content_type = "text/html", body = String),
        (status = 404, description = "Unknown form", content_type = "text/html", body = String),
        (status = 413, description = "The file is over 20 MB", content_type = "text/html", body = String),
        (status = 422, description = "Rows were rejected: the report", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String)))]
pub async fn import(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Result<Viewer, ApiError>,
    path: web::Path<String>,
    multipart: Multipart,
) -> HttpResponse {
    let form = state.forms.get(&path);
    // The report, the switcher and signing in all lead back to the dashboard.
    let back = format!("/dashboard/{path}");
    let ctx = PageContext::for_form(state, &req, form.as_deref(), &back);
    let by_token = super::viewer::bearer_token(&req).is_some();
    ctx.answer(import_page(&ctx, viewer, form, &path, by_token, multipart).await)
}

async fn import_page(
    ctx: &PageContext,
    viewer: Result<Viewer, ApiError>,
    form: Option<std::sync::Arc<Form>>,
    id: &str,
    by_token: bool,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let viewer = viewer?;
    let account = viewer.require_admin()?;
    let form = form.ok_or_else(|| ApiError::UnknownForm(id.to_owned()))?;
    let (csrf, skip_invalid, file) = read_upload(multipart).await?;
    if !by_token && !super::session::csrf_ok(&ctx.session, &csrf) {
        return Err(ApiError::CsrfExpired);
    }
    let import_form = form.clone();
    let actor = account.email.clone();
    let report = ctx
        .state
        .db
        .run(move |conn| {
            let report =
                crate::import::import_csv(conn, &import_form, file.as_slice(), skip_invalid)?;
            let detail = format!(
                "{} stored, {} rejected (dashboard upload)",
                report.stored,
                report.rejected.len()
            );
            crate::auth::audit(conn, &actor, "import", Some(&import_form.id), &detail)?;
            Ok::<_, ImportError>(report)
        })
        .await?;
    let t = &ctx.t;
    let nothing_stored = report.nothing_stored(skip_invalid);
    let mut summary = t.with(
        "import-summary",
        &[
            ("stored", Arg::Number(report.stored as f64)),
            ("present", Arg::Number(report.already_present as f64)),
            ("rejected", Arg::Number(report.rejected.len() as f64)),
        ],
    );
    if nothing_stored {
        summary.push(' ');
        summary.push_str(&t.get("import-nothing-stored"));
    }
    let title = form.title.get(&ctx.lang, form.default_language());
    let page = ImportPage {
        chrome: &ctx.chrome,
        t,
        csrf: csrf_token(&ctx.session),
        email: account.email.clone(),
        id: form.id.clone(),
        heading: t.with("import-title", &[("title", Arg::Text(title))]),
        back: t.with("back-to", &[("title", Arg::Text(title))]),
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
    Ok(html(status, page.render()))
}
