//! `GET /api/v1/forms/{form}/responses?format=csv|xlsx|json` and `…/dictionary.csv`:
//! raw responses for planners with the grant, never public, streamed as they are read.

use super::error::ErrorBody;
use super::viewer::Viewer;
use super::{ApiError, AppState};
use crate::export::{self, ExportError};
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::io::Write;
use tokio::sync::mpsc;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// `csv` (default), `xlsx` or `json` (JSON lines).
    format: Option<String>,
}

/// Bytes written on a blocking thread, sent to the response stream in pieces.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

/// Flush to the client every 64 KiB.
const PIECE: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(Ok(piece)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl From<ExportError> for ApiError {
    fn from(err: ExportError) -> Self {
        match err {
            ExportError::Db(db) => ApiError::Unavailable(db),
            other => ApiError::Unavailable(crate::db::DbError::Unavailable(other.to_string())),
        }
    }
}

fn streamed(
    content_type: &str,
    filename: String,
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> HttpResponse {
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body)
}

/// Every response, one row each, streamed; planners with the grant only, never public.
#[utoipa::path(get, path = "/api/v1/forms/{form}/responses", tag = "planners", security(("token" = [])),
    params(("form" = String, Path, description = "Form id"), Params),
    responses(
        (status = 200, description = "The responses", content(
            (String = "text/csv"),
            (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "application/x-ndjson"))),
        (status = 400, description = "Unknown format", body = ErrorBody),
        (status = 401, description = "No credentials", body = ErrorBody),
        (status = 403, description = "No grant for this form", body = ErrorBody),
        (status = 404, description = "Unknown form", body = ErrorBody)))]
pub async fn responses(
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<Params>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let form = state
        .forms
        .get(&path)
        .ok_or_else(|| ApiError::UnknownForm(path.clone()))?;
    let account = viewer.require(&form.id)?.clone();
    let format = params.format.clone().unwrap_or_else(|| "csv".into());
    if !matches!(format.as_str(), "csv" | "json" | "xlsx") {
        return Err(ApiError::BadRequest(
            "format must be csv, xlsx or json".into(),
        ));
    }
    let (tx, rx) = mpsc::channel(8);
    let db = state.db.clone();
    let kind = format.clone();
    let export_form = form.clone();
    // The export runs on a blocking thread and its bytes flow to the client as they come.
    tokio::task::spawn_blocking(move || {
        let mut conn = match db.get_read() {
            Ok(conn) => conn,
            Err(err) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(err.to_string())));
                return;
            }
        };
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let result = match kind.as_str() {
            "json" => export::write_json_lines(&mut conn, &export_form, &mut writer),
            "xlsx" => tempfile::NamedTempFile::new()
                .map_err(ExportError::from)
                .and_then(|file| {
                    let count = export::write_xlsx(&mut conn, &export_form, file.path())?;
                    let mut source = std::fs::File::open(file.path())?;
                    std::io::copy(&mut source, &mut writer)?;
                    Ok(count)
                }),
            _ => export::write_csv(&mut conn, &export_form, &mut writer),
        };
        let outcome =
            result.and_then(|count| writer.flush().map(|_| count).map_err(ExportError::from));
        match outcome {
            Ok(count) => {
                let detail = format!("{kind}, {count} responses");
                if let Err(err) = crate::auth::audit(
                    &mut conn,
                    &account.email,
                    "export",
                    Some(&export_form.id),
                    &detail,
                ) {
                    tracing::error!(error = %err, "recording an export in the audit log failed");
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "an export failed midway");
                let _ = tx.blocking_send(Err(std::io::Error::other(err.to_string())));
            }
        }
    });
    Ok(match format.as_str() {
        "json" => streamed(
            "application/x-ndjson",
            format!("{}-responses.jsonl", form.id),
            rx,
        ),
        "xlsx" => streamed(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("{}-responses.xlsx", form.id),
            rx,
        ),
        _ => streamed(
            "text/csv; charset=utf-8",
            format!("{}-responses.csv", form.id),
            rx,
        ),
    })
}

/// The data dictionary: every question's label, type and choices.
#[utoipa::path(get, path = "/api/v1/forms/{form}/dictionary.csv", tag = "planners", security(("token" = [])),
    params(("form" = String, Path, description = "Form id")),
    responses(
        (status = 200, description = "The data dictionary", content_type = "text/csv", body = String),
        (status = 401, description = "No credentials", body = ErrorBody),
        (status = 403, description = "No grant for this form", body = ErrorBody),
        (status = 404, description = "Unknown form", body = ErrorBody)))]
pub async fn dictionary(
    state: web::Data<AppState>,
    path: web::Path<String>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    let form = state
        .forms
        .get(&path)
        .ok_or_else(|| ApiError::UnknownForm(path.clone()))?;
    viewer.require(&form.id)?;
    let layout_form = form.clone();
    let layout = state
        .db
        .run_read(move |conn| export::Layout::load(conn, &layout_form))
        .await
        .map_err(ApiError::Unavailable)?;
    let mut body = Vec::new();
    export::write_dictionary_csv(&layout, &mut body)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{}-dictionary.csv\"", form.id),
        ))
        .body(body))
}
