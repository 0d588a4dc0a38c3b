//! Building the application: forms, database, writer, HTTP server. Tests build it on
//! port 0 and read the real port back.

use crate::config::Settings;
use crate::db::{responses, Database};
use crate::form::{self, FormRegistry, Severity};
use crate::submit::Writer;
use crate::web::{self, AppState};
use actix_web::dev::Server;
use actix_web::{middleware, App, HttpServer};
use anyhow::{bail, Context};
use std::net::TcpListener;
use std::sync::Arc;

pub struct Application {
    port: u16,
    server: Server,
    mail_worker: crate::notify::WorkerConfig,
}

/// Loads and checks every form; logs warnings, and fails listing every error.
pub fn load_forms(settings: &Settings) -> anyhow::Result<FormRegistry> {
    let report = form::load_dir(&settings.forms_dir);
    for problem in &report.problems {
        if problem.severity == Severity::Warning {
            tracing::warn!("{problem}");
        }
    }
    if report.has_errors() {
        let errors: Vec<String> = report
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        bail!(
            "the forms in {} have errors; fix them (see `genderlens forms check`):\n{}",
            settings.forms_dir.display(),
            errors.join("\n")
        );
    }
    Ok(FormRegistry::new(report.forms))
}

/// Connects (migrating on the way) and records the definition of every loaded form version.
pub fn open_database(settings: &Settings, forms: &FormRegistry) -> anyhow::Result<Database> {
    let db = Database::connect(
        &settings.database_url,
        settings.sqlite_synchronous,
        settings.pool_size,
    )
    .context("opening the database")?;
    let db = match &settings.read_database_url {
        Some(url) => db
            .with_read_replica(url, settings.pool_size)
            .context("opening the read replica")?,
        None => db,
    };
    let mut conn = db.get()?;
    let now = chrono::Utc::now().naive_utc();
    // Instances starting at once on one PostgreSQL would each find a form version (or
    // the first admin) missing and both insert it: one would refuse to start.
    crate::db::with_startup_lock(&mut conn, |conn| -> anyhow::Result<()> {
        for form in forms.all() {
            let definition = form::definition_json(form);
            responses::record_form_version(
                conn,
                &form.id,
                form.version,
                &form.hash,
                &definition,
                now,
            )?;
        }
        match (&settings.admin_email, &settings.admin_password) {
            (Some(email), Some(password)) => {
                if crate::db::accounts::count_users(conn)? == 0 {
                    crate::auth::add_user(
                        conn,
                        email,
                        crate::auth::Role::Admin,
                        Some(password),
                        &[],
                    )?;
                    tracing::info!(%email, "created the first admin");
                }
            }
            (Some(_), None) | (None, Some(_)) => tracing::warn!(
                "GENDERLENS_ADMIN_EMAIL and GENDERLENS_ADMIN_PASSWORD create the first admin \
                 only together; one of them is not set"
            ),
            (None, None) => {}
        }
        Ok(())
    })?;
    Ok(db)
}

impl Application {
    pub fn build(settings: Settings) -> anyhow::Result<Application> {
        let forms = Arc::new(load_forms(&settings)?);
        let db = open_database(&settings, &forms)?;
        let writer = Writer::start(&db, forms.clone())?;
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        tracing::info!(
            address = %listener.local_addr()?,
            forms = forms.all().count(),
            backend = ?db.backend(),
            "genderlens is listening"
        );
        let secret = settings.resolve_secret_key()?.into_bytes();
        let catalog = Arc::new(web::Catalog::new());
        let lease = std::time::Duration::from_secs(settings.mail_lease_seconds.max(1));
        // 15 s per SMTP step, and never more than half the lease (see `Mailer::new`).
        let send_timeout = std::time::Duration::from_secs(15).min(lease / 2);
        let mailer = crate::notify::Mailer::new(
            settings.smtp_url.as_deref(),
            &settings.data_dir,
            send_timeout,
        )
        .context("setting up mail")?;
        let mail_worker = crate::notify::WorkerConfig {
            db: db.clone(),
            forms: forms.clone(),
            mailer: Arc::new(mailer),
            catalog: catalog.clone(),
            from: settings.mail_from.clone(),
            public_url: settings.public_url.clone(),
            secret: secret.clone(),
            min_cell: settings.min_cell,
            poll: std::time::Duration::from_secs(settings.mail_poll_seconds.max(1)),
            retry_base: std::time::Duration::from_secs(settings.mail_retry_seconds),
            max_attempts: settings.mail_max_attempts.max(1),
            lease,
        };
        let limits = web::RateLimits::new(&settings, catalog.clone());
        let state = actix_web::web::Data::new(AppState {
            forms,
            db,
            writer,
            settings,
            catalog,
            secret: secret.clone(),
            throttle: web::Throttle::default(),
            metrics: web::Metrics::default(),
        });
        let secure_cookies = state.settings.public_url.starts_with("https://");
        let server = HttpServer::new(move || {
            App::new()
                .wrap(web::session_middleware(&secret, secure_cookies))
                .wrap(web::security_headers())
                .wrap(middleware::from_fn(web::track_metrics))
                .wrap(tracing_actix_web::TracingLogger::<
                    crate::telemetry::RequestSpan,
                >::new())
                .wrap(middleware::Compress::default())
                .app_data(state.clone())
                .configure(|cfg| web::configure(cfg, &limits))
        })
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            mail_worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues what is due and sends every due message, without serving; how many were
    /// sent. It goes on while passes take messages, not while they send some: a batch of
    /// opted-out owners or failing sends may be followed by one that sends. Each message
    /// is taken at most `mail_max_attempts` times, so this ends.
    pub async fn send_pending(&self) -> Result<usize, crate::db::DbError> {
        let mut total = 0;
        loop {
            let pass = crate::notify::run_once(&self.mail_worker).await?;
            total += pass.sent;
            if pass.claimed == 0 {
                return Ok(total);
            }
        }
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        crate::privacy::spawn_retention(
            self.mail_worker.db.clone(),
            self.mail_worker.forms.clone(),
        );
        crate::notify::spawn(self.mail_worker);
        self.server.await
    }
}
