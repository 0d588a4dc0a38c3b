//! Queries on responses and form versions, written once for both backends.

use super::schema::{form_versions, responses};
use super::{AnyConnection, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A response row as stored.
#[derive(Clone, Debug, Insertable, Queryable, Selectable)]
#[diesel(table_name = responses, treat_none_as_default_value = false)]
pub struct ResponseRow {
    pub id: String,
    pub form_id: String,
    pub form_version: i32,
    pub submission_id: String,
    pub received_at: NaiveDateTime,
    pub answers_hash: String,
    pub sex: Option<String>,
    pub by_1: Option<String>,
    pub by_2: Option<String>,
    pub by_3: Option<String>,
    pub by_4: Option<String>,
    pub weight: Option<f64>,
    pub answers: String,
    pub analysis: Vec<u8>,
}

/// What a submitter is told about a stored response.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = responses)]
pub struct ResponseMeta {
    pub id: String,
    pub form_id: String,
    pub form_version: i32,
    pub received_at: NaiveDateTime,
    pub answers_hash: String,
}

pub fn find_by_submission(
    conn: &mut AnyConnection,
    form: &str,
    submission: &str,
) -> QueryResult<Option<ResponseMeta>> {
    responses::table
        .filter(responses::form_id.eq(form))
        .filter(responses::submission_id.eq(submission))
        .select(ResponseMeta::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut AnyConnection, row: &ResponseRow) -> QueryResult<usize> {
    diesel::insert_into(responses::table)
        .values(row)
        .execute(conn)
}

/// Inserts many rows. diesel's multi-row INSERT is not available through the
/// multi-backend connection, so each backend gets its own arm: one statement on
/// PostgreSQL (a network round trip per row would dominate), and a loop over the cached
/// prepared statement on SQLite (in-process, so that is as fast).
pub fn insert_many(conn: &mut AnyConnection, rows: &[ResponseRow]) -> QueryResult<usize> {
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(pg) => diesel::insert_into(responses::table)
            .values(rows)
            .execute(pg),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(lite) => rows.iter().try_fold(0, |n, row| {
            diesel::insert_into(responses::table)
                .values(row)
                .execute(lite)
                .map(|m| n + m)
        }),
    }
}

/// The stored responses of `form` among `submissions`, with their submission ids.
pub fn find_submissions(
    conn: &mut AnyConnection,
    form: &str,
    submissions: &[&str],
) -> QueryResult<Vec<(String, ResponseMeta)>> {
    responses::table
        .filter(responses::form_id.eq(form))
        .filter(responses::submission_id.eq_any(submissions))
        .select((responses::submission_id, ResponseMeta::as_select()))
        .load(conn)
}

pub fn count(conn: &mut AnyConnection, form: &str) -> QueryResult<i64> {
    responses::table
        .filter(responses::form_id.eq(form))
        .count()
        .get_result(conn)
}

/// A form's response count when it is at most `cap`, else `cap + 1`: reads at most
/// `cap + 1` index entries however many responses the form has.
pub fn count_capped(conn: &mut AnyConnection, form: &str, cap: i64) -> QueryResult<i64> {
    let beyond_cap = responses::table
        .filter(responses::form_id.eq(form))
        .select(responses::form_id)
        .offset(cap)
        .first::<String>(conn)
        .optional()?;
    match beyond_cap {
        Some(_) => Ok(cap.saturating_add(1)),
        None => count(conn, form),
    }
}

/// Deletes a form's responses received before `before`; returns how many.
pub fn delete_received_before(
    conn: &mut AnyConnection,
    form: &str,
    before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        responses::table
            .filter(responses::form_id.eq(form))
            .filter(responses::received_at.lt(before)),
    )
    .execute(conn)
}

