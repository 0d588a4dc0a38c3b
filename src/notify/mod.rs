//! Notifications to survey owners as a durable outbox: what to queue when (milestones in
//! the submission's own transaction; digests and closing reports from the worker's
//! schedule), how to word them, and the worker that sends them with retries.

mod mail;
mod worker;

pub use mail::{MailError, Mailer};
pub use worker::{run_once, spawn, Pass, WorkerConfig};

use crate::db::outbox::{self, OutboxRow};
use crate::db::AnyConnection;
use crate::form::Form;
use chrono::NaiveDateTime;
use diesel::QueryResult;
use hmac::Mac;

/// The language of owners' mail about `form`: its `notify.language` (else its first
/// language) when the interface's catalogues have it, else English, as its words come
/// from those catalogues. `Content-Language`, `<html lang>` and the opt-out page say it.
pub fn mail_language(form: &Form) -> &'static str {
    let wanted = form.notify.language.as_deref();
    crate::web::ui_language(wanted.unwrap_or(form.default_language()))
}

/// The signed path that stops every message about `form` to `email` (its opt-out link).
/// The signature is the link's only authority: owners have no account to sign in with.
pub fn opt_out_path(secret: &[u8], form: &str, email: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // Everything but what a path segment may hold as is and addresses commonly use.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'@')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    let signature = hex::encode(opt_out_mac(secret, form, email).finalize().into_bytes());
    let email = utf8_percent_encode(email, SEGMENT);
    format!("/unsubscribe/{form}/{email}/{signature}")
}

/// Whether `signature` is the one `opt_out_path` gives `form` and `email`.
pub fn opt_out_signature_valid(secret: &[u8], form: &str, email: &str, signature: &str) -> bool {
    hex::decode(signature)
        .is_ok_and(|sig| opt_out_mac(secret, form, email).verify_slice(&sig).is_ok())
}

fn opt_out_mac(secret: &[u8], form: &str, email: &str) -> hmac::Hmac<sha2::Sha256> {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    // The same message as the digests' first links, so those keep working.
    mac.update(format!("unsubscribe|{form}|{email}").as_bytes());
    mac
}

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

/// Queues a message per owner for every milestone up to `total` that nobody was told
/// about yet. Not only the milestones crossed from one count to the next: two PostgreSQL
/// instances committing at once (READ COMMITTED) can each count as if the other had not
/// stored anything, and a milestone they jump over together is then caught by the next
/// count. A milestone counts as told once any current owner has a row for it, so an
/// owner added later is not sent the past ones.
pub fn enqueue_milestones(
    conn: &mut AnyConnection,
    form: &Form,
    total: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let reached: Vec<i64> = form
        .notify
        .milestones
        .iter()
        .map(|&m| i64::try_from(m).unwrap_or(i64::MAX))
        .filter(|&m| m <= total)
        .collect();
    if reached.is_empty() || form.owners.is_empty() {
        return Ok(());
    }
    let key = |m: i64, owner: &str| format!("milestone:{}:{m}:{owner}", form.id);
    let keys: Vec<String> = reached
        .iter()
        .flat_map(|&m| form.owners.iter().map(move |o| key(m, o)))
        .collect();
    let queued = outbox::existing_keys(conn, &keys)?;
    for m in reached {
        if form.owners.iter().any(|o| queued.contains(&key(m, o))) {
            continue;
        }
        for owner in &form.owners {
            let payload = serde_json::json!({ "count": m });
            outbox::enqueue(
                conn,
                &row("milestone", form, owner, key(m, owner), payload, now),
            )?;
        }
    }
    Ok(())
}

/// Counts the form's responses and queues the milestones reached (see
/// `enqueue_milestones`). The count stops just past the largest milestone: a full count
/// in every commit made the single writer slower as the table grew, and beyond the
/// largest every milestone is reached either way.
pub fn enqueue_reached_milestones(
    conn: &mut AnyConnection,
    form: &Form,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let Some(&largest) = form.notify.milestones.iter().max() else {
        return Ok(());
    };
    let cap = i64::try_from(largest).unwrap_or(i64::MAX);
    let total = crate::db::responses::count_capped(conn, &form.id, cap)?;
    enqueue_milestones(conn, form, total, now)
}

/// Queues a closing report per owner, once per form version, when the form is closed:
/// `status: closed` or `closes_at` passed. Not `!is_open`: a form whose `opens_at` is
/// still ahead is not open either, yet it has nothing to report.
pub fn enqueue_closing(
    conn: &mut AnyConnection,
    form: &Form,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let closed = form.status == crate::form::Status::Closed
        || form.closes_at.is_some_and(|t| t.naive_utc() <= now);
    if !closed {
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
/// responses arrived meanwhile. The dedupe key names the window (`now` in whole
/// `digest_minutes` since the epoch): instances that both see the last digest as old
/// enough, at once, write the same key, and the unique index keeps one.
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
    let new: i64 = outbox::received_between(conn, &form.id, last, Some(now))?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if new == 0 {
        return Ok(());
    }
    let window = now
        .and_utc()
        .timestamp()
        .div_euclid(i64::from(minutes) * 60);
    let since = last.map(|t| t.and_utc().to_rfc3339());
    for owner in &form.owners {
        let key = format!("digest:{}:{minutes}m:{window}:{owner}", form.id);
        let payload = serde_json::json!({ "since": since, "until": now.and_utc().to_rfc3339() });
        outbox::enqueue(conn, &row("digest", form, owner, key, payload, now))?;
    }
    Ok(())
}
