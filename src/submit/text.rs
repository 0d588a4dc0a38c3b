//! Answers that arrive as text: the fields of an HTML form, the cells of a CSV import.

use super::FieldError;
use crate::form::{Form, QuestionType};
use std::collections::HashMap;

/// Turns answers given as text (an HTML form's fields, a CSV row's cells; several values
/// for a `select_multiple`) into the JSON answers the validator takes. Numbers accept a
/// decimal comma; a number that does not parse is an error of its own.
pub fn answers_from_text(
    form: &Form,
    values: &HashMap<String, Vec<String>>,
) -> (serde_json::Map<String, serde_json::Value>, Vec<FieldError>) {
    let mut answers = serde_json::Map::new();
    let mut errors = Vec::new();
    for q in form.questions.iter().filter(|q| q.kind.is_answerable()) {
        let Some(given) = values.get(&q.id) else {
            continue;
        };
        let first = given.first().map(|s| s.trim()).unwrap_or_default();
        let answer = match q.kind {
            QuestionType::SelectMultiple => {
                let picked: Vec<&String> = given.iter().filter(|v| !v.is_empty()).collect();
                if picked.is_empty() {
                    continue;
                }
                serde_json::json!(picked)
            }
            _ if first.is_empty() => continue,
            QuestionType::Integer | QuestionType::Decimal => {
                match first.replace(',', ".").parse::<f64>() {
                    Ok(n) if n.is_finite() => serde_json::json!(n),
                    _ => {
                        errors.push(FieldError {
                            question: q.id.clone(),
                            code: "type",
                            message: format!("`{}` expects a number", q.id),
                        });
                        continue;
                    }
                }
            }
            QuestionType::Text => serde_json::json!(given.first()),
            _ => serde_json::json!(first),
        };
        answers.insert(q.id.clone(), answer);
    }
    (answers, errors)
}
