//! Queries on the notification outbox, portable to both backends: claiming is a
//! conditional UPDATE (a lease), not `SKIP LOCKED`, so it works on SQLite too.

use super::schema::{mail_optouts, outbox, responses};
use super::AnyConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Clone, Debug, Insertable, Queryable, Selectable)]
#[diesel(table_name = outbox, treat_none_as_default_value = false)]
pub struct OutboxRow {
    pub id: String,
    pub dedupe_key: String,
    pub kind: String,
    pub form_id: String,
    pub recipient: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

/// How many notifications are in each status (pending, sent, failed, skipped).
pub fn counts_by_status(conn: &mut AnyConnection) -> QueryResult<Vec<(String, i64)>> {
    outbox::table
        .group_by(outbox::status)
        .select((outbox::status, diesel::dsl::count_star()))
        .load(conn)
}

/// Adds a notification unless one with the same dedupe key exists; true when added.
pub fn enqueue(conn: &mut AnyConnection, row: &OutboxRow) -> QueryResult<bool> {
    let exists: i64 = outbox::table
        .filter(outbox::dedupe_key.eq(&row.dedupe_key))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Ok(false);
    }
    // Another instance may enqueue the same key at once: only this row yields.
    match conn.transaction(|c| diesel::insert_into(outbox::table).values(row).execute(c)) {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Which of `keys` are already in the outbox.
pub fn existing_keys(conn: &mut AnyConnection, keys: &[String]) -> QueryResult<Vec<String>> {
    outbox::table
        .filter(outbox::dedupe_key.eq_any(keys))
        .select(outbox::dedupe_key)
        .load(conn)
}

/// A message this instance claimed, with the token that shows the claim is still its own.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub row: OutboxRow,
    pub token: String,
}

/// Takes up to `limit` due notifications for this instance until `lease_until`.
pub fn claim_due(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Claimed>> {
    let candidates: Vec<OutboxRow> = outbox::table
        .filter(outbox::status.eq("pending"))
        .filter(outbox::next_attempt_at.le(now))
        .filter(
            outbox::locked_until
                .is_null()
                .or(outbox::locked_until.lt(now)),
        )
        .order((outbox::next_attempt_at.asc(), outbox::id.asc()))
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?;
    let mut claimed = Vec::new();
    for mut row in candidates {
        // Won only if nobody claimed, finished or rescheduled the row since it was read:
        // its attempts are unchanged and its lease is still free.
        let token = uuid::Uuid::new_v4().to_string();
        let won = diesel::update(
            outbox::table
                .filter(outbox::id.eq(&row.id))
                .filter(outbox::status.eq("pending"))
                .filter(outbox::attempts.eq(row.attempts))
                .filter(
                    outbox::locked_until
                        .is_null()
                        .or(outbox::locked_until.lt(now)),
                ),
        )
        .set((
            outbox::locked_until.eq(Some(lease_until)),
            outbox::attempts.eq(row.attempts + 1),
            outbox::claim_token.eq(Some(&token)),
        ))
        .execute(conn)?;
        if won == 1 {
            row.attempts += 1;
            row.locked_until = Some(lease_until);
            claimed.push(Claimed { row, token });
        }
    }
    Ok(claimed)
}

/// What an update of a claimed message changes; `None` fields stay as they are.
#[derive(AsChangeset, Default)]
#[diesel(table_name = outbox)]
struct Change<'a> {
    status: Option<&'a str>,
    next_attempt_at: Option<NaiveDateTime>,
    locked_until: Option<Option<NaiveDateTime>>,
    last_error: Option<Option<&'a str>>,
    sent_at: Option<Option<NaiveDateTime>>,
}

/// Applies `change` while the claim is still this one's; false when it was lost (the
/// lease ran out and another instance claimed the message), and nothing changed.
fn update_claimed(conn: &mut AnyConnection, claim: &Claimed, change: Change) -> QueryResult<bool> {
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(&claim.row.id))
            .filter(outbox::status.eq("pending"))
            .filter(outbox::claim_token.eq(&claim.token)),
    )
    .set(change)
    .execute(conn)?;
    Ok(n == 1)
}

/// Extends the lease before a send; false when the claim was lost (then do not send).
pub fn renew(
    conn: &mut AnyConnection,
    claim: &Claimed,
    lease_until: NaiveDateTime,
) -> QueryResult<bool> {
    update_claimed(
        conn,
        claim,
        Change {
            locked_until: Some(Some(lease_until)),
            ..Change::default()
        },
    )
}

pub fn mark_sent(
    conn: &mut AnyConnection,
    claim: &Claimed,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    update_claimed(
        conn,
        claim,
        Change {
            status: Some("sent"),
            sent_at: Some(Some(now)),
            locked_until: Some(None),
            ..Change::default()
        },
    )
}

