//! Writing a native form as an XLSForm workbook that pyxform (and so KoboToolbox and
//! ODK) accepts, and that `xlsform::read` maps back to the same form.
//!
//! What XLSForm has no column for is written in columns pyxform ignores: the settings
//! columns `sex_question`, `sex_female`, `sex_male`, `disaggregate_by`, `owners`,
//! `status`, `public_indicators`, `weight`, `opens_at`, `closes_at`, `notify_*` (digest
//! minutes, milestones, language), `title_<code>`/`description_<code>` (translations),
//! and the survey column `choices` (the value list of a `calculate`). `min`/`max`/`max_length` become the constraint
//! ODK enforces, which the reader splits back out.

use super::model::*;
use super::xlsform::{join_bounds, language_name};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("writing the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

/// Writes `form` to `path` as an XLSForm workbook.
pub fn write_file(form: &FormFile, path: &Path) -> Result<(), ExportError> {
    workbook(form)?.save(path)?;
    Ok(())
}

/// The workbook as bytes.
pub fn to_bytes(form: &FormFile) -> Result<Vec<u8>, ExportError> {
    Ok(workbook(form)?.save_to_buffer()?)
}

/// `Ukrainian (uk)`: a language as pyxform documents it, which the reader maps to `uk`.
fn language_label(code: &str) -> String {
    let name = language_name(code).map_or_else(
        || code.to_owned(),
        |n| {
            let mut chars = n.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        },
    );
    format!("{name} ({code})")
}

/// `label::Ukrainian (uk)`.
fn language_header(base: &str, code: &str) -> String {
    format!("{base}::{}", language_label(code))
}

fn text_in(text: &Text, lang: &str) -> Option<String> {
    match text {
        Text::Plain(s) => Some(s.clone()),
        Text::ByLanguage(map) => map.get(lang).cloned(),
    }
}

/// One sheet: a header row, then rows written cell by cell.
struct SheetWriter<'a> {
    sheet: &'a mut Worksheet,
    headers: Vec<String>,
    row: u32,
}

impl SheetWriter<'_> {
    fn start(&mut self, bold: &Format) -> Result<(), XlsxError> {
        for (col, header) in self.headers.iter().enumerate() {
            self.sheet
                .write_string_with_format(0, col as u16, header, bold)?;
        }
        self.row = 1;
        Ok(())
    }

    /// Writes the non-empty `cells` (header, text) on the next row.
    fn write(&mut self, cells: &[(String, String)]) -> Result<(), XlsxError> {
        for (header, text) in cells {
            if text.is_empty() {
                continue;
            }
            if let Some(col) = self.headers.iter().position(|h| h == header) {
                self.sheet.write_string(self.row, col as u16, text)?;
            }
        }
        self.row += 1;
        Ok(())
    }
}

fn type_of(q: &QuestionFile) -> String {
    let list = q.choices.as_deref().unwrap_or_default();
    match q.kind {
        QuestionType::Text => "text".into(),
        QuestionType::Integer => "integer".into(),
        QuestionType::Decimal => "decimal".into(),
        QuestionType::SelectOne | QuestionType::Likert => format!("select_one {list}"),
        QuestionType::SelectMultiple => format!("select_multiple {list}"),
        QuestionType::Date => "date".into(),
        QuestionType::Note => "note".into(),
        QuestionType::Calculate => "calculate".into(),
        QuestionType::Group => "begin group".into(),
    }
}

