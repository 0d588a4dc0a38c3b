//! Storage through diesel: one binary for SQLite and PostgreSQL, chosen at run time by
//! the URL scheme, with embedded migrations and an r2d2 pool.

pub mod accounts;
mod conn;
pub mod outbox;
pub mod responses;
pub mod schema;

pub use conn::{
    migrations_applied, with_startup_lock, write_transaction, AnyConnection, Backend, Database,
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("this build has no {0} support")]
    BackendNotCompiled(&'static str),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("form `{form}` version {version} changed but responses to it exist; raise `version` in the form file")]
    FormChanged { form: String, version: u32 },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}
