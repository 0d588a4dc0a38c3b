//! Running it in production: readiness, Prometheus metrics, and two instances sharing one
//! PostgreSQL database.

use crate::helpers::{add_user, browser_like, sign_in, spawn_app, spawn_app_with, Backend};
use serde_json::{json, Value};

fn answers(sex: &str, age: u32) -> Value {
    json!({ "answers": { "sex": sex, "age": age, "district": "podilskyi", "has_children": "no" } })
}

#[actix_web::test]
async fn readyz_reports_database_migrations_and_forms() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(body["checks"]["migrations"], true);
    assert_eq!(body["checks"]["forms"], 2);
}

/// The database gone under a running instance: liveness stays, readiness and
/// submissions answer a JSON 503, and nothing hangs.
#[actix_web::test]
async fn without_its_database_an_instance_is_alive_but_not_ready() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run on PostgreSQL");
        return;
    };
    assert_eq!(
        app.submit("test-survey", &answers("female", 30))
            .await
            .status(),
        201
    );
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let admin_url = std::env::var("GENDERLENS_TEST_POSTGRES_URL").expect("url");
    let name = app.database_url.rsplit_once('/').expect("url").1.to_owned();
    diesel::pg::PgConnection::establish(&admin_url)
        .expect("connect")
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .expect("drop the database under the instance");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["checks"]["database"], false, "{body}");
    let refused = app.submit("test-survey", &answers("male", 40)).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(app.get("/healthz").await.status(), 200, "still alive");
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_submissions_by_form() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    assert_eq!(
        app.submit("test-survey", &answers("female", 30))
            .await
            .status(),
        201
    );
    assert_eq!(app.submit("test-survey", &json!([])).await.status(), 400);
    assert_eq!(app.get("/no/such/page?email=a@b.c").await.status(), 404);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/plain"));
    let text = response.text().await.expect("text");
    for line in [
        r#"genderlens_submissions_stored_total{form="test-survey"} 1"#,
        r#"genderlens_http_requests_total{method="POST",route="/api/v1/forms/{form}/submissions",status="201"} 1"#,
        r#"genderlens_http_requests_total{method="POST",route="/api/v1/forms/{form}/submissions",status="400"} 1"#,
        r#"genderlens_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"genderlens_outbox_messages{status="pending"}"#,
        r#"genderlens_outbox_messages{status="failed"} 0"#,
        "# TYPE genderlens_http_request_duration_seconds histogram",
        "genderlens_db_pool_connections",
    ] {
        assert!(text.contains(line), "`{line}` missing from\n{text}");
    }
    assert!(
        !text.contains("a@b.c"),
        "raw paths and queries are never labels"
    );
}

#[actix_web::test]
async fn two_instances_share_one_postgres_database() {
    // Instances behind one load balancer share the secret key (deploy.md), so a session
    // signed by one is good on the other: nothing of it is kept in a process.
    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let Some(first) = spawn_app_with(Backend::Postgres, |s| s.secret_key = Some(KEY.into())).await
    else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run two instances on PostgreSQL");
        return;
    };
    let url = first.database_url.clone();
    let second = spawn_app_with(Backend::Postgres, |s| {
        s.database_url = url;
        s.secret_key = Some(KEY.into());
    })
    .await
    .expect("second instance");
    // Submissions alternate between the instances, some resent to the other one.
    let mut handles = Vec::new();
    for i in 0..40u32 {
        let (a, b) = (first.client.clone(), second.client.clone());
        let (address_a, address_b) = (first.address.clone(), second.address.clone());
        handles.push(actix_web::rt::spawn(async move {
            let id = uuid::Uuid::new_v4().to_string();
            let mut body = answers(if i % 2 == 0 { "female" } else { "male" }, 20 + i);
            body["submission_id"] = json!(id);
            let (client, address, other) = if i % 2 == 0 {
                (a, address_a, address_b)
            } else {
                (b, address_b, address_a)
            };
            let url = |address: &str| format!("{address}/api/v1/forms/test-survey/submissions");
            let first = client.post(url(&address)).json(&body).send().await;
            let again = client.post(url(&other)).json(&body).send().await;
            (
                first.expect("submit").status().as_u16(),
                again.expect("resend").status().as_u16(),
            )
        }));
    }
    for handle in handles {
        assert_eq!(handle.await.expect("task"), (201, 200));
    }
    assert_eq!(first.count("test-survey"), 40);
    // Both instances read the same indicators.
    let path = "/api/v1/forms/test-survey/indicators";
    let a: Value = first.get(path).await.json().await.expect("json");
    let b: Value = second.get(path).await.json().await.expect("json");
    assert_eq!(a["responses"], 40, "{a}");
    assert_eq!(a["sex_counts"], b["sex_counts"]);
    assert_eq!(a["indicators"], b["indicators"]);
    assert_eq!(
        second.get("/readyz").await.status(),
        200,
        "the second instance found the migrations applied"
    );
    // Signed in on the first instance, the browser reads the dashboard from the second
    // (cookies are per host, not per port).
    add_user(
        &first,
        "admin@example.org",
        genderlens::auth::Role::Admin,
        &[],
    );
    let browser = browser_like();
    let signed_in = sign_in(
        &first,
        &browser,
        "admin@example.org",
        "a long enough password",
    )
    .await;
    assert!(
        signed_in.status().is_redirection(),
        "{}",
        signed_in.status()
    );
    let dashboard = browser
        .get(format!("{}/dashboard/test-survey", second.address))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(
        dashboard.status(),
        200,
        "the first instance's session on the second"
    );
}

