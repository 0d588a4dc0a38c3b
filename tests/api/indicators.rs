//! The indicators API: figures from stored responses, CSV equal to JSON, the CLI equal to
//! the API, SQLite equal to PostgreSQL, and suppression that cannot be lowered.

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::on_every_backend;
use genderlens::form::{load_dir, Form};
use serde_json::{json, Value};

const FORM: &str = "test-survey";

fn fixture_form() -> Form {
    load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == FORM)
        .expect("fixture form")
}

/// Stores `n` generated responses straight through the library (the same validation).
fn seed(app: &TestApp, n: u64) {
    let mut conn = app.db.get().expect("connection");
    genderlens::demo::generate(&mut conn, &fixture_form(), n, 42).expect("demo data");
}

/// The report without the time it was generated.
async fn without_time(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    let mut body: Value = response.json().await.expect("json");
    body.as_object_mut().expect("object").remove("generated_at");
    body
}

/// The report the public reads.
async fn report(app: &TestApp, query: &str) -> Value {
    without_time(
        app.get(&format!("/api/v1/forms/{FORM}/indicators{query}"))
            .await,
    )
    .await
}

/// The report an admin reads.
async fn planner_report(app: &TestApp, query: &str) -> Value {
    let admin = app.token(genderlens::auth::Role::Admin, &[]);
    without_time(
        app.get_as(&format!("/api/v1/forms/{FORM}/indicators{query}"), &admin)
            .await,
    )
    .await
}

async fn figures_come_from_the_stored_responses(app: TestApp) {
    // 20 women (14 with children), 10 men (5 with children), 1 other. Whether they need a
    // childcare place: all 14 mothers answer, only 2 fathers do.
    for i in 0..31 {
        let (sex, children) = match i {
            0..=19 => ("female", i < 14),
            20..=29 => ("male", i < 25),
            _ => ("other", false),
        };
        let mut answers = json!({ "sex": sex, "age": 20 + i, "district": "podilskyi",
                                   "has_children": if children { "yes" } else { "no" } });
        if children {
            answers["childcare_hours"] = json!(10 + i);
            if sex == "female" || i < 22 {
                answers["needs_childcare"] = json!(if i % 2 == 0 { "yes" } else { "no" });
            }
        }
        assert_eq!(
            app.submit(FORM, &json!({ "answers": answers }))
                .await
                .status(),
            201
        );
    }
    let body = report(&app, "").await;
    assert_eq!(body["form"], FORM);
    assert_eq!(
        (body["responses"].clone(), body["sex_counts"].clone()),
        (
            Value::Null,
            json!({ "female": 20, "male": 10, "other": null })
        ),
        "a single `other` is a small count, and 31 − 20 − 10 would give it away"
    );
    let planners = planner_report(&app, "").await;
    assert_eq!(planners["responses"], 31);
    assert_eq!(
        planners["sex_counts"],
        json!({ "female": 20, "male": 10, "other": 1 })
    );
    let find = |question: &str, option: Option<&str>| -> Value {
        body["indicators"]
            .as_array()
            .expect("indicators")
            .iter()
            .find(|i| {
                i["question"] == question && i["option"].as_str() == option && i["group"].is_null()
            })
            .cloned()
            .unwrap_or_else(|| panic!("{question} {option:?}"))
    };
    let yes = find("has_children", Some("yes"));
    assert_eq!(
        (yes["female"]["n"].clone(), yes["female"]["count"].clone()),
        (json!(20), json!(14))
    );
    assert_eq!(yes["female"]["estimate"], 0.7);
    assert_eq!(
        (yes["male"]["n"].clone(), yes["male"]["count"].clone()),
        (json!(10), json!(5))
    );
    assert_eq!(
        yes["gap"]["difference"]
            .as_f64()
            .map(|d| (d * 1e12).round() / 1e12),
        Some(0.2)
    );
    assert_eq!(
        yes["test"]["method"], "fisher",
        "an expected count is under 5"
    );
    let no = find("has_children", Some("no"));
    assert_eq!(no["test"], yes["test"], "the two options share one test");

    let hours = find("childcare_hours", None);
    assert_eq!(hours["kind"], "mean");
    assert_eq!(
        hours["female"]["estimate"], 16.5,
        "mothers answered 10..=23"
    );
    assert_eq!(hours["female"]["median"], 16.5);
    assert_eq!(hours["male"]["n"], 5);
    assert_eq!(hours["test"]["method"], "welch_t");
    assert_eq!(hours["tests"][0]["method"], "mann_whitney");

    let need = find("needs_childcare", Some("yes"));
    assert_eq!(need["suppressed"], true, "2 fathers are a small cell");
    assert_eq!(need["reason"], "small_cell");
    assert_eq!(need["male"]["n"], Value::Null);
    assert_eq!(need["gap"]["difference"], Value::Null);
    assert_eq!(need["female"]["n"], 14);
}

