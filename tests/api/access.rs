//! Who may read what: anonymous, a planner without the grant, a planner with it, an admin,
//! across every planner endpoint; exports round-trip through the import.

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::on_every_backend;
use genderlens::auth::Role;

const PUBLIC: &str = "test-survey";
const PRIVATE: &str = "closed-survey";

/// A call of the matrix: a GET, or an upload on the dashboard's import form.
enum Call {
    Get(String),
    Import(&'static str),
}

async fn send(app: &TestApp, call: &Call, token: Option<&str>) -> reqwest::Response {
    let request = match call {
        Call::Get(path) => app.client.get(format!("{}{path}", app.address)),
        Call::Import(form) => {
            // A Bearer token is no ambient credential: no CSRF field is needed with it.
            let csv = "sex,age,district,has_children\nfemale,40,podilskyi,no\n";
            let upload = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("paper.csv"),
            );
            app.client
                .post(format!("{}/dashboard/{form}/import", app.address))
                .multipart(upload)
        }
    };
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
    .send()
    .await
    .expect("request")
}

async fn status(app: &TestApp, call: &Call, token: Option<&str>) -> u16 {
    send(app, call, token).await.status().as_u16()
}

async fn planner_endpoints_follow_the_permission_matrix(app: TestApp) {
    let admin = app.token(Role::Admin, &[]);
    let granted = app.token(Role::Planner, &[PRIVATE, PUBLIC]);
    let everything = app.token(Role::Planner, &["*"]);
    let other = app.token(Role::Planner, &["another-form"]);
    // (call, anonymous, planner without the grant, planner with it, admin)
    let get = |path: String| Call::Get(path);
    let matrix: [(Call, u16, u16, u16, u16); 14] = [
        (get("/api/v1/forms".into()), 401, 200, 200, 200),
        (get(format!("/api/v1/forms/{PRIVATE}")), 401, 403, 200, 200),
        (
            get(format!("/api/v1/forms/{PRIVATE}/indicators")),
            401,
            403,
            200,
            200,
        ),
        (
            get(format!("/api/v1/forms/{PRIVATE}/indicators.csv")),
            401,
            403,
            200,
            200,
        ),
        (
            get(format!("/api/v1/forms/{PUBLIC}/indicators")),
            200,
            403,
            200,
            200,
        ),
        (
            get(format!("/api/v1/forms/{PUBLIC}/responses?format=csv")),
            401,
            403,
            200,
            200,
        ),
        (
            get(format!("/api/v1/forms/{PUBLIC}/responses?format=json")),
            401,
            403,
            200,
            200,
        ),
        (
            get(format!("/api/v1/forms/{PUBLIC}/dictionary.csv")),
            401,
            403,
            200,
            200,
        ),
        (
            get(format!("/api/v1/forms/{PUBLIC}/responses?format=xlsx")),
            401,
            403,
            200,
            200,
        ),
        (get("/dashboard".into()), 401, 200, 200, 200),
        (get(format!("/dashboard/{PRIVATE}")), 401, 403, 200, 200),
        (
            get(format!("/dashboard/{PUBLIC}?by=district")),
            401,
            403,
            200,
            200,
        ),
        (get("/admin/audit".into()), 401, 403, 403, 200),
        (Call::Import(PUBLIC), 401, 403, 403, 200),
    ];
    for (call, anonymous, without, with, as_admin) in matrix {
        let path = match &call {
            Call::Get(path) => path.clone(),
            Call::Import(form) => format!("POST /dashboard/{form}/import"),
        };
        assert_eq!(
            status(&app, &call, None).await,
            anonymous,
            "anonymous {path}"
        );
        assert_eq!(
            status(&app, &call, Some(&other)).await,
            without,
            "no grant {path}"
        );
        assert_eq!(
            status(&app, &call, Some(&granted)).await,
            with,
            "granted {path}"
        );
        assert_eq!(
            status(&app, &call, Some(&everything)).await,
            with,
            "granted * {path}"
        );
        assert_eq!(
            status(&app, &call, Some(&admin)).await,
            as_admin,
            "admin {path}"
        );
    }
    let forms = Call::Get("/api/v1/forms".into());
    assert_eq!(
        status(&app, &forms, Some("gl_nope_nope")).await,
        401,
        "an unknown token"
    );
    // Browsers' pages refuse as pages: the sign-in form for 401, HTML for 403 too.
    for (call, token) in [
        (Call::Get(format!("/dashboard/{PRIVATE}")), None),
        (Call::Get("/admin/audit".into()), Some(other.as_str())),
        (Call::Import(PUBLIC), Some(granted.as_str())),
    ] {
        let r = send(&app, &call, token).await;
        assert!(
            r.headers()["content-type"]
                .to_str()
                .is_ok_and(|c| c.starts_with("text/html")),
            "{:?}",
            r.headers()
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        let page = r.text().await.expect("html");
        assert!(page.starts_with("<!doctype html>"), "{page}");
        if token.is_none() {
            assert!(page.contains("action=\"/login?lang=en\""), "{page}");
        }
    }
    let export = send(
        &app,
        &Call::Get(format!("/api/v1/forms/{PUBLIC}/responses?format=csv")),
        Some(&granted),
    )
    .await;
    assert_eq!(export.headers()["cache-control"], "no-store");
    let body: serde_json::Value = app
        .get(&format!("/api/v1/forms/{PRIVATE}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["error"], "unauthorized");
    let listed: serde_json::Value = app
        .get_as("/api/v1/forms", &other)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed,
        serde_json::json!([]),
        "a planner lists only granted forms"
    );
}

async fn planners_see_what_the_public_may_not(app: TestApp) {
    let mut conn = app.db.get().expect("connection");
    let form = genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == PUBLIC)
        .expect("form");
    genderlens::demo::generate(&mut conn, &form, 60, 9).expect("demo");
    let planner = app.token(Role::Planner, &[PUBLIC]);
    let public: serde_json::Value = app
        .get(&format!("/api/v1/forms/{PUBLIC}/indicators"))
        .await
        .json()
        .await
        .expect("json");
    let inside: serde_json::Value = app
        .get_as(&format!("/api/v1/forms/{PUBLIC}/indicators"), &planner)
        .await
        .json()
        .await
        .expect("json");
    let suppressed = |r: &serde_json::Value| {
        r["indicators"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|i| i["suppressed"] == true).count())
    };
    assert!(
        suppressed(&public) > suppressed(&inside),
        "public reports also hide small counts"
    );
}

