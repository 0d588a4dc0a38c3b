//! Privacy by design: responses deleted for a data-subject request or by a retention
//! period leave the indicators at once, and every deletion is audited.

use crate::helpers::{spawn_app, Backend, TestApp};
use genderlens::auth::Role;
use serde_json::{json, Value};

/// Stores a response; returns its id.
async fn respond(app: &TestApp, sex: &str, submission_id: &str) -> String {
    let body = json!({
        "answers": { "sex": sex, "age": 40, "district": "podilskyi", "has_children": "no" },
        "submission_id": submission_id,
    });
    let response = app.submit("test-survey", &body).await;
    assert_eq!(response.status(), 201);
    let receipt: Value = response.json().await.expect("json");
    receipt["id"].as_str().expect("id").to_owned()
}

async fn responses(app: &TestApp) -> Value {
    let report: Value = app
        .get("/api/v1/forms/test-survey/indicators")
        .await
        .json()
        .await
        .expect("json");
    report["responses"].clone()
}

async fn delete(app: &TestApp, id: &str, token: Option<&str>) -> u16 {
    let mut request = app.client.delete(format!(
        "{}/api/v1/forms/test-survey/responses/{id}",
        app.address
    ));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("delete").status().as_u16()
}

#[actix_web::test]
async fn an_admin_deletes_one_response_and_the_indicators_follow() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let gone = "0b7e2f9c-3a51-4d8e-9c1f-6a2b3c4d5e6f";
    respond(&app, "female", gone).await;
    respond(&app, "male", "1c8f3a0d-4b62-4e9f-8d20-7b3c4d5e6f70").await;
    assert_eq!(responses(&app).await, 2);

    let admin = app.token(Role::Admin, &[]);
    let planner = app.token(Role::Planner, &["*"]);
    assert_eq!(delete(&app, gone, None).await, 401);
    assert_eq!(delete(&app, gone, Some(&planner)).await, 403);
    assert_eq!(delete(&app, gone, Some(&admin)).await, 204);
    assert_eq!(delete(&app, gone, Some(&admin)).await, 404, "already gone");
    assert_eq!(responses(&app).await, 1);

    let audit = genderlens::db::accounts::recent_audit(&mut app.db.get().expect("conn"), 10)
        .expect("audit");
    assert!(audit
        .iter()
        .any(|r| r.action == "delete response" && r.detail == gone));
}

#[actix_web::test]
async fn a_retention_period_deletes_old_responses_only() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    respond(&app, "female", "2d9a4b1e-5c73-4fa0-9e31-8c4d5e6f7081").await;
    let report = genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"));
    let mut forms = report.forms;
    for form in &mut forms {
        form.retention_days = Some(30);
    }
    let registry = genderlens::form::FormRegistry::new(forms);
    let mut conn = app.db.get().expect("conn");
    let now = chrono::Utc::now();
    let purged =
        genderlens::privacy::apply_retention(&mut conn, &registry, now).expect("retention");
    assert!(purged.is_empty(), "a fresh response stays");
    let later = now + chrono::Duration::days(31);
    let purged =
        genderlens::privacy::apply_retention(&mut conn, &registry, later).expect("retention");
    assert_eq!(purged, vec![("test-survey".to_owned(), 1)]);
    drop(conn);
    assert_eq!(responses(&app).await, 0);
}

#[actix_web::test]
async fn nothing_about_the_client_is_stored_with_a_response() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let id = respond(&app, "female", "3e0b5c2f-6d84-40b1-8f42-9d5e6f708192").await;
    let row = format!("{:?}", app.stored(&id));
    for client_detail in ["127.0.0.1", "reqwest", "user-agent"] {
        assert!(!row.contains(client_detail), "{client_detail} in {row}");
    }
}
