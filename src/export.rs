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
    /// A question of `versions[v]` (`q` is its index there).
    Answer {
        v: usize,
        q: usize,
    },
    Selected {
        v: usize,
        q: usize,
        option: String,
    },
}

pub struct Column {
    pub name: String,
    source: Source,
}

/// The export's columns: those of the current version, then those only earlier versions
/// had (a question or an option since removed), so no stored answer is left out.
pub struct Layout {
    /// The current version first, then earlier stored ones, newest first.
    versions: Vec<Form>,
    columns: Vec<Column>,
}

impl Layout {
    /// The current version's columns and those of every earlier version stored.
    pub fn load(conn: &mut AnyConnection, form: &Form) -> Result<Layout, DbError> {
        let mut earlier: Vec<(i32, Form)> = responses::form_definitions(conn, &form.id)?
            .into_iter()
            .filter(|(v, _)| u32::try_from(*v).ok() != Some(form.version))
            .filter_map(|(v, json)| crate::form::from_definition(&json).map(|f| (v, f)))
            .collect();
        earlier.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
        let versions = std::iter::once(form.clone())
            .chain(earlier.into_iter().map(|(_, f)| f))
            .collect();
        Ok(Layout::of(versions))
    }

    fn of(versions: Vec<Form>) -> Layout {
        let mut columns = vec![
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
        for (v, form) in versions.iter().enumerate() {
            for (q, question) in form.questions.iter().enumerate() {
                let wanted: Vec<Column> = match question.kind {
                    QuestionType::Note | QuestionType::Group => Vec::new(),
                    QuestionType::SelectMultiple => form
                        .choices_of(question)
                        .iter()
                        .map(|c| Column {
                            name: format!("{}/{}", question.id, c.value),
                            source: Source::Selected {
                                v,
                                q,
                                option: c.value.clone(),
                            },
                        })
                        .collect(),
                    _ => vec![Column {
                        name: question.id.clone(),
                        source: Source::Answer { v, q },
                    }],
                };
                for column in wanted {
                    if !columns.iter().any(|c| c.name == column.name) {
                        columns.push(column);
                    }
                }
            }
        }
        Layout { versions, columns }
    }

    /// Whether `name` is a column only earlier versions of the form had.
    pub fn is_retired(&self, name: &str) -> bool {
        self.columns.iter().any(|c| {
            c.name == name
                && matches!(c.source, Source::Answer { v, .. } | Source::Selected { v, .. } if v > 0)
        })
    }

    fn question(&self, v: usize, q: usize) -> &crate::form::Question {
        &self.versions[v].questions[q]
    }

    fn cells(&self, record: &ExportRecord) -> Vec<String> {
        let answers: Value = serde_json::from_str(&record.answers).unwrap_or(Value::Null);
        self.columns
            .iter()
            .map(|c| match &c.source {
                Source::Id => record.id.clone(),
                Source::SubmissionId => record.submission_id.clone(),
                Source::Version => record.form_version.to_string(),
                Source::Received => {
                    DateTime::<Utc>::from_naive_utc_and_offset(record.received_at, Utc)
                        .to_rfc3339_opts(SecondsFormat::Micros, true)
                }
                Source::Answer { v, q } => match &answers[&self.question(*v, *q).id] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                Source::Selected { v, q, option } => match &answers[&self.question(*v, *q).id] {
                    Value::Array(items) => {
                        u8::from(items.iter().any(|v| v == option.as_str())).to_string()
                    }
                    _ => String::new(),
                },
            })
            .collect()
    }

    /// Whether a column holds numbers: spreadsheets get them as numbers, everything else
    /// as text (a code like `007` keeps its zeros).
    fn is_numeric(&self, column: &Column) -> bool {
        match column.source {
            Source::Version | Source::Selected { .. } => true,
            Source::Answer { v, q } => matches!(
                self.question(v, q).kind,
                QuestionType::Integer | QuestionType::Decimal | QuestionType::Calculate
            ),
            _ => false,
        }
    }

    /// Every column's question, type, labels by language and choices (the current
    /// version's languages), and for a retired column the last version that had it.
    pub fn dictionary(&self) -> Vec<Vec<String>> {
        let form = &self.versions[0];
        let mut header = vec![
            "column".to_owned(),
            "question".to_owned(),
            "type".to_owned(),
        ];
        header.extend(form.languages.iter().map(|l| format!("label_{l}")));
        header.extend(["choices".to_owned(), "note".to_owned()]);
        let mut rows = vec![header];
        for column in &self.columns {
            let (v, q, option) = match &column.source {
                Source::Answer { v, q } => (*v, *q, None),
                Source::Selected { v, q, option } => (*v, *q, Some(option.as_str())),
                _ => {
                    let mut row = vec![column.name.clone(), String::new(), "metadata".into()];
                    row.extend(form.languages.iter().map(|_| String::new()));
                    row.extend([String::new(), String::new()]);
                    rows.push(row);
                    continue;
                }
            };
            let version = &self.versions[v];
            let question = &version.questions[q];
            let mut row = vec![
                column.name.clone(),
                question.id.clone(),
                serde_json::to_value(question.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ];
            let default = version.default_language();
            for lang in &form.languages {
                let label = question
                    .label
                    .as_ref()
                    .map(|l| l.get(lang, default))
                    .unwrap_or("");
                let option_label = option
                    .and_then(|o| version.choices_of(question).iter().find(|c| c.value == o))
                    .map(|c| c.label.get(lang, default));
                row.push(match option_label {
                    Some(o) => format!("{label}: {o}"),
                    None => label.to_owned(),
                });
            }
            row.push(match option {
                Some(_) => "0 = not selected; 1 = selected".to_owned(),
                None => version
                    .choices_of(question)
                    .iter()
                    .map(|c| format!("{} = {}", c.value, c.label.get(default, default)))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
            row.push(if v > 0 {
                format!(
                    "not in version {}; last in version {}",
                    form.version, version.version
                )
            } else {
                String::new()
            });
            rows.push(row);
        }
        rows
    }
}

/// Writes every response as CSV; returns how many.
pub fn write_csv(
    conn: &mut AnyConnection,
    form: &Form,
    out: impl Write,
) -> Result<u64, ExportError> {
    let layout = Layout::load(conn, form)?;
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(layout.columns.iter().map(|c| c.name.as_str()))?;
    let mut count = 0u64;
    responses::for_each_record_chunk(conn, &form.id, CHUNK, |chunk| {
        for record in chunk {
            writer
                .write_record(layout.cells(record))
                .map_err(std::io::Error::other)?;
        }
        count += chunk.len() as u64;
        writer.flush()
    })?;
    writer.flush()?;
    Ok(count)
}

/// Writes the data dictionary as CSV.
pub fn write_dictionary_csv(layout: &Layout, out: impl Write) -> Result<(), ExportError> {
    let mut writer = csv::Writer::from_writer(out);
    for row in layout.dictionary() {
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
    let layout = Layout::load(conn, form)?;
    let cols = &layout.columns;
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
                for (c, cell) in layout.cells(record).into_iter().enumerate() {
                    let number = cell
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && layout.is_numeric(&cols[c]));
                    let written = match number {
                        Some(n) => sheet.write_number(count, c as u16, n).map(|_| ()),
                        None if cell.is_empty() => Ok(()),
                        None => sheet.write_string(count, c as u16, &cell).map(|_| ()),
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
    for (r, row) in layout.dictionary().iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            dict.write_string(r as u32, c as u16, cell)?;
        }
    }
    workbook.save(path)?;
    Ok(u64::from(count))
}
