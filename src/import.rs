//! Paper surveys keyed in later: a CSV with the export's columns (or a subset), each row
//! through the same validation as the API. All or nothing by default; idempotent when a
//! `submission_id` column is present.

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
}

fn truthy(cell: &str) -> bool {
    matches!(
        cell.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "x"
    )
}

/// Imports `csv_data` into `form`. With `skip_invalid` false, one invalid row stores nothing.
pub fn import_csv(
    conn: &mut AnyConnection,
    form: &Form,
    csv_data: impl std::io::Read,
    skip_invalid: bool,
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(csv_data);
    let headers = reader.headers()?.clone();
    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    let today = Utc::now().date_naive();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        let mut submission_id = None;
        for (header, cell) in headers.iter().zip(record.iter()) {
            if cell.trim().is_empty() {
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
            (Some(valid), Ok(submission)) => rows.push(submit::build_row(
                form,
                &valid,
                &answers,
                submission,
                Utc::now(),
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
    for chunk in rows.chunks(1_000) {
        let refs: Vec<_> = chunk.iter().collect();
        let lookup = |id: &str| (id == form.id).then(|| std::sync::Arc::new(form.clone()));
        for outcome in submit::store_batch(conn, &refs, &lookup).map_err(DbError::from)? {
            match outcome {
                Stored::Created(_) => report.stored += 1,
                Stored::Existing { .. } => report.already_present += 1,
            }
        }
    }
    Ok(report)
}
