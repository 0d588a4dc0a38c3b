use super::DbError;
use crate::config::SqliteSynchronous;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, Pool};
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::path::Path;
use std::time::Duration;

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("enable at least one database backend: feature `sqlite` or `postgres`");

/// One connection type for both backends; queries written once against it run on either.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    #[cfg(feature = "postgres")]
    Postgresql(diesel::pg::PgConnection),
    #[cfg(feature = "sqlite")]
    Sqlite(diesel::sqlite::SqliteConnection),
}

/// A transaction that writes. On SQLite it begins with `BEGIN IMMEDIATE`: a deferred
/// transaction that reads first cannot wait for the write lock once another connection
/// (the mail worker, say) has committed meanwhile — it fails at once with SQLITE_BUSY
/// instead of queueing behind the busy timeout.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    #[cfg(feature = "sqlite")]
    if let AnyConnection::Sqlite(sqlite) = conn {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        let depth =
            AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()?;
        if depth.is_some() {
            // Inside a write transaction already (an import storing its batches in one):
            // a savepoint, which BEGIN IMMEDIATE cannot be.
            return conn.transaction(f);
        }
        AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
        let result = f(conn);
        if let AnyConnection::Sqlite(sqlite) = conn {
            match &result {
                Ok(_) => AnsiTransactionManager::commit_transaction(sqlite)?,
                Err(_) => AnsiTransactionManager::rollback_transaction(sqlite)?,
            }
        }
        return result;
    }
    conn.transaction(f)
}

#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Arbitrary constant key for the PostgreSQL advisory lock that keeps two instances
/// starting at once from migrating, or recording their forms, concurrently.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x67656e6465726c;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend by URL scheme. diesel's `MultiConnection::establish` would try
    /// each backend in turn and hide the real error, so the choice is made here.
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if cfg!(feature = "postgres") {
                Ok(Backend::Postgres)
            } else {
                Err(DbError::BackendNotCompiled("PostgreSQL"))
            }
        } else if url.starts_with("sqlite:") {
            if cfg!(feature = "sqlite") {
                Ok(Backend::Sqlite)
            } else {
                Err(DbError::BackendNotCompiled("SQLite"))
            }
        } else {
            Err(DbError::UnsupportedUrl(url.to_owned()))
        }
    }
}

/// The file path inside a `sqlite://PATH` (or `sqlite:PATH`) URL.
fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or(rest)
}

/// Opens connections of the configured backend, with the SQLite settings that make
/// acknowledged writes durable and concurrent readers cheap.
#[derive(Clone, Debug)]
pub struct Connector {
    backend: Backend,
    url: String,
    synchronous: SqliteSynchronous,
}

impl Connector {
    pub fn open(&self) -> Result<AnyConnection, DbError> {
        match self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => diesel::pg::PgConnection::establish(&self.url)
                .map(AnyConnection::Postgresql)
                .map_err(|e| DbError::Connect(e.to_string())),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                let mut conn = diesel::sqlite::SqliteConnection::establish(sqlite_path(&self.url))
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                let sync = match self.synchronous {
                    SqliteSynchronous::Normal => "NORMAL",
                    SqliteSynchronous::Full => "FULL",
                };
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = 5000; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
                ))?;
                Ok(AnyConnection::Sqlite(conn))
            }
            #[allow(unreachable_patterns)]
            _ => Err(DbError::BackendNotCompiled("this")),
        }
    }
}

impl ManageConnection for Connector {
    type Connection = AnyConnection;
    type Error = DbError;

