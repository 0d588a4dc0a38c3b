//! Planners on the web: sign-in with a session cookie, CSRF on every state-changing form,
//! throttling of failed sign-ins, the dashboard and the admins' audit log.

use crate::helpers::{
    add_user, browser_like, csrf_of, open, sign_in, spawn_app_with, Backend, TestApp,
};
use genderlens::auth::Role;

const FORM: &str = "test-survey";

#[actix_web::test]
async fn sign_in_session_csrf_and_sign_out() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.public_url = "https://survey.example".into()
    })
    .await
    .expect("app");
    add_user(&app, "planner@example.org", Role::Planner, &[FORM]);
    let client = browser_like();
    // Signed out: 401 with the sign-in form right there, returning to the page asked for.
    let wanted = format!("/dashboard/{FORM}?by=district&lang=uk");
    let refused = open(&app, &client, &wanted).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["cache-control"],
        "no-store",
        "planner pages are not kept by browsers or proxies"
    );
    let page = refused.text().await.expect("html");
    assert!(
        page.contains("<html lang=\"uk\">") && page.contains("Увійти"),
        "in the planner's language: {page}"
    );
    assert!(page.contains("name=\"password\""), "{page}");
    assert!(
        page.contains("name=\"next\" value=\"/dashboard/test-survey?by=district&#38;lang=uk\""),
        "{page}"
    );

    // A forged sign-in (no session CSRF token) is refused.
    let forged = client
        .post(format!("{}/login", app.address))
        .form(&[
            ("csrf", "nope"),
            ("email", "planner@example.org"),
            ("password", "a long enough password"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);

    let ok = client
        .post(format!("{}/login?lang=uk", app.address))
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("email", "planner@example.org"),
            ("password", "a long enough password"),
            ("next", wanted.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 303);
    assert_eq!(
        ok.headers()["location"],
        wanted.as_str(),
        "back to that page"
    );
    let cookie = ok
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
        "{cookie}"
    );
    let dashboard = open(&app, &client, "/dashboard").await;
    assert_eq!(dashboard.status(), 200);
    let page = dashboard.text().await.expect("html");
    assert!(page.contains("planner@example.org") && page.contains("/dashboard/test-survey"));
    assert!(
        !page.contains("closed-survey"),
        "only granted surveys are listed"
    );
    assert_eq!(
        open(&app, &client, &format!("/dashboard/{FORM}"))
            .await
            .status(),
        200
    );
    let forbidden = open(&app, &client, "/dashboard/closed-survey?lang=uk").await;
    assert_eq!(forbidden.status(), 403);
    assert!(forbidden.headers()["content-type"]
        .to_str()
        .is_ok_and(|c| c.starts_with("text/html")));
    assert!(forbidden
        .text()
        .await
        .expect("html")
        .contains("Немає доступу"));
    let missing = open(&app, &client, "/dashboard/no-such-survey").await;
    assert_eq!(missing.status(), 404);
    assert!(missing
        .text()
        .await
        .expect("html")
        .contains("<h1>Page not found</h1>"));
    assert_eq!(open(&app, &client, "/admin/audit").await.status(), 403);
    // The session also opens the planner API (the dashboard's download links).
    assert_eq!(
        open(&app, &client, &format!("/api/v1/forms/{FORM}/responses"))
            .await
            .status(),
        200
    );

    let forged_logout = client
        .post(format!("{}/logout", app.address))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .expect("post");
    assert_eq!(
        forged_logout.status(),
        403,
        "signing out needs the CSRF token too"
    );
    let csrf = csrf_of(&page);
    let out = client
        .post(format!("{}/logout", app.address))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(out.status(), 303);
    assert_eq!(open(&app, &client, "/dashboard").await.status(), 401);
}

#[actix_web::test]
async fn signing_in_never_leads_to_another_site() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.expect("app");
    add_user(&app, "planner@example.org", Role::Planner, &[FORM]);
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let client = browser_like();
        let page = client
            .get(format!(
                "{}/login?{}",
                app.address,
                serde_urlencoded::to_string([("next", next)]).expect("query")
            ))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("html");
        let ok = client
            .post(format!("{}/login", app.address))
            .form(&[
                ("csrf", csrf_of(&page).as_str()),
                ("email", "planner@example.org"),
                ("password", "a long enough password"),
                ("next", next),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(ok.status(), 303);
        assert_eq!(ok.headers()["location"], "/dashboard?lang=en", "{next}");
    }
}

