//! From validated answers to the stored row: canonical JSON, analysis vector, sex and
//! `by` columns, weight.

use super::validate::{Answer, ValidAnswers};
use crate::db::responses::ResponseRow;
use crate::form::{Form, SlotKind};
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

/// Builds the row for a new response. `answers_hash` identifies the submitted answers
/// (not the derived values) so a resent submission can be recognised.
pub fn build_row(
    form: &Form,
    valid: &ValidAnswers,
    submitted: &serde_json::Map<String, serde_json::Value>,
    submission_id: String,
    received_at: DateTime<Utc>,
) -> ResponseRow {
    let value_of = |id: &str| form.index.get(id).and_then(|&i| valid.values[i].as_ref());
    let text_of = |id: &str| {
        value_of(id).and_then(|a| match a {
            Answer::Choice(s) | Answer::Text(s) => Some(s.clone()),
            _ => None,
        })
    };
    let mut by = form.disaggregation.by.iter().map(|d| text_of(d));
    let answers: serde_json::Map<String, serde_json::Value> = form
        .questions
        .iter()
        .zip(&valid.values)
        .filter_map(|(q, v)| v.as_ref().map(|v| (q.id.clone(), v.to_json())))
        .collect();
    ResponseRow {
        id: uuid::Uuid::now_v7().to_string(),
        form_id: form.id.clone(),
        form_version: i32::try_from(form.version).unwrap_or(i32::MAX),
        submission_id,
        received_at: received_at.naive_utc(),
        answers_hash: answers_hash(submitted),
        sex: text_of(&form.disaggregation.sex.question),
        by_1: by.next().flatten(),
        by_2: by.next().flatten(),
        by_3: by.next().flatten(),
        by_4: by.next().flatten(),
        weight: form.weight.as_deref().and_then(|w| match value_of(w) {
            Some(Answer::Number(n)) => Some(*n),
            _ => None,
        }),
        answers: serde_json::Value::Object(answers).to_string(),
        analysis: encode_analysis(form, valid),
    }
}

/// SHA-256 of the canonical JSON of the answers as submitted (keys sorted).
pub fn answers_hash(submitted: &serde_json::Map<String, serde_json::Value>) -> String {
    let canonical = serde_json::to_vec(submitted).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

/// One little-endian f64 per analysis slot; NaN where there is no value.
pub fn encode_analysis(form: &Form, valid: &ValidAnswers) -> Vec<u8> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut out = Vec::with_capacity(form.slots.len() * 8);
    for &(qi, kind) in &form.slots {
        let question = &form.questions[qi];
        let position = |value: &str| {
            form.choices_of(question)
                .iter()
                .position(|c| c.value == value)
                .map(|i| i as f64)
        };
        let value = match (kind, &valid.values[qi]) {
            (SlotKind::Choice, Some(Answer::Choice(v))) => position(v),
            (SlotKind::Multi, Some(Answer::Multi(items))) => Some(
                items
                    .iter()
                    .filter_map(|v| position(v))
                    .fold(0u64, |bits, i| bits | (1u64 << i as u32)) as f64,
            ),
            (SlotKind::Number, Some(Answer::Number(n))) => Some(*n),
            (SlotKind::Date, Some(Answer::Date(d))) => Some((*d - epoch).num_days() as f64),
            _ => None,
        };
        out.extend_from_slice(&value.unwrap_or(f64::NAN).to_le_bytes());
    }
    out
}
