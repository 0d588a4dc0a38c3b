//! Plausible generated responses for any form (`genderlens demo-data`), so a new user
//! sees indicators at once and benchmarks have realistic data. Every generated response
//! goes through the same validation as a real submission.

use crate::db::{responses, AnyConnection, DbError};
use crate::form::{Form, QuestionType};
use crate::submit::{self, FieldError};
use chrono::{Duration, NaiveDate, Utc};
use diesel::Connection;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// Attempts at repairing one generated response before giving it up.
const MAX_REPAIRS: usize = 12;
/// Rows per insert transaction.
const BATCH: usize = 2_000;

/// Generates answers for one respondent. Sex shifts the answer distributions a little, so
/// the demo shows gaps to find.
pub struct Generator<'a> {
    form: &'a Form,
    rng: StdRng,
    today: NaiveDate,
}

impl<'a> Generator<'a> {
    pub fn new(form: &'a Form, seed: u64) -> Self {
        Generator {
            form,
            rng: StdRng::seed_from_u64(seed),
            today: Utc::now().date_naive(),
        }
    }

    /// A small per-question, per-sex preference, stable for a question id.
    fn bias(question: &str, female: bool) -> f64 {
        let h = question.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let shift = ((h % 1000) as f64 / 1000.0 - 0.5) * 0.6;
        if female {
            shift
        } else {
            -shift
        }
    }

    fn answer(&mut self, qi: usize, female: bool) -> Option<Value> {
        let form = self.form;
        let question = &form.questions[qi];
        if !question.required && self.rng.random_bool(0.08) {
            return None;
        }
        let bias = Self::bias(&question.id, female);
        let choices = form.choices_of(question);
        match question.kind {
            QuestionType::SelectOne | QuestionType::Likert => {
                // Skew towards the start or the end of the list by sex.
                let u: f64 = self.rng.random::<f64>();
                let skewed = (u + bias * u * (1.0 - u) * 2.0).clamp(0.0, 0.999_999);
                let i = (skewed * choices.len() as f64) as usize;
                choices.get(i).map(|c| json!(c.value))
            }
            QuestionType::SelectMultiple => {
                let picked: Vec<&str> = choices
                    .iter()
                    .filter(|_| self.rng.random_bool((0.3 + bias * 0.5).clamp(0.05, 0.95)))
                    .map(|c| c.value.as_str())
                    .collect();
                Some(json!(picked))
            }
            QuestionType::Integer | QuestionType::Decimal => {
                let lo = question.min.unwrap_or(0.0);
                let hi = question.max.unwrap_or(lo + 100.0).min(lo + 1_000.0);
                // Mostly the lower part of the range, as counts and minutes are.
                let u: f64 = self.rng.random::<f64>().powf(1.6 - bias);
                let x = lo + u * (hi - lo);
                Some(if question.kind == QuestionType::Integer {
                    json!(x.round().clamp(lo.ceil(), hi.floor()) as i64)
                } else {
                    json!((x * 10.0).round() / 10.0)
                })
            }
            QuestionType::Date => {
                let days = self.rng.random_range(0..365);
                Some(json!((self.today - Duration::days(days))
                    .format("%Y-%m-%d")
                    .to_string()))
            }
            QuestionType::Text => self
                .rng
                .random_bool(0.2)
                .then(|| json!("Generated demo answer.")),
            QuestionType::Note | QuestionType::Calculate | QuestionType::Group => None,
        }
    }

    /// Answers for one respondent that pass validation, or `None` if repairs failed.
    pub fn respondent(&mut self) -> Option<(Map<String, Value>, submit::ValidAnswers)> {
        let form = self.form;
        let sex_question = &form.questions[form.sex.question];
        let sex_choices = form.choices_of(sex_question);
        let roll: f64 = self.rng.random();
        let sex = if roll < 0.52 {
            form.sex.female.clone()
        } else if roll < 0.97 || sex_choices.len() <= 2 {
            form.sex.male.clone()
        } else {
            let others: Vec<&str> = sex_choices
                .iter()
                .map(|c| c.value.as_str())
                .filter(|v| *v != form.sex.female && *v != form.sex.male)
                .collect();
            others[self.rng.random_range(0..others.len())].to_owned()
        };
        let female = sex == form.sex.female;
        let mut answers = Map::new();
        for (qi, q) in form.questions.iter().enumerate() {
            if qi == form.sex.question {
                answers.insert(q.id.clone(), json!(sex));
            } else if q.kind.is_answerable() {
                if let Some(a) = self.answer(qi, female) {
                    answers.insert(q.id.clone(), a);
                }
            }
        }
        for _ in 0..MAX_REPAIRS {
            match submit::validate(form, &answers, self.today) {
                Ok(valid) => return Some((answers, valid)),
                Err(errors) => self.repair(&mut answers, &errors, female),
            }
        }
        None
    }

    /// Drops answers that do not apply and redraws the ones that broke a rule.
    fn repair(&mut self, answers: &mut Map<String, Value>, errors: &[FieldError], female: bool) {
        for error in errors {
            let Some(&qi) = self.form.index.get(&error.question) else {
                answers.remove(&error.question);
                continue;
            };
            match error.code {
                "not_relevant" => {
                    answers.remove(&error.question);
                }
                _ => match self.answer(qi, female) {
                    Some(a) if self.rng.random_bool(0.7) => {
                        answers.insert(error.question.clone(), a);
                    }
                    _ if !self.form.questions[qi].required => {
                        answers.remove(&error.question);
                    }
                    Some(a) => {
                        answers.insert(error.question.clone(), a);
                    }
                    None => {}
                },
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not generate answers that pass the form's rules (check its constraints)")]
    Unsatisfiable,
}

/// Generates `count` responses and stores them in batches; returns how many were stored.
pub fn generate(
    conn: &mut AnyConnection,
    form: &Form,
    count: u64,
    seed: u64,
) -> Result<u64, DemoError> {
    let mut generator = Generator::new(form, seed);
    let mut id_rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let start = Utc::now() - Duration::days(30);
    let mut stored = 0u64;
    let mut failures = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    while stored < count {
        batch.clear();
        while batch.len() < BATCH && stored + (batch.len() as u64) < count {
            let Some((answers, valid)) = generator.respondent() else {
                failures += 1;
                if failures > 1_000 + 10 * (stored + batch.len() as u64) {
                    return Err(DemoError::Unsatisfiable);
                }
                continue;
            };
            let n = stored + batch.len() as u64;
            // Spread over the last 30 days, so "responses over time" has a shape.
            let received = start + Duration::seconds((n * 2_592_000 / count.max(1)) as i64);
            let submission = uuid::Builder::from_random_bytes(id_rng.random()).into_uuid();
            batch.push(submit::build_row(
                form,
                &valid,
                &answers,
                submission.to_string(),
                received,
            ));
        }
        conn.transaction(|c| {
            batch
                .iter()
                .try_for_each(|row| responses::insert(c, row).map(|_| ()))
        })
        .map_err(DbError::from)?;
        stored += batch.len() as u64;
    }
    Ok(stored)
}
