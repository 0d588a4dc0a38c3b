//! The sender: queue what the schedule calls for (digests, closing reports), claim due
//! messages under a lease, word them, send, and mark them sent, retried with exponential
//! backoff and jitter, or failed after the last attempt.

use super::mail::{Letter, MailError, Mailer};
use crate::db::outbox::{self, OutboxRow};
use crate::db::{Database, DbError};
use crate::form::{Form, FormRegistry};
use crate::indicators::{self, IndicatorsReport, Query};
use crate::stats::Kind;
use crate::web::Catalog;
use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

const BATCH: i64 = 20;

pub struct WorkerConfig {
    pub db: Database,
    pub forms: Arc<FormRegistry>,
    pub mailer: Arc<Mailer>,
    pub catalog: Arc<Catalog>,
    pub from: String,
    pub public_url: String,
    pub secret: Vec<u8>,
    pub min_cell: u64,
    pub poll: Duration,
    pub retry_base: Duration,
    pub max_attempts: i32,
    /// How long a claimed message stays this instance's before another may take it.
    pub lease: Duration,
}

/// Runs the worker until the process ends.
pub fn spawn(config: WorkerConfig) {
    actix_web::rt::spawn(async move {
        loop {
            if let Err(err) = run_once(&config).await {
                tracing::warn!(error = %err, "the mail worker could not reach the database");
            }
            tokio::time::sleep(config.poll).await;
        }
    });
}

