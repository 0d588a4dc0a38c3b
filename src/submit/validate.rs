//! Checks a respondent's answers against the form's own rules: types, required-if-relevant,
//! ranges, lengths, choice membership, constraints; computes `calculate` values.
//! Pure: no storage, no HTTP.

use crate::form::expr::{Context, Value};
use crate::form::{Form, Question, QuestionType};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value as Json;

/// One validated value.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Text(String),
    Number(f64),
    Choice(String),
    Multi(Vec<String>),
    Date(NaiveDate),
}

impl Answer {
    fn to_value(&self) -> Value {
        match self {
            Answer::Text(s) | Answer::Choice(s) => Value::Text(s.clone()),
            Answer::Number(n) => Value::Number(*n),
            Answer::Multi(items) => Value::Multi(items.clone()),
            Answer::Date(d) => Value::Date(*d),
        }
    }

    /// The answer as it is stored and exported.
    pub fn to_json(&self) -> Json {
        match self {
            Answer::Text(s) | Answer::Choice(s) => Json::String(s.clone()),
            // Whole numbers are written as JSON integers, as respondents typed them.
            Answer::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Json::from(*n as i64),
            Answer::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
            Answer::Multi(items) => Json::Array(items.iter().cloned().map(Json::String).collect()),
            Answer::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        }
    }
}

/// A problem with one answer, as the API reports it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub question: String,
    pub code: &'static str,
    pub message: String,
}

/// Every question's value after validation (`None`: not answered, not relevant, or no value),
/// indexed like `form.questions`.
#[derive(Clone, Debug)]
pub struct ValidAnswers {
    pub values: Vec<Option<Answer>>,
}

/// Longest accepted text answer when the form sets no `max_length`.
const DEFAULT_MAX_TEXT: usize = 10_000;

struct Eval<'a> {
    form: &'a Form,
    values: &'a [Option<Answer>],
    current: Value,
    today: NaiveDate,
}

impl Context for Eval<'_> {
    fn value(&self, question: &str) -> Value {
        self.form
            .index
            .get(question)
            .and_then(|&i| self.values[i].as_ref())
            .map_or(Value::Empty, Answer::to_value)
    }
    fn current(&self) -> Value {
        self.current.clone()
    }
    fn today(&self) -> NaiveDate {
        self.today
    }
}

/// Validates `answers` (question id → JSON value) against `form`.
pub fn validate(
    form: &Form,
    answers: &serde_json::Map<String, Json>,
    today: NaiveDate,
) -> Result<ValidAnswers, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut given: Vec<Option<Answer>> = vec![None; form.questions.len()];
    for (id, raw) in answers {
        let Some(&qi) = form.index.get(id) else {
            errors.push(FieldError {
                question: id.clone(),
                code: "unknown_question",
                message: format!("the form has no question `{id}`"),
            });
            continue;
        };
        let question = &form.questions[qi];
        if !question.kind.is_answerable() {
            errors.push(FieldError {
                question: id.clone(),
                code: "not_answerable",
                message: format!(
                    "`{id}` is a {} and takes no answer",
                    type_name(question.kind)
                ),
            });
            continue;
        }
        match parse_answer(form, question, raw) {
            Ok(answer) => given[qi] = answer,
            Err(err) => errors.push(err),
        }
    }

    // Relevance and calculations in dependency order; a question inside an irrelevant
    // group is irrelevant too.
    let mut values: Vec<Option<Answer>> = vec![None; form.questions.len()];
    let mut relevant = vec![true; form.questions.len()];
    for &qi in &form.eval_order {
        let question = &form.questions[qi];
        let parent_relevant = question.compiled.parent.is_none_or(|p| relevant[p]);
        let ctx = Eval {
            form,
            values: &values,
            current: Value::Empty,
            today,
        };
        relevant[qi] = parent_relevant
            && question
                .compiled
                .relevant
                .as_ref()
                .is_none_or(|e| e.eval(&ctx).to_bool());
        if !relevant[qi] {
            if given[qi].is_some() {
                errors.push(FieldError {
                    question: question.id.clone(),
                    code: "not_relevant",
                    message: format!("`{}` does not apply given the other answers", question.id),
                });
            }
            continue;
        }
        values[qi] = match &question.compiled.calculation {
            Some(calc) => calculated(form, question, calc.eval(&ctx)),
            None => given[qi].take(),
        };
    }

    for (qi, question) in form.questions.iter().enumerate() {
        if !relevant[qi] || !question.kind.is_answerable() {
            continue;
        }
        let required = question.required || qi == form.sex.question;
        match &values[qi] {
            None if required => errors.push(FieldError {
                question: question.id.clone(),
                code: "required",
                message: format!("`{}` needs an answer", question.id),
            }),
            None => {}
            Some(answer) => {
                if let Some(err) = check_rules(form, question, answer, &values, today) {
                    errors.push(err);
                }
            }
        }
    }

    if errors.is_empty() {
        Ok(ValidAnswers { values })
    } else {
        // Report in form order, whatever order the JSON object had.
        errors.sort_by_key(|e| form.index.get(&e.question).copied().unwrap_or(usize::MAX));
        Err(errors)
    }
}