    fn connect(&self) -> Result<AnyConnection, DbError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// The database: a pool for reads and a way to open the writer's own connection, and
/// optionally a pool on a read replica for the heavy reads (indicators, dashboards, exports).
#[derive(Clone)]
pub struct Database {
    pool: Pool<Connector>,
    connector: Connector,
    replica: Option<Pool<Connector>>,
}

impl Database {
    /// Connects, applies pending migrations, and builds the pool.
    pub fn connect(
        url: &str,
        synchronous: SqliteSynchronous,
        pool_size: u32,
    ) -> Result<Database, DbError> {
        let backend = Backend::from_url(url)?;
        if backend == Backend::Sqlite {
            let path = Path::new(sqlite_path(url));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DbError::Connect(format!("creating {}: {e}", dir.display())))?;
            }
        }
        let connector = Connector {
            backend,
            url: url.to_owned(),
            synchronous,
        };
        let mut conn = connector.open()?;
        migrate(&mut conn)?;
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .connection_timeout(Duration::from_secs(5))
            .build(connector.clone())?;
        Ok(Database {
            pool,
            connector,
            replica: None,
        })
    }

    /// Sends the heavy reads to a read replica of the same backend (no migrations run
    /// there: the primary's replicate to it). Replication lag shows as figures a few
    /// moments behind the latest submissions.
    pub fn with_read_replica(mut self, url: &str, pool_size: u32) -> Result<Database, DbError> {
        let backend = Backend::from_url(url)?;
        if backend != self.connector.backend {
            return Err(DbError::Connect(format!(
                "the read replica must use the same backend as the database ({:?})",
                self.connector.backend
            )));
        }
        let connector = Connector {
            backend,
            url: url.to_owned(),
            synchronous: self.connector.synchronous,
        };
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .connection_timeout(Duration::from_secs(5))
            .build(connector)?;
        self.replica = Some(pool);
        Ok(self)
    }

    pub fn backend(&self) -> Backend {
        self.connector.backend
    }

    /// A dedicated connection outside the pool (the single writer keeps one).
    pub fn open_connection(&self) -> Result<AnyConnection, DbError> {
        self.connector.open()
    }

    /// Runs blocking diesel work on tokio's blocking threads, never on an actix worker.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        Self::run_on(self.pool.clone(), work).await
    }

    /// Like `run`, on the read replica when there is one: for reads that may lag.
    pub async fn run_read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        Self::run_on(self.read_pool().clone(), work).await
    }

    fn read_pool(&self) -> &Pool<Connector> {
        self.replica.as_ref().unwrap_or(&self.pool)
    }

    async fn run_on<T, E, F>(pool: Pool<Connector>, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            work(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?
    }

    /// Connections the pool holds, and how many of them are idle.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// A pooled connection on the read replica when there is one (streamed exports).
    pub fn get_read(&self) -> Result<diesel::r2d2::PooledConnection<Connector>, DbError> {
        Ok(self.read_pool().get()?)
    }

    /// A pooled connection for blocking callers (CLI commands).
    pub fn get(&self) -> Result<diesel::r2d2::PooledConnection<Connector>, DbError> {
        Ok(self.pool.get()?)
    }
}

/// Whether every embedded migration has been applied to this database.
pub fn migrations_applied(conn: &mut AnyConnection) -> Result<bool, DbError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    let pending = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(pg) => pg.has_pending_migration(POSTGRES_MIGRATIONS),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(lite) => lite.has_pending_migration(SQLITE_MIGRATIONS),
    }
    .map_err(failed)?;
    Ok(!pending)
}

/// Runs `f` while no other instance runs its own start-up steps: on PostgreSQL under a
/// session advisory lock (several instances may start at once on one database); SQLite
/// serves one instance, and its writes are serialized anyway.
pub fn with_startup_lock<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    #[cfg(feature = "postgres")]
    if let AnyConnection::Postgresql(pg) = conn {
        pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
        let result = f(conn);
        if let AnyConnection::Postgresql(pg) = conn {
            pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
        }
        return result;
    }
    f(conn)
}

/// Applies pending migrations on the concrete backend connection.
pub fn migrate(conn: &mut AnyConnection) -> Result<(), DbError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => with_startup_lock(conn, |conn| match conn {
            AnyConnection::Postgresql(pg) => pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(failed),
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(_) => Ok(()),
        }),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(lite) => {
            // WAL is a property of the database file: set once, it persists.
            lite.batch_execute("PRAGMA journal_mode = WAL;")?;
            lite.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|_| ())
                .map_err(failed)
        }
    }
}