/// The signature in an unsubscribe link for `email` and `form`.
pub fn unsubscribe_signature(secret: &[u8], email: &str, form: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("unsubscribe|{form}|{email}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// One pass: schedule, claim, send. Returns how many messages were sent.
pub async fn run_once(config: &WorkerConfig) -> Result<usize, DbError> {
    let forms = config.forms.clone();
    config
        .db
        .run(move |conn| {
            let now = Utc::now().naive_utc();
            for form in forms.all() {
                super::enqueue_closing(conn, form, now)?;
                super::enqueue_digest(conn, form, now)?;
            }
            Ok::<_, DbError>(())
        })
        .await?;
    let lease = chrono::Duration::from_std(config.lease).unwrap_or_default();
    let claimed = config
        .db
        .run(move |conn| {
            let now = Utc::now().naive_utc();
            let lease = now + lease;
            outbox::claim_due(conn, now, lease, BATCH).map_err(DbError::from)
        })
        .await?;
    let mut sent = 0;
    for row in claimed {
        if deliver(config, &row).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Words and sends one claimed message, then records the outcome; true when sent.
async fn deliver(config: &WorkerConfig, row: &OutboxRow) -> Result<bool, DbError> {
    let Some(form) = config.forms.get(&row.form_id) else {
        let id = row.id.clone();
        config
            .db
            .run(move |c| {
                outbox::mark_skipped(c, &id, "the form is no longer loaded").map_err(DbError::from)
            })
            .await?;
        return Ok(false);
    };
    let (id, recipient, form_id) = (row.id.clone(), row.recipient.clone(), form.id.clone());
    if config
        .db
        .run(move |c| outbox::opted_out(c, &recipient, &form_id).map_err(DbError::from))
        .await?
    {
        config
            .db
            .run(move |c| {
                outbox::mark_skipped(c, &id, "the owner opted out").map_err(DbError::from)
            })
            .await?;
        return Ok(false);
    }
    let letter = compose(config, &form, row).await?;
    let outcome = match letter.build(&config.from, &row.recipient) {
        Ok(message) => config.mailer.send(message).await,
        Err(err) => Err(err),
    };
    let id = row.id.clone();
    let attempts = row.attempts;
    let (max, base) = (config.max_attempts, config.retry_base);
    let sent = outcome.is_ok();
    config
        .db
        .run(move |conn| {
            let now = Utc::now().naive_utc();
            match outcome {
                Ok(()) => outbox::mark_sent(conn, &id, now),
                Err(
                    err @ (MailError::Permanent(_) | MailError::Address(_) | MailError::Build(_)),
                ) => outbox::mark_failed(conn, &id, &err.to_string()),
                Err(err) if attempts >= max => outbox::mark_failed(conn, &id, &err.to_string()),
                Err(err) => {
                    // base · 2^(attempts−1), at most an hour, ±20% so instances spread out.
                    let exp = base.as_secs_f64() * 2f64.powi(attempts.clamp(1, 20) - 1);
                    let jitter = 0.8 + rand::random::<f64>() * 0.4;
                    let delay = (exp.min(3600.0) * jitter * 1000.0) as i64;
                    outbox::mark_retry(
                        conn,
                        &id,
                        now + chrono::Duration::milliseconds(delay),
                        &err.to_string(),
                    )
                }
            }
            .map_err(DbError::from)
        })
        .await?;
    if !sent {
        tracing::warn!(message = %row.id, attempts, "sending a notification failed");
    }
    Ok(sent)
}

fn counts(sex: &[(Option<String>, i64)], form: &Form) -> (f64, f64, f64, f64) {
    let total: i64 = sex.iter().map(|(_, n)| n).sum();
    let of = |v: &str| {
        sex.iter()
            .filter(|(s, _)| s.as_deref() == Some(v))
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    let (f, m) = (
        of(&form.disaggregation.sex.female),
        of(&form.disaggregation.sex.male),
    );
    (total as f64, f as f64, m as f64, (total - f - m) as f64)
}

/// The largest significant gaps of the whole sample, as lines, suppressed cells left out.
fn gap_lines(form: &Form, report: &IndicatorsReport, lang: &str, limit: usize) -> Vec<String> {
    let mut gaps: Vec<_> = report
        .report
        .indicators
        .iter()
        .filter(|i| i.group.is_none() && !i.suppressed && i.kind != Kind::Distribution)
        .filter(|i| i.test.q_value.flatten().is_some_and(|q| q < 0.05))
        .collect();
    let size = |i: &&crate::stats::Indicator| match i.kind {
        Kind::Mean => i.gap.hedges_g.flatten().unwrap_or(0.0).abs(),
        _ => i.gap.difference.unwrap_or(0.0).abs(),
    };
    gaps.sort_by(|a, b| size(b).total_cmp(&size(a)));
    gaps.iter()
        .take(limit)
        .map(|i| {
            let q = form.question(&i.question);
            let label = q
                .and_then(|q| q.label.as_ref())
                .map_or(i.question.clone(), |l| {
                    l.get(lang, form.default_language()).to_owned()
                });
            let option = i
                .option
                .as_ref()
                .and_then(|o| q.and_then(|q| form.choices_of(q).iter().find(|c| &c.value == o)))
                .map(|c| format!(" — {}", c.label.get(lang, form.default_language())))
                .unwrap_or_default();
            let (scale, unit) = if i.kind == Kind::Proportion {
                (100.0, "%")
            } else {
                (1.0, "")
            };
            let fig =
                |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{:.1}{unit}", v * scale));
            let ci = i.gap.ci.map_or(String::new(), |[lo, hi]| {
                format!(" [{:.1}, {:.1}]", lo * scale, hi * scale)
            });
            format!(
                "{label}{option}: ♀ {} · ♂ {} · {:+.1}{ci} (q = {:.2e})",
                fig(i.female.estimate.flatten()),
                fig(i.male.estimate.flatten()),
                i.gap.difference.unwrap_or(0.0) * scale,
                i.test.q_value.flatten().unwrap_or(1.0)
            )
        })
        .collect()
}

async fn compose(
    config: &WorkerConfig,
    form: &Arc<Form>,
    row: &OutboxRow,
) -> Result<Letter, DbError> {
    let lang = form
        .notify
        .language
        .clone()
        .unwrap_or_else(|| form.default_language().to_owned());
    let ui = crate::web::ui_language(&lang);
    let c = &config.catalog;
    let title = form.title.get(&lang, form.default_language()).to_owned();
    let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
    let base = config.public_url.trim_end_matches('/');
    let mut links = vec![(
        c.text(ui, "mail-dashboard", &[]),
        format!("{base}/dashboard/{}", form.id),
    )];
    let planner_report = |by: Option<String>| {
        let (db, form, min_cell) = (config.db.clone(), form.clone(), config.min_cell);
        async move {
            let query = Query {
                by,
                min_cell,
                alpha: 0.05,
                weighted: false,
                public: false,
            };
            db.run(move |conn| {
                indicators::compute(conn, &form, &query)
                    .map_err(|e| DbError::Unavailable(e.to_string()))
            })
            .await
        }
    };
    let suppressed_note = c.text(ui, "mail-suppressed", &[("min", config.min_cell as f64)]);
    let letter = match row.kind.as_str() {
        "digest" => {
            let since = payload["since"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.naive_utc());
            let form_id = form.id.clone();
            let (new, all) = config
                .db
                .run(move |conn| {
                    let new = outbox::received_since(conn, &form_id, since)?;
                    let all = outbox::received_since(conn, &form_id, None)?;
                    Ok::<_, DbError>((new, all))
                })
                .await?;
            let (count, f, m, o) = counts(&new, form);
            let total = counts(&all, form).0;
            let sig = unsubscribe_signature(&config.secret, &row.recipient, &form.id);
            let unsubscribe = format!("{base}/unsubscribe/{}/{}/{sig}", form.id, row.recipient);
            links.push((c.text(ui, "mail-unsubscribe", &[]), unsubscribe.clone()));
            Letter {
                language: lang.clone(),
                subject: format!(
                    "{title}: {}",
                    c.text(ui, "mail-digest-subject", &[("count", count)])
                ),
                paragraphs: vec![c.text(
                    ui,
                    "mail-digest-body",
                    &[
                        ("count", count),
                        ("female", f),
                        ("male", m),
                        ("other", o),
                        ("total", total),
                    ],
                )],
                items: Vec::new(),
                links,
                unsubscribe: Some(unsubscribe),
            }
        }
        "milestone" => {
            let count = payload["count"].as_f64().unwrap_or_default();
            let report = planner_report(None).await?;
            let gaps = gap_lines(form, &report, &lang, 3);
            let heading = if gaps.is_empty() {
                c.text(ui, "mail-no-gaps", &[])
            } else {
                c.text(ui, "mail-gaps", &[])
            };
            Letter {
                language: lang.clone(),
                subject: format!(
                    "{title}: {}",
                    c.text(ui, "mail-milestone-subject", &[("count", count)])
                ),
                paragraphs: vec![
                    c.text(ui, "mail-milestone-body", &[("count", count)]),
                    heading,
                    suppressed_note,
                ],
                items: gaps,
                links,
                unsubscribe: None,
            }
        }
        _ => {
            let report = planner_report(None).await?;
            let form_id = form.id.clone();
            let all = config
                .db
                .run(move |c| outbox::received_since(c, &form_id, None).map_err(DbError::from))
                .await?;
            let (total, f, m, o) = counts(&all, form);
            let mut items = gap_lines(form, &report, &lang, 10);
            // Counts by sex for each level of every `by` dimension.
            for dim in &form.disaggregation.by {
                items.push(c.text_with(ui, "mail-by", "dimension", dim));
                for ind in report.report.indicators.iter().filter(|i| {
                    &i.question == dim && i.kind == Kind::Proportion && i.group.is_none()
                }) {
                    let n = |s: &crate::stats::Side| {
                        s.count.flatten().map_or("–".to_owned(), |x| x.to_string())
                    };
                    items.push(format!(
                        "{}: ♀ {} · ♂ {}",
                        ind.option.clone().unwrap_or_default(),
                        n(&ind.female),
                        n(&ind.male)
                    ));
                }
            }
            links.push((
                c.text(ui, "mail-exports", &[]),
                format!("{base}/api/v1/forms/{}/responses?format=xlsx", form.id),
            ));
            Letter {
                language: lang.clone(),
                subject: format!("{title}: {}", c.text(ui, "mail-closing-subject", &[])),
                paragraphs: vec![
                    c.text(
                        ui,
                        "mail-closing-body",
                        &[("total", total), ("female", f), ("male", m), ("other", o)],
                    ),
                    c.text(
                        ui,
                        if items.is_empty() {
                            "mail-no-gaps"
                        } else {
                            "mail-gaps"
                        },
                        &[],
                    ),
                    suppressed_note,
                ],
                items,
                links,
                unsubscribe: None,
            }
        }
    };
    Ok(letter)
}
