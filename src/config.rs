//! Configuration: defaults, then an optional `genderlens.toml`, then `GENDERLENS_*`
//! environment variables (the environment wins), as the contract fixes.

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// WAL + NORMAL: every acknowledged submission survives a crash of the process
    /// (kill -9); the last commits may be lost on power loss or a kernel crash.
    #[default]
    Normal,
    /// WAL + FULL: the WAL is fsynced at every commit (once per group-commit batch),
    /// so acknowledged submissions survive power loss as well.
    Full,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    pub bind: String,
    pub database_url: String,
    /// A read replica for indicators, dashboards and exports (same backend).
    pub read_database_url: Option<String>,
    pub forms_dir: PathBuf,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub public_url: String,
    pub secret_key: Option<String>,
    pub min_cell: u64,
    /// Where the default SQLite file, the generated secret key and mail files live.
    pub data_dir: PathBuf,
    pub sqlite_synchronous: SqliteSynchronous,
    /// Largest accepted request body (the contract's default 64 KiB).
    pub max_body_bytes: usize,
    pub pool_size: u32,
    /// Submissions per second per client address (0: no limit), counted per instance.
    pub rate_limit_per_second: u32,
    /// Submissions a client may send at once before the per-second rate applies.
    pub rate_limit_burst: u32,
    /// Behind a reverse proxy: rate-limit by the address it puts in `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// With `admin_password`: the first admin, created on start when there are no users.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    /// How often the mail worker looks for due messages.
    pub mail_poll_seconds: u64,
    /// First retry delay of a failed send; doubled at each attempt (with jitter).
    pub mail_retry_seconds: u64,
    /// Attempts before a message is marked failed and shown to admins.
    pub mail_max_attempts: i32,
    /// How long a claimed message stays one instance's: after a crash mid-send, another
    /// (or the restarted) instance sends it once this has passed.
    pub mail_lease_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".into(),
            database_url: "sqlite://data/genderlens.db".into(),
            read_database_url: None,
            forms_dir: "forms".into(),
            smtp_url: None,
            mail_from: "genderlens@localhost".into(),
            public_url: "http://127.0.0.1:8080".into(),
            secret_key: None,
            min_cell: 5,
            data_dir: "data".into(),
            sqlite_synchronous: SqliteSynchronous::Normal,
            max_body_bytes: 64 * 1024,
            pool_size: 8,
            rate_limit_per_second: 5,
            rate_limit_burst: 60,
            trust_forwarded_for: false,
            admin_email: None,
            admin_password: None,
            mail_poll_seconds: 10,
            mail_retry_seconds: 30,
            mail_max_attempts: 8,
            mail_lease_seconds: 300,
        }
    }
}

impl Settings {
    /// Loads defaults → `file` (if it exists) → environment.
    pub fn load(file: &Path) -> anyhow::Result<Settings> {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("GENDERLENS_"))
            .extract()
            .context("reading the configuration")
    }

    /// The key that signs cookies and tokens: configured, or generated once and kept
    /// in `data_dir/secret.key` so sessions survive restarts.
    pub fn resolve_secret_key(&self) -> anyhow::Result<String> {
        if let Some(key) = &self.secret_key {
            return Ok(key.clone());
        }
        let path = self.data_dir.join("secret.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Ok(existing.trim().to_owned());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        let key = hex::encode(rand::random::<[u8; 32]>());
        write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
        Ok(key)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
