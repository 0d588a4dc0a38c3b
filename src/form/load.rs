//! Loading `forms/*.yaml` (and XLSForm workbooks, `*.xlsx`/`*.xls`) and checking every
//! rule a form must satisfy before residents see it. Problems carry file, line (or sheet
//! and row) and question id so `genderlens forms check` can point at them.

use super::expr::Expr;
use super::model::*;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug)]
pub struct Problem {
    pub file: PathBuf,
    /// The YAML line, or the row of `sheet` in a workbook (1-based, as spreadsheets count).
    pub line: Option<usize>,
    /// The workbook sheet, for problems found in an XLSForm.
    pub sheet: Option<String>,
    pub question: Option<String>,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {level}: ")?;
        match (&self.sheet, self.line) {
            (Some(sheet), Some(row)) => write!(f, "sheet `{sheet}`, row {row}: ")?,
            (Some(sheet), None) => write!(f, "sheet `{sheet}`: ")?,
            _ => {}
        }
        if let Some(q) = &self.question {
            write!(f, "question `{q}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Forms that loaded, and every problem found on the way.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub forms: Vec<Form>,
    pub problems: Vec<Problem>,
}

impl Problem {
    /// A problem of the whole file (no line).
    pub fn in_file(path: &Path, severity: Severity, message: String) -> Problem {
        Problem {
            file: path.to_owned(),
            line: None,
            sheet: None,
            question: None,
            severity,
            message,
        }
    }

    fn at(path: &Path, at: Option<Location>, severity: Severity, message: String) -> Problem {
        let (sheet, line) = at.map_or((None, None), |l| (l.sheet, Some(l.line)));
        Problem {
            sheet,
            line,
            ..Problem::in_file(path, severity, message)
        }
    }
}

/// Where something is written in a form file: a YAML line, or a workbook sheet and row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub sheet: Option<String>,
    pub line: usize,
}

/// Finds where `key: value` is written in the file a form came from, so the checker can
/// point at problems whatever the file format. Keys are those of the YAML format: `id`
/// (a question or the form), `value` (a choice; `list` names its list), `question`, `by`,
/// `weight`, `owners`, and a choice list's name (with an empty value).
pub trait Locate {
    fn locate(&self, key: &str, value: &str, list: Option<&str>) -> Option<Location>;

    /// Whether the reader of the source already refused the sex question (a workbook
    /// without one), so the checker does not report it a second time.
    fn sex_refused(&self) -> bool {
        false
    }
}

/// YAML text: the line where `key: value` is written.
struct Yaml<'a>(&'a str);

impl Locate for Yaml<'_> {
    fn locate(&self, key: &str, value: &str, _list: Option<&str>) -> Option<Location> {
        find_line(self.0, key, value).map(|line| Location { sheet: None, line })
    }
}

/// Nowhere (a stored definition).
impl Locate for () {
    fn locate(&self, _: &str, _: &str, _: Option<&str>) -> Option<Location> {
        None
    }
}

impl LoadReport {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Largest number of options of a `select_multiple`: a selection is kept as a bit set
/// inside an f64, exact up to 2^53.
const MAX_MULTI_OPTIONS: usize = 53;
/// `by` dimensions are stored as columns of the responses table.
pub const MAX_BY_DIMENSIONS: usize = 4;

/// Loads every `*.yaml`/`*.yml` form in `dir` (sorted by name, so reports are stable).
pub fn load_dir(dir: &Path) -> LoadReport {
    let mut report = LoadReport::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            report.problems.push(Problem::in_file(
                dir,
                Severity::Error,
                format!("cannot read the forms directory: {err}"),
            ));
            return report;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| FileKind::of(p).is_some())
        // Office keeps `~$name.xlsx` lock files beside an open workbook.
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("~$"))
        })
        .collect();
    paths.sort();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        let (form, problems, id_at) = load_any(&path);
        report.problems.extend(problems);
        if let Some(form) = form {
            if let Some(first) = seen.get(&form.id) {
                report.problems.push(Problem::at(
                    &path,
                    id_at,
                    Severity::Error,
                    format!(
                        "form id `{}` is already used by {}",
                        form.id,
                        first.display()
                    ),
                ));
                continue;
            }
            seen.insert(form.id.clone(), path.clone());
            report.forms.push(form);
        }
    }
    report
}

/// The form file formats `forms/` may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Yaml,
    Workbook,
}

impl FileKind {
    pub fn of(path: &Path) -> Option<FileKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(FileKind::Yaml),
            "xlsx" | "xls" => Some(FileKind::Workbook),
            _ => None,
        }
    }
}

/// Loads and checks one form file of either format. The form is returned only when it
/// has no errors.
pub fn load_file(path: &Path) -> (Option<Form>, Vec<Problem>) {
    let (form, problems, _) = load_any(path);
    (form, problems)
}

/// As `load_file`, with where the form id is written (for the duplicate-id check).
fn load_any(path: &Path) -> (Option<Form>, Vec<Problem>, Option<Location>) {
    match FileKind::of(path) {
        Some(FileKind::Workbook) => super::xlsform::load(path),
        _ => match std::fs::read_to_string(path) {
            Ok(text) => {
                let (form, problems) = load_str(path, &text);
                let id_at = form
                    .as_ref()
                    .and_then(|f| Yaml(&text).locate("id", &f.id, None));
                (form, problems, id_at)
            }
            Err(err) => {
                let problem = Problem::in_file(
                    path,
                    Severity::Error,
                    format!("cannot read the file: {err}"),
                );
                (None, vec![problem], None)
            }
        },
    }
}