fn type_name(kind: QuestionType) -> &'static str {
    match kind {
        QuestionType::Text => "text",
        QuestionType::Integer => "integer",
        QuestionType::Decimal => "decimal",
        QuestionType::SelectOne => "select_one",
        QuestionType::SelectMultiple => "select_multiple",
        QuestionType::Likert => "likert",
        QuestionType::Date => "date",
        QuestionType::Note => "note",
        QuestionType::Calculate => "calculate",
        QuestionType::Group => "group",
    }
}

fn type_error(question: &Question, expected: &str) -> FieldError {
    FieldError {
        question: question.id.clone(),
        code: "type",
        message: format!("`{}` expects {expected}", question.id),
    }
}

/// Turns one JSON answer into an `Answer` of the question's type; `null`, `""` and `[]`
/// mean "no answer".
fn parse_answer(
    form: &Form,
    question: &Question,
    raw: &Json,
) -> Result<Option<Answer>, FieldError> {
    let is_empty = match raw {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(items) => items.is_empty(),
        _ => false,
    };
    if is_empty {
        return Ok(None);
    }
    let choice_error = |value: &str| FieldError {
        question: question.id.clone(),
        code: "choice",
        message: format!("`{value}` is not one of the choices of `{}`", question.id),
    };
    let is_choice = |value: &str| form.choices_of(question).iter().any(|c| c.value == value);
    let answer = match question.kind {
        QuestionType::Text => match raw {
            Json::String(s) => Answer::Text(s.clone()),
            _ => return Err(type_error(question, "a string")),
        },
        QuestionType::Integer | QuestionType::Decimal => {
            let Some(n) = raw.as_f64().filter(|n| n.is_finite()) else {
                return Err(type_error(question, "a JSON number"));
            };
            if question.kind == QuestionType::Integer && (n.fract() != 0.0 || n.abs() > 9.0e15) {
                return Err(FieldError {
                    question: question.id.clone(),
                    code: "integer",
                    message: format!("`{}` expects a whole number", question.id),
                });
            }
            Answer::Number(n)
        }
        QuestionType::SelectOne | QuestionType::Likert => match raw {
            Json::String(s) if is_choice(s) => Answer::Choice(s.clone()),
            Json::String(s) => return Err(choice_error(s)),
            _ => return Err(type_error(question, "a choice value (string)")),
        },
        QuestionType::SelectMultiple => {
            let Json::Array(items) = raw else {
                return Err(type_error(question, "an array of choice values"));
            };
            let mut selected: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let Json::String(s) = item else {
                    return Err(type_error(question, "an array of choice values"));
                };
                if !is_choice(s) {
                    return Err(choice_error(s));
                }
                if selected.contains(s) {
                    return Err(FieldError {
                        question: question.id.clone(),
                        code: "choice",
                        message: format!("`{s}` is selected more than once"),
                    });
                }
                selected.push(s.clone());
            }
            // Keep the form's option order, so equal selections store equally.
            let options = form.choices_of(question);
            selected.sort_by_key(|s| options.iter().position(|c| &c.value == s));
            Answer::Multi(selected)
        }
        QuestionType::Date => match raw {
            Json::String(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) if s.len() == 10 => Answer::Date(d),
                _ => {
                    return Err(FieldError {
                        question: question.id.clone(),
                        code: "date",
                        message: format!("`{}` expects a date as YYYY-MM-DD", question.id),
                    })
                }
            },
            _ => return Err(type_error(question, "a date string YYYY-MM-DD")),
        },
        QuestionType::Note | QuestionType::Calculate | QuestionType::Group => return Ok(None),
    };
    Ok(Some(answer))
}

