//! Notifications to survey owners as a durable outbox: what to queue when (milestones in
//! the submission's own transaction; digests and closing reports from the worker's
//! schedule), how to word them, and the worker that sends them with retries.

mod mail;
mod worker;

pub use mail::{MailError, Mailer};
pub use worker::{run_once, spawn, unsubscribe_signature, WorkerConfig};

use crate::db::outbox::{self, OutboxRow};
use crate::db::AnyConnection;
use crate::form::Form;
use chrono::NaiveDateTime;
use diesel::QueryResult;

fn row(
    kind: &str,
    form: &Form,
    recipient: &str,
    dedupe_key: String,
    payload: serde_json::Value,
    now: NaiveDateTime,
) -> OutboxRow {
    OutboxRow {
        id: uuid::Uuid::now_v7().to_string(),
        dedupe_key,
        kind: kind.to_owned(),
        form_id: form.id.clone(),
        recipient: recipient.to_owned(),
        payload: payload.to_string(),
        status: "pending".to_owned(),
        attempts: 0,
        next_attempt_at: now,
        locked_until: None,
        last_error: None,
        created_at: now,
        sent_at: None,
    }
}

/// Queues a message per owner for every milestone the response count crossed from
/// `before` to `after`. Called inside the transaction that stored the responses.
pub fn enqueue_milestones(
    conn: &mut AnyConnection,
    form: &Form,
    before: i64,
    after: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    for &milestone in &form.notify.milestones {
        let m = i64::try_from(milestone).unwrap_or(i64::MAX);
        if before < m && m <= after {
            for owner in &form.owners {
                let key = format!("milestone:{}:{m}:{owner}", form.id);
                outbox::enqueue(
                    conn,
                    &row(
                        "milestone",
                        form,
                        owner,
                        key,
                        serde_json::json!({ "count": m }),
                        now,
                    ),
                )?;
            }
        }
    }
    Ok(())
}

/// Queues a closing report per owner, once per form version, when the form is closed.
pub fn enqueue_closing(
    conn: &mut AnyConnection,
    form: &Form,
    now: NaiveDateTime,
) -> QueryResult<()> {
    if form.is_open(chrono::DateTime::from_naive_utc_and_offset(
        now,
        chrono::Utc,
    )) {
        return Ok(());
    }
    for owner in &form.owners {
        let key = format!("closing:{}:{}:{owner}", form.id, form.version);
        outbox::enqueue(
            conn,
            &row(
                "closing",
                form,
                owner,
                key,
                serde_json::json!({ "version": form.version }),
                now,
            ),
        )?;
    }
    Ok(())
}

/// Queues a digest per owner when `digest_minutes` have passed since the last one and
/// responses arrived meanwhile.
pub fn enqueue_digest(
    conn: &mut AnyConnection,
    form: &Form,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let Some(minutes) = form.notify.digest_minutes.filter(|m| *m > 0) else {
        return Ok(());
    };
    if form.owners.is_empty() {
        return Ok(());
    }
    let last = outbox::last_digest_at(conn, &form.id)?;
    if last.is_some_and(|t| now - t < chrono::Duration::minutes(i64::from(minutes))) {
        return Ok(());
    }
    let new: i64 = outbox::received_since(conn, &form.id, last)?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if new == 0 {
        return Ok(());
    }
    let since = last.map(|t| t.and_utc().to_rfc3339());
    for owner in &form.owners {
        let key = format!("digest:{}:{}:{owner}", form.id, now.and_utc().timestamp());
        let payload = serde_json::json!({ "since": since, "until": now.and_utc().to_rfc3339() });
        outbox::enqueue(conn, &row("digest", form, owner, key, payload, now))?;
    }
    Ok(())
}
