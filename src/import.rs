//! Paper surveys keyed in later: a CSV with the export's columns (or a subset), each row
//! through the same validation as the API. All or nothing by default; idempotent when a
//! `submission_id` column is present.

use crate::db::responses::ResponseRow;
use crate::db::{AnyConnection, DbError};
use crate::form::{Form, QuestionType};
use crate::submit::{self, Stored};
use chrono::Utc;
use std::collections::HashMap;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("reading the CSV failed: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A row that was not accepted, with its line in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub stored: u64,
    /// Rows whose `submission_id` was already stored.
    pub already_present: u64,
    pub rejected: Vec<Rejected>,
    /// The header is wrong: no row was read, `--skip-invalid` or not.
    pub refused: bool,
    /// Columns of questions or options that only earlier versions of the form had (an
    /// export spanning versions): read past, their cells not imported.
    pub retired_columns: Vec<String>,
}

impl ImportReport {
    /// Whether rejections kept every row out.
    pub fn nothing_stored(&self, skip_invalid: bool) -> bool {
        self.refused || (!skip_invalid && !self.rejected.is_empty())
    }
}

fn truthy(cell: &str) -> bool {
    matches!(
        cell.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "x"
    )
}

/// Columns of an export that are not answers: written by `genderlens export`, read back
/// without a complaint, ignored (a new id and time are given; the version is the current).
const EXPORT_METADATA: [&str; 3] = ["id", "form_version", "received_at"];

/// What a header names, or why it is refused: a misspelt column would silently drop an
/// answer from every row.
fn check_header(form: &Form, header: &str) -> Result<(), String> {
    if header == "submission_id" || EXPORT_METADATA.contains(&header) {
        return Ok(());
    }
    let (question, option) = match header.split_once('/') {
        Some((q, o)) => (q, Some(o)),
        None => (header, None),
    };
    let Some(q) = form.question(question) else {
        return Err(format!(
            "column `{header}` is not a question of form `{}`",
            form.id
        ));
    };
    match (q.kind, option) {
        (QuestionType::SelectMultiple, Some(o))
            if form.choices_of(q).iter().any(|c| c.value == o) =>
        {
            Ok(())
        }
        (QuestionType::SelectMultiple, Some(o)) => Err(format!(
            "column `{header}`: `{o}` is not an option of `{question}`"
        )),
        (_, Some(_)) => Err(format!(
            "column `{header}`: only select_multiple questions have a column per option"
        )),
        // Calculated values are exported and recomputed on import.
        (kind, None) if kind.is_answerable() || kind == QuestionType::Calculate => Ok(()),
        (_, None) => Err(format!("column `{header}`: `{question}` takes no answer")),
    }
}

/// One CSV record as the text answers the validator takes, and its submission id.
fn record_values(
    form: &Form,
    headers: &csv::StringRecord,
    retired: &[String],
    record: &csv::StringRecord,
) -> (HashMap<String, Vec<String>>, Option<String>) {
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    let mut submission_id = None;
    for (header, cell) in headers.iter().zip(record.iter()) {
        if cell.trim().is_empty() || retired.iter().any(|r| r == header) {
            continue;
        }
        if header == "submission_id" {
            submission_id = Some(cell.trim().to_owned());
        } else if let Some((question, option)) = header.split_once('/') {
            if truthy(cell) {
                values
                    .entry(question.to_owned())
                    .or_default()
                    .push(option.to_owned());
            }
        } else if form
            .question(header)
            .is_some_and(|q| q.kind == QuestionType::SelectMultiple)
        {
            values
                .entry(header.to_owned())
                .or_default()
                .extend(cell.split_whitespace().map(str::to_owned));
        } else if form
            .question(header)
            .is_some_and(|q| q.kind.is_answerable())
        {
            values.insert(header.to_owned(), vec![cell.to_owned()]);
        }
    }
    (values, submission_id)
}