#[actix_web::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.expect("app");
    add_user(&app, "admin@example.org", Role::Admin, &[]);
    let client = browser_like();
    for _ in 0..5 {
        assert_eq!(
            sign_in(&app, &client, "admin@example.org", "wrong password!!")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        sign_in(&app, &client, "admin@example.org", "a long enough password")
            .await
            .status(),
        429,
        "locked out even with the right password"
    );
    assert_eq!(
        sign_in(&app, &client, "nobody@example.org", "whatever password")
            .await
            .status(),
        401
    );
}

#[actix_web::test]
async fn one_address_trying_many_emails_is_limited() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.rate_limit_per_second = 5)
        .await
        .expect("app");
    let client = browser_like();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let email = format!("guess{i}@example.org");
        statuses.push(
            sign_in(&app, &client, &email, "a guessed password")
                .await
                .status()
                .as_u16(),
        );
    }
    // Each sign-in is a GET of the page (not limited) and a POST; the burst is 20 POSTs.
    assert!(statuses[..20].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[20..].contains(&429), "{statuses:?}");
}

#[actix_web::test]
async fn admins_see_the_dashboard_gaps_and_the_audit_log() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.expect("app");
    add_user(&app, "admin@example.org", Role::Admin, &[]);
    let form = genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == FORM)
        .expect("form");
    genderlens::demo::generate(&mut app.db.get().expect("conn"), &form, 600, 4).expect("demo");
    // A notification the mail server refused for good is shown to admins.
    {
        use genderlens::db::outbox;
        let mut conn = app.db.get().expect("conn");
        let now = chrono::Utc::now().naive_utc();
        let row = outbox::OutboxRow {
            id: "n1".into(),
            dedupe_key: "test:n1".into(),
            kind: "digest".into(),
            form_id: FORM.into(),
            recipient: "gone@example.org".into(),
            payload: "{}".into(),
            status: "failed".into(),
            attempts: 8,
            next_attempt_at: now,
            locked_until: None,
            last_error: Some("550 <script>mailbox unavailable".into()),
            created_at: now,
            sent_at: None,
        };
        assert!(outbox::enqueue(&mut conn, &row).expect("enqueue"));
    }
    let client = browser_like();
    assert_eq!(
        sign_in(&app, &client, "admin@example.org", "a long enough password")
            .await
            .status(),
        303
    );
    let page = open(
        &app,
        &client,
        &format!("/dashboard/{FORM}?by=district&cell=podilskyi"),
    )
    .await
    .text()
    .await
    .expect("html");
    assert!(page.contains("Largest and most significant gaps (Podilskyi)"));
    let list = open(&app, &client, "/dashboard")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        list.contains("Audit log: exports, imports, deletions and failed notifications</a>"),
        "admins find failed mail from the dashboard: {list}"
    );
    assert!(
        page.contains("<option value=\"podilskyi\" selected>Podilskyi</option>")
            && page.contains("<option value=\"district\" selected>District</option>"),
        "filters show labels"
    );
    assert!(
        page.contains("href=\"/dashboard/test-survey?lang=uk&#38;by=district&#38;cell=podilskyi\""),
        "the switcher keeps the filters"
    );
    assert!(
        page.contains("<svg") && page.contains("<title id="),
        "charts with text alternatives"
    );
    assert!(page.contains("/api/v1/forms/test-survey/indicators.csv?by=district"));
    let _ = open(
        &app,
        &client,
        &format!("/api/v1/forms/{FORM}/responses?format=csv"),
    )
    .await
    .text()
    .await;
    let audit = open(&app, &client, "/admin/audit")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        audit.contains("admin@example.org") && audit.contains("export"),
        "{audit}"
    );
    let failed = &audit[audit.find("Notifications that failed").expect("section")..];
    assert!(
        failed.contains("gone@example.org") && failed.contains("550 &#60;script&#62;mailbox"),
        "{failed}"
    );
    assert!(audit.contains("<title>Audit log · genderlens</title>"));
}

