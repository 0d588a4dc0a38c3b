use crate::helpers::TestApp;
use crate::on_every_backend;
use serde_json::{json, Value};

const FORM: &str = "test-survey";

fn valid_answers() -> Value {
    json!({
        "sex": "female",
        "age": 34,
        "district": "podilskyi",
        "has_children": "yes",
        "childcare_hours": 20.5,
        "needs_childcare": "yes",
        "services_used": ["health", "social"],
        "satisfaction": "a",
        "last_visit": "2026-10-01",
        "comments": "<script>alert(1)</script> черга"
    })
}

async fn error_codes(response: reqwest::Response) -> Vec<(String, String)> {
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["error"], "validation_failed");
    assert!(body["message"].is_string());
    body["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
            (
                e["question"].as_str().unwrap_or_default().to_owned(),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn valid_submission_is_stored_with_columns(app: TestApp) {
    let response = app
        .submit(FORM, &json!({ "answers": valid_answers() }))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["form"], FORM);
    assert_eq!(body["form_version"], 1);
    let received = body["received_at"].as_str().expect("received_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(received).is_ok(),
        "{received}"
    );

    let row = app.stored(body["id"].as_str().expect("id"));
    assert_eq!(row.sex.as_deref(), Some("female"));
    assert_eq!(row.by_1.as_deref(), Some("middle"), "calculated age group");
    assert_eq!(row.by_2.as_deref(), Some("podilskyi"));
    let answers: Value = serde_json::from_str(&row.answers).expect("answers json");
    assert_eq!(answers["age_group"], "middle");
    assert_eq!(
        answers["services_used"],
        json!(["social", "health"]),
        "kept in choice order"
    );
    assert_eq!(answers["comments"], "<script>alert(1)</script> черга");
    // sex, age, age_group, district, design_weight, has_children, childcare_hours,
    // needs_childcare, services_used, satisfaction, last_visit: one f64 each.
    let slots: Vec<f64> = row
        .analysis
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(slots.len(), 11);
    assert_eq!(&slots[..4], &[0.0, 34.0, 1.0, 0.0]);
    assert_eq!(slots[4], 1.25 * 1.1, "the weight of podilskyi, 30 and over");
    assert_eq!(row.weight, Some(1.25 * 1.1));
    assert_eq!(&slots[5..9], &[0.0, 20.5, 0.0, 3.0]);
    assert_eq!(slots[9], 3.0, "likert `a` is the 4th option");
    assert_eq!(slots[10], 20727.0, "2026-10-01 in days since 1970");
    assert_eq!(app.count(FORM), 1);
}

async fn invalid_answers_are_named_and_nothing_is_stored(app: TestApp) {
    let body = json!({ "answers": {
        "sex": "female",
        "age": 140,
        "district": "atlantis",
        "has_children": "no",
        "childcare_hours": 3,
        "age_group": "young",
        "intro": "hello",
        "favourite_colour": "red",
        "services_used": ["none", "health"],
        "last_visit": "01/10/2026",
        "comments": "x".repeat(201)
    }});
    let response = app.submit(FORM, &body).await;
    assert_eq!(response.status(), 422);
    let codes = error_codes(response).await;
    for expected in [
        ("age", "max"),
        ("district", "choice"),
        ("childcare_hours", "not_relevant"),
        ("age_group", "not_answerable"),
        ("intro", "not_answerable"),
        ("favourite_colour", "unknown_question"),
        ("services_used", "constraint"),
        ("last_visit", "date"),
        ("comments", "max_length"),
    ] {
        assert!(
            codes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {codes:?}"
        );
    }
    assert_eq!(app.count(FORM), 0);
}

async fn required_applies_only_when_relevant(app: TestApp) {
    let mut answers = valid_answers();
    answers["has_children"] = json!("no");
    let obj = answers.as_object_mut().expect("object");
    obj.remove("childcare_hours");
    obj.remove("needs_childcare");
    assert_eq!(
        app.submit(FORM, &json!({ "answers": answers }))
            .await
            .status(),
        201
    );

    let mut answers = valid_answers();
    answers
        .as_object_mut()
        .expect("object")
        .remove("childcare_hours");
    let response = app.submit(FORM, &json!({ "answers": answers })).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        error_codes(response).await,
        vec![("childcare_hours".to_owned(), "required".to_owned())]
    );

    let mut answers = valid_answers();
    answers.as_object_mut().expect("object").remove("sex");
    let response = app.submit(FORM, &json!({ "answers": answers })).await;
    assert_eq!(
        error_codes(response).await,
        vec![("sex".to_owned(), "required".to_owned())],
        "the sex question is always required"
    );
    assert_eq!(app.count(FORM), 1);
}