/// Deletes one response of a form, named by its id or by the submission id it was sent
/// with; returns how many were deleted (0 or 1).
pub fn delete_one(conn: &mut AnyConnection, form: &str, id: &str) -> QueryResult<usize> {
    diesel::delete(
        responses::table
            .filter(responses::form_id.eq(form))
            .filter(responses::id.eq(id).or(responses::submission_id.eq(id))),
    )
    .execute(conn)
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<ResponseRow>> {
    responses::table
        .find(id)
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()
}

/// Records the definition of a form version. A changed file under an unchanged version
/// is accepted only while no response refers to that version, so stored responses always
/// match the definition they were given against.
pub fn record_form_version(
    conn: &mut AnyConnection,
    form: &str,
    version: u32,
    hash: &str,
    definition: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let version_i32 = i32::try_from(version).map_err(|_| DbError::FormChanged {
        form: form.to_owned(),
        version,
    })?;
    super::write_transaction(conn, |conn| {
        let existing: Option<String> = form_versions::table
            .find((form, version_i32))
            .select(form_versions::hash)
            .first(conn)
            .optional()?;
        match existing {
            None => {
                diesel::insert_into(form_versions::table)
                    .values((
                        form_versions::form_id.eq(form),
                        form_versions::version.eq(version_i32),
                        form_versions::hash.eq(hash),
                        form_versions::definition.eq(definition),
                        form_versions::loaded_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            // Same questions: keep the latest settings (status, owners…) with it.
            Some(stored) if stored == hash => {
                diesel::update(form_versions::table.find((form, version_i32)))
                    .set(form_versions::definition.eq(definition))
                    .execute(conn)?;
            }
            Some(_) => {
                let used: i64 = responses::table
                    .filter(responses::form_id.eq(form))
                    .filter(responses::form_version.eq(version_i32))
                    .count()
                    .get_result(conn)?;
                if used > 0 {
                    return Err(DbError::FormChanged {
                        form: form.to_owned(),
                        version,
                    });
                }
                diesel::update(form_versions::table.find((form, version_i32)))
                    .set((
                        form_versions::hash.eq(hash),
                        form_versions::definition.eq(definition),
                        form_versions::loaded_at.eq(now),
                    ))
                    .execute(conn)?;
            }
        }
        Ok(())
    })
}

/// Every stored definition of a form, by version.
pub fn form_definitions(conn: &mut AnyConnection, form: &str) -> QueryResult<Vec<(i32, String)>> {
    form_versions::table
        .filter(form_versions::form_id.eq(form))
        .select((form_versions::version, form_versions::definition))
        .load(conn)
}

/// Hands every response of a form to `each` as `(version, analysis)` rows, in chunks of
/// `chunk` rows, streaming so a million responses never sit in memory twice.
pub fn for_each_analysis_chunk(
    conn: &mut AnyConnection,
    form: &str,
    chunk: usize,
    mut each: impl FnMut(Vec<(i32, Vec<u8>)>),
) -> QueryResult<()> {
    let rows = responses::table
        .filter(responses::form_id.eq(form))
        .select((responses::form_version, responses::analysis))
        .load_iter::<(i32, Vec<u8>), diesel::connection::DefaultLoadingMode>(conn)?;
    let mut pending = Vec::with_capacity(chunk);
    for row in rows {
        pending.push(row?);
        if pending.len() == chunk {
            each(std::mem::replace(&mut pending, Vec::with_capacity(chunk)));
        }
    }
    if !pending.is_empty() {
        each(pending);
    }
    Ok(())
}

/// A response as exports show it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = responses)]
pub struct ExportRecord {
    pub id: String,
    pub submission_id: String,
    pub form_version: i32,
    pub received_at: NaiveDateTime,
    pub answers: String,
}

/// Hands every response of a form to `each` in chunks, oldest first, streaming.
pub fn for_each_record_chunk(
    conn: &mut AnyConnection,
    form: &str,
    chunk: usize,
    mut each: impl FnMut(&[ExportRecord]) -> Result<(), std::io::Error>,
) -> Result<(), DbError> {
    let rows = responses::table
        .filter(responses::form_id.eq(form))
        .order(responses::received_at.asc())
        .select(ExportRecord::as_select())
        .load_iter::<ExportRecord, diesel::connection::DefaultLoadingMode>(conn)?;
    let mut pending = Vec::with_capacity(chunk);
    for row in rows {
        pending.push(row?);
        if pending.len() == chunk {
            each(&pending).map_err(|e| DbError::Unavailable(e.to_string()))?;
            pending.clear();
        }
    }
    each(&pending).map_err(|e| DbError::Unavailable(e.to_string()))
}

/// One sex answer (`None`: not answered), how many gave it, and the latest response.
pub type SexSummary = (Option<String>, i64, Option<NaiveDateTime>);

/// Per sex answer: how many responses and the latest one.
pub fn sex_summary(conn: &mut AnyConnection, form: &str) -> QueryResult<Vec<SexSummary>> {
    responses::table
        .filter(responses::form_id.eq(form))
        .group_by(responses::sex)
        .select((
            responses::sex,
            diesel::dsl::count_star(),
            diesel::dsl::max(responses::received_at),
        ))
        .load(conn)
}

/// Responses per day (UTC) by sex: (day, female, male) for the given sex values, every
/// day from the first response to the last (days without any as zeros, so a chart's
/// x-axis is even). `cell` keeps only responses whose `by` dimension at that position
/// (0–3) has that answer.
pub fn daily_counts(
    conn: &mut AnyConnection,
    form: &str,
    female: &str,
    male: &str,
    cell: Option<(usize, &str)>,
) -> QueryResult<Vec<(String, u64, u64)>> {
    let mut query = responses::table
        .filter(responses::form_id.eq(form))
        .select((responses::received_at, responses::sex))
        .into_boxed();
    query = match cell {
        None => query,
        Some((0, level)) => query.filter(responses::by_1.eq(level)),
        Some((1, level)) => query.filter(responses::by_2.eq(level)),
        Some((2, level)) => query.filter(responses::by_3.eq(level)),
        Some((3, level)) => query.filter(responses::by_4.eq(level)),
        // The forms' check allows four dimensions; anything else matches nothing.
        Some(_) => query.filter(responses::form_id.ne(form)),
    };
    let rows = query
        .load_iter::<(NaiveDateTime, Option<String>), diesel::connection::DefaultLoadingMode>(
            conn,
        )?;
    let mut days: std::collections::BTreeMap<chrono::NaiveDate, (u64, u64)> = Default::default();
    for row in rows {
        let (at, sex) = row?;
        let day = days.entry(at.date()).or_default();
        match sex.as_deref() {
            Some(s) if s == female => day.0 += 1,
            Some(s) if s == male => day.1 += 1,
            _ => {}
        }
    }
    let (Some(&first), Some(&last)) = (days.keys().next(), days.keys().next_back()) else {
        return Ok(Vec::new());
    };
    Ok(first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| {
            let (f, m) = days.get(&d).copied().unwrap_or_default();
            (d.format("%Y-%m-%d").to_string(), f, m)
        })
        .collect())
}