/// Imports `csv_data` into `form`. With `skip_invalid` false, one invalid row stores
/// nothing: the rows are validated first, then stored in one transaction, which a reused
/// `submission_id` with other answers (found only when storing) rolls back as well.
pub fn import_csv(
    conn: &mut AnyConnection,
    form: &Form,
    csv_data: impl std::io::Read,
    skip_invalid: bool,
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(csv_data);
    let mut report = ImportReport::default();
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(err) if matches!(err.kind(), csv::ErrorKind::Io(_)) => return Err(err.into()),
        Err(_) => {
            report.rejected.push(Rejected {
                line: 1,
                reason: "the header line is not valid UTF-8 CSV".into(),
            });
            report.refused = true;
            return Ok(report);
        }
    };
    let layout = crate::export::Layout::load(conn, form)?;
    for header in headers.iter() {
        match check_header(form, header) {
            Ok(()) => {}
            Err(_) if layout.is_retired(header) => report.retired_columns.push(header.to_owned()),
            Err(reason) => report.rejected.push(Rejected { line: 1, reason }),
        }
    }
    if !report.rejected.is_empty() {
        // A wrong header concerns every row: nothing is imported, --skip-invalid or not.
        report.refused = true;
        return Ok(report);
    }
    let mut rows: Vec<(u64, ResponseRow)> = Vec::new();
    let today = Utc::now().date_naive();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            // A ragged row or bytes that are not UTF-8 is that line's problem; the reader
            // goes on with the next. An I/O error ends the file.
            Err(err) if !matches!(err.kind(), csv::ErrorKind::Io(_)) => {
                let line = err.position().map_or(0, |p| p.line());
                report.rejected.push(Rejected {
                    line,
                    reason: match err.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => format!("{len} cells where the header has {expected_len}"),
                        csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8".into(),
                        _ => err.to_string(),
                    },
                });
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        let line = record.position().map_or(0, |p| p.line());
        let (values, submission_id) =
            record_values(form, &headers, &report.retired_columns, &record);
        let (answers, mut errors) = submit::answers_from_text(form, &values);
        let valid = match submit::validate(form, &answers, today) {
            Ok(valid) if errors.is_empty() => Some(valid),
            Ok(_) => None,
            Err(more) => {
                errors.extend(more);
                None
            }
        };
        let submission = match submission_id
            .as_deref()
            .map(|s| uuid::Uuid::parse_str(s.strip_prefix("uuid:").unwrap_or(s)))
        {
            None => Ok(uuid::Uuid::new_v4().to_string()),
            Some(Ok(u)) => Ok(u.to_string()),
            Some(Err(_)) => Err("submission_id is not a UUID".to_owned()),
        };
        match (valid, submission) {
            (Some(valid), Ok(submission)) => rows.push((
                line,
                submit::build_row(form, &valid, &answers, submission, Utc::now()),
            )),
            (_, Err(reason)) => report.rejected.push(Rejected { line, reason }),
            (None, _) => report.rejected.extend(errors.into_iter().map(|e| Rejected {
                line,
                reason: format!("question `{}`: {}", e.question, e.message),
            })),
        }
    }
    if !report.rejected.is_empty() && !skip_invalid {
        return Ok(report);
    }
    let lookup = |id: &str| (id == form.id).then(|| std::sync::Arc::new(form.clone()));
    let mut tally = ImportReport::default();
    let stored = crate::db::write_transaction(conn, |conn| {
        for chunk in rows.chunks(1_000) {
            let refs: Vec<&ResponseRow> = chunk.iter().map(|(_, row)| row).collect();
            for ((line, _), outcome) in chunk.iter().zip(submit::store_batch(conn, &refs, &lookup)?)
            {
                match outcome {
                    Stored::Created(_) => tally.stored += 1,
                    Stored::Existing {
                        same_answers: true, ..
                    } => tally.already_present += 1,
                    Stored::Existing { .. } => tally.rejected.push(Rejected {
                        line: *line,
                        reason: "submission_id was stored before with other answers".into(),
                    }),
                }
            }
        }
        if tally.rejected.is_empty() || skip_invalid {
            Ok(())
        } else {
            Err(diesel::result::Error::RollbackTransaction)
        }
    });
    match stored {
        Ok(()) => {}
        Err(diesel::result::Error::RollbackTransaction) => {
            tally.stored = 0;
            tally.already_present = 0;
        }
        Err(err) => return Err(DbError::from(err).into()),
    }
    report.stored = tally.stored;
    report.already_present = tally.already_present;
    report.rejected.extend(tally.rejected);
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}
