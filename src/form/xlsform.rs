//! Reading XLSForm workbooks (`.xlsx`, `.xls`) into the native form file.
//!
//! The mapping is one to one where genderlens has the concept. Whatever would change the
//! meaning of the form if it were dropped (repeats, choice filters, media, external
//! choices…) is refused with an error naming the sheet, the row and the feature, so a
//! workbook either loads as its author meant it or not at all. Metadata that genderlens
//! does not collect (`start`, `deviceid`…) is ignored with a warning.

use super::expr::Expr;
use super::load::{Locate, Location, Problem, Severity};
use super::model::*;
use calamine::{Data, Reader};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What reading a workbook gave: the form file (when the workbook could be mapped at
/// all), every notice and refusal, and where each item is written for later checks.
#[derive(Debug, Default)]
pub struct Imported {
    pub file: Option<FormFile>,
    pub problems: Vec<Problem>,
    pub rows: RowMap,
}

impl Imported {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Sheet and row of every question, choice and setting, keyed like the YAML format's
/// `key: value` (see [`Locate`]).
#[derive(Debug, Default)]
pub struct RowMap {
    at: HashMap<(String, String), Location>,
    sex_refused: bool,
}

impl RowMap {
    fn insert_opt(&mut self, key: &str, value: &str, sheet: &str, row: Option<usize>) {
        if let Some(row) = row {
            self.insert(key, value, sheet, row);
        }
    }

    fn insert(&mut self, key: &str, value: &str, sheet: &str, row: usize) {
        self.at
            .entry((key.to_owned(), value.to_owned()))
            .or_insert(Location {
                sheet: Some(sheet.to_owned()),
                line: row,
            });
    }
}

impl Locate for RowMap {
    fn locate(&self, key: &str, value: &str, list: Option<&str>) -> Option<Location> {
        let get = |k: &str, v: &str| self.at.get(&(k.to_owned(), v.to_owned())).cloned();
        match (key, list) {
            ("value", Some(list)) => get("value", &format!("{list}\u{0}{value}")),
            // Settings that name a question: the settings row, else the question's row.
            ("question" | "by" | "weight", _) => get(key, value).or_else(|| get("id", value)),
            _ => get(key, value),
        }
    }

    fn sex_refused(&self) -> bool {
        self.sex_refused
    }
}

const SURVEY: &str = "survey";
const CHOICES: &str = "choices";
const SETTINGS: &str = "settings";

/// Reads and maps a workbook. Never panics on input: every problem is reported.
pub fn read(path: &Path) -> Imported {
    let mut reader = Mapper {
        path,
        problems: Vec::new(),
        rows: RowMap::default(),
    };
    let file = reader.read_workbook();
    sort_problems(&mut reader.problems);
    Imported {
        file,
        problems: reader.problems,
        rows: reader.rows,
    }
}

/// Reads a workbook and checks the form like any form file: the form (when nothing was
/// refused), every problem in reading order, and where the form id is written.
pub fn load(path: &Path) -> (Option<Form>, Vec<Problem>, Option<Location>) {
    let imported = read(path);
    let Some(file) = imported.file else {
        return (None, imported.problems, None);
    };
    let id_at = imported.rows.locate("id", &file.id, None);
    let (form, checked) = super::load::check_file(path, file, &imported.rows);
    let mut problems = imported.problems;
    problems.extend(checked);
    sort_problems(&mut problems);
    // The reader's refusals (e.g. a repeat) stop the form even when what remains passes.
    let refused = problems.iter().any(|p| p.severity == Severity::Error);
    (form.filter(|_| !refused), problems, id_at)
}

/// In the order a person reads the workbook: sheet by sheet, row by row.
fn sort_problems(problems: &mut [Problem]) {
    let rank = |p: &Problem| match p.sheet.as_deref() {
        Some(SURVEY) => 1,
        Some(CHOICES) => 2,
        Some(_) => 3,
        None => 0,
    };
    problems.sort_by_key(|p| (rank(p), p.line.unwrap_or(usize::MAX)));
}

// ---------------------------------------------------------------- sheets and cells

/// A sheet as read: header names (as written) and rows of cells aligned with them.
struct Sheet {
    name: String,
    header_row: usize,
    headers: Vec<String>,
    /// (1-based row number as the spreadsheet shows it, cells)
    rows: Vec<(usize, Vec<Data>)>,
}

fn load_sheet(range: &calamine::Range<Data>, name: &str) -> Sheet {
    let first_row = range.start().map_or(0, |(r, _)| r as usize);
    let first_col = range.start().map_or(0, |(_, c)| c as usize);
    let mut rows = range.rows().enumerate().map(|(i, cells)| {
        // Cells left of the range's first column are empty; keep columns absolute.
        let mut full = vec![Data::Empty; first_col];
        full.extend(cells.iter().cloned());
        (first_row + i + 1, full)
    });
    // The header is the first row that has anything in it.
    let (mut headers, mut header_row) = (Vec::new(), 1);
    for (number, cells) in rows.by_ref() {
        if cells.iter().any(|c| cell_text(c).is_some()) {
            headers = cells
                .iter()
                .map(|c| cell_text(c).unwrap_or_default())
                .collect();
            header_row = number;
            break;
        }
    }
    Sheet {
        name: name.to_owned(),
        header_row,
        headers,
        rows: rows.collect(),
    }
}

/// A cell as text: trimmed, `None` when empty. Whole numbers lose their `.0`, as a
/// spreadsheet shows them.
fn cell_text(cell: &Data) -> Option<String> {
    let text = match cell {
        Data::Empty => return None,
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        other => other.to_string(),
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A column of the survey or choices sheet.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Column {
    /// `label`, `hint`, `constraint_message`…, with the language as written (`None` for
    /// a column without one).
    Translated(String, Option<String>),
    /// Any other column, by its lowercase name.
    Plain(String),
}

/// The columns that may carry a language.
const TRANSLATED: &[&str] = &[
    "label",
    "hint",
    "guidance_hint",
    "constraint_message",
    "required_message",
    "image",
    "big-image",
    "audio",
    "video",
];

fn parse_header(header: &str) -> Column {
    let lower = header.trim().to_ascii_lowercase();
    // pyxform's spelling variants of the same columns.
    let canonical = |base: &str| -> String {
        match base {
            "list name" => "list_name".into(),
            "constraint message" | "jr:constraintmsg" => "constraint_message".into(),
            "required message" | "jr:requiredmsg" | "requiredmsg" => "required_message".into(),
            "choice filter" => "choice_filter".into(),
            "read only" => "read_only".into(),
            "repeat count" | "jr:count" => "repeat_count".into(),
            other => other.to_owned(),
        }
    };
    // `media::image::English (en)`: the media kind is the column.
    let (base, language) = if let Some(rest) = lower.strip_prefix("media::") {
        let kind = rest.split("::").next().unwrap_or(rest);
        let language = header
            .trim()
            .splitn(3, "::")
            .nth(2)
            .map(|l| l.trim().to_owned());
        (kind.to_owned(), language)
    } else if let Some((base, _)) = lower.split_once("::") {
        let language = header
            .trim()
            .split_once("::")
            .map(|(_, l)| l.trim().to_owned());
        (base.to_owned(), language)
    } else if let Some((base, _)) = lower.split_once(':') {
        // `label:English` (one colon) is an older spelling; `jr:count` is not a language.
        let base = base.to_owned();
        if TRANSLATED.contains(&base.as_str()) {
            let language = header
                .trim()
                .split_once(':')
                .map(|(_, l)| l.trim().to_owned());
            (base, language)
        } else {
            return Column::Plain(canonical(&lower));
        }
    } else {
        (lower.clone(), None)
    };
    let base = canonical(base.trim());
    if TRANSLATED.contains(&base.as_str()) {
        Column::Translated(base, language.filter(|l| !l.is_empty()))
    } else {
        Column::Plain(canonical(&lower))
    }
}

/// Common language names written without a code (`label::English`).
const LANGUAGE_NAMES: &[(&str, &str)] = &[
    ("amharic", "am"),
    ("arabic", "ar"),
    ("bengali", "bn"),
    ("chinese", "zh"),
    ("english", "en"),
    ("french", "fr"),
    ("german", "de"),
    ("hausa", "ha"),
    ("hindi", "hi"),
    ("indonesian", "id"),
    ("italian", "it"),
    ("kazakh", "kk"),
    ("nepali", "ne"),
    ("portuguese", "pt"),
    ("russian", "ru"),
    ("somali", "so"),
    ("spanish", "es"),
    ("swahili", "sw"),
    ("turkish", "tr"),
    ("ukrainian", "uk"),
    ("urdu", "ur"),
];

/// The language name for a code, for column headers of an exported workbook.
pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGE_NAMES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(name, _)| *name)
}

fn is_language_code(s: &str) -> bool {
    (2..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The code of a language as written in a header or `default_language`: `English (en)`,
/// `English(en)`, `English`, `en`.
fn language_code(written: &str) -> Result<String, String> {
    let written = written.trim();
    if let Some(open) = written.rfind('(') {
        if let Some(code) = written[open + 1..].strip_suffix(')') {
            let code = code.trim().to_ascii_lowercase();
            if is_language_code(&code) {
                return Ok(code);
            }
        }
    }
    let lower = written.to_ascii_lowercase();
    if let Some((_, code)) = LANGUAGE_NAMES.iter().find(|(name, _)| *name == lower) {
        return Ok((*code).to_owned());
    }
    // A bare code (`en`, `pt-br`), not a name we do not know (`klingon`).
    let primary = lower.split('-').next().unwrap_or_default();
    if is_language_code(&lower)
        && (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
    {
        return Ok(lower);
    }
    Err(format!(
        "cannot tell the language code of `{written}`: write it as `Name (code)`, e.g. `English (en)`"
    ))
}

fn truthy(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "true()" | "1" => Some(true),
        "no" | "false" | "false()" | "0" | "" => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------- types

/// What a survey row's `type` means.
#[derive(Debug, PartialEq)]
enum RowType {
    BeginGroup,
    EndGroup,
    BeginRepeat(&'static str),
    EndRepeat,
    Question {
        kind: QuestionType,
        list: Option<String>,
        or_other: bool,
    },
    Acknowledge,
    Range,
    Metadata,
    Unsupported(&'static str),
    Unknown,
}

/// XLSForm metadata that describes the device or the session, not an answer.
const METADATA: &[&str] = &[
    "start",
    "end",
    "today",
    "deviceid",
    "subscriberid",
    "simserial",
    "phonenumber",
    "username",
    "email",
    "audit",
    "imei",
    "start-geopoint",
    "background-audio",
    "uri:deviceid",
    "uri:subscriberid",
    "uri:simserial",
    "uri:phonenumber",
    "uri:username",
    "uri:email",
];

fn parse_type(raw: &str) -> RowType {
    let ty = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let ty = ty.as_str();
    match ty {
        "begin group" | "begin_group" => return RowType::BeginGroup,
        "end group" | "end_group" => return RowType::EndGroup,
        "begin repeat" | "begin_repeat" => return RowType::BeginRepeat("begin repeat"),
        "end repeat" | "end_repeat" | "end loop" | "end_loop" => return RowType::EndRepeat,
        "text" | "string" => return question(QuestionType::Text),
        "integer" | "int" => return question(QuestionType::Integer),
        "decimal" => return question(QuestionType::Decimal),
        "date" => return question(QuestionType::Date),
        "note" => return question(QuestionType::Note),
        "calculate" => return question(QuestionType::Calculate),
        "acknowledge" | "trigger" => return RowType::Acknowledge,
        "range" => return RowType::Range,
        "rank" => {
            return RowType::Unsupported(
                "a rank question (an ordering of choices) has no equivalent in genderlens",
            )
        }
        "time" | "datetime" | "dateTime" => {
            return RowType::Unsupported(
                "time and date-time answers are not supported; use `date` or `text`",
            )
        }
        "geopoint" | "geotrace" | "geoshape" | "start-geopoint" => {
            return RowType::Unsupported("location questions are not supported")
        }
        "image" | "audio" | "video" | "file" | "background-audio" | "photo" => {
            return RowType::Unsupported("file and media uploads are not supported")
        }
        "barcode" => return RowType::Unsupported("barcode scanning is not supported"),
        "hidden" | "xml-external" | "csv-external" => {
            return RowType::Unsupported("external data and hidden fields are not supported")
        }
        "include" => return RowType::Unsupported("`include` of another workbook is not supported"),
        _ => {}
    }
    if METADATA.contains(&ty) {
        return RowType::Metadata;
    }
    if ty.starts_with("begin loop") || ty.starts_with("begin_loop") {
        return RowType::BeginRepeat("begin loop");
    }
    let words: Vec<&str> = ty.split(' ').collect();
    // `select_one L [or_other]`, `select one from L`, `select all that apply from L or specify other`.
    let (kind, rest): (QuestionType, &[&str]) = match words.as_slice() {
        ["select_one" | "select1", rest @ ..] => (QuestionType::SelectOne, rest),
        ["select", "one", "from", rest @ ..] | ["select", "one", rest @ ..] => {
            (QuestionType::SelectOne, rest)
        }
        ["select_multiple", rest @ ..] => (QuestionType::SelectMultiple, rest),
        ["select", "all", "that", "apply", "from", rest @ ..]
        | ["select", "all", "that", "apply", rest @ ..]
        | ["select", "multiple", rest @ ..] => (QuestionType::SelectMultiple, rest),
        [first, ..]
            if first.starts_with("select_one_from_file")
                || first.starts_with("select_multiple_from_file") =>
        {
            return RowType::Unsupported(
                "choices from a file (`select_one_from_file`) are not supported; put the choices in sheet `choices`",
            )
        }
        [first, ..] if first.starts_with("select_one_external") => {
            return RowType::Unsupported(
                "external choices (`select_one_external`) are not supported; put the choices in sheet `choices`",
            )
        }
        ["osm", ..] => return RowType::Unsupported("OpenStreetMap questions are not supported"),
        _ => return RowType::Unknown,
    };
    match rest {
        [list] => RowType::Question {
            kind,
            list: Some((*list).to_owned()),
            or_other: false,
        },
        [list, "or_other"] | [list, "or", "specify", "other"] => RowType::Question {
            kind,
            list: Some((*list).to_owned()),
            or_other: true,
        },
        _ => RowType::Unknown,
    }
}

fn question(kind: QuestionType) -> RowType {
    RowType::Question {
        kind,
        list: None,
        or_other: false,
    }
}

// ---------------------------------------------------------------- constraints

/// Splits `a and b and c` at its top-level `and`s (none inside parentheses or quotes);
/// a top-level `or` binds looser, so such an expression is not split.
fn top_level_and(expr: &str) -> Vec<&str> {
    let bytes = expr.as_bytes();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    let mut parts = Vec::new();
    let word_at = |i: usize, w: &str| {
        expr[i..].starts_with(w)
            && (i == 0 || bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b')')
            && bytes
                .get(i + w.len())
                .is_none_or(|b| b.is_ascii_whitespace() || *b == b'(')
    };
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, _) if depth == 0 && word_at(i, "or") => return vec![expr.trim()],
            (None, _) if depth == 0 && i >= start && word_at(i, "and") => {
                parts.push(expr[start..i].trim());
                start = i + 3;
            }
            _ => {}
        }
    }
    parts.push(expr[start..].trim());
    parts
}

/// Whether the whole of `s` is one parenthesized expression.
fn wrapped(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    let mut depth = 0i32;
    let mut quote = None;
    for b in inner.bytes() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then_some(inner)
}

/// Bounds that the native format keeps as `min`/`max`/`max_length`, taken out of a
/// constraint (`. >= 14 and . <= 110`, `string-length(.) <= 200`); the rest stays.
#[derive(Debug, Default, PartialEq)]
struct Bounds {
    min: Option<f64>,
    max: Option<f64>,
    max_length: Option<u32>,
    rest: Option<String>,
}

fn split_bounds(kind: QuestionType, constraint: &str) -> Bounds {
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    let mut bounds = Bounds::default();
    let mut rest = Vec::new();
    for term in top_level_and(constraint) {
        let compact: String = term.split_whitespace().collect();
        let taken = if kind.is_numeric() {
            if let Some(n) = compact.strip_prefix(".>=").and_then(number) {
                bounds.min.is_none().then(|| bounds.min = Some(n)).is_some()
            } else if let Some(n) = compact.strip_prefix(".<=").and_then(number) {
                bounds.max.is_none().then(|| bounds.max = Some(n)).is_some()
            } else {
                false
            }
        } else if kind == QuestionType::Text {
            match compact
                .strip_prefix("string-length(.)<=")
                .and_then(|n| n.parse::<u32>().ok())
            {
                Some(n) if bounds.max_length.is_none() => {
                    bounds.max_length = Some(n);
                    true
                }
                _ => false,
            }
        } else {
            false
        };
        if !taken {
            rest.push(term);
        }
    }
    bounds.rest = match rest.as_slice() {
        [] => None,
        [one] => Some(wrapped(one).unwrap_or(one).trim().to_owned()),
        many => Some(many.join(" and ")),
    };
    bounds
}

/// The constraint an exported workbook carries: the native bounds written as XLSForm.
pub fn join_bounds(q: &QuestionFile) -> Option<String> {
    let number = |n: f64| super::expr::Value::Number(n).to_text();
    let mut terms = Vec::new();
    if let Some(min) = q.min {
        terms.push(format!(". >= {}", number(min)));
    }
    if let Some(max) = q.max {
        terms.push(format!(". <= {}", number(max)));
    }
    if let Some(n) = q.max_length {
        terms.push(format!("string-length(.) <= {n}"));
    }
    match (&q.constraint, terms.is_empty()) {
        (None, true) => None,
        (Some(c), true) => Some(c.clone()),
        (Some(c), false) => {
            terms.push(format!("({c})"));
            Some(terms.join(" and "))
        }
        (None, false) => Some(terms.join(" and ")),
    }
}

// ---------------------------------------------------------------- the mapping

struct Mapper<'a> {
    path: &'a Path,
    problems: Vec<Problem>,
    rows: RowMap,
}

/// One sheet row's cells by column, with the form's languages resolved.
struct RowView<'s> {
    columns: &'s [(Column, Option<String>)],
    cells: &'s [Data],
    number: usize,
}

impl RowView<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.columns
            .iter()
            .zip(self.cells)
            .find(|((c, _), _)| *c == Column::Plain(name.to_owned()))
            .and_then(|(_, cell)| cell_text(cell))
    }

    /// A translated column's text by language code; a column without a language counts
    /// for the default language unless that language has its own column.
    fn text(&self, base: &str, default_language: &str) -> Option<Text> {
        let mut map = BTreeMap::new();
        let mut plain = None;
        for ((column, code), cell) in self.columns.iter().zip(self.cells) {
            let Column::Translated(b, written) = column else {
                continue;
            };
            let Some(text) = cell_text(cell).filter(|_| b == base) else {
                continue;
            };
            match (written, code) {
                (None, _) => plain = Some(text),
                (Some(_), Some(code)) => {
                    map.insert(code.clone(), text);
                }
                (Some(_), None) => {}
            }
        }
        if let Some(text) = plain {
            map.entry(default_language.to_owned()).or_insert(text);
        }
        (!map.is_empty()).then_some(Text::ByLanguage(map))
    }

    /// Columns with content that are not in `known`.
    fn other_columns(&self, known: &[&str]) -> Vec<String> {
        self.columns
            .iter()
            .zip(self.cells)
            .filter(|(_, cell)| cell_text(cell).is_some())
            .filter_map(|((column, _), _)| match column {
                Column::Plain(name) if !known.contains(&name.as_str()) => Some(name.clone()),
                Column::Translated(base, _) if !known.contains(&base.as_str()) => {
                    Some(base.clone())
                }
                _ => None,
            })
            .fold(Vec::new(), |mut seen, name| {
                // A column may be written once per language: report it once.
                if !seen.contains(&name) {
                    seen.push(name);
                }
                seen
            })
    }
}

/// Settings columns genderlens reads (besides `title_<code>` and `description_<code>`).
const SETTINGS_COLUMNS: &[&str] = &[
    "form_id",
    "version",
    "form_title",
    "description",
    "default_language",
    "owners",
    "status",
    "opens_at",
    "closes_at",
    "public_indicators",
    "notify_language",
    "notify_digest_minutes",
    "notify_milestones",
    "retention_days",
    "weight",
    "disaggregate_by",
    "sex_question",
    "sex_female",
    "sex_male",
];

/// ODK settings that do not change what residents are asked or what is stored here:
/// ignored with a warning saying why.
const IGNORED_SETTINGS: &[(&str, &str)] = &[
    (
        "submission_url",
        "responses are sent to this genderlens server, not to that address",
    ),
    ("instance_name", "genderlens names each response by its id"),
    // Load checks refuse a value written twice in one list anyway: an answer must name
    // one choice, so allowing duplicates cannot change what is accepted.
    (
        "allow_choice_duplicates",
        "a value written twice in one list is refused anyway",
    ),
    ("style", "it only changes how Enketo lays the form out"),
    (
        "omit_instanceid",
        "genderlens gives every response its own id",
    ),
    ("clean_text_values", "genderlens trims the cells it reads"),
    ("auto_send", "it only changes when ODK Collect sends"),
    (
        "auto_delete",
        "it only changes what ODK Collect keeps on the device",
    ),
    ("namespaces", "it only names XML namespaces of ODK's XForm"),
    ("name", "it only names the root element of ODK's XForm"),
];

/// Survey columns genderlens reads.
const SURVEY_COLUMNS: &[&str] = &[
    "type",
    "name",
    "label",
    "hint",
    "required",
    "relevant",
    "constraint",
    "constraint_message",
    "calculation",
    "default",
    "appearance",
    "choices",
    "parameters",
    "read_only",
];

/// Survey columns whose content would change what the form does if it were dropped.
const REFUSED_COLUMNS: &[(&str, &str)] = &[
    (
        "choice_filter",
        "choice filters (cascading selects) are not supported",
    ),
    ("repeat_count", "repeats are not supported"),
    (
        "trigger",
        "`trigger` (recalculating on another answer) is not supported",
    ),
    ("image", "media (images) are not supported"),
    ("big-image", "media (images) are not supported"),
    ("audio", "media (audio) is not supported"),
    ("video", "media (video) is not supported"),
    ("body::accept", "file uploads are not supported"),
];

/// Survey columns that only change how a form looks in ODK Collect, or carry messages
/// genderlens words itself: ignored with a warning.
const IGNORED_COLUMNS: &[&str] = &["required_message", "guidance_hint", "autoplay", "rows"];

impl Mapper<'_> {
    fn notice(&mut self, severity: Severity, sheet: &str, row: Option<usize>, message: String) {
        self.problems.push(Problem {
            line: row,
            sheet: Some(sheet.to_owned()),
            ..Problem::in_file(self.path, severity, message)
        });
    }

    fn refuse(&mut self, sheet: &str, row: usize, message: String) {
        self.notice(Severity::Error, sheet, Some(row), message);
    }

    fn warn(&mut self, sheet: &str, row: usize, message: String) {
        self.notice(Severity::Warning, sheet, Some(row), message);
    }

    fn read_workbook(&mut self) -> Option<FormFile> {
        let mut workbook = match calamine::open_workbook_auto(self.path) {
            Ok(workbook) => workbook,
            Err(err) => {
                self.problems.push(Problem::in_file(
                    self.path,
                    Severity::Error,
                    format!("cannot read the workbook: {err}"),
                ));
                return None;
            }
        };
        let names = workbook.sheet_names();
        let mut sheet = |wanted: &str| -> Option<Sheet> {
            let name = names
                .iter()
                .find(|n| n.trim().eq_ignore_ascii_case(wanted))?;
            let range = workbook.worksheet_range(name).ok()?;
            Some(load_sheet(&range, wanted))
        };
        let Some(survey) = sheet(SURVEY) else {
            self.problems.push(Problem::in_file(
                self.path,
                Severity::Error,
                format!(
                    "not an XLSForm: the workbook has no sheet `survey` (it has {})",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            return None;
        };
        let choices = sheet(CHOICES);
        let settings = sheet(SETTINGS);
        self.map(&survey, choices.as_ref(), settings.as_ref())
    }

    /// The settings row (the first with content) as lowercase column → cell, and its
    /// row number when there is one.
    fn settings_of(&mut self, settings: Option<&Sheet>) -> (HashMap<String, Data>, Option<usize>) {
        let Some(sheet) = settings else {
            return (HashMap::new(), None);
        };
        let Some((row, cells)) = sheet
            .rows
            .iter()
            .find(|(_, cells)| cells.iter().any(|c| cell_text(c).is_some()))
        else {
            return (HashMap::new(), None);
        };
        let map = sheet
            .headers
            .iter()
            .zip(cells)
            .filter(|(h, _)| !h.is_empty())
            .map(|(h, c)| (h.trim().to_ascii_lowercase(), c.clone()))
            .collect();
        (map, Some(*row))
    }

    /// The form's languages from every translated column, default first.
    fn languages(
        &mut self,
        sheets: &[&Sheet],
        default_language: Option<&str>,
        settings_row: Option<usize>,
    ) -> Vec<String> {
        let mut codes: Vec<String> = Vec::new();
        let mut plain = false;
        for sheet in sheets {
            for header in &sheet.headers {
                if let Column::Translated(base, written) = parse_header(header) {
                    if !matches!(base.as_str(), "label" | "hint" | "constraint_message") {
                        continue;
                    }
                    match written {
                        None => plain = true,
                        Some(w) => {
                            if let Ok(code) = language_code(&w) {
                                if !codes.contains(&code) {
                                    codes.push(code);
                                }
                            }
                        }
                    }
                }
            }
        }
        let default = match default_language.map(language_code) {
            Some(Ok(code)) => code,
            Some(Err(message)) => {
                self.notice(
                    Severity::Error,
                    SETTINGS,
                    settings_row,
                    format!("`default_language`: {message}"),
                );
                "en".to_owned()
            }
            // Columns without a language are in English unless the settings say otherwise.
            None if plain || codes.is_empty() => "en".to_owned(),
            None => codes[0].clone(),
        };
        codes.retain(|c| *c != default);
        codes.insert(0, default);
        codes
    }

    /// Resolves each column's language code, refusing headers whose language is unclear.
    fn columns(&mut self, sheet: &Sheet) -> Vec<(Column, Option<String>)> {
        let header_row = sheet.header_row;
        let mut out = Vec::new();
        for header in &sheet.headers {
            let column = parse_header(header);
            let code = match &column {
                Column::Translated(_, Some(written)) => match language_code(written) {
                    Ok(code) => Some(code),
                    Err(message) => {
                        self.refuse(
                            &sheet.name,
                            header_row,
                            format!("column `{header}`: {message}"),
                        );
                        None
                    }
                },
                _ => None,
            };
            out.push((column, code));
        }
        out
    }

    fn map(
        &mut self,
        survey: &Sheet,
        choices: Option<&Sheet>,
        settings: Option<&Sheet>,
    ) -> Option<FormFile> {
        let (settings_map, settings_row) = self.settings_of(settings);
        let setting = |key: &str| settings_map.get(key).and_then(cell_text);
        for key in ["title", "description"] {
            self.rows.insert_opt(key, "", SETTINGS, settings_row);
        }
        for key in settings_map.keys() {
            self.rows.insert_opt("setting", key, SETTINGS, settings_row);
        }
        self.check_settings_columns(&settings_map, settings_row);

        let mut sheets = vec![survey];
        sheets.extend(choices);
        let languages = self.languages(
            &sheets,
            setting("default_language").as_deref(),
            settings_row,
        );
        let default_language = languages[0].clone();

        let choice_lists = match choices {
            Some(sheet) => self.read_choices(sheet, &default_language),
            None => BTreeMap::new(),
        };
        let mut reader = SurveyReader {
            choices: choice_lists,
            default_language: default_language.clone(),
            languages: languages.clone(),
            ..SurveyReader::default()
        };
        self.read_survey(survey, &mut reader);
        // A list that only an `or_other` question used is replaced by its `_or_other` copy.
        for list in std::mem::take(&mut reader.extended) {
            if !reader
                .all()
                .any(|q| q.choices.as_deref() == Some(list.as_str()))
            {
                reader.choices.remove(&list);
            }
        }

        // Form identity and settings.
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let written_id = setting("form_id").unwrap_or_else(|| stem.clone());
        let id = slug(&written_id);
        if id.is_empty() {
            self.notice(
                Severity::Error,
                SETTINGS,
                settings_row,
                format!(
                    "form_id `{written_id}` has no letters or digits to make a url-safe id from"
                ),
            );
        } else if !settings_map.contains_key("form_id") {
            self.notice(
                Severity::Warning,
                SETTINGS,
                settings_row,
                format!("no `form_id` in sheet `settings`: the file name gives the form id `{id}`"),
            );
        } else if id != written_id {
            self.notice(
                Severity::Warning,
                SETTINGS,
                settings_row,
                format!("form id `{written_id}` is used as `{id}` (ids are url-safe: a-z, 0-9, -)"),
            );
        }
        self.rows.insert_opt("id", &id, SETTINGS, settings_row);
        let version = self.version(settings_map.get("version"), settings_row);
        let title = self
            .translated_setting(&settings_map, "form_title", "title", &default_language)
            .unwrap_or_else(|| {
                Text::ByLanguage(BTreeMap::from([(
                    default_language.clone(),
                    written_id.clone(),
                )]))
            });
        let description = self.translated_setting(
            &settings_map,
            "description",
            "description",
            &default_language,
        );
        let owners: Vec<String> = setting("owners")
            .map(|s| {
                s.split([',', ';', ' '])
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for owner in &owners {
            self.rows
                .insert_opt("owners", owner, SETTINGS, settings_row);
        }
        let status = match setting("status")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("open") => Status::Open,
            Some("closed") => Status::Closed,
            Some(other) => {
                self.notice(
                    Severity::Error,
                    SETTINGS,
                    settings_row,
                    format!("`status` is `{other}`; write `open` or `closed`"),
                );
                Status::Open
            }
        };
        let mut when = |key: &str| {
            let text = setting(key)?;
            match chrono::DateTime::parse_from_rfc3339(&text) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(_) => {
                    self.notice(
                        Severity::Error,
                        SETTINGS,
                        settings_row,
                        format!(
                            "`{key}` `{text}` is not an RFC 3339 time such as 2025-03-01T00:00:00Z"
                        ),
                    );
                    None
                }
            }
        };
        let opens_at = when("opens_at");
        let closes_at = when("closes_at");
        let public_indicators = self.flag(
            setting("public_indicators"),
            "public_indicators",
            settings_row,
        );
        let notify = Notify {
            // The language owners' mail is written in (a language code).
            language: setting("notify_language")
                .map(|l| language_code(&l).unwrap_or_else(|_| l.to_lowercase())),
            ..self.notify(
                setting("notify_digest_minutes"),
                setting("notify_milestones"),
                settings_row,
            )
        };
        let retention_days = setting("retention_days").and_then(|d| match d.parse() {
            Ok(days) => Some(days),
            Err(_) => {
                self.notice(
                    Severity::Error,
                    SETTINGS,
                    settings_row,
                    format!("`retention_days` `{d}` is not a whole number of days"),
                );
                None
            }
        });
        let weight = setting("weight");
        if let Some(w) = &weight {
            self.rows.insert_opt("weight", w, SETTINGS, settings_row);
        }
        let by: Vec<String> = setting("disaggregate_by")
            .map(|s| {
                s.split([',', ' '])
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for dim in &by {
            self.rows.insert_opt("by", dim, SETTINGS, settings_row);
        }

        let sex = self.resolve_sex(&mut reader, &setting, settings_row);
        for (id, row) in &reader.question_rows {
            self.rows.insert("id", id, SURVEY, *row);
        }
        // Without a sex question the form is refused, but the rest is still checked so
        // the author sees every problem at once.
        let sex = sex.unwrap_or_else(|| {
            self.rows.sex_refused = true;
            SexSpec {
                question: String::new(),
                female: String::new(),
                male: String::new(),
            }
        });
        Some(FormFile {
            id,
            version,
            title,
            description,
            languages,
            owners,
            status,
            opens_at,
            closes_at,
            public_indicators,
            notify,
            retention_days,
            disaggregation: Disaggregation { sex, by },
            weight,
            questions: reader.top,
            choices: reader.choices,
        })
    }

    /// Settings columns genderlens does not read: a warning when dropping them keeps the
    /// form's meaning, a refusal when it would not.
    fn check_settings_columns(&mut self, settings: &HashMap<String, Data>, row: Option<usize>) {
        let mut keys: Vec<(&String, String)> = settings
            .iter()
            .filter_map(|(k, cell)| Some((k, cell_text(cell)?)))
            .collect();
        keys.sort();
        for (key, value) in keys {
            let translated = ["title_", "description_"]
                .iter()
                .any(|p| key.strip_prefix(p).is_some_and(is_language_code));
            if SETTINGS_COLUMNS.contains(&key.as_str()) || translated {
                continue;
            }
            let column = format!("column `{key}`");
            // `=FALSE()` is how a spreadsheet writes a formula's false.
            let off = truthy(value.trim_start_matches('=')) == Some(false);
            let refusal = match key.as_str() {
                // ODK encrypts each response with this key so that only its holder can
                // read them; here planners read stored answers, so they would not be.
                "public_key" => Some("ODK encrypts responses with this public key; genderlens stores them unencrypted for planners to read, so the form would not keep that promise: remove the column to accept this".to_owned()),
                // pyxform adds a `None` choice to every select_multiple: other answers.
                "add_none_option" if !off => Some("pyxform adds a choice `none` to every `select_multiple`, which genderlens does not; add the choice to the lists in sheet `choices` instead".to_owned()),
                "add_none_option" => continue,
                _ => None,
            };
            if let Some(why) = refusal {
                self.notice(Severity::Error, SETTINGS, row, format!("{column}: {why}"));
                continue;
            }
            // A misspelt genderlens setting (`disaggregate-by`) was meant to change the
            // form: dropping it silently would not give what the author asked for.
            let spelled = key.replace(['-', ' ', '.'], "_");
            if let Some(meant) = SETTINGS_COLUMNS.iter().find(|k| **k == spelled) {
                self.notice(
                    Severity::Error,
                    SETTINGS,
                    row,
                    format!("{column} is not a setting; write `{meant}`"),
                );
                continue;
            }
            let why = IGNORED_SETTINGS
                .iter()
                .find(|(k, _)| *k == key.as_str())
                .map_or("genderlens does not use it", |(_, why)| why);
            self.notice(
                Severity::Warning,
                SETTINGS,
                row,
                format!("{column} is ignored: {why}"),
            );
        }
    }

    fn flag(&mut self, value: Option<String>, key: &str, row: Option<usize>) -> bool {
        let value = value.unwrap_or_default();
        truthy(&value).unwrap_or_else(|| {
            self.notice(
                Severity::Error,
                SETTINGS,
                row,
                format!("`{key}` is `{value}`; write `yes` or `no`"),
            );
            false
        })
    }

    fn notify(
        &mut self,
        digest: Option<String>,
        milestones: Option<String>,
        row: Option<usize>,
    ) -> Notify {
        let mut notify = Notify::default();
        if let Some(d) = digest {
            match d.parse() {
                Ok(m) => notify.digest_minutes = Some(m),
                Err(_) => self.notice(
                    Severity::Error,
                    SETTINGS,
                    row,
                    format!("`notify_digest_minutes` `{d}` is not a whole number"),
                ),
            }
        }
        for m in milestones
            .iter()
            .flat_map(|m| m.split([',', ' ']))
            .filter(|m| !m.is_empty())
        {
            match m.parse() {
                Ok(n) => notify.milestones.push(n),
                Err(_) => self.notice(
                    Severity::Error,
                    SETTINGS,
                    row,
                    format!("`notify_milestones`: `{m}` is not a whole number"),
                ),
            }
        }
        notify
    }

    /// `form_title` (the default language) and `title_<code>` for the others.
    fn translated_setting(
        &mut self,
        settings: &HashMap<String, Data>,
        key: &str,
        prefix: &str,
        default_language: &str,
    ) -> Option<Text> {
        let mut map = BTreeMap::new();
        if let Some(text) = settings.get(key).and_then(cell_text) {
            map.insert(default_language.to_owned(), text);
        }
        for (column, cell) in settings {
            if let (Some(code), Some(text)) = (
                column
                    .strip_prefix(prefix)
                    .and_then(|c| c.strip_prefix('_')),
                cell_text(cell),
            ) {
                if is_language_code(code) {
                    map.insert(code.to_owned(), text);
                }
            }
        }
        (!map.is_empty()).then_some(Text::ByLanguage(map))
    }

    /// XLSForm versions are often strings such as `2024031501`, which are used as they
    /// are when they fit the database's version column. Other texts (Kobo's `vAbC…`, a
    /// date) get a number derived from the text, so the same text always gives the same
    /// version and a changed one a new version; a warning names it.
    fn version(&mut self, cell: Option<&Data>, row: Option<usize>) -> u32 {
        let Some(text) = cell.and_then(cell_text) else {
            self.notice(Severity::Warning, SETTINGS, row, "no `version` in sheet `settings`: version 1 is used; raise it when the questions change".into());
            return 1;
        };
        let whole = match cell {
            // A date cell shows as a date but holds a fraction of days.
            Some(Data::DateTime(_) | Data::DateTimeIso(_)) => None,
            _ => text
                .parse::<u32>()
                .ok()
                .filter(|v| (1..=MAX_VERSION).contains(v)),
        };
        whole.unwrap_or_else(|| {
            let number = version_from_text(&text);
            self.notice(Severity::Warning, SETTINGS, row, format!("`version` `{text}` is not a whole number from 1 to {MAX_VERSION}; genderlens numbers this version {number} (the same text always gives the same number)"));
            number
        })
    }

    fn read_choices(
        &mut self,
        sheet: &Sheet,
        default_language: &str,
    ) -> BTreeMap<String, Vec<Choice>> {
        let columns = self.columns(sheet);
        let mut lists: BTreeMap<String, Vec<Choice>> = BTreeMap::new();
        let mut warned = Vec::new();
        for (number, cells) in &sheet.rows {
            let row = RowView {
                columns: &columns,
                cells,
                number: *number,
            };
            let (list, name) = (row.get("list_name"), row.get("name"));
            let (list, name) = match (list, name) {
                (None, None) => continue,
                (Some(list), Some(name)) => (list, name),
                (None, Some(name)) => {
                    self.refuse(
                        CHOICES,
                        row.number,
                        format!("choice `{name}` has no `list_name`"),
                    );
                    continue;
                }
                (Some(list), None) => {
                    self.refuse(
                        CHOICES,
                        row.number,
                        format!("a choice of list `{list}` has no `name`"),
                    );
                    continue;
                }
            };
            for media in ["image", "big-image", "audio", "video"] {
                if row.text(media, default_language).is_some() {
                    self.refuse(
                        CHOICES,
                        row.number,
                        format!(
                            "choice `{name}` of list `{list}`: media ({media}) are not supported"
                        ),
                    );
                }
            }
            for column in row.other_columns(&[
                "list_name",
                "name",
                "label",
                "image",
                "big-image",
                "audio",
                "video",
            ]) {
                if !warned.contains(&column) {
                    self.warn(
                        CHOICES,
                        row.number,
                        format!("column `{column}` is not used by genderlens and is ignored"),
                    );
                    warned.push(column);
                }
            }
            // The last row of a value: a duplicate is reported where it is repeated.
            self.rows.at.insert(
                ("value".into(), format!("{list}\u{0}{name}")),
                Location {
                    sheet: Some(CHOICES.into()),
                    line: row.number,
                },
            );
            self.rows.insert("value", &name, CHOICES, row.number);
            self.rows.insert(&list, "", CHOICES, row.number);
            // pyxform only warns ("Choices should have a label"): the list stays whole,
            // so the questions using it are not reported as using a missing list.
            let label = row.text("label", default_language).unwrap_or_else(|| {
                self.warn(
                    CHOICES,
                    row.number,
                    format!("choice `{name}` of list `{list}` has no label; its value is shown"),
                );
                Text::ByLanguage(BTreeMap::from([(
                    default_language.to_owned(),
                    name.clone(),
                )]))
            });
            lists
                .entry(list)
                .or_default()
                .push(Choice { value: name, label });
        }
        lists
    }

    fn read_survey(&mut self, sheet: &Sheet, r: &mut SurveyReader) {
        let columns = self.columns(sheet);
        self.rows.insert("questions", "", SURVEY, sheet.header_row);
        if !columns
            .iter()
            .any(|(c, _)| *c == Column::Plain("type".into()))
        {
            self.notice(
                Severity::Error,
                SURVEY,
                None,
                "sheet `survey` has no `type` column".into(),
            );
            return;
        }
        let mut warned: Vec<String> = Vec::new();
        // Depth of a refused repeat being skipped (its rows belong to the repeat), and
        // the row it begins on.
        let mut skipping = 0usize;
        let mut repeat_row = 0usize;
        for (number, cells) in &sheet.rows {
            let row = RowView {
                columns: &columns,
                cells,
                number: *number,
            };
            let name = row.get("name");
            let Some(raw_type) = row.get("type") else {
                if let Some(name) = name {
                    self.refuse(SURVEY, row.number, format!("`{name}` has no type"));
                }
                continue;
            };
            let ty = parse_type(&raw_type);
            if skipping > 0 {
                match ty {
                    RowType::BeginRepeat(_) => skipping += 1,
                    RowType::EndRepeat => skipping -= 1,
                    _ => {}
                }
                continue;
            }
            for column in row.other_columns(SURVEY_COLUMNS) {
                if let Some((_, why)) = REFUSED_COLUMNS.iter().find(|(c, _)| *c == column) {
                    self.refuse(SURVEY, row.number, format!("column `{column}`: {why}"));
                } else if !warned.contains(&column) {
                    let why = if IGNORED_COLUMNS.contains(&column.as_str()) {
                        "only changes how ODK Collect shows the form"
                    } else {
                        "is not used by genderlens"
                    };
                    self.warn(
                        SURVEY,
                        row.number,
                        format!("column `{column}` {why}; it is ignored"),
                    );
                    warned.push(column);
                }
            }
            match ty {
                RowType::BeginGroup => {
                    let Some(id) = self.require_name(&row, &raw_type) else { continue };
                    let mut group = self.question_from(&row, r, id, QuestionType::Group);
                    if row.get("required").is_some_and(|v| truthy(&v) != Some(false)) {
                        self.warn(SURVEY, row.number, "`required` on a group has no effect; it is ignored".into());
                    }
                    group.required = false;
                    r.open.push((group, row.number));
                }
                RowType::EndGroup => match r.open.pop() {
                    Some((group, begun)) => {
                        if group.questions.is_empty() {
                            self.refuse(SURVEY, begun, format!("group `{}` has no questions", group.id));
                        }
                        r.add(group, begun);
                    }
                    None => self.refuse(SURVEY, row.number, "`end group` without a `begin group`".into()),
                },
                RowType::BeginRepeat(what) => {
                    self.refuse(SURVEY, row.number, format!("`{what}` {} is not supported: genderlens keeps one answer per question and respondent; ask the repeated questions a fixed number of times or in a separate form", name.map(|n| format!("`{n}`")).unwrap_or_default()));
                    skipping = 1;
                    repeat_row = row.number;
                }
                RowType::EndRepeat => self.refuse(SURVEY, row.number, "`end repeat` without a `begin repeat`".into()),
                RowType::Metadata => self.warn(SURVEY, row.number, format!("`{raw_type}` is device metadata that genderlens does not collect; the row is ignored")),
                RowType::Unsupported(why) => self.refuse(SURVEY, row.number, format!("type `{raw_type}`{}: {why}", name.map(|n| format!(" (`{n}`)")).unwrap_or_default())),
                RowType::Unknown => self.refuse(SURVEY, row.number, format!("unknown type `{raw_type}`")),
                RowType::Acknowledge => {
                    let Some(id) = self.require_name(&row, &raw_type) else { continue };
                    let list = r.acknowledge_list();
                    let mut q = self.question_from(&row, r, id, QuestionType::SelectOne);
                    q.choices = Some(list);
                    self.warn(SURVEY, row.number, "`acknowledge` is asked as a select_one with the single choice `OK` (the value ODK stores)".into());
                    r.add(q, row.number);
                }
                RowType::Range => {
                    let Some(id) = self.require_name(&row, &raw_type) else { continue };
                    let mut q = self.question_from(&row, r, id, QuestionType::Integer);
                    match range_bounds(row.get("parameters").as_deref()) {
                        Ok((start, end)) => {
                            q.min = Some(q.min.map_or(start.min(end), |m| m.max(start.min(end))));
                            q.max = Some(q.max.map_or(start.max(end), |m| m.min(start.max(end))));
                            self.warn(SURVEY, row.number, "`range` is asked as a whole number between its start and end (no slider)".into());
                            r.add(q, row.number);
                        }
                        Err(why) => self.refuse(SURVEY, row.number, format!("`range`: {why}")),
                    }
                }
                RowType::Question { kind, list, or_other } => {
                    let Some(id) = self.require_name(&row, &raw_type) else { continue };
                    if let Some(params) = row.get("parameters") {
                        self.refuse(SURVEY, row.number, format!("`parameters` `{params}` are not supported on type `{raw_type}`"));
                    }
                    let mut q = self.question_from(&row, r, id, kind);
                    if let Some(list) = &list {
                        if !r.choices.contains_key(list) {
                            self.refuse(SURVEY, row.number, format!("choice list `{list}` is not in sheet `choices`"));
                        }
                        q.choices = Some(list.clone());
                    }
                    // `select_one L` shown as a likert scale is genderlens's likert.
                    if kind == QuestionType::SelectOne {
                        if let Some(appearance) = &q.appearance {
                            let tokens: Vec<&str> = appearance.split_whitespace().collect();
                            if tokens.contains(&"likert") {
                                q.kind = QuestionType::Likert;
                                let rest: Vec<&str> = tokens.into_iter().filter(|t| *t != "likert").collect();
                                q.appearance = (!rest.is_empty()).then(|| rest.join(" "));
                            }
                        }
                    }
                    if q.calculation.is_some() && kind != QuestionType::Calculate {
                        self.refuse(SURVEY, row.number, format!("`calculation` on a `{raw_type}` question (a computed answer) is not supported; use a separate `calculate` row"));
                        q.calculation = None;
                    }
                    if q.choices.is_some() && !kind.has_choices() && kind != QuestionType::Calculate {
                        self.refuse(SURVEY, row.number, "column `choices` applies to select and calculate questions only".into());
                        q.choices = None;
                    }
                    if kind == QuestionType::Calculate && q.choices.is_none() {
                        self.text_calculation_choices(&mut q, r, row.number);
                    }
                    let mut specify = None;
                    if or_other {
                        if let Some((list_other, text_question)) = self.or_other(&q, r, row.number) {
                            q.choices = Some(list_other);
                            specify = Some(text_question);
                        }
                    }
                    r.add(q, row.number);
                    if let Some(text_question) = specify {
                        r.add(text_question, row.number);
                    }
                }
            }
        }
        let last = sheet.rows.last().map_or(sheet.header_row, |(n, _)| *n);
        if skipping > 0 {
            self.refuse(
                SURVEY,
                repeat_row,
                format!("this `begin repeat` has no `end repeat` (the sheet ends at row {last})"),
            );
        }
        while let Some((group, begun)) = r.open.pop() {
            self.refuse(
                SURVEY,
                begun,
                format!(
                    "group `{}` has no `end group` (the sheet ends at row {last})",
                    group.id
                ),
            );
            r.add(group, begun);
        }
    }

    /// A calculate whose calculation can only give text literals (an age group) is
    /// analysed by those values: in the native form that needs a choice list, which
    /// XLSForm has no place for, so one is made from the literals, labelled by themselves.
    fn text_calculation_choices(&mut self, q: &mut QuestionFile, r: &mut SurveyReader, row: usize) {
        let Some(outcomes) = q
            .calculation
            .as_deref()
            .and_then(|c| Expr::parse(c).ok())
            .and_then(|e| e.text_outcomes())
        else {
            return;
        };
        let mut name = q.id.clone();
        while r.choices.contains_key(&name) {
            name.push_str("_values");
        }
        let languages = r.languages.clone();
        let choices = outcomes
            .iter()
            .map(|value| Choice {
                value: value.clone(),
                label: Text::ByLanguage(
                    languages
                        .iter()
                        .map(|l| (l.clone(), value.clone()))
                        .collect(),
                ),
            })
            .collect();
        r.choices.insert(name.clone(), choices);
        self.notice(
            Severity::Warning,
            SURVEY,
            Some(row),
            format!(
                "calculate `{}` gives text ({}): analysed by those values, as choice list `{name}`",
                q.id,
                outcomes.join(", ")
            ),
        );
        q.choices = Some(name);
    }

    fn require_name(&mut self, row: &RowView, raw_type: &str) -> Option<String> {
        let name = row.get("name");
        if name.is_none() {
            self.refuse(
                SURVEY,
                row.number,
                format!("a `{raw_type}` row needs a `name`"),
            );
        }
        name
    }

    /// The fields every row type shares.
    fn question_from(
        &mut self,
        row: &RowView,
        r: &SurveyReader,
        id: String,
        kind: QuestionType,
    ) -> QuestionFile {
        let lang = r.default_language.as_str();
        let required = match row.get("required") {
            None => false,
            Some(v) => truthy(&v).unwrap_or_else(|| {
                self.refuse(SURVEY, row.number, format!("`required` `{v}` depends on other answers, which is not supported; write `yes` or leave it empty"));
                false
            }),
        };
        let mut q = QuestionFile {
            id,
            kind,
            label: row.text("label", lang),
            hint: row.text("hint", lang),
            required,
            relevant: row.get("relevant"),
            constraint: None,
            constraint_message: row.text("constraint_message", lang),
            min: None,
            max: None,
            max_length: None,
            choices: row.get("choices"),
            calculation: row.get("calculation"),
            appearance: row.get("appearance"),
            default: None,
            questions: Vec::new(),
        };
        // ODK fills `${q}` in labels with the answer; genderlens shows the text as written.
        let refers = |t: &Option<Text>| match t {
            Some(Text::ByLanguage(map)) => map.values().any(|s| s.contains("${")),
            Some(Text::Plain(s)) => s.contains("${"),
            None => false,
        };
        if refers(&q.label) || refers(&q.hint) || refers(&q.constraint_message) {
            self.warn(
                SURVEY,
                row.number,
                "the text refers to an answer (`${…}`); genderlens shows it as written, without the answer filled in".into(),
            );
        }
        if let Some(constraint) = row.get("constraint") {
            let bounds = split_bounds(kind, &constraint);
            q.min = bounds.min;
            q.max = bounds.max;
            q.max_length = bounds.max_length;
            q.constraint = bounds.rest;
        }
        // A read-only answer is one the resident may not change: not expressible here.
        if let Some(read_only) = row.get("read_only") {
            if kind.is_answerable() && truthy(&read_only) != Some(false) {
                self.refuse(
                    SURVEY,
                    row.number,
                    format!(
                        "`read_only` `{read_only}` on a question residents answer is not supported"
                    ),
                );
            }
        }
        if let Some(default) = row.get("default") {
            // ODK also takes expressions (`${last-saved#q}`, `today()`); only a constant
            // keeps its meaning on a web form.
            if default.contains("${") || default.contains('(') {
                self.refuse(SURVEY, row.number, format!("`default` `{default}` is an expression; only a constant default is supported"));
            } else {
                q.default = Some(default);
            }
        }
        q
    }

    /// `or_other`: ODK adds the choice `other` and a text question `NAME_other` asked
    /// when it is chosen. The same is written out here, so the form means the same.
    fn or_other(
        &mut self,
        q: &QuestionFile,
        r: &mut SurveyReader,
        row: usize,
    ) -> Option<(String, QuestionFile)> {
        let list = q.choices.clone()?;
        let options = r.choices.get(&list)?.clone();
        let languages = r.languages.clone();
        let every = |text: &str| {
            Text::ByLanguage(
                languages
                    .iter()
                    .map(|l| (l.clone(), text.to_owned()))
                    .collect(),
            )
        };
        let list_other = if options.iter().any(|c| c.value == "other") {
            list.clone()
        } else {
            let name = format!("{list}_or_other");
            let mut with_other = options;
            with_other.push(Choice {
                value: "other".into(),
                label: every("Other"),
            });
            r.choices.insert(name.clone(), with_other);
            r.extended.push(list.clone());
            name
        };
        let text_question = QuestionFile {
            id: format!("{}_other", q.id),
            kind: QuestionType::Text,
            label: Some(every("Specify other.")),
            hint: None,
            required: false,
            relevant: Some(format!("selected(${{{}}}, 'other')", q.id)),
            constraint: None,
            constraint_message: None,
            min: None,
            max: None,
            max_length: None,
            choices: None,
            calculation: None,
            appearance: None,
            default: None,
            questions: Vec::new(),
        };
        self.warn(SURVEY, row, format!("`or_other`: `{}` uses list `{list_other}` (with the choice `other`), followed by the text question `{}` asked when `other` is chosen", q.id, text_question.id));
        Some((list_other, text_question))
    }

    /// The contract's rules: settings `sex_question`, else a select_one named `sex` or
    /// `gender`; female/male values from settings, else the choice named or labelled in
    /// English female/woman/f (male/man/m).
    fn resolve_sex(
        &mut self,
        r: &mut SurveyReader,
        setting: &dyn Fn(&str) -> Option<String>,
        settings_row: Option<usize>,
    ) -> Option<SexSpec> {
        let explicit = setting("sex_question");
        let id = match &explicit {
            Some(id) => {
                self.rows.insert_opt("question", id, SETTINGS, settings_row);
                if r.find(id).is_none() {
                    self.notice(Severity::Error, SETTINGS, settings_row, format!("`sex_question` names `{id}`, which is not a question in sheet `survey`"));
                    return None;
                }
                id.clone()
            }
            None => {
                let found = ["sex", "gender"].into_iter().find_map(|name| {
                    r.all()
                        .find(|q| {
                            q.kind == QuestionType::SelectOne && q.id.eq_ignore_ascii_case(name)
                        })
                        .map(|q| q.id.clone())
                });
                match found {
                    Some(id) => id,
                    None => {
                        // Point at select_ones that look like one (`a8_respondent_gender`).
                        let looks_like = |q: &QuestionFile| {
                            let mut texts = vec![q.id.to_lowercase()];
                            if let Some(Text::ByLanguage(map)) = &q.label {
                                texts.extend(map.values().map(|l| l.to_lowercase()));
                            }
                            texts
                                .iter()
                                .any(|t| t.contains("sex") || t.contains("gender"))
                        };
                        let candidates: Vec<(String, usize)> = r
                            .all()
                            .filter(|q| q.kind == QuestionType::SelectOne && looks_like(q))
                            .filter_map(|q| {
                                r.question_rows.iter().find(|(id, _)| *id == q.id).cloned()
                            })
                            .collect();
                        let hint = match candidates.as_slice() {
                            [] => String::new(),
                            found => format!(
                                "; perhaps {}",
                                found
                                    .iter()
                                    .map(|(id, row)| format!("`{id}` (row {row})"))
                                    .collect::<Vec<_>>()
                                    .join(" or ")
                            ),
                        };
                        self.notice(Severity::Error, SURVEY, candidates.first().map(|(_, row)| *row), format!("no sex question: genderlens compares every answer by sex, so the form needs a `select_one` named `sex` or `gender`, or the name of its sex question in column `sex_question` of sheet `settings`{hint}"));
                        return None;
                    }
                }
            }
        };
        let row = r
            .question_rows
            .iter()
            .find(|(q, _)| *q == id)
            .map_or(0, |(_, row)| *row);
        let q = r.find(&id)?.clone();
        let options = q
            .choices
            .as_ref()
            .and_then(|l| r.choices.get(l))
            .cloned()
            .unwrap_or_default();
        if q.kind != QuestionType::SelectOne {
            self.refuse(
                SURVEY,
                row,
                format!("the sex question `{id}` must be a `select_one`"),
            );
            return None;
        }
        let mut pick = |key: &str, words: &[&str], what: &str| -> Option<String> {
            if let Some(value) = setting(key) {
                return Some(value);
            }
            let english = |c: &Choice| match &c.label {
                Text::ByLanguage(map) => map.get("en").map(|s| s.to_ascii_lowercase()),
                Text::Plain(s) => Some(s.to_ascii_lowercase()),
            };
            let matches = |c: &Choice| {
                words.contains(&c.value.to_ascii_lowercase().as_str())
                    || english(c).is_some_and(|l| words.contains(&l.trim()))
            };
            let found = options
                .iter()
                .find(|c| c.value.eq_ignore_ascii_case(words[0]))
                .or_else(|| options.iter().find(|c| matches(c)));
            if found.is_none() {
                self.refuse(SURVEY, row, format!("cannot tell which choice of the sex question `{id}` is {what}: name it `{}` or label it in English, or give its name in column `{key}` of sheet `settings`", words[0]));
            }
            found.map(|c| c.value.clone())
        };
        let female = pick("sex_female", &["female", "woman", "f"], "female");
        let male = pick("sex_male", &["male", "man", "m"], "male");
        let (female, male) = (female?, male?);
        if let Some(q) = r.find_mut(&id) {
            if !q.required {
                q.required = true;
                self.warn(
                    SURVEY,
                    row,
                    format!("the sex question `{id}` is always required; it is marked required"),
                );
            }
        }
        Some(SexSpec {
            question: id,
            female,
            male,
        })
    }
}

/// Versions are kept in a signed 32-bit column.
const MAX_VERSION: u32 = i32::MAX as u32;

/// A version number in 1..=MAX_VERSION derived from a version text (SHA-256, so it does
/// not change between builds).
fn version_from_text(text: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    n % MAX_VERSION + 1
}

/// `parameters` of a `range`: `start=1 end=10 step=1` (spaces, commas or semicolons).
fn range_bounds(parameters: Option<&str>) -> Result<(f64, f64), String> {
    let (mut start, mut end, mut step) = (0.0, 10.0, 1.0);
    for part in parameters
        .unwrap_or("")
        .split([' ', ',', ';'])
        .filter(|p| !p.is_empty())
    {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("parameter `{part}` is not `key=value`"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("parameter `{part}` is not a number"))?;
        match key.trim() {
            "start" => start = value,
            "end" => end = value,
            "step" => step = value,
            other => return Err(format!("parameter `{other}` is not supported")),
        }
    }
    if start.fract() != 0.0 || end.fract() != 0.0 || step != 1.0 {
        return Err("only whole-number ranges with step 1 are supported".into());
    }
    Ok((start, end))
}

/// A url-safe id from an XLSForm `form_id`: lowercase, `_`, spaces and dots become `-`.
pub fn slug(written: &str) -> String {
    let mut out = String::new();
    for c in written.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if matches!(c, '-' | '_' | ' ' | '.') && !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_owned();
    out.truncate(64);
    out.trim_end_matches('-').to_owned()
}

/// The survey being built: finished top-level questions, open groups, rows of ids.
#[derive(Default)]
struct SurveyReader {
    top: Vec<QuestionFile>,
    open: Vec<(QuestionFile, usize)>,
    choices: BTreeMap<String, Vec<Choice>>,
    question_rows: Vec<(String, usize)>,
    default_language: String,
    languages: Vec<String>,
    /// Lists copied with an added `other` for `or_other` questions.
    extended: Vec<String>,
}

impl SurveyReader {
    fn add(&mut self, q: QuestionFile, row: usize) {
        self.question_rows.push((q.id.clone(), row));
        match self.open.last_mut() {
            Some((group, _)) => group.questions.push(q),
            None => self.top.push(q),
        }
    }

    fn all(&self) -> impl Iterator<Item = &QuestionFile> {
        fn walk<'a>(list: &'a [QuestionFile], out: &mut Vec<&'a QuestionFile>) {
            for q in list {
                out.push(q);
                walk(&q.questions, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.top, &mut out);
        out.into_iter()
    }

    fn find(&self, id: &str) -> Option<&QuestionFile> {
        self.all().find(|q| q.id == id)
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut QuestionFile> {
        fn walk<'a>(list: &'a mut [QuestionFile], id: &str) -> Option<&'a mut QuestionFile> {
            for q in list {
                if q.id == id {
                    return Some(q);
                }
                if let Some(found) = walk(&mut q.questions, id) {
                    return Some(found);
                }
            }
            None
        }
        walk(&mut self.top, id)
    }

    /// The one-choice list `acknowledge` questions use.
    fn acknowledge_list(&mut self) -> String {
        let mut name = "acknowledge".to_owned();
        let ok = vec![Choice {
            value: "OK".into(),
            label: Text::ByLanguage(
                self.languages
                    .iter()
                    .map(|l| (l.clone(), "OK".to_owned()))
                    .collect(),
            ),
        }];
        while self.choices.get(&name).is_some_and(|list| *list != ok) {
            name.push('_');
        }
        self.choices.insert(name.clone(), ok);
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_languages() {
        assert_eq!(
            parse_header("label::English (en)"),
            Column::Translated("label".into(), Some("English (en)".into()))
        );
        assert_eq!(
            parse_header("LABEL"),
            Column::Translated("label".into(), None)
        );
        assert_eq!(
            parse_header("label:English"),
            Column::Translated("label".into(), Some("English".into()))
        );
        assert_eq!(parse_header("List Name"), Column::Plain("list_name".into()));
        assert_eq!(
            parse_header("media::image::French (fr)"),
            Column::Translated("image".into(), Some("French (fr)".into()))
        );
        assert_eq!(
            parse_header("jr:count"),
            Column::Plain("repeat_count".into())
        );
        assert_eq!(language_code("English (en)").as_deref(), Ok("en"));
        assert_eq!(language_code("English(en)").as_deref(), Ok("en"));
        assert_eq!(language_code("english").as_deref(), Ok("en"));
        assert_eq!(language_code("EN").as_deref(), Ok("en"));
        assert_eq!(language_code("Português (pt-BR)").as_deref(), Ok("pt-br"));
        assert_eq!(language_code("pt-BR").as_deref(), Ok("pt-br"));
        assert!(language_code("Klingon").is_err());
    }

    #[test]
    fn types() {
        assert_eq!(parse_type("begin_group"), RowType::BeginGroup);
        assert_eq!(parse_type("End Group"), RowType::EndGroup);
        assert_eq!(
            parse_type("select_one yes_no"),
            RowType::Question {
                kind: QuestionType::SelectOne,
                list: Some("yes_no".into()),
                or_other: false
            }
        );
        assert_eq!(
            parse_type("select all that apply from toilet_type or specify other"),
            RowType::Question {
                kind: QuestionType::SelectMultiple,
                list: Some("toilet_type".into()),
                or_other: true
            }
        );
        assert_eq!(
            parse_type("select_one  colors or_other"),
            RowType::Question {
                kind: QuestionType::SelectOne,
                list: Some("colors".into()),
                or_other: true
            }
        );
        assert!(matches!(
            parse_type("select_one_from_file x.csv"),
            RowType::Unsupported(_)
        ));
        assert!(matches!(
            parse_type("begin repeat"),
            RowType::BeginRepeat(_)
        ));
        assert!(matches!(
            parse_type("begin loop over toilet_type"),
            RowType::BeginRepeat(_)
        ));
        assert_eq!(parse_type("deviceid"), RowType::Metadata);
        assert_eq!(parse_type("phone number"), RowType::Unknown);
    }

    #[test]
    fn bounds_come_out_of_constraints_and_go_back() {
        let b = split_bounds(QuestionType::Integer, ". >= 14 and . <= 110");
        assert_eq!((b.min, b.max, b.rest), (Some(14.0), Some(110.0), None));
        let b = split_bounds(QuestionType::Integer, ". >= 0 and (. mod 2 = 0 or . = 7)");
        assert_eq!(
            (b.min, b.rest.as_deref()),
            (Some(0.0), Some(". mod 2 = 0 or . = 7"))
        );
        // `or` binds looser than `and`: nothing may be taken out.
        let b = split_bounds(QuestionType::Integer, ". >= 0 and . < 5 or . = 99");
        assert_eq!(
            (b.min, b.rest.as_deref()),
            (None, Some(". >= 0 and . < 5 or . = 99"))
        );
        let b = split_bounds(QuestionType::Text, "string-length(.) <= 200");
        assert_eq!(b.max_length, Some(200));
        let b = split_bounds(QuestionType::Date, ". >= '2014-01-01' and . <= today()");
        assert_eq!(
            b.rest.as_deref(),
            Some(". >= '2014-01-01' and . <= today()")
        );
        let b = split_bounds(QuestionType::Decimal, "regex(., 'and') and . <= 1.5");
        assert_eq!(
            (b.max, b.rest.as_deref()),
            (Some(1.5), Some("regex(., 'and')"))
        );

        let mut q = QuestionFile {
            id: "a".into(),
            kind: QuestionType::Integer,
            label: None,
            hint: None,
            required: false,
            relevant: None,
            constraint: Some(". != 13".into()),
            constraint_message: None,
            min: Some(0.0),
            max: Some(120.0),
            max_length: None,
            choices: None,
            calculation: None,
            appearance: None,
            default: None,
            questions: Vec::new(),
        };
        let joined = join_bounds(&q).unwrap_or_default();
        assert_eq!(joined, ". >= 0 and . <= 120 and (. != 13)");
        let back = split_bounds(QuestionType::Integer, &joined);
        assert_eq!(
            (back.min, back.max, back.rest.as_deref()),
            (Some(0.0), Some(120.0), Some(". != 13"))
        );
        q.constraint = Some(". > 1 or . < -1".into());
        let back = split_bounds(QuestionType::Integer, &join_bounds(&q).unwrap_or_default());
        assert_eq!(back.rest.as_deref(), Some(". > 1 or . < -1"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Spec test"), "spec-test");
        assert_eq!(slug("liberia_urban_resilience"), "liberia-urban-resilience");
        assert_eq!(slug("YesNo"), "yesno");
        assert_eq!(slug("__x__"), "x");
        assert_eq!(slug("ÄÖ"), "");
    }

    #[test]
    fn text_versions_get_a_stable_number() {
        let v = version_from_text("vAbC3xYz");
        assert_eq!(v, version_from_text("vAbC3xYz"));
        assert_ne!(v, version_from_text("vAbC3xYZ"));
        assert!((1..=MAX_VERSION).contains(&v));
    }

    #[test]
    fn range_parameters() {
        assert_eq!(range_bounds(Some("start=1 end=5")), Ok((1.0, 5.0)));
        assert_eq!(range_bounds(None), Ok((0.0, 10.0)));
        assert!(range_bounds(Some("start=0 end=1 step=0.1")).is_err());
    }
}
