//! Responses as CSV, XLSX or JSON lines, one row per response and one column per question
//! (a `select_multiple` as one 0/1 column per option, named `question/option` as
//! KoboToolbox does), with a data dictionary. Rows stream in chunks, so a million responses
//! never sit in memory.

use crate::db::responses::{self, ExportRecord};
use crate::db::{AnyConnection, DbError};
use crate::form::{Form, QuestionType};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::io::Write;
use thiserror::Error;

/// Rows read from the database per step.
const CHUNK: usize = 2_000;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("writing the export failed: {0}")]
    Write(String),
}

impl From<std::io::Error> for ExportError {
    fn from(err: std::io::Error) -> Self {
        ExportError::Write(err.to_string())
    }
}

impl From<csv::Error> for ExportError {
    fn from(err: csv::Error) -> Self {
        ExportError::Write(err.to_string())
    }
}

impl From<rust_xlsxwriter::XlsxError> for ExportError {
    fn from(err: rust_xlsxwriter::XlsxError) -> Self {
        ExportError::Write(err.to_string())
    }
}

enum Source {
    Id,
    SubmissionId,
    Version,
    Received,
    Answer(usize),
    Selected(usize, String),
}

pub struct Column {
    pub name: String,
    source: Source,
}

/// The export's columns for the current form version.
pub fn columns(form: &Form) -> Vec<Column> {
    let mut out = vec![
        Column {
            name: "id".into(),
            source: Source::Id,
        },
        Column {
            name: "submission_id".into(),
            source: Source::SubmissionId,
        },
        Column {
            name: "form_version".into(),
            source: Source::Version,
        },
        Column {
            name: "received_at".into(),
            source: Source::Received,
        },
    ];
    for (qi, q) in form.questions.iter().enumerate() {
        match q.kind {
            QuestionType::Note | QuestionType::Group => {}
            QuestionType::SelectMultiple => out.extend(form.choices_of(q).iter().map(|c| Column {
                name: format!("{}/{}", q.id, c.value),
                source: Source::Selected(qi, c.value.clone()),
            })),
            _ => out.push(Column {
                name: q.id.clone(),
                source: Source::Answer(qi),
            }),
        }
    }
    out
}

fn cells(form: &Form, columns: &[Column], record: &ExportRecord) -> Vec<String> {
    let answers: Value = serde_json::from_str(&record.answers).unwrap_or(Value::Null);
    columns
        .iter()
        .map(|c| match &c.source {
            Source::Id => record.id.clone(),
            Source::SubmissionId => record.submission_id.clone(),
            Source::Version => record.form_version.to_string(),
            Source::Received => DateTime::<Utc>::from_naive_utc_and_offset(record.received_at, Utc)
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            Source::Answer(qi) => match &answers[&form.questions[*qi].id] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            Source::Selected(qi, option) => {
                let picked = &answers[&form.questions[*qi].id];
                match picked {
                    Value::Array(items) => {
                        u8::from(items.iter().any(|v| v == option.as_str())).to_string()
                    }
                    _ => String::new(),
                }
            }
        })
        .collect()
}