/// Parses and checks one YAML form file. The form is returned only when it has no errors.
pub fn load_str(path: &Path, text: &str) -> (Option<Form>, Vec<Problem>) {
    match parse_yaml(path, text) {
        Ok(file) => check_file(path, file, &Yaml(text)),
        Err(problem) => (None, vec![problem]),
    }
}

/// Parses the YAML form format without checking it.
pub fn parse_yaml(path: &Path, text: &str) -> Result<FormFile, Problem> {
    serde_norway::from_str(text).map_err(|err| Problem {
        line: err.location().map(|l| l.line()),
        ..Problem::in_file(
            path,
            Severity::Error,
            format!("not a valid form file: {err}"),
        )
    })
}

/// Writes a form file in the YAML format, leaving out what is empty or the default so
/// it reads like a hand-written file; `parse_yaml` gives the same `FormFile` back.
pub fn to_yaml(file: &FormFile) -> Result<String, serde_norway::Error> {
    use serde_norway::Value;
    fn prune(value: &mut Value, top: bool) {
        match value {
            Value::Mapping(map) => {
                for (_, v) in map.iter_mut() {
                    prune(v, false);
                }
                map.retain(|k, v| {
                    // The top level's `questions` is required even when empty.
                    let required = top && k.as_str() == Some("questions");
                    let default = match v {
                        Value::Null | Value::Bool(false) => true,
                        Value::Sequence(s) => s.is_empty(),
                        Value::Mapping(m) => m.is_empty(),
                        Value::String(s) => k.as_str() == Some("status") && s == "open",
                        _ => false,
                    };
                    required || !default
                });
            }
            Value::Sequence(items) => items.iter_mut().for_each(|v| prune(v, false)),
            _ => {}
        }
    }
    let mut value = serde_norway::to_value(file)?;
    prune(&mut value, true);
    let plain = serde_norway::to_string(&value)?;
    // serde_norway writes YAML 1.2, where `yes`, `no`, `on`, `1:30` or `2024-03-01` are
    // strings; YAML 1.1 tools (PyYAML, older Ruby) read them as booleans, numbers or
    // dates. Such scalars are marked, written, and the marks turned into quotes.
    let (open, close) = ('\u{E000}', '\u{E001}');
    let mut marked = value.clone();
    mark_yaml11(&mut marked, open, close);
    let text = serde_norway::to_string(&marked)?;
    let quoted = regex::Regex::new(&format!("{open}([^{close}\n]*){close}"))
        .map(|re| re.replace_all(&text, "'$1'").into_owned());
    // Kept only if it reads back to the same document (e.g. no text held a mark).
    Ok(match quoted {
        Ok(q) if serde_norway::from_str::<Value>(&q).is_ok_and(|v| v == value) => q,
        _ => plain,
    })
}

/// Wraps every string (key or value) that YAML 1.1 reads as something else in marks.
fn mark_yaml11(value: &mut serde_norway::Value, open: char, close: char) {
    use serde_norway::Value;
    let re = regex::Regex::new(concat!(
        r"^(?:[yYnN]|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|true|True|TRUE|false|False|FALSE",
        r"|~|null|Null|NULL|=|\.(?:nan|NaN|NAN)|[-+]?\.(?:inf|Inf|INF)",
        r"|[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(?::[0-5]?[0-9])*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)",
        r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?)$"
    ));
    let Ok(re) = re else { return };
    fn walk(v: &mut Value, re: &regex::Regex, open: char, close: char) {
        let mark = |s: &str| format!("{open}{s}{close}");
        match v {
            Value::String(s) if re.is_match(s) => *s = mark(s),
            Value::Sequence(items) => items.iter_mut().for_each(|i| walk(i, re, open, close)),
            Value::Mapping(map) => {
                let entries = std::mem::take(map);
                for (mut k, mut inner) in entries {
                    walk(&mut k, re, open, close);
                    walk(&mut inner, re, open, close);
                    map.insert(k, inner);
                }
            }
            _ => {}
        }
    }
    walk(value, &re, open, close);
}

/// Checks a form file however it was read; `source` points problems at lines or rows.
/// The form is returned only when it has no errors.
pub fn check_file(
    path: &Path,
    file: FormFile,
    source: &dyn Locate,
) -> (Option<Form>, Vec<Problem>) {
    let mut checker = Checker {
        path,
        source,
        problems: Vec::new(),
    };
    let form = checker.check(file);
    let has_errors = checker
        .problems
        .iter()
        .any(|p| p.severity == Severity::Error);
    (form.filter(|_| !has_errors), checker.problems)
}

/// Finds the line (1-based) where `key: value` is written, for pointing at a problem.
fn find_line(text: &str, key: &str, value: &str) -> Option<usize> {
    let quoted = regex::escape(value);
    let pattern = format!(
        r#"(^|[\s{{,-]){}\s*:\s*["']?{}["']?\s*($|[,}}#])"#,
        regex::escape(key),
        quoted
    );
    let re = regex::Regex::new(&pattern).ok()?;
    text.lines()
        .position(|line| re.is_match(line))
        .map(|i| i + 1)
}

/// A form id: lowercase letters, digits and `-`, as used in URLs.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && s.len() <= 64
}

