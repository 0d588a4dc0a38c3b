//! Accounts: admins and planners, their grants, argon2 passwords and API tokens that are
//! kept only as hashes.

use crate::db::accounts::{self, AuditRow, TokenRow, UserRow};
use crate::db::{AnyConnection, DbError};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use chrono::Utc;
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("role must be `admin` or `planner`")]
    BadRole,
    #[error("`{0}` is not an email address")]
    BadEmail(String),
    #[error("a user with email `{0}` already exists")]
    Exists(String),
    #[error("no user with email `{0}`")]
    NoSuchUser(String),
    #[error("no live token with prefix `{0}`")]
    NoSuchToken(String),
    #[error("the password must have at least 10 characters")]
    WeakPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AuthError {
    fn from(err: diesel::result::Error) -> Self {
        AuthError::Db(DbError::Query(err))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Planner,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, AuthError> {
        match s {
            "admin" => Ok(Role::Admin),
            "planner" => Ok(Role::Planner),
            _ => Err(AuthError::BadRole),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Planner => "planner",
        }
    }
}

/// A signed-in user and what they may read.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub grants: Vec<String>,
}

impl Account {
    /// Admins read every form; planners the forms granted to them, or all with `*`.
    pub fn can_read(&self, form: &str) -> bool {
        self.role == Role::Admin || self.grants.iter().any(|g| g == "*" || g == form)
    }
}

/// Hashes a password with argon2id (OWASP parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < 10 {
        return Err(AuthError::WeakPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a token for `user` and returns it in full; only its hash is stored.
/// Format: `gl_<prefix>_<secret>`; the prefix names it in listings.
pub fn create_token(conn: &mut AnyConnection, user: &str) -> Result<String, AuthError> {
    let prefix = hex::encode(rand::random::<[u8; 4]>());
    let secret = hex::encode(rand::random::<[u8; 24]>());
    accounts::insert_token(
        conn,
        &TokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.to_owned(),
            prefix: prefix.clone(),
            secret_hash: secret_hash(&secret),
            created_at: Utc::now().naive_utc(),
            revoked_at: None,
        },
    )?;
    Ok(format!("gl_{prefix}_{secret}"))
}

fn account_of(conn: &mut AnyConnection, user: UserRow) -> Result<Account, AuthError> {
    Ok(Account {
        grants: accounts::grants_of(conn, &user.id)?,
        role: Role::parse(&user.role)?,
        id: user.id,
        email: user.email,
    })
}

/// The account a bearer token belongs to; `None` for an unknown, malformed or revoked token.
pub fn authenticate_token(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<Option<Account>, AuthError> {
    let Some((prefix, secret)) = token.strip_prefix("gl_").and_then(|t| t.split_once('_')) else {
        return Ok(None);
    };
    let Some(row) = accounts::find_token(conn, prefix)? else {
        return Ok(None);
    };
    if row.secret_hash != secret_hash(secret) {
        return Ok(None);
    }
    match accounts::find_user(conn, &row.user_id)? {
        Some(user) => account_of(conn, user).map(Some),
        None => Ok(None),
    }
}

/// The account of a signed-in user id; `None` when the user no longer exists.
pub fn account_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Account>, AuthError> {
    match accounts::find_user(conn, id)? {
        Some(user) => account_of(conn, user).map(Some),
        None => Ok(None),
    }
}

/// The account for an email and password; `None` when either is wrong.
pub fn authenticate_password(
    conn: &mut AnyConnection,
    email: &str,
    password: &str,
) -> Result<Option<Account>, AuthError> {
    // No stored email holds a control character (and PostgreSQL refuses a NUL in a
    // parameter): such an email is an unknown one, without asking the database.
    let email = email.trim().to_lowercase();
    let known = if email.chars().any(char::is_control) {
        None
    } else {
        accounts::find_user_by_email(conn, &email)?
    };
    let Some(user) = known else {
        // Spend the same time as a real check, so timing does not reveal who exists.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy =
            DUMMY.get_or_init(|| hash_password("not anyone's password").unwrap_or_default());
        let _ = verify_password(password, dummy);
        return Ok(None);
    };
    let ok = user
        .password_hash
        .as_deref()
        .is_some_and(|h| verify_password(password, h));
    if ok {
        account_of(conn, user).map(Some)
    } else {
        Ok(None)
    }
}

/// Creates a user with optional password and grants; returns its first API token.
pub fn add_user(
    conn: &mut AnyConnection,
    email: &str,
    role: Role,
    password: Option<&str>,
    grants: &[String],
) -> Result<String, AuthError> {
    let email = email.trim().to_lowercase();
    if !validator::ValidateEmail::validate_email(&email) {
        return Err(AuthError::BadEmail(email));
    }
    let password_hash = password.map(hash_password).transpose()?;
    crate::db::write_transaction(conn, |conn| {
        if accounts::find_user_by_email(conn, &email)?.is_some() {
            return Err(AuthError::Exists(email.clone()));
        }
        let id = uuid::Uuid::now_v7().to_string();
        accounts::insert_user(
            conn,
            &UserRow {
                id: id.clone(),
                email: email.clone(),
                role: role.as_str().to_owned(),
                password_hash,
                created_at: Utc::now().naive_utc(),
            },
        )?;
        for form in grants {
            accounts::grant(conn, &id, form)?;
        }
        create_token(conn, &id)
    })
}

pub fn user_id(conn: &mut AnyConnection, email: &str) -> Result<String, AuthError> {
    let email = email.trim().to_lowercase();
    accounts::find_user_by_email(conn, &email)?
        .map(|u| u.id)
        .ok_or(AuthError::NoSuchUser(email))
}

/// Records who did what to which form.
pub fn audit(
    conn: &mut AnyConnection,
    actor: &str,
    action: &str,
    form: Option<&str>,
    detail: &str,
) -> Result<(), DbError> {
    accounts::record_audit(
        conn,
        &AuditRow {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now().naive_utc(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            form_id: form.map(str::to_owned),
            detail: detail.to_owned(),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(matches!(
            hash_password("short"),
            Err(AuthError::WeakPassword)
        ));
    }

    #[test]
    fn grants_decide_what_a_planner_reads() {
        let planner = Account {
            id: "1".into(),
            email: "p@example.org".into(),
            role: Role::Planner,
            grants: vec!["a".into()],
        };
        assert!(planner.can_read("a") && !planner.can_read("b"));
        let all = Account {
            grants: vec!["*".into()],
            ..planner.clone()
        };
        assert!(all.can_read("b"));
        let admin = Account {
            role: Role::Admin,
            grants: vec![],
            ..planner
        };
        assert!(admin.can_read("anything"));
    }
}
