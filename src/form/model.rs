//! The form file format (`forms/*.yaml`, mirroring XLSForm) and the checked form the
//! rest of the application works with.

use super::expr::Expr;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A translatable text: one string for every language, or one per language code.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Text {
    Plain(String),
    ByLanguage(BTreeMap<String, String>),
}

impl Text {
    /// The text in `lang`, else in `fallback` (the form's default language), else the
    /// first language that has one; blank texts count as missing, as in [`Text::has`].
    pub fn get<'a>(&'a self, lang: &str, fallback: &str) -> &'a str {
        match self {
            Text::Plain(s) => s,
            Text::ByLanguage(map) => [lang, fallback]
                .iter()
                .find(|l| self.has(l))
                .and_then(|l| map.get(*l))
                .or_else(|| map.values().find(|t| !t.trim().is_empty()))
                .map_or("", String::as_str),
        }
    }

    pub fn has(&self, lang: &str) -> bool {
        match self {
            Text::Plain(_) => true,
            Text::ByLanguage(map) => map.get(lang).is_some_and(|s| !s.trim().is_empty()),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Open,
    Closed,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    Text,
    Integer,
    Decimal,
    SelectOne,
    SelectMultiple,
    Likert,
    Date,
    Note,
    Calculate,
    Group,
}

impl QuestionType {
    pub fn has_choices(self) -> bool {
        matches!(
            self,
            QuestionType::SelectOne | QuestionType::SelectMultiple | QuestionType::Likert
        )
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, QuestionType::Integer | QuestionType::Decimal)
    }

    /// Whether a respondent gives this question an answer.
    pub fn is_answerable(self) -> bool {
        !matches!(
            self,
            QuestionType::Note | QuestionType::Calculate | QuestionType::Group
        )
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub digest_minutes: Option<u32>,
    #[serde(default)]
    pub milestones: Vec<u64>,
    /// The language owners' mail is written in; the form's first language when unset.
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SexSpec {
    pub question: String,
    pub female: String,
    pub male: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disaggregation {
    pub sex: SexSpec,
    #[serde(default)]
    pub by: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub value: String,
    pub label: Text,
}

/// One question as written in the file (groups nest).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionFile {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: QuestionType,
    #[serde(default)]
    pub label: Option<Text>,
    #[serde(default)]
    pub hint: Option<Text>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub relevant: Option<String>,
    #[serde(default)]
    pub constraint: Option<String>,
    #[serde(default)]
    pub constraint_message: Option<Text>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub max_length: Option<u32>,
    #[serde(default)]
    pub choices: Option<String>,
    #[serde(default)]
    pub calculation: Option<String>,
    /// XLSForm `appearance`, kept so an exported workbook shows the question as before.
    /// Skipped when absent so the definition hash of existing forms does not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appearance: Option<String>,
    /// The answer shown before the resident changes it (XLSForm `default`; a constant,
    /// space-separated values for `select_multiple`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub questions: Vec<QuestionFile>,
}

/// A form file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FormFile {
    pub id: String,
    pub version: u32,
    pub title: Text,
    #[serde(default)]
    pub description: Option<Text>,
    pub languages: Vec<String>,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub opens_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub closes_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub public_indicators: bool,
    #[serde(default)]
    pub notify: Notify,
    /// Responses older than this many days are deleted (privacy by design); kept forever
    /// when unset.
    #[serde(default)]
    pub retention_days: Option<u32>,
    pub disaggregation: Disaggregation,
    #[serde(default)]
    pub weight: Option<String>,
    pub questions: Vec<QuestionFile>,
    #[serde(default)]
    pub choices: BTreeMap<String, Vec<Choice>>,
}

/// One question of a checked form, flattened in form order; groups stay as entries
/// so pages can lay them out, and `group` names the enclosing one.
#[derive(Clone, Debug, Serialize)]
pub struct Question {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: QuestionType,
    pub label: Option<Text>,
    pub hint: Option<Text>,
    pub required: bool,
    pub relevant: Option<String>,
    pub constraint: Option<String>,
    pub constraint_message: Option<Text>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_length: Option<u32>,
    pub choices: Option<String>,
    pub calculation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appearance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    pub group: Option<String>,
    #[serde(skip)]
    pub compiled: CompiledQuestion,
}

/// What the server needs to evaluate a question quickly.
#[derive(Clone, Debug, Default)]
pub struct CompiledQuestion {
    pub parent: Option<usize>,
    pub relevant: Option<Expr>,
    pub constraint: Option<Expr>,
    pub calculation: Option<Expr>,
    /// Position in the per-response analysis vector, for questions the indicators use.
    pub slot: Option<usize>,
}

/// How a question's value is kept in the analysis vector (one `f64` per slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// Index of the chosen option in the question's choice list.
    Choice,
    /// Bit i set when option i is selected (at most 53 options, exact in an f64).
    Multi,
    Number,
    /// Days since 1970-01-01.
    Date,
}

#[derive(Clone, Debug)]
pub struct SexIndex {
    pub question: usize,
    pub female: String,
    pub male: String,
}

/// A form that passed every check.
#[derive(Clone, Debug, Serialize)]
pub struct Form {
    pub id: String,
    pub version: u32,
    pub title: Text,
    pub description: Option<Text>,
    pub languages: Vec<String>,
    pub owners: Vec<String>,
    pub status: Status,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub public_indicators: bool,
    pub notify: Notify,
    pub retention_days: Option<u32>,
    pub disaggregation: Disaggregation,
    pub weight: Option<String>,
    pub questions: Vec<Question>,
    pub choices: BTreeMap<String, Vec<Choice>>,
    /// SHA-256 of the canonical definition: tells whether a file changed under the same version.
    pub hash: String,
    #[serde(skip)]
    pub index: HashMap<String, usize>,
    /// Question indexes in an order where every expression's references come first.
    #[serde(skip)]
    pub eval_order: Vec<usize>,
    #[serde(skip)]
    pub sex: SexIndex,
    /// Analysis slots: (question index, kind), in slot order.
    #[serde(skip)]
    pub slots: Vec<(usize, SlotKind)>,
    #[serde(skip)]
    pub source: FormFile,
}

impl Form {
    pub fn default_language(&self) -> &str {
        self.languages.first().map(String::as_str).unwrap_or("en")
    }

    pub fn question(&self, id: &str) -> Option<&Question> {
        self.index.get(id).map(|&i| &self.questions[i])
    }

    pub fn choices_of(&self, question: &Question) -> &[Choice] {
        question
            .choices
            .as_ref()
            .and_then(|list| self.choices.get(list))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// A question's label in `lang` (else the default language), or its id without one.
    pub fn question_label(&self, id: &str, lang: &str) -> String {
        self.question(id)
            .and_then(|q| q.label.as_ref())
            .map_or_else(
                || id.to_owned(),
                |l| l.get(lang, self.default_language()).to_owned(),
            )
    }

    /// The label of the choice `value` of `question` in `lang`, or `value` itself.
    pub fn choice_label(&self, question: &str, value: &str, lang: &str) -> String {
        self.question(question)
            .and_then(|q| self.choices_of(q).iter().find(|c| c.value == value))
            .map_or_else(
                || value.to_owned(),
                |c| c.label.get(lang, self.default_language()).to_owned(),
            )
    }

    /// Whether the form takes responses at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Open
            && self.opens_at.is_none_or(|t| t <= now)
            && self.closes_at.is_none_or(|t| now < t)
    }
}