pub fn mark_skipped(conn: &mut AnyConnection, claim: &Claimed, why: &str) -> QueryResult<bool> {
    update_claimed(
        conn,
        claim,
        Change {
            status: Some("skipped"),
            last_error: Some(Some(why)),
            locked_until: Some(None),
            ..Change::default()
        },
    )
}

pub fn mark_retry(
    conn: &mut AnyConnection,
    claim: &Claimed,
    next: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    update_claimed(
        conn,
        claim,
        Change {
            next_attempt_at: Some(next),
            last_error: Some(Some(error)),
            locked_until: Some(None),
            ..Change::default()
        },
    )
}

pub fn mark_failed(conn: &mut AnyConnection, claim: &Claimed, error: &str) -> QueryResult<bool> {
    update_claimed(
        conn,
        claim,
        Change {
            status: Some("failed"),
            last_error: Some(Some(error)),
            locked_until: Some(None),
            ..Change::default()
        },
    )
}

pub fn with_status(conn: &mut AnyConnection, status: &str) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::status.eq(status))
        .order(outbox::created_at.asc())
        .select(OutboxRow::as_select())
        .load(conn)
}

/// When the latest digest of a form was queued.
pub fn last_digest_at(conn: &mut AnyConnection, form: &str) -> QueryResult<Option<NaiveDateTime>> {
    outbox::table
        .filter(outbox::form_id.eq(form))
        .filter(outbox::kind.eq("digest"))
        .select(diesel::dsl::max(outbox::created_at))
        .first(conn)
}

/// Responses received after `since` (from the first when `None`) up to and including
/// `until` (to the last when `None`), by sex answer.
pub fn received_between(
    conn: &mut AnyConnection,
    form: &str,
    since: Option<NaiveDateTime>,
    until: Option<NaiveDateTime>,
) -> QueryResult<Vec<(Option<String>, i64)>> {
    let mut query = responses::table
        .filter(responses::form_id.eq(form))
        .group_by(responses::sex)
        .select((responses::sex, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(responses::received_at.gt(since));
    }
    if let Some(until) = until {
        query = query.filter(responses::received_at.le(until));
    }
    query.load(conn)
}

/// Stands for every form in `mail_optouts.form_id` (form ids are slugs, so it is none).
pub const EVERY_FORM: &str = "*";

/// Opt-outs are kept by lower-case address, as accounts are: `Owner@City.org` in a form
/// file and `owner@city.org` typed at the command line are one owner.
fn address(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Stops mail to `email` about `form`, or about every form with `None`.
pub fn opt_out(conn: &mut AnyConnection, email: &str, form: Option<&str>) -> QueryResult<()> {
    let form = form.unwrap_or(EVERY_FORM);
    let email = address(email);
    let email = email.as_str();
    let exists: i64 = mail_optouts::table
        .filter(mail_optouts::email.eq(email))
        .filter(mail_optouts::form_id.eq(form))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Ok(());
    }
    // A second click (or the mail provider's one-click POST) at the same moment.
    let insert = conn.transaction(|c| {
        diesel::insert_into(mail_optouts::table)
            .values((
                mail_optouts::email.eq(email),
                mail_optouts::form_id.eq(form),
            ))
            .execute(c)
    });
    match insert {
        Ok(_) | Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Resumes mail to `email` about `form` (an opt-out of every form stays), or, with
/// `None`, every opt-out of `email`; how many were removed.
pub fn opt_in(conn: &mut AnyConnection, email: &str, form: Option<&str>) -> QueryResult<usize> {
    let mine = mail_optouts::table.filter(mail_optouts::email.eq(address(email)));
    match form {
        Some(form) => diesel::delete(mine.filter(mail_optouts::form_id.eq(form))).execute(conn),
        None => diesel::delete(mine).execute(conn),
    }
}

/// How `email` opted out of mail about `form`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptOut {
    None,
    ThisForm,
    EveryForm,
}

pub fn opt_out_of(conn: &mut AnyConnection, email: &str, form: &str) -> QueryResult<OptOut> {
    let forms: Vec<String> = mail_optouts::table
        .filter(mail_optouts::email.eq(address(email)))
        .filter(mail_optouts::form_id.eq_any([form, EVERY_FORM]))
        .select(mail_optouts::form_id)
        .load(conn)?;
    Ok(if forms.iter().any(|f| f == EVERY_FORM) {
        OptOut::EveryForm
    } else if forms.is_empty() {
        OptOut::None
    } else {
        OptOut::ThisForm
    })
}

pub fn opted_out(conn: &mut AnyConnection, email: &str, form: &str) -> QueryResult<bool> {
    Ok(opt_out_of(conn, email, form)? != OptOut::None)
}