/// A calculation's result as the value it is stored as: a choice of its declared list,
/// a finite number, or text. NaN/infinite results and empty strings are "no value".
fn calculated(form: &Form, question: &Question, value: Value) -> Option<Answer> {
    match value {
        Value::Empty => None,
        Value::Number(n) if !n.is_finite() => None,
        Value::Number(n) if question.choices.is_none() => Some(Answer::Number(n)),
        Value::Date(d) => Some(Answer::Date(d)),
        other => {
            let text = other.to_text();
            if text.is_empty() {
                None
            } else if question.choices.is_some() {
                let known = form.choices_of(question).iter().any(|c| c.value == text);
                // A value outside the declared list is a form bug; it is kept as text in
                // the stored answers but not as a category.
                Some(if known {
                    Answer::Choice(text)
                } else {
                    Answer::Text(text)
                })
            } else {
                match text.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Some(Answer::Number(n)),
                    _ => Some(Answer::Text(text)),
                }
            }
        }
    }
}

fn check_rules(
    form: &Form,
    question: &Question,
    answer: &Answer,
    values: &[Option<Answer>],
    today: NaiveDate,
) -> Option<FieldError> {
    let err = |code: &'static str, message: String| {
        Some(FieldError {
            question: question.id.clone(),
            code,
            message,
        })
    };
    match answer {
        Answer::Number(n) => {
            if let Some(min) = question.min.filter(|min| n < min) {
                return err("min", format!("`{}` must be at least {min}", question.id));
            }
            if let Some(max) = question.max.filter(|max| n > max) {
                return err("max", format!("`{}` must be at most {max}", question.id));
            }
        }
        Answer::Text(s) => {
            // Control characters are never typed text; NUL cannot even be stored in a
            // PostgreSQL text column or an XLSX export. Tabs and line breaks are text.
            if s.chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            {
                return err(
                    "control_character",
                    format!("`{}` contains a control character", question.id),
                );
            }
            let limit = question.max_length.map_or(DEFAULT_MAX_TEXT, |l| l as usize);
            if s.chars().count() > limit {
                return err(
                    "max_length",
                    format!("`{}` must be at most {limit} characters", question.id),
                );
            }
        }
        _ => {}
    }
    let constraint = question.compiled.constraint.as_ref()?;
    let ctx = Eval {
        form,
        values,
        current: answer.to_value(),
        today,
    };
    if constraint.eval(&ctx).to_bool() {
        return None;
    }
    let message = question
        .constraint_message
        .as_ref()
        .map(|m| m.get("en", form.default_language()).to_owned())
        .unwrap_or_else(|| format!("`{}` does not meet the constraint", question.id));
    err("constraint", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::load_str;
    use proptest::prelude::*;
    use std::path::Path;

    fn survey() -> Form {
        let text = include_str!("../../tests/fixtures/forms/survey.yaml");
        load_str(Path::new("survey.yaml"), text)
            .0
            .expect("fixture form loads")
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default()
    }

    fn any_answer() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
            (-200i64..200).prop_map(Json::from),
            prop_oneof![
                Just("female"),
                Just("male"),
                Just("yes"),
                Just("no"),
                Just("none"),
                Just("health"),
                Just("podilskyi"),
                Just("a"),
                Just("2026-01-31"),
                Just(""),
            ]
            .prop_map(Json::from),
            prop::collection::vec(
                prop_oneof![Just("none"), Just("health"), Just("social"), Just("x")],
                0..4
            )
            .prop_map(Json::from),
            ".{0,5}".prop_map(Json::from),
        ]
    }

    proptest! {
        #[test]
        fn any_answers_validate_without_panicking(
            answers in prop::collection::btree_map(
                prop_oneof![
                    Just("sex"), Just("age"), Just("age_group"), Just("district"), Just("has_children"),
                    Just("childcare_hours"), Just("needs_childcare"), Just("services_used"),
                    Just("satisfaction"), Just("last_visit"), Just("comments"), Just("other"),
                ].prop_map(str::to_owned),
                any_answer(),
                0..12,
            )
        ) {
            let form = survey();
            let answers: serde_json::Map<String, Json> = answers.into_iter().collect();
            match validate(&form, &answers, today()) {
                Ok(valid) => {
                    // Whatever passes has the sex and every required, relevant answer.
                    prop_assert!(valid.values[form.sex.question].is_some());
                    prop_assert!(valid.values[form.index["age"]].is_some());
                    prop_assert!(!answers.contains_key("other"));
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| !e.message.is_empty()));
                }
            }
        }
    }

    #[test]
    fn calculations_follow_dependencies_and_groups() {
        let form = survey();
        let answers = serde_json::json!({
            "sex": "male", "age": 61, "district": "obolonskyi", "has_children": "no"
        });
        let valid = validate(&form, answers.as_object().expect("object"), today()).expect("valid");
        assert_eq!(
            valid.values[form.index["age_group"]],
            Some(Answer::Choice("older".into()))
        );
        assert_eq!(valid.values[form.index["childcare_hours"]], None);
    }
}
