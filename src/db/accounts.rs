//! Queries on users, their grants, API tokens and the audit log.

use super::schema::{api_tokens, audit_log, grants, users};
use super::AnyConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Clone, Debug, Insertable, Queryable, Selectable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub password_hash: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Insertable, Queryable, Selectable)]
#[diesel(table_name = api_tokens, treat_none_as_default_value = false)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub prefix: String,
    pub secret_hash: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Clone, Debug, Insertable, Queryable, Selectable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct AuditRow {
    pub id: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub form_id: Option<String>,
    pub detail: String,
}

pub fn insert_user(conn: &mut AnyConnection, user: &UserRow) -> QueryResult<usize> {
    diesel::insert_into(users::table).values(user).execute(conn)
}

pub fn count_users(conn: &mut AnyConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn find_user_by_email(conn: &mut AnyConnection, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_user(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn grant(conn: &mut AnyConnection, user: &str, form: &str) -> QueryResult<()> {
    let exists: i64 = grants::table
        .filter(grants::user_id.eq(user))
        .filter(grants::form_id.eq(form))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(grants::table)
            .values((grants::user_id.eq(user), grants::form_id.eq(form)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn grants_of(conn: &mut AnyConnection, user: &str) -> QueryResult<Vec<String>> {
    grants::table
        .filter(grants::user_id.eq(user))
        .select(grants::form_id)
        .load(conn)
}

pub fn insert_token(conn: &mut AnyConnection, token: &TokenRow) -> QueryResult<usize> {
    diesel::insert_into(api_tokens::table)
        .values(token)
        .execute(conn)
}

/// The live (not revoked) token with this prefix.
pub fn find_token(conn: &mut AnyConnection, prefix: &str) -> QueryResult<Option<TokenRow>> {
    api_tokens::table
        .filter(api_tokens::prefix.eq(prefix))
        .filter(api_tokens::revoked_at.is_null())
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

pub fn tokens_of(conn: &mut AnyConnection, user: &str) -> QueryResult<Vec<TokenRow>> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user))
        .order(api_tokens::created_at.asc())
        .select(TokenRow::as_select())
        .load(conn)
}

/// Revokes the live token with this prefix; false when there is none.
pub fn revoke_token(
    conn: &mut AnyConnection,
    prefix: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::prefix.eq(prefix))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n > 0)
}

pub fn record_audit(conn: &mut AnyConnection, row: &AuditRow) -> QueryResult<usize> {
    diesel::insert_into(audit_log::table)
        .values(row)
        .execute(conn)
}

pub fn recent_audit(conn: &mut AnyConnection, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .order(audit_log::at.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}