#[actix_web::test]
async fn indicators_read_from_the_read_replica() {
    let Some(primary) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run the read replica test");
        return;
    };
    for (sex, age) in [("female", 30), ("male", 40), ("female", 50)] {
        assert_eq!(
            primary
                .submit("test-survey", &answers(sex, age))
                .await
                .status(),
            201
        );
    }
    // A second instance whose own database is empty but whose replica URL points at the
    // first one's: its indicators come from the replica, its writes go to its own.
    let replica = primary.database_url.clone();
    let reader = spawn_app_with(Backend::Postgres, |s| s.read_database_url = Some(replica))
        .await
        .expect("instance with a replica");
    let report: Value = reader
        .get("/api/v1/forms/test-survey/indicators")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(report["responses"], 3, "read from the replica");
    assert_eq!(
        reader
            .submit("test-survey", &answers("male", 60))
            .await
            .status(),
        201
    );
    assert_eq!(
        reader.count("test-survey"),
        1,
        "written to its own database"
    );
    assert_eq!(primary.count("test-survey"), 3);
}

#[actix_web::test]
async fn instances_starting_at_once_migrate_once() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run on PostgreSQL");
        return;
    };
    // A fresh, empty database beside the test's own, opened by four starts at once, each
    // migrating, recording its forms and creating the first admin as `serve` does.
    use diesel::connection::SimpleConnection;
    let name = format!("gl_race_{}", uuid::Uuid::new_v4().simple());
    app.db
        .get()
        .expect("conn")
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create");
    let url = format!(
        "{}/{name}",
        app.database_url.rsplit_once('/').expect("url").0
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = genderlens::config::Settings {
        database_url: url.clone(),
        forms_dir: crate::helpers::fixtures().join("forms"),
        data_dir: dir.path().to_owned(),
        admin_email: Some("first@example.org".into()),
        admin_password: Some("a long enough password".into()),
        ..Default::default()
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let settings = settings.clone();
            std::thread::spawn(move || {
                let forms = genderlens::startup::load_forms(&settings)?;
                genderlens::startup::open_database(&settings, &forms).map(|_| ())
            })
        })
        .collect();
    for start in starts {
        start.join().expect("thread").expect("every start succeeds");
    }
    let db = genderlens::db::Database::connect(&url, Default::default(), 1).expect("db");
    let mut conn = db.get().expect("conn");
    assert!(genderlens::db::migrations_applied(&mut conn).expect("check"));
    assert_eq!(
        genderlens::db::accounts::count_users(&mut conn).expect("users"),
        1,
        "one first admin"
    );
    let versions = genderlens::db::responses::form_definitions(&mut conn, "test-survey");
    assert_eq!(versions.expect("definitions").len(), 1);
    drop(conn);
    drop(db);
    app.db
        .get()
        .expect("conn")
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .expect("drop");
}
