//! A workbook copied into the forms folder is served like a YAML form: residents open it,
//! answer it, and invalid answers are refused by the same validation.

use crate::helpers::{fixtures, spawn_app_with, Backend};
use serde_json::json;

#[actix_web::test]
async fn an_xlsform_in_the_forms_folder_is_answered_by_residents() {
    // The fixture survey, written out as an XLSForm workbook, is the only form file.
    let forms = tempfile::tempdir().expect("tempdir");
    let survey = genderlens::form::load_dir(&fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == "test-survey")
        .expect("fixture survey");
    genderlens::form::xlsform_export::write_file(
        &survey.source,
        &forms.path().join("kobo-export.xlsx"),
    )
    .expect("write workbook");
    let dir = forms.path().to_owned();
    let app = spawn_app_with(Backend::Sqlite, |s| s.forms_dir = dir)
        .await
        .expect("app");

    let page = app.get("/f/test-survey?lang=uk").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Чи маєте ви дітей до 18 років?"),
        "labels in Ukrainian"
    );

    let valid = json!({ "answers": {
        "sex": "female", "age": 34, "district": "podilskyi", "has_children": "yes",
        "childcare_hours": 20, "services_used": ["health", "social"], "satisfaction": "a"
    }});
    assert_eq!(app.submit("test-survey", &valid).await.status(), 201);
    let invalid = json!({ "answers": { "sex": "female", "age": 7, "district": "podilskyi", "has_children": "no" } });
    let refused = app.submit("test-survey", &invalid).await;
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["errors"][0]["question"], "age");
    assert_eq!(app.count("test-survey"), 1);
}