/// Every question's column, type, labels by language and choices.
pub fn dictionary(form: &Form) -> Vec<Vec<String>> {
    let mut header = vec![
        "column".to_owned(),
        "question".to_owned(),
        "type".to_owned(),
    ];
    header.extend(form.languages.iter().map(|l| format!("label_{l}")));
    header.push("choices".to_owned());
    let mut rows = vec![header];
    for column in columns(form) {
        let (qi, option) = match &column.source {
            Source::Answer(qi) => (*qi, None),
            Source::Selected(qi, option) => (*qi, Some(option.as_str())),
            _ => {
                let mut row = vec![column.name.clone(), String::new(), "metadata".into()];
                row.extend(form.languages.iter().map(|_| String::new()));
                row.push(String::new());
                rows.push(row);
                continue;
            }
        };
        let q = &form.questions[qi];
        let mut row = vec![
            column.name.clone(),
            q.id.clone(),
            serde_json::to_value(q.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ];
        for lang in &form.languages {
            let label = q
                .label
                .as_ref()
                .map(|l| l.get(lang, form.default_language()))
                .unwrap_or("");
            let option_label = option
                .and_then(|o| form.choices_of(q).iter().find(|c| c.value == o))
                .map(|c| c.label.get(lang, form.default_language()));
            row.push(match option_label {
                Some(o) => format!("{label}: {o}"),
                None => label.to_owned(),
            });
        }
        row.push(match option {
            Some(_) => "0 = not selected; 1 = selected".to_owned(),
            None => form
                .choices_of(q)
                .iter()
                .map(|c| {
                    format!(
                        "{} = {}",
                        c.value,
                        c.label
                            .get(form.default_language(), form.default_language())
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
        rows.push(row);
    }
    rows
}

/// Writes every response as CSV; returns how many.
pub fn write_csv(
    conn: &mut AnyConnection,
    form: &Form,
    out: impl Write,
) -> Result<u64, ExportError> {
    let cols = columns(form);
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(cols.iter().map(|c| c.name.as_str()))?;
    let mut count = 0u64;
    responses::for_each_record_chunk(conn, &form.id, CHUNK, |chunk| {
        for record in chunk {
            writer
                .write_record(cells(form, &cols, record))
                .map_err(std::io::Error::other)?;
        }
        count += chunk.len() as u64;
        writer.flush()
    })?;
    writer.flush()?;
    Ok(count)
}

/// Writes the data dictionary as CSV.
pub fn write_dictionary_csv(form: &Form, out: impl Write) -> Result<(), ExportError> {
    let mut writer = csv::Writer::from_writer(out);
    for row in dictionary(form) {
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes every response as JSON lines (one object per response); returns how many.
pub fn write_json_lines(
    conn: &mut AnyConnection,
    form: &Form,
    mut out: impl Write,
) -> Result<u64, ExportError> {
    let mut count = 0u64;
    responses::for_each_record_chunk(conn, &form.id, CHUNK, |chunk| {
        for r in chunk {
            let answers: Value = serde_json::from_str(&r.answers).unwrap_or(Value::Null);
            let line = serde_json::json!({
                "id": r.id,
                "submission_id": r.submission_id,
                "form_version": r.form_version,
                "received_at": DateTime::<Utc>::from_naive_utc_and_offset(r.received_at, Utc)
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
                "answers": answers,
            });
            writeln!(out, "{line}")?;
        }
        count += chunk.len() as u64;
        out.flush()
    })?;
    Ok(count)
}

/// Writes an XLSX workbook to `path` (a `responses` sheet written in constant memory and
/// a `dictionary` sheet); returns how many responses.
pub fn write_xlsx(
    conn: &mut AnyConnection,
    form: &Form,
    path: &std::path::Path,
) -> Result<u64, ExportError> {
    let cols = columns(form);
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let mut count = 0u32;
    {
        let sheet = workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name("responses")?;
        for (c, col) in cols.iter().enumerate() {
            sheet.write_string(0, c as u16, &col.name)?;
        }
        let mut failed = None;
        responses::for_each_record_chunk(conn, &form.id, CHUNK, |chunk| {
            for record in chunk {
                count += 1;
                for (c, cell) in cells(form, &cols, record).into_iter().enumerate() {
                    // Numbers as numbers, so spreadsheets can sum them.
                    let written = match cell.parse::<f64>() {
                        Ok(n) if n.is_finite() && !cell.is_empty() && c > 1 => {
                            sheet.write_number(count, c as u16, n).map(|_| ())
                        }
                        _ if cell.is_empty() => Ok(()),
                        _ => sheet.write_string(count, c as u16, &cell).map(|_| ()),
                    };
                    if let Err(err) = written {
                        failed = Some(err.to_string());
                        return Err(std::io::Error::other("xlsx"));
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| failed.take().map_or(ExportError::Db(e), ExportError::Write))?;
    }
    let dict = workbook.add_worksheet();
    dict.set_name("dictionary")?;
    for (r, row) in dictionary(form).iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            dict.write_string(r as u32, c as u16, cell)?;
        }
    }
    workbook.save(path)?;
    Ok(u64::from(count))
}