async fn types_and_constraints_are_checked(app: TestApp) {
    let cases = [
        (json!({"age": "34"}), "age", "type"),
        (json!({"age": 34.5}), "age", "integer"),
        (json!({"age": 13}), "age", "min"),
        (json!({"services_used": "health"}), "services_used", "type"),
        (
            json!({"services_used": ["health", "health"]}),
            "services_used",
            "choice",
        ),
        (json!({"satisfaction": 4}), "satisfaction", "type"),
        (
            json!({"age": 16, "childcare_hours": 120}),
            "childcare_hours",
            "constraint",
        ),
    ];
    for (patch, question, code) in cases {
        let mut answers = valid_answers();
        for (k, v) in patch.as_object().expect("object") {
            answers[k] = v.clone();
        }
        let response = app.submit(FORM, &json!({ "answers": answers })).await;
        assert_eq!(response.status(), 422, "{patch}");
        let codes = error_codes(response).await;
        assert!(
            codes.contains(&(question.to_owned(), code.to_owned())),
            "{patch}: {codes:?}"
        );
    }
    assert_eq!(app.count(FORM), 0);
}

async fn resent_submission_is_stored_once(app: TestApp) {
    let id = uuid::Uuid::new_v4();
    let body = json!({ "answers": valid_answers(), "submission_id": id.to_string() });
    let first = app.submit(FORM, &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");

    // Same answers, written the Kobo way: stores nothing, answers 200 with the first body.
    let again = json!({ "answers": valid_answers(), "submission_id": format!("uuid:{id}") });
    let second = app.submit(FORM, &again).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.json::<Value>().await.expect("json"), first);

    let mut changed = valid_answers();
    changed["age"] = json!(35);
    let conflict = app
        .submit(
            FORM,
            &json!({ "answers": changed, "submission_id": id.to_string() }),
        )
        .await;
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.expect("json");
    assert_eq!(body["error"], "submission_conflict");
    assert_eq!(app.count(FORM), 1);
    let row = app.stored(first["id"].as_str().expect("id"));
    assert!(
        row.answers.contains("\"age\":34"),
        "the first answers are unchanged"
    );
}

async fn concurrent_resends_store_one(app: TestApp) {
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({ "answers": valid_answers(), "submission_id": id });
    let sends = (0..16).map(|_| app.submit(FORM, &body));
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 201 || s == 200),
        "{statuses:?}"
    );
    assert_eq!(app.count(FORM), 1);
}

async fn rejected_requests_have_json_errors(app: TestApp) {
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            app.post_raw(FORM, "application/json", b"{\"answers\": ".to_vec())
                .await,
            400,
            "bad_request",
        ),
        (
            app.post_raw(FORM, "application/json", b"[1, 2]".to_vec())
                .await,
            400,
            "bad_request",
        ),
        (
            app.post_raw(
                FORM,
                "application/json",
                br#"{"answers": {}, "extra": 1}"#.to_vec(),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            app.post_raw(
                FORM,
                "application/json",
                br#"{"answers": {}, "submission_id": "nope"}"#.to_vec(),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            app.post_raw(FORM, "text/plain", b"{\"answers\": {}}".to_vec())
                .await,
            415,
            "unsupported_media_type",
        ),
        (
            app.post_raw(FORM, "application/json", vec![b' '; 70 * 1024])
                .await,
            413,
            "payload_too_large",
        ),
        (
            app.submit("no-such-form", &json!({"answers": {}})).await,
            404,
            "unknown_form",
        ),
        (
            app.submit("closed-survey", &json!({"answers": {"sex": "f"}}))
                .await,
            409,
            "form_closed",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("json error body");
        assert_eq!(body["error"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    assert_eq!(app.count(FORM), 0);
    assert_eq!(app.count("closed-survey"), 0);
}

async fn forms_are_listed_and_described(app: TestApp) {
    let admin = app.token(genderlens::auth::Role::Admin, &[]);
    let list: Value = app
        .get_as("/api/v1/forms", &admin)
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["closed-survey", "test-survey"]);
    assert_eq!(list[0]["open"], false);

    let form: Value = app
        .get_as("/api/v1/forms/test-survey", &admin)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(form["languages"], json!(["en", "uk"]));
    let childcare = form["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .find(|q| q["id"] == "childcare_hours")
        .expect("childcare_hours");
    assert_eq!(childcare["group"], "care");
    assert_eq!(childcare["type"], "decimal");

    let missing = app.get_as("/api/v1/forms/nope", &admin).await;
    assert_eq!(missing.status(), 404);
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

/// The writer counts a form's responses only just past its largest milestone
/// (counting them all per batch slowed it as the table grew): the capped count is exact
/// up to the cap and `cap + 1` beyond it.
async fn capped_count_is_exact_up_to_the_cap(app: TestApp) {
    for _ in 0..4 {
        assert_eq!(
            app.submit(FORM, &json!({ "answers": valid_answers() }))
                .await
                .status(),
            201
        );
    }
    let mut conn = app.db.get().expect("connection");
    for (cap, expected) in [(0, 1), (2, 3), (3, 4), (4, 4), (10, 4)] {
        assert_eq!(
            genderlens::db::responses::count_capped(&mut conn, FORM, cap).expect("count"),
            expected,
            "cap {cap}"
        );
    }
}

on_every_backend!(
    valid_submission_is_stored_with_columns,
    invalid_answers_are_named_and_nothing_is_stored,
    required_applies_only_when_relevant,
    types_and_constraints_are_checked,
    resent_submission_is_stored_once,
    concurrent_resends_store_one,
    rejected_requests_have_json_errors,
    forms_are_listed_and_described,
    capped_count_is_exact_up_to_the_cap,
);