/// Longest choice value, in characters.
const MAX_CHOICE_VALUE: usize = 255;

/// What is wrong with a choice value, if anything. pyxform takes any text (`70+`, `24/7`,
/// `tuberculosis(tb)`, even spaces in a select_one list): pages, URLs and exports escape
/// what they show. Spaces are refused where a `select_multiple` uses the list (see
/// `check_question`), since its answer is the values joined by spaces.
fn choice_value_problem(s: &str) -> Option<String> {
    if s.trim().is_empty() {
        Some("a value cannot be empty".into())
    } else if s.chars().count() > MAX_CHOICE_VALUE {
        Some(format!("a value has at most {MAX_CHOICE_VALUE} characters"))
    } else if s.chars().any(char::is_control) {
        Some("a value cannot contain control characters (tabs, line breaks)".into())
    } else if s.trim() != s {
        Some("a value cannot start or end with a space".into())
    } else {
        None
    }
}

/// What a problem is about, to find where it is written.
#[derive(Clone, Copy)]
enum Subject<'s> {
    Question(&'s str),
    Choice {
        list: &'s str,
        value: &'s str,
    },
    /// A key of the form itself (`title`, `description`).
    Form(&'static str),
}

struct Checker<'a> {
    path: &'a Path,
    source: &'a dyn Locate,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, question: Option<&str>, message: String) {
        let at = question.and_then(|q| self.source.locate("id", q, None));
        self.problems.push(Problem {
            question: question.map(str::to_owned),
            ..Problem::at(self.path, at, severity, message)
        });
    }

    fn error(&mut self, question: Option<&str>, message: String) {
        self.push(Severity::Error, question, message);
    }

    fn error_at(&mut self, key: &str, value: &str, message: String) {
        let at = self.source.locate(key, value, None);
        self.problems
            .push(Problem::at(self.path, at, Severity::Error, message));
    }

    fn error_at_choice(&mut self, list: &str, value: &str, message: String) {
        self.push_about(Severity::Error, Subject::Choice { list, value }, message);
    }

    fn push_about(&mut self, severity: Severity, subject: Subject, message: String) {
        let at = match subject {
            Subject::Question(q) => return self.push(severity, Some(q), message),
            Subject::Choice { list, value } => self.source.locate("value", value, Some(list)),
            Subject::Form(key) => self.source.locate(key, "", None),
        };
        self.problems
            .push(Problem::at(self.path, at, severity, message));
    }

    /// Every declared language should have a translation; a missing one falls back to
    /// the default language, and a missing default to another language's text (only a
    /// warning, as pyxform's missing-translation check, for labels and hints alike).
    fn check_text(&mut self, text: &Text, languages: &[String], about: Subject, what: &str) {
        let Text::ByLanguage(map) = text else { return };
        // The text `Text::get` falls back to when the default language has none.
        let Some(shown) = map.keys().find(|l| text.has(l)) else {
            self.push_about(Severity::Error, about, format!("{what} is empty"));
            return;
        };
        for (i, lang) in languages.iter().enumerate() {
            if !text.has(lang) {
                if i == 0 {
                    self.push_about(
                        Severity::Warning,
                        about,
                        format!("{what} has no text in the default language `{lang}`; the `{shown}` text is shown"),
                    );
                } else {
                    self.push_about(
                        Severity::Warning,
                        about,
                        format!(
                            "{what} has no `{lang}` translation; the default language is shown"
                        ),
                    );
                }
            }
        }
        for lang in map.keys() {
            if !languages.contains(lang) {
                self.push_about(
                    Severity::Warning,
                    about,
                    format!("{what} has text in `{lang}`, which is not in the form's languages"),
                );
            }
        }
    }

    fn check(&mut self, file: FormFile) -> Option<Form> {
        if !is_slug(&file.id) {
            self.error_at(
                "id",
                &file.id,
                format!(
                    "form id `{}` must be a url-safe slug (a-z, 0-9, -; at most 64 characters)",
                    file.id
                ),
            );
        }
        if file.version == 0 {
            self.error(None, "version must be 1 or more".into());
        }
        if file.languages.is_empty() {
            self.error(None, "languages must list at least one language".into());
        }
        let mut langs = HashSet::new();
        for lang in &file.languages {
            let valid = (2..=8).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid || !langs.insert(lang.as_str()) {
                self.error(
                    None,
                    format!("language `{lang}` is not a valid, distinct code"),
                );
            }
        }
        let languages = file.languages.clone();
        self.check_text(&file.title, &languages, Subject::Form("title"), "the title");
        if let Some(d) = &file.description {
            self.check_text(
                d,
                &languages,
                Subject::Form("description"),
                "the description",
            );
        }
        for owner in &file.owners {
            if !validator::ValidateEmail::validate_email(owner) {
                self.error_at(
                    "owners",
                    owner,
                    format!("owner `{owner}` is not an email address"),
                );
            }
        }
        if let (Some(open), Some(close)) = (file.opens_at, file.closes_at) {
            if close <= open {
                self.error(None, "closes_at must be after opens_at".into());
            }
        }
        if file.notify.milestones.windows(2).any(|w| w[0] >= w[1])
            || file.notify.milestones.contains(&0)
        {
            self.error(
                None,
                "notify.milestones must be positive and increasing".into(),
            );
        }

        if file.retention_days == Some(0) {
            self.error(
                None,
                "retention_days must be at least 1 (leave it out to keep responses)".into(),
            );
        }
        if let Some(lang) = &file.notify.language {
            if !file.languages.contains(lang) {
                self.error(
                    None,
                    format!("notify.language `{lang}` is not one of the form's languages"),
                );
            }
        }

        // Choice lists.
        for (name, list) in &file.choices {
            if list.is_empty() {
                self.error_at(name, "", format!("choice list `{name}` is empty"));
            }
            let mut values = HashSet::new();
            for choice in list {
                if let Some(problem) = choice_value_problem(&choice.value) {
                    self.error_at_choice(
                        name,
                        &choice.value,
                        format!("choice `{}` in list `{name}`: {problem}", choice.value),
                    );
                }
                if !values.insert(choice.value.as_str()) {
                    self.error_at_choice(
                        name,
                        &choice.value,
                        format!("choice `{}` appears twice in list `{name}`", choice.value),
                    );
                }
                let what = format!("the label of choice `{}` in list `{name}`", choice.value);
                let about = Subject::Choice {
                    list: name,
                    value: &choice.value,
                };
                self.check_text(&choice.label, &languages, about, &what);
            }
        }

        // Flatten the question tree.
        let mut questions = Vec::new();
        self.flatten(&file.questions, None, &mut questions);
        if questions.is_empty() {
            self.error_at("questions", "", "the form has no questions".into());
        }
        let mut index = HashMap::new();
        for (i, q) in questions.iter().enumerate() {
            if !is_name(&q.id) {
                self.error(
                    Some(&q.id),
                    "ids start with a letter and use letters, digits and _ only".into(),
                );
            }
            if index.insert(q.id.clone(), i).is_some() {
                self.error(
                    Some(&q.id),
                    "this id is used by more than one question".into(),
                );
            }
        }
        for i in 0..questions.len() {
            self.check_question(&mut questions, i, &file, &index);
        }
        let eval_order = self.dependency_order(&questions, &index);

        let sex = self.check_disaggregation(&file, &questions, &index);
        self.check_weight(&file, &questions, &index);

        let mut slots = Vec::new();
        for (i, q) in questions.iter_mut().enumerate() {
            let kind = match q.kind {
                QuestionType::SelectOne | QuestionType::Likert => Some(SlotKind::Choice),
                QuestionType::SelectMultiple => Some(SlotKind::Multi),
                QuestionType::Integer | QuestionType::Decimal => Some(SlotKind::Number),
                QuestionType::Date => Some(SlotKind::Date),
                QuestionType::Calculate if q.choices.is_some() => Some(SlotKind::Choice),
                // Text without a choice list has no analysis (warned about above).
                QuestionType::Calculate
                    if q.compiled
                        .calculation
                        .as_ref()
                        .is_some_and(|c| c.text_outcomes().is_some()) =>
                {
                    None
                }
                QuestionType::Calculate => Some(SlotKind::Number),
                QuestionType::Text | QuestionType::Note | QuestionType::Group => None,
            };
            if let Some(kind) = kind {
                q.compiled.slot = Some(slots.len());
                slots.push((i, kind));
            }
        }

        // Only what gives stored answers their meaning: closing a form, adding an owner
        // or a retention period must not demand a new version.
        let hash = {
            let meaning = (
                &file.questions,
                &file.choices,
                &file.disaggregation,
                &file.weight,
            );
            let canonical = serde_json::to_vec(&meaning).unwrap_or_default();
            hex::encode(Sha256::digest(&canonical))
        };
        let sex = sex?;
        Some(Form {
            id: file.id.clone(),
            version: file.version,
            title: file.title.clone(),
            description: file.description.clone(),
            languages,
            owners: file.owners.clone(),
            status: file.status,
            opens_at: file.opens_at,
            closes_at: file.closes_at,
            public_indicators: file.public_indicators,
            notify: file.notify.clone(),
            retention_days: file.retention_days,
            disaggregation: file.disaggregation.clone(),
            weight: file.weight.clone(),
            questions,
            choices: file.choices.clone(),
            hash,
            index,
            eval_order,
            sex,
            slots,
            source: file,
        })
    }

    fn flatten(&mut self, list: &[QuestionFile], parent: Option<usize>, out: &mut Vec<Question>) {
        for q in list {
            let group = parent.map(|p: usize| out[p].id.clone());
            let position = out.len();
            out.push(Question {
                id: q.id.clone(),
                kind: q.kind,
                label: q.label.clone(),
                hint: q.hint.clone(),
                required: q.required,
                relevant: q.relevant.clone(),
                constraint: q.constraint.clone(),
                constraint_message: q.constraint_message.clone(),
                min: q.min,
                max: q.max,
                max_length: q.max_length,
                choices: q.choices.clone(),
                calculation: q.calculation.clone(),
                appearance: q.appearance.clone(),
                default: q.default.clone(),
                group,
                compiled: CompiledQuestion {
                    parent,
                    ..CompiledQuestion::default()
                },
            });
            if q.kind == QuestionType::Group {
                if q.questions.is_empty() {
                    self.error(Some(&q.id), "a group needs `questions`".into());
                }
                self.flatten(&q.questions, Some(position), out);
            } else if !q.questions.is_empty() {
                self.error(Some(&q.id), "only a `group` may have `questions`".into());
            }
        }
    }

    fn parse_expr(
        &mut self,
        q: &str,
        key: &str,
        src: &Option<String>,
        index: &HashMap<String, usize>,
        allow_current: bool,
    ) -> Option<Expr> {
        let src = src.as_deref()?;
        match Expr::parse(src) {
            Ok(expr) => {
                for name in expr.references() {
                    if !index.contains_key(&name) {
                        self.error(
                            Some(q),
                            format!("`{key}` refers to unknown question ${{{name}}}"),
                        );
                    }
                }
                if expr.uses_current() && !allow_current {
                    self.error(
                        Some(q),
                        format!("`.` may only be used in `constraint`, not in `{key}`"),
                    );
                }
                Some(expr)
            }
            Err(err) => {
                self.error(Some(q), format!("`{key}` does not parse: {err}"));
                None
            }
        }
    }

    fn check_question(
        &mut self,
        questions: &mut [Question],
        i: usize,
        file: &FormFile,
        index: &HashMap<String, usize>,
    ) {
        let q = questions[i].clone();
        let id = q.id.as_str();
        let kind = q.kind;
        let languages = &file.languages;
        match (&q.label, kind) {
            // A group without a label only lays questions out (XLSForm allows it).
            (None, QuestionType::Calculate | QuestionType::Group) => {}
            (None, _) => self.error(Some(id), "a label is required".into()),
            (Some(label), _) => {
                self.check_text(label, languages, Subject::Question(id), "the label")
            }
        }
        if let Some(hint) = &q.hint {
            self.check_text(hint, languages, Subject::Question(id), "the hint");
        }
        if let Some(msg) = &q.constraint_message {
            self.check_text(
                msg,
                languages,
                Subject::Question(id),
                "the constraint message",
            );
        }
        if q.required && !kind.is_answerable() {
            self.error(
                Some(id),
                format!("a {kind:?} question cannot be required").to_lowercase(),
            );
        }
        if (q.min.is_some() || q.max.is_some()) && !kind.is_numeric() {
            self.error(
                Some(id),
                "min/max apply to integer and decimal questions only".into(),
            );
        }
        if let (Some(min), Some(max)) = (q.min, q.max) {
            if min > max {
                self.error(Some(id), format!("min {min} is greater than max {max}"));
            }
        }
        if q.max_length.is_some() && kind != QuestionType::Text {
            self.error(Some(id), "max_length applies to text questions only".into());
        }
        match (&q.choices, kind) {
            (Some(list), k) if k.has_choices() || k == QuestionType::Calculate => {
                match file.choices.get(list) {
                    None => self.error(Some(id), format!("choice list `{list}` does not exist")),
                    Some(options) if kind == QuestionType::Likert && options.len() < 2 => {
                        self.error(Some(id), "a likert scale needs at least 2 options".into())
                    }
                    Some(options)
                        if kind == QuestionType::SelectMultiple
                            && options.len() > MAX_MULTI_OPTIONS =>
                    {
                        self.error(
                            Some(id),
                            format!("select_multiple supports at most {MAX_MULTI_OPTIONS} options"),
                        )
                    }
                    Some(options) if kind == QuestionType::SelectMultiple => {
                        for c in options.iter().filter(|c| c.value.contains(' ')) {
                            self.error_at_choice(list, &c.value, format!("choice `{}` in list `{list}`: the `select_multiple` `{id}` uses this list, and its answer is the chosen values separated by spaces, so they cannot contain spaces", c.value));
                        }
                    }
                    Some(_) => {}
                }
            }
            (None, k) if k.has_choices() => {
                self.error(Some(id), "this question type needs `choices`".into())
            }
            (Some(_), _) => self.error(
                Some(id),
                "`choices` does not apply to this question type".into(),
            ),
            (None, _) => {}
        }
        if let Some(default) = &q.default {
            let options = q.choices.as_ref().and_then(|l| file.choices.get(l));
            if let Err(message) = check_default(kind, default, options.map(Vec::as_slice)) {
                self.error(Some(id), message);
            }
        }
        match (&q.calculation, kind) {
            (None, QuestionType::Calculate) => {
                self.error(Some(id), "a calculate question needs `calculation`".into())
            }
            (Some(_), k) if k != QuestionType::Calculate => self.error(
                Some(id),
                "`calculation` applies to calculate questions only".into(),
            ),
            _ => {}
        }
        if q.constraint.is_some() && !kind.is_answerable() {
            self.error(
                Some(id),
                "`constraint` applies to questions that are answered".into(),
            );
        }
        let relevant = self.parse_expr(id, "relevant", &q.relevant, index, false);
        let constraint = self.parse_expr(id, "constraint", &q.constraint, index, true);
        let calculation = self.parse_expr(id, "calculation", &q.calculation, index, false);
        if calculation
            .as_ref()
            .is_some_and(|c| c.references().iter().any(|r| r == id))
        {
            self.error(
                Some(id),
                "a calculation cannot refer to its own question".into(),
            );
        }
        if let (QuestionType::Calculate, None, Some(outcomes)) = (
            kind,
            &q.choices,
            calculation.as_ref().and_then(|c| c.text_outcomes()),
        ) {
            self.push(
                Severity::Warning,
                Some(id),
                format!(
                    "this calculate gives text ({}) but declares no `choices`, so it is not \
                     analysed; a choice list with these values makes it an indicator and a \
                     possible `by` dimension",
                    outcomes
                        .iter()
                        .map(|o| format!("'{o}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let compiled = &mut questions[i].compiled;
        compiled.relevant = relevant;
        compiled.constraint = constraint;
        compiled.calculation = calculation;
    }

    /// Orders questions so that everything an expression refers to is evaluated first
    /// (ODK evaluates by dependency, not by position); a cycle is an error.
    fn dependency_order(
        &mut self,
        questions: &[Question],
        index: &HashMap<String, usize>,
    ) -> Vec<usize> {
        let deps: Vec<Vec<usize>> = questions
            .iter()
            .map(|q| {
                let mut d: Vec<usize> = Vec::new();
                for expr in [&q.compiled.relevant, &q.compiled.calculation]
                    .into_iter()
                    .flatten()
                {
                    d.extend(
                        expr.references()
                            .iter()
                            .filter_map(|r| index.get(r).copied()),
                    );
                }
                d.extend(q.compiled.parent);
                d
            })
            .collect();
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; questions.len()];
        let mut order = Vec::with_capacity(questions.len());
        for start in 0..questions.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&dep) = deps[node].get(*next) {
                    *next += 1;
                    match state[dep] {
                        0 => {
                            state[dep] = 1;
                            stack.push((dep, 0));
                        }
                        1 => {
                            let id = questions[node].id.clone();
                            self.error(
                                Some(&id),
                                format!(
                                    "expressions refer to each other in a cycle through `{}`",
                                    questions[dep].id
                                ),
                            );
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        order
    }

    fn check_disaggregation(
        &mut self,
        file: &FormFile,
        questions: &[Question],
        index: &HashMap<String, usize>,
    ) -> Option<SexIndex> {
        let spec = &file.disaggregation.sex;
        let mut sex = None;
        match index.get(&spec.question) {
            None if self.source.sex_refused() => {}
            None => self.error_at(
                "question",
                &spec.question,
                format!("the sex question `{}` does not exist", spec.question),
            ),
            Some(&qi) => {
                let q = &questions[qi];
                let options = q
                    .choices
                    .as_ref()
                    .and_then(|l| file.choices.get(l))
                    .map(|l| l.iter().map(|c| c.value.as_str()).collect::<Vec<_>>())
                    .unwrap_or_default();
                if q.kind != QuestionType::SelectOne {
                    self.error(Some(&q.id), "the sex question must be a select_one".into());
                } else if spec.female == spec.male {
                    self.error(Some(&q.id), "the female and male values must differ".into());
                } else if !options.contains(&spec.female.as_str())
                    || !options.contains(&spec.male.as_str())
                {
                    self.error(
                        Some(&q.id),
                        format!(
                            "the sex values `{}` and `{}` must both be choices of this question",
                            spec.female, spec.male
                        ),
                    );
                } else if q.relevant.is_some()
                    || q.compiled
                        .parent
                        .is_some_and(|p| questions[p].relevant.is_some())
                {
                    self.error(
                        Some(&q.id),
                        "the sex question must always be asked (no `relevant`)".into(),
                    );
                } else {
                    sex = Some(SexIndex {
                        question: qi,
                        female: spec.female.clone(),
                        male: spec.male.clone(),
                    });
                }
            }
        }
        let by = &file.disaggregation.by;
        if by.len() > MAX_BY_DIMENSIONS {
            self.error(None, format!("disaggregation.by lists {} dimensions; at most {MAX_BY_DIMENSIONS} are supported", by.len()));
        }
        let mut seen = HashSet::new();
        for dim in by {
            if !seen.insert(dim) {
                self.error_at(
                    "by",
                    dim,
                    format!("`{dim}` is listed twice in disaggregation.by"),
                );
            }
            match index.get(dim).map(|&i| &questions[i]) {
                None => self.error_at(
                    "by",
                    dim,
                    format!("disaggregation.by names unknown question `{dim}`"),
                ),
                Some(q) if *dim == spec.question => self.error(
                    Some(&q.id),
                    "the sex question cannot also be a `by` dimension".into(),
                ),
                Some(q) if q.kind == QuestionType::SelectOne => {}
                Some(q) if q.kind == QuestionType::Calculate && q.choices.is_some() => {}
                Some(q) => self.error(
                    Some(&q.id),
                    "a `by` dimension must be a select_one, or a calculate that declares `choices`"
                        .into(),
                ),
            }
        }
        sex
    }

    fn check_weight(
        &mut self,
        file: &FormFile,
        questions: &[Question],
        index: &HashMap<String, usize>,
    ) {
        let Some(weight) = &file.weight else { return };
        match index.get(weight).map(|&i| &questions[i]) {
            None => self.error_at(
                "weight",
                weight,
                format!("the weight question `{weight}` does not exist"),
            ),
            Some(q) if q.kind.is_numeric() => {}
            Some(q) if q.kind == QuestionType::Calculate && q.choices.is_none() => {}
            Some(q) => self.error(
                Some(&q.id),
                "the weight must be a numeric question or calculate".into(),
            ),
        }
    }
}

/// A `default` must be an answer the question accepts.
fn check_default(
    kind: QuestionType,
    default: &str,
    options: Option<&[Choice]>,
) -> Result<(), String> {
    let is_choice = |v: &str| options.is_some_and(|o| o.iter().any(|c| c.value == v));
    let ok = match kind {
        QuestionType::Note | QuestionType::Calculate | QuestionType::Group => {
            return Err("`default` applies to questions that are answered".into())
        }
        QuestionType::Text => true,
        QuestionType::Integer => default.trim().parse::<i64>().is_ok(),
        QuestionType::Decimal => default.trim().parse::<f64>().is_ok_and(f64::is_finite),
        QuestionType::Date => chrono::NaiveDate::parse_from_str(default.trim(), "%Y-%m-%d").is_ok(),
        QuestionType::SelectOne | QuestionType::Likert => is_choice(default.trim()),
        QuestionType::SelectMultiple => default.split_whitespace().all(is_choice),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the default `{default}` is not a valid answer to this question"
        ))
    }
}

/// Rebuilds a form from a definition stored by `definition_json` (an older version whose
/// responses are being read). It passed every check when it was stored.
pub fn from_definition(json: &str) -> Option<Form> {
    let file: FormFile = serde_json::from_str(json).ok()?;
    let mut checker = Checker {
        path: Path::new("<stored definition>"),
        source: &(),
        problems: Vec::new(),
    };
    checker.check(file)
}

/// Canonical JSON of the form definition, stored per version so old responses stay
/// interpretable after the file changes.
pub fn definition_json(form: &Form) -> String {
    serde_json::to_string(&form.source).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id: tiny
version: 1
title: { en: "Tiny", uk: "Крихітна" }
languages: [en, uk]
disaggregation:
  sex: { question: sex, female: f, male: m }
  by: [band]
questions:
  - { id: sex, type: select_one, choices: sex, required: true, label: { en: Sex, uk: Стать } }
  - { id: age, type: integer, min: 0, max: 120, label: { en: Age, uk: Вік } }
  - { id: band, type: calculate, choices: bands, calculation: "if(${age} < 30, 'young', 'old')" }
choices:
  sex: [ { value: f, label: { en: F, uk: Ж } }, { value: m, label: { en: M, uk: Ч } } ]
  bands: [ { value: young, label: Young }, { value: old, label: Old } ]
"#;

    fn load(text: &str) -> (Option<Form>, Vec<Problem>) {
        load_str(Path::new("forms/t.yaml"), text)
    }

    #[test]
    fn a_text_calculate_without_choices_is_warned_about_and_not_analysed() {
        let text = MINIMAL.replace(
            "  - { id: band, type: calculate, choices: bands,",
            "  - { id: band2, type: calculate, calculation: \"if(${age} < 30, 'young', 'old')\" }\n  - { id: band, type: calculate, choices: bands,",
        );
        let (form, problems) = load(&text);
        let form = form.expect("loads: a warning, not an error");
        let warning = problems
            .iter()
            .find(|p| p.question.as_deref() == Some("band2"))
            .expect("a warning about band2");
        assert_eq!(warning.severity, Severity::Warning);
        assert!(
            warning.message.contains("'young', 'old'"),
            "{}",
            warning.message
        );
        let band2 = form.index["band2"];
        assert!(form.slots.iter().all(|&(q, _)| q != band2));
    }

    #[test]
    fn minimal_form_loads_with_slots_and_order() {
        let (form, problems) = load(MINIMAL);
        assert!(problems.is_empty(), "{problems:?}");
        let form = form.expect("form");
        assert_eq!(form.slots.len(), 3);
        let pos = |id: &str| {
            form.eval_order
                .iter()
                .position(|&i| form.questions[i].id == id)
        };
        assert!(pos("age") < pos("band"));
    }

    #[test]
    fn unknown_reference_is_reported_with_line_and_question() {
        let text = MINIMAL.replace("${age} < 30", "${agee} < 30");
        let (form, problems) = load(&text);
        assert!(form.is_none());
        let p = problems
            .iter()
            .find(|p| p.message.contains("agee"))
            .expect("problem");
        assert_eq!(p.question.as_deref(), Some("band"));
        assert_eq!(p.line, Some(12));
        assert!(p
            .to_string()
            .starts_with("forms/t.yaml:12: error: question `band`"));
    }

    proptest::proptest! {
        /// Hostile or broken files get problems, never a panic.
        #[test]
        fn any_text_loads_or_reports(text in "\\PC{0,400}") {
            let _ = load(&text);
        }

        /// A valid form with one span replaced by arbitrary text.
        #[test]
        fn a_mangled_form_loads_or_reports(at in 0usize..700, len in 0usize..40, with in "\\PC{0,40}") {
            let at = MINIMAL.floor_char_boundary(at.min(MINIMAL.len()));
            let end = MINIMAL.floor_char_boundary((at + len).min(MINIMAL.len()));
            let text = format!("{}{with}{}", &MINIMAL[..at], &MINIMAL[end..]);
            let (form, problems) = load(&text);
            proptest::prop_assert!(form.is_some() || !problems.is_empty());
        }
    }

    #[test]
    fn mail_language_must_be_a_form_language() {
        let with = |lang: &str| {
            MINIMAL.replace(
                "languages: [en, uk]",
                &format!("languages: [en, uk]\nnotify: {{ language: {lang} }}"),
            )
        };
        assert!(load(&with("uk"))
            .0
            .is_some_and(|f| f.notify.language.as_deref() == Some("uk")));
        let (form, problems) = load(&with("kk"));
        assert!(form.is_none());
        assert!(problems
            .iter()
            .any(|p| p.message.contains("notify.language `kk`")));
    }

    #[test]
    fn missing_translation_warns_but_loads() {
        let text = MINIMAL.replace("label: { en: Age, uk: Вік }", "label: { en: Age }");
        let (form, problems) = load(&text);
        assert!(form.is_some());
        assert!(problems
            .iter()
            .any(|p| p.severity == Severity::Warning && p.message.contains("`uk`")));
    }

    #[test]
    fn choice_problems_point_at_the_choice() {
        let text = MINIMAL.replace(
            "{ value: m, label: { en: M, uk: Ч } }",
            "{ value: m, label: { en: M } }",
        );
        let (form, problems) = load(&text);
        assert!(form.is_some());
        let p = problems
            .iter()
            .find(|p| p.message.contains("choice `m`"))
            .expect("warning");
        assert_eq!((p.severity, p.line), (Severity::Warning, Some(14)), "{p}");
    }

    #[test]
    fn cycles_and_bad_sex_values_are_errors() {
        let text = MINIMAL.replace("male: m }", "male: x }").replace(
            "label: { en: Age, uk: Вік } }",
            "label: { en: Age, uk: Вік }, relevant: \"${band} = 'old'\" }",
        );
        let (form, problems) = load(&text);
        assert!(form.is_none());
        assert!(
            problems.iter().any(|p| p.message.contains("cycle")),
            "{problems:?}"
        );
        assert!(problems
            .iter()
            .any(|p| p.message.contains("must both be choices")));
    }

    #[test]
    fn a_hint_or_label_only_in_another_language_warns_and_falls_back() {
        let text = MINIMAL.replace(
            "label: { en: Age, uk: Вік } }",
            "label: { uk: Вік }, hint: { uk: Років } }",
        );
        let (form, problems) = load(&text);
        let form = form.unwrap_or_else(|| panic!("{problems:?}"));
        for what in ["the label", "the hint"] {
            let p = problems
                .iter()
                .find(|p| p.message.starts_with(what))
                .unwrap_or_else(|| panic!("{what}: {problems:?}"));
            assert_eq!(p.severity, Severity::Warning, "{p}");
            assert!(
                p.message
                    .contains("default language `en`; the `uk` text is shown"),
                "{p}"
            );
        }
        let age = form.question("age").expect("age");
        assert_eq!(age.hint.as_ref().map(|h| h.get("en", "en")), Some("Років"));
        let text = MINIMAL.replace("label: { en: Age, uk: Вік } }", "label: { en: \" \" } }");
        let (form, problems) = load(&text);
        assert!(form.is_none());
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("the label is empty")),
            "{problems:?}"
        );
    }

    #[test]
    fn choice_values_are_what_pyxform_accepts() {
        let with = |values: &[&str], kind: &str| {
            let list: Vec<String> = values
                .iter()
                .map(|v| format!("{{ value: \"{v}\", label: L }}"))
                .collect();
            let text = MINIMAL
                .replace(
                    "  bands:",
                    &format!("  other: [ {} ]\n  bands:", list.join(", ")),
                )
                .replace(
                    "  - { id: band,",
                    &format!(
                        "  - {{ id: o, type: {kind}, choices: other, label: O }}\n  - {{ id: band,"
                    ),
                );
            load(&text)
        };
        let (form, problems) = with(
            &["70+", "24/7", "tuberculosis(tb)", "public transport"],
            "select_one",
        );
        assert!(form.is_some(), "{problems:?}");
        let (form, problems) = with(&["70+", "24/7", "tuberculosis(tb)"], "select_multiple");
        assert!(form.is_some(), "{problems:?}");
        let (form, problems) = with(&["public transport", "car"], "select_multiple");
        assert!(form.is_none());
        let p = problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .expect("error");
        assert!(p.message.contains("choice `public transport` in list `other`: the `select_multiple` `o` uses this list"), "{p}");
        assert!(!p.message.contains("no spaces)"), "{p}");
        for (bad, why) in [("", "cannot be empty"), ("a\\tb", "control characters")] {
            let (form, problems) = with(&[bad, "x"], "select_one");
            assert!(form.is_none(), "{bad:?}");
            assert!(
                problems.iter().any(|p| p.message.contains(why)),
                "{bad:?}: {problems:?}"
            );
        }
    }

    #[test]
    fn yaml_quotes_what_yaml_1_1_would_misread() {
        let text = MINIMAL
            .replace(
                "{ value: young, label: Young }",
                "{ value: \"yes\", label: \"on\" }",
            )
            .replace(
                "{ value: old, label: Old }",
                "{ value: \"no\", label: \"10:30\" }",
            )
            .replace("'young', 'old'", "'yes', 'no'");
        let (form, problems) = load(&text);
        let form = form.unwrap_or_else(|| panic!("{problems:?}"));
        let yaml = to_yaml(&form.source).expect("yaml");
        for quoted in [
            "value: 'yes'",
            "value: 'no'",
            "label: 'on'",
            "label: '10:30'",
        ] {
            assert!(yaml.contains(quoted), "{quoted} in:\n{yaml}");
        }
        assert!(!yaml.contains('\u{E000}'));
        let (back, problems) = load(&yaml);
        let back = back.unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!(
            serde_json::to_value(&back.source).ok(),
            serde_json::to_value(&form.source).ok()
        );
    }

    #[test]
    fn unknown_keys_and_yaml_errors_have_lines() {
        let text = MINIMAL.replace("version: 1", "version: 1\ncolour: red");
        let (_, problems) = load(&text);
        assert_eq!(problems[0].line, Some(4), "{problems:?}");
        assert!(problems[0].message.contains("colour"));
    }
}
