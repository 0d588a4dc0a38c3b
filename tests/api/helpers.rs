use diesel::connection::SimpleConnection;
use diesel::Connection;
use genderlens::config::Settings;
use genderlens::db::{responses, Database};
use genderlens::startup::Application;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub db: Database,
    _store: Store,
}

/// Where a test's data lives; removed when the test ends.
enum Store {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Store::Postgres { admin_url, name } = self {
            if let Ok(mut conn) = diesel::pg::PgConnection::establish(admin_url) {
                let _ =
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh database URL for one test: a temporary SQLite file, or a new PostgreSQL database.
fn fresh_database(backend: Backend, data_dir: &std::path::Path) -> Option<(String, Option<Store>)> {
    match backend {
        Backend::Sqlite => Some((format!("sqlite://{}/test.db", data_dir.display()), None)),
        Backend::Postgres => {
            let admin_url = std::env::var("GENDERLENS_TEST_POSTGRES_URL").ok()?;
            let name = format!("gl_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::pg::PgConnection::establish(&admin_url)
                .expect("connect to the test PostgreSQL");
            conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .expect("create a test database");
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(base, _)| base);
            let url = format!("{base}/{name}");
            Some((url, Some(Store::Postgres { admin_url, name })))
        }
    }
}

fn settings_for(backend: Backend) -> Option<(Settings, Store)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, store) = fresh_database(backend, dir.path())?;
    let settings = Settings {
        bind: "127.0.0.1:0".into(),
        database_url,
        forms_dir: fixtures().join("forms"),
        data_dir: dir.path().to_owned(),
        // Tests send many requests from one address; the limit has its own test.
        rate_limit_per_second: 0,
        ..Settings::default()
    };
    Some((settings, store.unwrap_or(Store::Sqlite(dir))))
}

/// Starts the application; `None` when the backend is not configured for tests.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the application with adjusted settings.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let (mut settings, store) = settings_for(backend)?;
    adjust(&mut settings);
    let db = Database::connect(&settings.database_url, settings.sqlite_synchronous, 2)
        .expect("database");
    let database_url = settings.database_url.clone();
    let app = Application::build(settings).expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    Some(TestApp {
        address,
        database_url,
        client: reqwest::Client::new(),
        db,
        _store: store,
    })
}

impl TestApp {
    pub async fn submit(&self, form: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/forms/{form}/submissions", self.address))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        form: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/forms/{form}/submissions", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// A user with `role` and `grants` in this app's database; returns its API token.
    pub fn token(&self, role: genderlens::auth::Role, grants: &[&str]) -> String {
        let mut conn = self.db.get().expect("connection");
        let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
        let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
        genderlens::auth::add_user(&mut conn, &email, role, None, &grants).expect("user")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    pub fn count(&self, form: &str) -> i64 {
        let mut conn = self.db.get().expect("connection");
        responses::count(&mut conn, form).expect("count")
    }

    /// Every stored response of `form` as the JSON export gives it, read by an admin.
    pub async fn exported(&self, form: &str) -> Vec<serde_json::Value> {
        let admin = self.token(genderlens::auth::Role::Admin, &[]);
        let export = self
            .get_as(
                &format!("/api/v1/forms/{form}/responses?format=json"),
                &admin,
            )
            .await
            .text()
            .await
            .expect("export");
        export
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    pub fn stored(&self, id: &str) -> responses::ResponseRow {
        let mut conn = self.db.get().expect("connection");
        responses::find(&mut conn, id)
            .expect("query")
            .expect("stored row")
    }
}

/// Runs each named async test case once per backend.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use $crate::helpers::{spawn_app, Backend};

            #[actix_web::test]
            async fn sqlite() {
                super::$case(spawn_app(Backend::Sqlite).await.expect("sqlite app")).await;
            }

            #[actix_web::test]
            async fn postgres() {
                match spawn_app(Backend::Postgres).await {
                    Some(app) => super::$case(app).await,
                    None => eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run on PostgreSQL"),
                }
            }
        }
    )*};
}

// ------------------------------------------------------------------ the web as a browser

/// A client that keeps cookies and shows redirects instead of following them.
pub fn browser_like() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The anti-forgery token of a page's form.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .map(|i| i + marker.len())
        .expect("csrf field");
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A user with the test password.
pub fn add_user(app: &TestApp, email: &str, role: genderlens::auth::Role, grants: &[&str]) {
    let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
    genderlens::auth::add_user(
        &mut app.db.get().expect("conn"),
        email,
        role,
        Some("a long enough password"),
        &grants,
    )
    .expect("user");
}

pub async fn open(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("get")
}

/// Signs in on the web as a browser does: the page's CSRF token, then the form.
pub async fn sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = open(app, client, "/login")
        .await
        .text()
        .await
        .expect("html");
    client
        .post(format!("{}/login", app.address))
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("post")
}
