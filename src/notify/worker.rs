//! The sender: queue what the schedule calls for (digests, closing reports), claim due
//! messages under a lease, word them, send, and mark them sent, retried with exponential
//! backoff and jitter, or failed after the last attempt.

use super::mail::{Block, Letter, MailError, Mailer};
use crate::db::outbox::{self, Claimed, OutboxRow};
use crate::db::{Database, DbError};
use crate::form::{Form, FormRegistry};
use crate::indicators::{self, IndicatorsReport, Query};
use crate::stats::{Indicator, Kind};
use crate::web::Catalog;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// Messages claimed at once. Few, because each waits for the ones before it to be sent
/// (up to the SMTP timeout each); the lease is renewed before every send anyway.
const BATCH: i64 = 5;

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

/// What one pass of the worker did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pass {
    /// Messages taken: sent, skipped (opted out), rescheduled or failed.
    pub claimed: usize,
    pub sent: usize,
}

/// One pass: schedule, claim, send.
pub async fn run_once(config: &WorkerConfig) -> Result<Pass, DbError> {
    let forms = config.forms.clone();
    config
        .db
        .run(move |conn| {
            let now = Utc::now().naive_utc();
            for form in forms.all() {
                super::enqueue_closing(conn, form, now)?;
                // Milestones are queued with the responses; this catches one that two
                // instances counted past together when no response follows.
                super::enqueue_reached_milestones(conn, form, now)?;
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
    let mut pass = Pass {
        claimed: claimed.len(),
        sent: 0,
    };
    for claim in claimed {
        if deliver(config, &claim).await? {
            pass.sent += 1;
        }
    }
    Ok(pass)
}

/// Records the outcome of a claimed message; false (and a warning) when the claim was
/// lost meanwhile, so another instance owns the message now.
async fn record<F>(config: &WorkerConfig, claim: &Claimed, update: F) -> Result<bool, DbError>
where
    F: FnOnce(&mut crate::db::AnyConnection, &Claimed) -> diesel::QueryResult<bool>
        + Send
        + 'static,
{
    let owned = claim.clone();
    let held = config
        .db
        .run(move |c| update(c, &owned).map_err(DbError::from))
        .await?;
    if !held {
        tracing::warn!(message = %claim.row.id, "the lease of a notification ran out; another instance took it over");
    }
    Ok(held)
}

/// Words and sends one claimed message, then records the outcome; true when sent.
async fn deliver(config: &WorkerConfig, claim: &Claimed) -> Result<bool, DbError> {
    let row = &claim.row;
    let Some(form) = config.forms.get(&row.form_id) else {
        record(config, claim, |c, claim| {
            outbox::mark_skipped(c, claim, "the form is no longer loaded")
        })
        .await?;
        return Ok(false);
    };
    let (recipient, form_id) = (row.recipient.clone(), form.id.clone());
    if config
        .db
        .run(move |c| outbox::opted_out(c, &recipient, &form_id).map_err(DbError::from))
        .await?
    {
        record(config, claim, |c, claim| {
            outbox::mark_skipped(c, claim, "the owner opted out")
        })
        .await?;
        return Ok(false);
    }
    let letter = compose(config, &form, row).await?;
    // The lease must cover this send: a message that waited behind others in the batch
    // could otherwise be taken over (and sent again) by another instance mid-send.
    let lease = chrono::Duration::from_std(config.lease).unwrap_or_default();
    if !record(config, claim, move |c, claim| {
        outbox::renew(c, claim, Utc::now().naive_utc() + lease)
    })
    .await?
    {
        return Ok(false);
    }
    let outcome = match letter.build(&config.from, &row.recipient) {
        Ok(message) => config.mailer.send(message).await,
        Err(err) => Err(err),
    };
    let attempts = row.attempts;
    let (max, base) = (config.max_attempts, config.retry_base);
    let sent = outcome.is_ok();
    if let Err(err) = &outcome {
        tracing::warn!(message = %row.id, attempts, error = %err, "sending a notification failed");
    }
    record(config, claim, move |conn, claim| {
        let now = Utc::now().naive_utc();
        match outcome {
            Ok(()) => outbox::mark_sent(conn, claim, now),
            Err(err @ (MailError::Permanent(_) | MailError::Address(_) | MailError::Build(_))) => {
                outbox::mark_failed(conn, claim, &err.to_string())
            }
            Err(err) if attempts >= max => outbox::mark_failed(conn, claim, &err.to_string()),
            Err(err) => {
                // base · 2^(attempts−1), at most an hour, ±20% so instances spread out.
                let exp = base.as_secs_f64() * 2f64.powi(attempts.clamp(1, 20) - 1);
                let jitter = 0.8 + rand::random::<f64>() * 0.4;
                let delay = (exp.min(3600.0) * jitter * 1000.0) as i64;
                outbox::mark_retry(
                    conn,
                    claim,
                    now + chrono::Duration::milliseconds(delay),
                    &err.to_string(),
                )
            }
        }
    })
    .await?;
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

/// The significant gaps of the whole sample as lines, at most `limit`, suppressed cells
/// left out.
fn gap_lines(form: &Form, report: &IndicatorsReport, lang: &str, limit: usize) -> Vec<String> {
    let q = |i: &Indicator| i.test.q_value.flatten().unwrap_or(1.0);
    let mut gaps: Vec<&Indicator> = report
        .report
        .indicators
        .iter()
        .filter(|i| i.group.is_none() && !i.suppressed && i.kind != Kind::Distribution)
        .filter(|i| q(i) < 0.05)
        .collect();
    // By q-value first: it is on one scale for every kind of gap, whereas a proportion's
    // difference is in percentage points, a mean's in the question's own units (and
    // Hedges g on a third scale), so sizes are compared only within a kind.
    let kind_order = |i: &Indicator| i.kind != Kind::Proportion;
    let size = |i: &Indicator| i.gap.difference.unwrap_or(0.0).abs();
    gaps.sort_by(|a, b| {
        q(a).total_cmp(&q(b))
            .then(kind_order(a).cmp(&kind_order(b)))
            .then(size(b).total_cmp(&size(a)))
    });
    gaps.iter()
        .take(limit)
        .map(|i| {
            let option = i.option.as_ref().map_or(String::new(), |o| {
                format!(" — {}", form.choice_label(&i.question, o, lang))
            });
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
                "{}{option}: ♀ {} · ♂ {} · {:+.1}{ci} (q = {:.2e})",
                form.question_label(&i.question, lang),
                fig(i.female.estimate.flatten()),
                fig(i.male.estimate.flatten()),
                i.gap.difference.unwrap_or(0.0) * scale,
                q(i)
            )
        })
        .collect()
}

/// The gaps with their heading, or the line saying there is none.
fn gap_blocks(catalog: &crate::web::Catalog, lang: &str, gaps: Vec<String>) -> Vec<Block> {
    if gaps.is_empty() {
        vec![Block::Paragraph(catalog.text(lang, "mail-no-gaps", &[]))]
    } else {
        vec![
            Block::Paragraph(catalog.text(lang, "mail-gaps", &[])),
            Block::List(gaps),
        ]
    }
}

async fn compose(
    config: &WorkerConfig,
    form: &Arc<Form>,
    row: &OutboxRow,
) -> Result<Letter, DbError> {
    // Labels follow the words around them (in the form's default language where the form
    // lacks that one), so a mail is in one language where the form allows.
    let lang = super::mail_language(form);
    let c = &config.catalog;
    let title = form.title.get(lang, form.default_language()).to_owned();
    let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
    let base = config.public_url.trim_end_matches('/');
    // Every message carries the opt-out link: stopping one kind of mail but not the
    // others would need owners to understand our kinds.
    let unsubscribe = format!(
        "{base}{}",
        super::opt_out_path(&config.secret, &form.id, &row.recipient)
    );
    let mut links = vec![(
        c.text(lang, "mail-dashboard", &[]),
        format!("{base}/dashboard/{}", form.id),
    )];
    // The public suppression (small counts hidden too, not only small groups): mail is
    // forwarded and kept beyond the reach of the dashboard's accounts.
    let mail_report = |by: Option<String>| {
        let (db, form, min_cell) = (config.db.clone(), form.clone(), config.min_cell);
        async move {
            let query = Query {
                by,
                min_cell,
                alpha: 0.05,
                weighted: false,
                public: true,
            };
            db.run(move |conn| {
                indicators::compute(conn, &form, &query)
                    .map_err(|e| DbError::Unavailable(e.to_string()))
            })
            .await
        }
    };
    let suppressed_note =
        Block::Paragraph(c.text(lang, "mail-suppressed", &[("min", config.min_cell as f64)]));
    let mut letter = match row.kind.as_str() {
        "digest" => {
            let time = |key: &str| {
                payload[key]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.naive_utc())
            };
            // The window the digest was queued for, not up to now: a digest sent late
            // (retried) must not count responses the next digest counts again.
            let (since, until) = (time("since"), time("until"));
            let form_id = form.id.clone();
            let (new, all) = config
                .db
                .run(move |conn| {
                    let new = outbox::received_between(conn, &form_id, since, until)?;
                    let all = outbox::received_between(conn, &form_id, None, until)?;
                    Ok::<_, DbError>((new, all))
                })
                .await?;
            let (count, f, m, o) = counts(&new, form);
            let total = counts(&all, form).0;
            Letter {
                unsubscribe,
                language: lang.to_owned(),
                subject: format!(
                    "{title}: {}",
                    c.text(lang, "mail-digest-subject", &[("count", count)])
                ),
                body: vec![Block::Paragraph(c.text(
                    lang,
                    "mail-digest-body",
                    &[
                        ("count", count),
                        ("female", f),
                        ("male", m),
                        ("other", o),
                        ("total", total),
                    ],
                ))],
                links,
            }
        }
        "milestone" => {
            let count = payload["count"].as_f64().unwrap_or_default();
            let report = mail_report(None).await?;
            let mut body = vec![Block::Paragraph(c.text(
                lang,
                "mail-milestone-body",
                &[("count", count)],
            ))];
            body.extend(gap_blocks(c, lang, gap_lines(form, &report, lang, 3)));
            body.push(suppressed_note);
            Letter {
                unsubscribe,
                language: lang.to_owned(),
                subject: format!(
                    "{title}: {}",
                    c.text(lang, "mail-milestone-subject", &[("count", count)])
                ),
                body,
                links,
            }
        }
        _ => {
            let report = mail_report(None).await?;
            let form_id = form.id.clone();
            let all = config
                .db
                .run(move |c| {
                    outbox::received_between(c, &form_id, None, None).map_err(DbError::from)
                })
                .await?;
            let (total, f, m, o) = counts(&all, form);
            let mut body = vec![Block::Paragraph(c.text(
                lang,
                "mail-closing-body",
                &[("total", total), ("female", f), ("male", m), ("other", o)],
            ))];
            body.extend(gap_blocks(c, lang, gap_lines(form, &report, lang, 10)));
            // Counts by sex for each level of every `by` dimension, by their labels.
            for dim in &form.disaggregation.by {
                let label = form.question_label(dim, lang);
                body.push(Block::Paragraph(c.text_with(
                    lang,
                    "mail-by",
                    "dimension",
                    &label,
                )));
                let n = |s: &crate::stats::Side| {
                    s.count.flatten().map_or("–".to_owned(), |x| x.to_string())
                };
                let levels = report.report.indicators.iter().filter(|i| {
                    &i.question == dim && i.kind == Kind::Proportion && i.group.is_none()
                });
                body.push(Block::List(
                    levels
                        .map(|ind| {
                            let level = ind.option.as_deref().unwrap_or_default();
                            format!(
                                "{}: ♀ {} · ♂ {}",
                                form.choice_label(dim, level, lang),
                                n(&ind.female),
                                n(&ind.male)
                            )
                        })
                        .collect(),
                ));
            }
            body.push(suppressed_note);
            links.push((
                c.text(lang, "mail-exports", &[]),
                format!("{base}/api/v1/forms/{}/responses?format=xlsx", form.id),
            ));
            Letter {
                unsubscribe,
                language: lang.to_owned(),
                subject: format!("{title}: {}", c.text(lang, "mail-closing-subject", &[])),
                body,
                links,
            }
        }
    };
    let stop = c.text(lang, "mail-unsubscribe", &[]);
    letter.links.push((stop, letter.unsubscribe.clone()));
    Ok(letter)
}
