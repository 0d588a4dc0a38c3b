//! `GET /api/openapi.json` covers every endpoint, and real responses validate against the
//! schema it gives for their path, method and status.

use crate::helpers::{spawn_app, Backend, TestApp};
use genderlens::auth::Role;
use serde_json::{json, Value};

async fn document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// What is wrong with `body` by the schema the document gives for this response.
fn violations(doc: &Value, path: &str, method: &str, status: u16, body: &Value) -> Vec<String> {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no JSON schema for {method} {path} {status}"
    );
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn conforms(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let errors = violations(doc, path, method, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not conform: {errors:#?}\n{body}"
    );
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[actix_web::test]
async fn every_route_is_described() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let doc = document(&app).await;
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/", &["get"][..]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/api/openapi.json", &["get"]),
        ("/f/{form}", &["get", "post"]),
        ("/unsubscribe/{form}/{email}/{signature}", &["get", "post"]),
        ("/login", &["get", "post"]),
        ("/logout", &["post"]),
        ("/dashboard", &["get"]),
        ("/dashboard/{form}", &["get"]),
        ("/dashboard/{form}/import", &["post"]),
        ("/admin/audit", &["get"]),
        ("/api/v1/forms", &["get"]),
        ("/api/v1/forms/{form}", &["get"]),
        ("/api/v1/forms/{form}/submissions", &["post"]),
        ("/api/v1/forms/{form}/indicators", &["get"]),
        ("/api/v1/forms/{form}/indicators.csv", &["get"]),
        ("/api/v1/forms/{form}/responses", &["get"]),
        ("/api/v1/forms/{form}/responses/{id}", &["delete"]),
        ("/api/v1/forms/{form}/dictionary.csv", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} is not described"
            );
        }
    }
    // Every JSON error answer of the API is described with the common error body.
    let submit = &doc["paths"]["/api/v1/forms/{form}/submissions"]["post"]["responses"];
    for status in ["400", "404", "409", "413", "415", "422", "503"] {
        assert_eq!(
            submit[status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}"
        );
    }
}

#[actix_web::test]
async fn responses_conform_to_the_description() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let doc = document(&app).await;
    let submissions = "/api/v1/forms/{form}/submissions";

    for (i, sex) in ["female", "male", "female", "male", "other", "female"]
        .into_iter()
        .enumerate()
    {
        let answers = json!({
            "sex": sex, "age": 20 + 9 * i, "district": if i % 2 == 0 { "podilskyi" } else { "obolonskyi" },
            "has_children": "yes", "childcare_hours": 3 * i, "needs_childcare": "yes",
            "services_used": ["health"], "satisfaction": "a"
        });
        let (status, body) = json_of(
            app.submit("test-survey", &json!({ "answers": answers }))
                .await,
        )
        .await;
        conforms(&doc, submissions, "post", status, &body);
        assert_eq!(status, 201, "{body}");
    }
    let invalid = json!({ "answers": { "sex": "female", "age": 500 } });
    let (status, body) = json_of(app.submit("test-survey", &invalid).await).await;
    assert_eq!(status, 422);
    conforms(&doc, submissions, "post", status, &body);
    let (status, body) = json_of(app.submit("no-such-form", &invalid).await).await;
    conforms(&doc, submissions, "post", status, &body);
    let (status, body) = json_of(app.submit("closed-survey", &invalid).await).await;
    assert_eq!(status, 409);
    conforms(&doc, submissions, "post", status, &body);

    let indicators = "/api/v1/forms/{form}/indicators";
    for query in [
        "",
        "?by=district",
        "?by=district&min_cell=1",
        "?min_cell=1&alpha=0.1",
    ] {
        let (status, body) = json_of(
            app.get(&format!("/api/v1/forms/test-survey/indicators{query}"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        conforms(&doc, indicators, "get", status, &body);
        // The check has teeth: a tampered report does not conform.
        let mut tampered = body.clone();
        tampered["indicators"][0]["female"]["n"] = json!("many");
        tampered["alpha"] = json!(2);
        assert_eq!(violations(&doc, indicators, "get", 200, &tampered).len(), 2);
    }
    let (status, body) = json_of(
        app.get("/api/v1/forms/test-survey/indicators?by=nothing")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    conforms(&doc, indicators, "get", status, &body);
    let (status, body) = json_of(app.get("/api/v1/forms/closed-survey/indicators").await).await;
    assert_eq!(status, 401);
    conforms(&doc, indicators, "get", status, &body);

    let planner = app.token(Role::Planner, &["test-survey"]);
    let (status, body) = json_of(app.get_as("/api/v1/forms", &planner).await).await;
    conforms(&doc, "/api/v1/forms", "get", status, &body);
    let (status, body) = json_of(app.get_as("/api/v1/forms/closed-survey", &planner).await).await;
    assert_eq!(status, 403);
    conforms(&doc, "/api/v1/forms/{form}", "get", status, &body);

    for path in ["/healthz", "/readyz"] {
        let (status, body) = json_of(app.get(path).await).await;
        conforms(&doc, path, "get", status, &body);
    }
}
