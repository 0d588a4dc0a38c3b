//! Any body gets an answer that is not a 5xx, and the server never panics.

use crate::helpers::{spawn_app, Backend};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("female".to_owned()),
            Just("yes".to_owned()),
            Just("2026-02-30".to_owned()),
            ".{0,40}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sex".to_owned()),
                    Just("age".to_owned()),
                    Just("services_used".to_owned()),
                    Just("childcare_hours".to_owned()),
                    Just("has_children".to_owned()),
                    Just("last_visit".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies that are mostly submissions with arbitrary answers, sometimes anything at all.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => any_json().prop_map(|answers| json!({ "answers": answers }).to_string().into_bytes()),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[test]
fn any_body_gets_a_non_5xx_answer() {
    let runtime = actix_web::rt::System::new();
    let app = runtime.block_on(spawn_app(Backend::Sqlite)).expect("app");
    // With its source file named, proptest keeps failing cases in proptest-regressions/
    // and replays them first on every run: the corpus of this fuzz smoke.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        source_file: Some(file!()),
        ..ProptestConfig::with_cases(256)
    });
    runner
        .run(&any_body(), |body| {
            let status = runtime.block_on(async {
                app.post_raw("test-survey", "application/json", body.clone())
                    .await
                    .status()
            });
            prop_assert!(
                !status.is_server_error(),
                "{} for {}",
                status,
                String::from_utf8_lossy(&body)
            );
            Ok(())
        })
        .expect("property");
    // The server is still healthy afterwards.
    let health = runtime.block_on(async { app.get("/healthz").await.status() });
    assert_eq!(health, 200);
}
