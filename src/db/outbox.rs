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

/// Takes up to `limit` due notifications for this instance until `lease_until`.
pub fn claim_due(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let free = outbox::locked_until
        .is_null()
        .or(outbox::locked_until.lt(now));
    let candidates: Vec<OutboxRow> = outbox::table
        .filter(outbox::status.eq("pending"))
        .filter(outbox::next_attempt_at.le(now))
        .filter(free)
        .order(outbox::next_attempt_at.asc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?;
    let mut claimed = Vec::new();
    for mut row in candidates {
        let won = diesel::update(
            outbox::table
                .filter(outbox::id.eq(&row.id))
                .filter(outbox::status.eq("pending"))
                .filter(
                    outbox::locked_until
                        .is_null()
                        .or(outbox::locked_until.lt(now)),
                ),
        )
        .set((
            outbox::locked_until.eq(Some(lease_until)),
            outbox::attempts.eq(row.attempts + 1),
        ))
        .execute(conn)?;
        if won == 1 {
            row.attempts += 1;
            claimed.push(row);
        }
    }
    Ok(claimed)
}

pub fn mark_sent(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("sent"),
            outbox::sent_at.eq(Some(now)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

pub fn mark_skipped(conn: &mut AnyConnection, id: &str, why: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("skipped"),
            outbox::last_error.eq(Some(why)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

pub fn mark_retry(
    conn: &mut AnyConnection,
    id: &str,
    next: NaiveDateTime,
    error: &str,
) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::next_attempt_at.eq(next),
            outbox::last_error.eq(Some(error)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

pub fn mark_failed(conn: &mut AnyConnection, id: &str, error: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("failed"),
            outbox::last_error.eq(Some(error)),
            outbox::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
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

/// Responses received after `since` (all when `None`), by sex answer.
pub fn received_since(
    conn: &mut AnyConnection,
    form: &str,
    since: Option<NaiveDateTime>,
) -> QueryResult<Vec<(Option<String>, i64)>> {
    let mut query = responses::table
        .filter(responses::form_id.eq(form))
        .group_by(responses::sex)
        .select((responses::sex, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(responses::received_at.gt(since));
    }
    query.load(conn)
}

pub fn opt_out(conn: &mut AnyConnection, email: &str, form: &str) -> QueryResult<()> {
    if !opted_out(conn, email, form)? {
        diesel::insert_into(mail_optouts::table)
            .values((
                mail_optouts::email.eq(email),
                mail_optouts::form_id.eq(form),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn opted_out(conn: &mut AnyConnection, email: &str, form: &str) -> QueryResult<bool> {
    let n: i64 = mail_optouts::table
        .filter(mail_optouts::email.eq(email))
        .filter(mail_optouts::form_id.eq(form))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