#[actix_web::test]
async fn admins_upload_paper_surveys_on_the_dashboard_in_their_language() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.expect("app");
    add_user(&app, "admin@example.org", Role::Admin, &[]);
    add_user(&app, "planner@example.org", Role::Planner, &["*"]);
    let upload = |client: reqwest::Client, csrf: String| {
        let csv = "sex,age,district,has_children\nfemale,40,podilskyi,no\nmale,200,podilskyi,no\n";
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .text("skip_invalid", "1")
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("paper.csv"),
            );
        let url = format!("{}/dashboard/{FORM}/import?lang=uk", app.address);
        async move { client.post(url).multipart(form).send().await.expect("post") }
    };
    let admin = browser_like();
    assert_eq!(
        sign_in(&app, &admin, "admin@example.org", "a long enough password")
            .await
            .status(),
        303
    );
    let page = open(&app, &admin, &format!("/dashboard/{FORM}?lang=uk"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Чи маєте ви дітей до 18 років?"),
        "labels in the chosen language"
    );
    assert!(
        page.contains("Імпорт паперових анкет")
            && page.contains("Найбільші та найзначущіші розриви"),
        "interface words in the chosen language"
    );
    assert_eq!(upload(admin.clone(), "forged".into()).await.status(), 403);
    let done = upload(admin.clone(), csrf_of(&page)).await;
    assert_eq!(done.status(), 200);
    let body = done.text().await.expect("html");
    assert!(
        body.contains("Збережено: 1") && body.contains("відхилено: 1"),
        "{body}"
    );
    assert!(
        body.contains("<td>3</td>"),
        "the rejected line is named: {body}"
    );
    assert_eq!(app.count(FORM), 1);

    let planner = browser_like();
    assert_eq!(
        sign_in(
            &app,
            &planner,
            "planner@example.org",
            "a long enough password"
        )
        .await
        .status(),
        303
    );
    let page = open(&app, &planner, &format!("/dashboard/{FORM}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        !page.contains("Import paper surveys"),
        "planners do not import"
    );
    assert_eq!(upload(planner, csrf_of(&page)).await.status(), 403);
}

/// The dashboard's responses-over-time: every day from the first to the last response
/// (an even x-axis), and only the chosen cell when one is.
async fn the_timeline_has_every_day_and_follows_the_cell(app: TestApp) {
    let form = genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == FORM)
        .expect("form");
    let mut conn = app.db.get().expect("conn");
    // Six responses over 30 days: most days have none.
    genderlens::demo::generate(&mut conn, &form, 6, 3).expect("demo");
    use genderlens::db::responses::daily_counts;
    let all = daily_counts(&mut conn, FORM, "female", "male", None).expect("days");
    let dates: Vec<chrono::NaiveDate> = all.iter().map(|d| d.0.parse().expect("a date")).collect();
    assert!(all.len() >= 20, "{all:?}");
    assert!(
        dates.windows(2).all(|w| (w[1] - w[0]).num_days() == 1),
        "no day is skipped: {all:?}"
    );
    assert!(all.iter().any(|d| d.1 + d.2 == 0));
    let district = form
        .disaggregation
        .by
        .iter()
        .position(|d| d == "district")
        .expect("district is a dimension");
    let stored: Vec<String> = {
        use diesel::prelude::*;
        use genderlens::db::schema::responses;
        responses::table
            .filter(responses::sex.eq_any(["female", "male"]))
            .select(responses::answers)
            .load(&mut *conn)
            .expect("answers")
    };
    let in_podil = stored
        .iter()
        .filter(|a| a.contains("\"district\":\"podilskyi\""))
        .count() as u64;
    assert!(
        in_podil > 0 && in_podil < 6,
        "a cell, not everyone: {in_podil}"
    );
    let podil = daily_counts(
        &mut conn,
        FORM,
        "female",
        "male",
        Some((district, "podilskyi")),
    )
    .expect("days");
    assert_eq!(podil.iter().map(|d| d.1 + d.2).sum::<u64>(), in_podil);
}

crate::on_every_backend!(the_timeline_has_every_day_and_follows_the_cell);