fn workbook(form: &FormFile) -> Result<Workbook, XlsxError> {
    let languages = &form.languages;
    let default = languages.first().map(String::as_str).unwrap_or("en");
    let translated = |base: &str| -> Vec<String> {
        languages.iter().map(|l| language_header(base, l)).collect()
    };
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();

    let mut survey_headers: Vec<String> = vec!["type".into(), "name".into()];
    survey_headers.extend(translated("label"));
    survey_headers.extend(translated("hint"));
    for h in ["required", "relevant", "constraint"] {
        survey_headers.push(h.into());
    }
    survey_headers.extend(translated("constraint_message"));
    for h in ["calculation", "appearance", "default", "choices"] {
        survey_headers.push(h.into());
    }
    let mut survey = SheetWriter {
        sheet: book.add_worksheet().set_name("survey")?,
        headers: survey_headers,
        row: 0,
    };
    survey.start(&bold)?;
    write_questions(&mut survey, &form.questions, languages)?;

    let mut choice_headers: Vec<String> = vec!["list_name".into(), "name".into()];
    choice_headers.extend(translated("label"));
    let mut choices = SheetWriter {
        sheet: book.add_worksheet().set_name("choices")?,
        headers: choice_headers,
        row: 0,
    };
    choices.start(&bold)?;
    for (list, options) in &form.choices {
        for choice in options {
            let mut cells = vec![
                ("list_name".to_owned(), list.clone()),
                ("name".to_owned(), choice.value.clone()),
            ];
            for lang in languages {
                let text = text_in(&choice.label, lang).unwrap_or_default();
                cells.push((language_header("label", lang), text));
            }
            choices.write(&cells)?;
        }
    }

    let mut cells: Vec<(String, String)> = vec![
        (
            "form_title".into(),
            form.title.get(default, default).to_owned(),
        ),
        ("form_id".into(), form.id.clone()),
        ("version".into(), form.version.to_string()),
        ("default_language".into(), language_label(default)),
        (
            "sex_question".into(),
            form.disaggregation.sex.question.clone(),
        ),
        ("sex_female".into(), form.disaggregation.sex.female.clone()),
        ("sex_male".into(), form.disaggregation.sex.male.clone()),
        ("disaggregate_by".into(), form.disaggregation.by.join(",")),
        ("owners".into(), form.owners.join(",")),
        (
            "status".into(),
            match form.status {
                Status::Open => "open",
                Status::Closed => "closed",
            }
            .into(),
        ),
        (
            "public_indicators".into(),
            if form.public_indicators { "yes" } else { "" }.into(),
        ),
        ("weight".into(), form.weight.clone().unwrap_or_default()),
        (
            "opens_at".into(),
            form.opens_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ),
        (
            "closes_at".into(),
            form.closes_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ),
        (
            "notify_digest_minutes".into(),
            form.notify
                .digest_minutes
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ),
        (
            "notify_milestones".into(),
            form.notify
                .milestones
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "notify_language".into(),
            form.notify.language.clone().unwrap_or_default(),
        ),
        (
            "retention_days".into(),
            form.retention_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
    ];
    // Translations of the title and description beyond the default language.
    let translations = |key: &str, text: &Text| -> Vec<(String, String)> {
        match text {
            Text::ByLanguage(map) => map
                .iter()
                .filter(|(lang, _)| *lang != default)
                .map(|(lang, s)| (format!("{key}_{lang}"), s.clone()))
                .collect(),
            Text::Plain(_) => Vec::new(),
        }
    };
    cells.extend(translations("title", &form.title));
    if let Some(d) = &form.description {
        cells.push((
            "description".into(),
            text_in(d, default).unwrap_or_default(),
        ));
        cells.extend(translations("description", d));
    }
    cells.retain(|(_, v)| !v.is_empty());
    let mut settings = SheetWriter {
        sheet: book.add_worksheet().set_name("settings")?,
        headers: cells.iter().map(|(h, _)| h.clone()).collect(),
        row: 0,
    };
    settings.start(&bold)?;
    settings.write(&cells)?;
    Ok(book)
}

fn write_questions(
    sheet: &mut SheetWriter,
    questions: &[QuestionFile],
    languages: &[String],
) -> Result<(), XlsxError> {
    for q in questions {
        let mut cells = vec![
            ("type".to_owned(), type_of(q)),
            ("name".to_owned(), q.id.clone()),
        ];
        let mut texts = |base: &str, text: &Option<Text>| {
            for lang in languages {
                let value = text.as_ref().and_then(|t| text_in(t, lang));
                cells.push((language_header(base, lang), value.unwrap_or_default()));
            }
        };
        texts("label", &q.label);
        texts("hint", &q.hint);
        texts("constraint_message", &q.constraint_message);
        let appearance = match (q.kind, &q.appearance) {
            (QuestionType::Likert, Some(a)) => format!("likert {a}"),
            (QuestionType::Likert, None) => "likert".into(),
            (_, a) => a.clone().unwrap_or_default(),
        };
        let choices = match q.kind {
            QuestionType::Calculate => q.choices.clone().unwrap_or_default(),
            _ => String::new(),
        };
        cells.extend([
            (
                "required".to_owned(),
                if q.required { "yes" } else { "" }.to_owned(),
            ),
            ("relevant".into(), q.relevant.clone().unwrap_or_default()),
            ("constraint".into(), join_bounds(q).unwrap_or_default()),
            (
                "calculation".into(),
                q.calculation.clone().unwrap_or_default(),
            ),
            ("appearance".into(), appearance),
            ("default".into(), q.default.clone().unwrap_or_default()),
            ("choices".into(), choices),
        ]);
        sheet.write(&cells)?;
        if q.kind == QuestionType::Group {
            write_questions(sheet, &q.questions, languages)?;
            sheet.write(&[
                ("type".into(), "end group".into()),
                ("name".into(), q.id.clone()),
            ])?;
        }
    }
    Ok(())
}