on_every_backend!(
    planner_endpoints_follow_the_permission_matrix,
    planners_see_what_the_public_may_not
);

#[actix_web::test]
async fn an_export_imported_elsewhere_gives_identical_indicators() {
    let source = spawn_app(Backend::Sqlite).await.expect("app");
    let target = spawn_app(Backend::Sqlite).await.expect("app");
    let form = genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == PUBLIC)
        .expect("form");
    genderlens::demo::generate(&mut source.db.get().expect("conn"), &form, 400, 5).expect("demo");
    let token = source.token(Role::Admin, &[]);
    let csv = source
        .get_as(
            &format!("/api/v1/forms/{PUBLIC}/responses?format=csv"),
            &token,
        )
        .await
        .text()
        .await
        .expect("csv");
    assert_eq!(csv.lines().count(), 401);
    let report = genderlens::import::import_csv(
        &mut target.db.get().expect("conn"),
        &form,
        csv.as_bytes(),
        false,
    )
    .expect("import");
    assert_eq!(
        (report.stored, report.rejected.len()),
        (400, 0),
        "{:?}",
        report.rejected
    );
    let again = genderlens::import::import_csv(
        &mut target.db.get().expect("conn"),
        &form,
        csv.as_bytes(),
        false,
    )
    .expect("import");
    assert_eq!(
        (again.stored, again.already_present),
        (0, 400),
        "idempotent by submission_id"
    );
    assert_eq!(planner_report(&source).await, planner_report(&target).await);

    // The export is audited; a bad row rejects the whole file by default.
    let mut conn = source.db.get().expect("conn");
    let audit = genderlens::db::accounts::recent_audit(&mut conn, 10).expect("audit");
    assert!(audit
        .iter()
        .any(|a| a.action == "export" && a.detail.contains("400 responses")));
    let bad = "sex,age,district,has_children\nfemale,40,podilskyi,no\nmale,200,podilskyi,no\n";
    let report = genderlens::import::import_csv(
        &mut target.db.get().expect("conn"),
        &form,
        bad.as_bytes(),
        false,
    )
    .expect("import");
    assert_eq!(report.stored, 0);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].line, 3);
    assert!(report.rejected[0].reason.contains("age"));
    let skip = genderlens::import::import_csv(
        &mut target.db.get().expect("conn"),
        &form,
        bad.as_bytes(),
        true,
    )
    .expect("import");
    assert_eq!(skip.stored, 1);
}

/// The by-district report an admin reads, without its time stamp.
async fn planner_report(app: &TestApp) -> serde_json::Value {
    let admin = app.token(Role::Admin, &[]);
    let path = format!("/api/v1/forms/{PUBLIC}/indicators?by=district");
    let mut v: serde_json::Value = app.get_as(&path, &admin).await.json().await.expect("json");
    v.as_object_mut().expect("object").remove("generated_at");
    v
}

#[actix_web::test]
async fn xlsx_exports_open_with_a_dictionary_sheet() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let form = genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == PUBLIC)
        .expect("form");
    genderlens::demo::generate(&mut app.db.get().expect("conn"), &form, 50, 1).expect("demo");
    let token = app.token(Role::Planner, &[PUBLIC]);
    let r = app
        .get_as(
            &format!("/api/v1/forms/{PUBLIC}/responses?format=xlsx"),
            &token,
        )
        .await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.expect("bytes");
    use calamine::{Data, Reader};
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("an XLSX");
    assert_eq!(workbook.sheet_names(), ["responses", "dictionary"]);
    let text = |row: &[Data]| row.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let responses = workbook.worksheet_range("responses").expect("responses");
    let rows: Vec<&[Data]> = responses.rows().collect();
    assert_eq!(rows.len(), 51, "a header and one row per response");
    let header = text(rows[0]);
    assert_eq!(
        header[..4],
        ["id", "submission_id", "form_version", "received_at"]
    );
    for column in ["sex", "age", "district", "services_used/health"] {
        assert!(header.iter().any(|h| h == column), "{column} in {header:?}");
    }
    assert_eq!(rows[1][2], Data::Float(1.0), "the form version as a number");
    let dictionary = workbook.worksheet_range("dictionary").expect("dictionary");
    let dict: Vec<Vec<String>> = dictionary.rows().map(text).collect();
    assert_eq!(
        dict[0],
        ["column", "question", "type", "label_en", "label_uk", "choices", "note"]
    );
    assert_eq!(
        dict.len(),
        header.len() + 1,
        "a dictionary row for every column"
    );
    let age = dict.iter().find(|r| r[0] == "age").expect("age row");
    assert_eq!(age[1..5], ["age", "integer", "Age", "Вік"]);
}
