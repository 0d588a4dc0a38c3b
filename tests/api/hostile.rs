//! Hostile requests, each with the status it must get and nothing stored: deeply nested
//! JSON, huge numbers, NaN/Infinity, overlong strings, invalid UTF-8, injection strings,
//! path traversal in form ids, header floods.

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::on_every_backend;
use serde_json::{json, Value};

const FORM: &str = "test-survey";

fn valid() -> Value {
    json!({ "sex": "female", "age": 30, "district": "podilskyi", "has_children": "no" })
}

fn with(question: &str, answer: Value) -> Vec<u8> {
    let mut answers = valid();
    answers[question] = answer;
    json!({ "answers": answers }).to_string().into_bytes()
}

async fn post(app: &TestApp, body: Vec<u8>) -> (u16, Value) {
    let response = app.post_raw(FORM, "application/json", body).await;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn hostile_bodies_are_refused_and_nothing_is_stored(app: TestApp) {
    let nested = format!("{{\"answers\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("deeply nested JSON", nested.into_bytes(), 400, "bad_request"),
        (
            "a number beyond f64",
            br#"{"answers":{"sex":"female","age":1e400,"district":"podilskyi","has_children":"no"}}"#.to_vec(),
            400,
            "bad_request",
        ),
        ("a huge integer", with("age", json!(u64::MAX)), 422, "validation_failed"),
        (
            "NaN",
            br#"{"answers":{"sex":"female","age":NaN,"district":"podilskyi","has_children":"no"}}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "Infinity",
            br#"{"answers":{"sex":"female","age":Infinity,"district":"podilskyi","has_children":"no"}}"#.to_vec(),
            400,
            "bad_request",
        ),
        ("a fractional integer", with("age", json!(30.5)), 422, "validation_failed"),
        ("an overlong text", with("comments", json!("x".repeat(10_000))), 422, "validation_failed"),
        ("invalid UTF-8", b"{\"answers\":{\"comments\":\"\xff\xfe\"}}".to_vec(), 400, "bad_request"),
        (
            "an SQL injection as a choice",
            with("district", json!("podilskyi'; DROP TABLE responses; --")),
            422,
            "validation_failed",
        ),
        (
            "an SQL injection as a question id",
            json!({ "answers": { "sex'; DROP TABLE responses; --": "female" } })
                .to_string()
                .into_bytes(),
            422,
            "validation_failed",
        ),
        ("an array as the body", b"[1,2,3]".to_vec(), 400, "bad_request"),
        ("an empty body", Vec::new(), 400, "bad_request"),
        ("a body over the limit", vec![b' '; 70 * 1024], 413, "payload_too_large"),
        // PostgreSQL cannot store a NUL in text: refused as an answer, never a failed batch.
        ("a NUL in a text answer", with("comments", json!("a\u{0}b")), 422, "validation_failed"),
        ("a NUL in a choice", with("district", json!("podilskyi\u{0}")), 422, "validation_failed"),
        ("a NUL in an unknown question id", with("x\u{0}", json!(1)), 422, "validation_failed"),
        (
            "a NUL in the submission id",
            json!({ "answers": valid(), "submission_id": "a\u{0}b" }).to_string().into_bytes(),
            400,
            "bad_request",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, answer) = post(&app, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["error"], code, "{what}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: the error names the problem: {answer}"
        );
    }
    assert_eq!(app.count(FORM), 0, "nothing stored from any of them");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

async fn injection_strings_are_stored_as_text_and_never_run(app: TestApp) {
    let hostile = "'); DROP TABLE responses; -- {{ 7*7 }} {% if 1 %}x{% endif %} <script>alert(1)</script> ${age}";
    let (status, receipt) = post(&app, with("comments", json!(hostile))).await;
    assert_eq!(status, 201, "{receipt}");
    let id = receipt["id"].as_str().expect("id");
    let row = app.stored(id);
    let answers: Value = serde_json::from_str(&row.answers).expect("answers");
    assert_eq!(answers["comments"], hostile, "kept verbatim, as data");
    assert_eq!(app.count(FORM), 1, "the responses table is still there");
    // Nothing a resident typed is rendered unescaped: the export is data, and pages never
    // echo another resident's answers.
    // Compared as parsed data: ids and timestamps may contain "49" by chance.
    let lines = app.exported(FORM).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["answers"]["comments"], hostile, "not evaluated");
}

async fn path_traversal_and_odd_form_ids_are_unknown_forms(app: TestApp) {
    for form in [
        "..%2F..%2Fetc%2Fpasswd",
        "test-survey%00",
        "TEST-SURVEY",
        "test-survey%2F..%2Fclosed-survey",
        "<script>",
    ] {
        let response = app
            .post_raw(form, "application/json", with("age", json!(30)))
            .await;
        let status = response.status().as_u16();
        assert!(status == 404 || status == 400, "{form}: {status}");
        let body: Value = response.json().await.expect("json error body");
        assert!(body["error"].is_string(), "{form}: {body}");
        let page = app.get(&format!("/f/{form}")).await;
        assert!(matches!(page.status().as_u16(), 400 | 404), "{form}");
        assert!(!page.text().await.expect("text").contains("root:"));
    }
    assert_eq!(
        app.get("/static/../Cargo.toml").await.status().as_u16(),
        404
    );
    assert_eq!(app.count(FORM), 0);
}

/// A NUL reaches a query only as a bound parameter, which PostgreSQL refuses in text:
/// each such request must still get its ordinary answer, not a 503.
async fn nul_bytes_in_ids_and_sign_in_are_ordinary_misses(app: TestApp) {
    let admin = app.token(genderlens::auth::Role::Admin, &[]);
    let response = app
        .client
        .delete(format!(
            "{}/api/v1/forms/{FORM}/responses/a%00b",
            app.address
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 404);
    // With the page's CSRF token, so the email reaches the account lookup.
    let browser = crate::helpers::browser_like();
    let refused = crate::helpers::sign_in(&app, &browser, "a\u{0}@example.org", "x\u{0}y").await;
    assert_eq!(refused.status(), 401, "an unknown account");
    // A signed-in admin's browser cannot delete a response: that takes a bearer token.
    crate::helpers::add_user(
        &app,
        "admin@example.org",
        genderlens::auth::Role::Admin,
        &[],
    );
    let signed_in = crate::helpers::sign_in(
        &app,
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
    let by_session = browser
        .delete(format!(
            "{}/api/v1/forms/{FORM}/responses/0b7e2f9c-3a51-4d8e-9c1f-6a2b3c4d5e6f",
            app.address
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(by_session.status(), 401);
    let bad_token = app
        .client
        .get(format!("{}/api/v1/forms", app.address))
        .bearer_auth("gl_00\u{1}")
        .send()
        .await;
    if let Ok(response) = bad_token {
        assert_eq!(response.status(), 401);
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
}

on_every_backend!(
    nul_bytes_in_ids_and_sign_in_are_ordinary_misses,
    hostile_bodies_are_refused_and_nothing_is_stored,
    injection_strings_are_stored_as_text_and_never_run,
    path_traversal_and_odd_form_ids_are_unknown_forms,
);

#[actix_web::test]
async fn header_floods_are_refused_before_the_handler() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    // Hundreds of headers: actix refuses them (431 or a closed connection), nothing stored.
    let mut request = app
        .client
        .post(format!("{}/api/v1/forms/{FORM}/submissions", app.address))
        .header("content-type", "application/json")
        .body(with("age", json!(30)));
    for i in 0..200 {
        request = request.header(format!("x-flood-{i}"), "x");
    }
    match request.send().await {
        Ok(response) => assert!(response.status().is_client_error(), "{}", response.status()),
        Err(err) => assert!(
            err.is_request() || err.is_connect() || err.is_body(),
            "{err}"
        ),
    }
    // One huge header value: over actix's 128 KiB head limit, 431.
    let response = app
        .client
        .get(format!("{}/", app.address))
        .header("x-huge", "y".repeat(200 * 1024))
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status().as_u16(), 431);
    }
    assert_eq!(app.count(FORM), 0);
    assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
}