/// The JSON figure a CSV column flattens (`female_ci_low` → `female.ci[0]`).
fn json_figure(ind: &Value, column: &str) -> Value {
    let (head, rest) = column.split_once('_').unwrap_or((column, ""));
    let (object, figure) = match head {
        "female" | "male" | "gap" | "test" => (&ind[head], rest),
        "mann" => (
            ind["tests"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["method"] == "mann_whitney"))
                .unwrap_or(&Value::Null),
            rest.trim_start_matches("whitney_"),
        ),
        _ => (ind, column),
    };
    match figure {
        "ci_low" => object["ci"][0].clone(),
        "ci_high" => object["ci"][1].clone(),
        f => object[f].clone(),
    }
}

async fn csv_has_the_json_figures(app: TestApp) {
    seed(&app, 400);
    for query in ["?by=district", "?by=age_group&alpha=0.1"] {
        let body = report(&app, query).await;
        let csv = app
            .get(&format!("/api/v1/forms/{FORM}/indicators.csv{query}"))
            .await;
        assert_eq!(csv.status(), 200);
        assert!(csv
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/csv")));
        let text = csv.text().await.expect("csv");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().expect("headers").clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        let indicators = body["indicators"].as_array().expect("indicators");
        assert_eq!(rows.len(), indicators.len());
        let mut compared = 0;
        for (row, ind) in rows.iter().zip(indicators) {
            for (column, cell) in headers.iter().zip(row) {
                if column.ends_with("counts") || column.ends_with("reasons") {
                    continue;
                }
                let figure = match column {
                    "form" | "form_version" | "by" | "alpha" | "min_cell" | "weighted" => {
                        body[column].clone()
                    }
                    "group" => ind["group"]
                        .as_object()
                        .and_then(|g| g.keys().next())
                        .map_or(Value::Null, |k| json!(k)),
                    "group_value" => ind["group"]
                        .as_object()
                        .and_then(|g| g.values().next().cloned())
                        .unwrap_or(Value::Null),
                    _ => json_figure(ind, column),
                };
                let same = match &figure {
                    Value::Null => cell.is_empty(),
                    Value::Number(n) => cell.parse::<f64>().ok() == n.as_f64(),
                    Value::String(s) => cell == s,
                    other => cell.parse::<Value>().ok().as_ref() == Some(other),
                };
                assert!(same, "{query} {column}: csv {cell:?}, json {figure}");
                compared += usize::from(!cell.is_empty());
            }
        }
        assert!(compared > indicators.len() * 10, "figures were compared");
    }
}

async fn cli_prints_what_the_api_serves(app: TestApp) {
    seed(&app, 300);
    let api = report(&app, "?by=age_group").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_genderlens"))
        .args([
            "indicators",
            FORM,
            "--by",
            "age_group",
            "--format",
            "json",
            "--public",
        ])
        .env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml")
        .env("GENDERLENS_DATABASE_URL", &app.database_url)
        .env(
            "GENDERLENS_FORMS_DIR",
            crate::helpers::fixtures().join("forms"),
        )
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cli: Value = serde_json::from_slice(&out.stdout).expect("json");
    cli.as_object_mut().expect("object").remove("generated_at");
    assert_eq!(cli, api);
}

async fn suppression_cannot_be_lowered_and_bad_queries_are_400(app: TestApp) {
    seed(&app, 50);
    let body = report(&app, "?min_cell=1").await;
    assert_eq!(
        body["min_cell"], 5,
        "a reader may raise the threshold, not lower it"
    );
    assert_eq!(report(&app, "?min_cell=50").await["min_cell"], 50);
    for query in [
        "?by=comments",
        "?alpha=2",
        "?weighted=maybe",
        "?min_cell=abc",
        "?colour=red",
    ] {
        let response = app
            .get(&format!("/api/v1/forms/{FORM}/indicators{query}"))
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.expect("json");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let private = app.get("/api/v1/forms/closed-survey/indicators").await;
    assert_eq!(
        private.status(),
        401,
        "forms without public indicators need a planner"
    );
    let admin = app.token(genderlens::auth::Role::Admin, &[]);
    let unweighted = app
        .get_as(
            "/api/v1/forms/closed-survey/indicators?weighted=true",
            &admin,
        )
        .await;
    assert_eq!(unweighted.status(), 400, "that form names no weight");
}

/// The weighted report against the spec's formulas computed here from the exported
/// responses: Σw·y/Σw, the linearised variance n/(n − 1)·Σw²(y − ŷ)²/(Σw)², Kish's n_eff.
async fn weighted_figures_follow_the_design_weights(app: TestApp) {
    seed(&app, 400);
    let body = planner_report(&app, "?weighted=true&by=district").await;
    assert_eq!(body["weighted"], true);
    let answers: Vec<Value> = app
        .exported(FORM)
        .await
        .into_iter()
        .map(|line| line["answers"].clone())
        .collect();
    let z = genderlens::stats::normal_critical(0.05);
    let mut checked = 0;
    for ind in body["indicators"].as_array().expect("indicators") {
        if ind["question"] != "has_children" || ind["option"] != "yes" {
            continue;
        }
        let district = ind["group"]["district"].as_str();
        for sex in ["female", "male"] {
            let units: Vec<(f64, f64)> = answers
                .iter()
                .filter(|a| a["sex"] == sex)
                .filter(|a| district.is_none_or(|d| a["district"] == d))
                .map(|a| {
                    let y = f64::from(u8::from(a["has_children"] == "yes"));
                    (y, a["design_weight"].as_f64().expect("a stored weight"))
                })
                .collect();
            let n = units.len() as f64;
            let sw: f64 = units.iter().map(|u| u.1).sum();
            let sw2: f64 = units.iter().map(|u| u.1 * u.1).sum();
            let p = units.iter().map(|u| u.0 * u.1).sum::<f64>() / sw;
            let v = n / (n - 1.0)
                * units
                    .iter()
                    .map(|u| u.1 * u.1 * (u.0 - p).powi(2))
                    .sum::<f64>()
                / (sw * sw);
            let side = &ind[sex];
            let close = |got: &Value, want: f64| {
                let got = got.as_f64().expect("a figure");
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs(),
                    "{sex} {district:?}: {got} vs {want}"
                );
            };
            assert_eq!(side["n"], units.len());
            close(&side["estimate"], p);
            close(&side["n_eff"], sw * sw / sw2);
            close(&side["ci"][0], (p - z * v.sqrt()).max(0.0));
            close(&side["ci"][1], (p + z * v.sqrt()).min(1.0));
            checked += 1;
        }
        assert_eq!(ind["test"]["method"], "wald_z");
        assert!(ind["test"]["q_value"].is_number());
    }
    assert_eq!(checked, 6, "whole sample and two districts, by sex");
}

on_every_backend!(
    figures_come_from_the_stored_responses,
    csv_has_the_json_figures,
    cli_prints_what_the_api_serves,
    suppression_cannot_be_lowered_and_bad_queries_are_400,
    weighted_figures_follow_the_design_weights,
);

#[actix_web::test]
async fn postgres_and_sqlite_give_identical_reports() {
    let Some(pg) = spawn_app(Backend::Postgres).await else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to compare with PostgreSQL");
        return;
    };
    let lite = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    seed(&pg, 700);
    seed(&lite, 700);
    for query in ["", "?by=district", "?by=age_group&alpha=0.1"] {
        assert_eq!(
            report(&pg, query).await,
            report(&lite, query).await,
            "{query}"
        );
    }
    // Weighted, and read by a planner (the figures the public does not see), too.
    let query = "?weighted=true&by=district";
    let (a, b) = (
        planner_report(&pg, query).await,
        planner_report(&lite, query).await,
    );
    assert_eq!(a["weighted"], true);
    assert_eq!(a, b, "weighted");
}
