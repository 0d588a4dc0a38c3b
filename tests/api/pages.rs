//! The residents' pages over plain HTTP: languages, anti-forgery token, honeypot,
//! idempotent submit, status pages, security headers, rate limiting.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::on_every_backend;

const FORM: &str = "test-survey";

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).map(|i| i + marker.len()).expect(name);
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn form_page(app: &TestApp, query: &str) -> (u16, String) {
    let r = app.get(&format!("/f/{FORM}{query}")).await;
    (r.status().as_u16(), r.text().await.expect("html"))
}

async fn post(app: &TestApp, form: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = app
        .client
        .post(format!("{}/f/{form}?lang=en", app.address))
        .form(fields)
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.text().await.expect("html"))
}

fn valid_fields<'a>(token: &'a str, submission: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("_token", token),
        ("_submission_id", submission),
        ("sex", "male"),
        ("age", "41"),
        ("district", "obolonskyi"),
        ("has_children", "yes"),
        ("childcare_hours", "12,5"),
        ("services_used", "health"),
        ("services_used", "social"),
        ("comments", "<b>черга</b>"),
    ]
}

async fn language_comes_from_query_header_or_default(app: TestApp) {
    let (status, page) = form_page(&app, "?lang=uk").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html lang=\"uk\">") && page.contains("Тестове опитування"));
    let r = app
        .client
        .get(format!("{}/f/{FORM}", app.address))
        .header("accept-language", "uk-UA,uk;q=0.9,en;q=0.5")
        .send()
        .await
        .expect("get");
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Надіслати відповіді"),
        "the interface speaks Ukrainian too"
    );
    let (_, page) = form_page(&app, "?lang=de").await;
    assert!(
        page.contains("<html lang=\"en\">"),
        "unknown language: the form's default"
    );
}

async fn a_valid_post_is_stored_once_even_when_sent_twice(app: TestApp) {
    let (_, page) = form_page(&app, "?lang=en").await;
    let (token, submission) = (hidden(&page, "_token"), hidden(&page, "_submission_id"));
    let fields = valid_fields(&token, &submission);
    let (first, body) = post(&app, FORM, &fields).await;
    assert_eq!(first, 201, "{body}");
    assert!(body.contains("Thank you"));
    let (second, body) = post(&app, FORM, &fields).await;
    assert_eq!(second, 201, "a double tap shows the same thank-you: {body}");
    assert_eq!(app.count(FORM), 1);
    let mut conn = app.db.get().expect("connection");
    let row = genderlens::db::responses::find_by_submission(&mut conn, FORM, &submission)
        .expect("query")
        .expect("stored");
    let stored = app.stored(&row.id);
    assert!(
        stored.answers.contains("\"childcare_hours\":12.5"),
        "decimal comma accepted: {}",
        stored.answers
    );
    assert!(stored.answers.contains("<b>черга</b>"));
}

async fn errors_come_back_beside_each_answer_escaped(app: TestApp) {
    let (_, page) = form_page(&app, "?lang=en").await;
    let (token, submission) = (hidden(&page, "_token"), hidden(&page, "_submission_id"));
    let (status, body) = post(
        &app,
        FORM,
        &[
            ("_token", &token),
            ("_submission_id", &submission),
            ("sex", "female"),
            ("age", "abc"),
            ("comments", "<script>alert(1)</script>"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body.contains("href=\"#input-age\""),
        "the summary links to the field"
    );
    assert!(body.contains("Please enter a number."));
    assert!(body.contains("aria-invalid=\"true\""));
    assert!(
        !body.contains("<script>alert(1)</script>"),
        "nothing typed is rendered unescaped"
    );
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "the answer is kept, escaped"
    );
    assert!(
        body.contains("value=\"female\" id=\"sex-female\" checked"),
        "choices are kept"
    );
    assert_eq!(app.count(FORM), 0);
}

async fn forged_closed_honeypot_and_oversized_posts_store_nothing(app: TestApp) {
    let (_, page) = form_page(&app, "?lang=en").await;
    let (token, submission) = (hidden(&page, "_token"), hidden(&page, "_submission_id"));
    let mut fields = valid_fields("1.deadbeef", &submission);
    assert_eq!(post(&app, FORM, &fields).await.0, 403, "a forged token");
    fields[0].1 = &token;
    fields[1].1 = "7f0c1c5e-8a3c-4a7e-9d55-2f4b6b8e9a01";
    assert_eq!(
        post(&app, FORM, &fields).await.0,
        403,
        "a token for another submission"
    );
    let mut bot = valid_fields(&token, &submission);
    bot.push(("_website", "http://spam.example"));
    assert_eq!(post(&app, FORM, &bot).await.0, 201, "bots are thanked");
    let huge = "x".repeat(70 * 1024);
    let mut big = valid_fields(&token, &submission);
    big.push(("comments", &huge));
    assert_eq!(post(&app, FORM, &big).await.0, 413);
    assert_eq!(post(&app, "closed-survey", &[("sex", "f")]).await.0, 409);
    assert_eq!(app.get("/f/closed-survey").await.status(), 409);
    assert_eq!(app.get("/f/no-such-form").await.status(), 404);
    assert_eq!(app.count(FORM), 0);
}

async fn pages_carry_strict_security_headers(app: TestApp) {
    for path in ["/", "/f/test-survey", "/api/v1/forms"] {
        let r = app.get(path).await;
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(
            h.get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff")
        );
        assert!(h.get("referrer-policy").is_some());
    }
    let (_, page) = form_page(&app, "").await;
    assert!(!page.contains("<script>"), "no inline script");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external fonts, scripts or CDNs"
    );
}

on_every_backend!(
    language_comes_from_query_header_or_default,
    a_valid_post_is_stored_once_even_when_sent_twice,
    errors_come_back_beside_each_answer_escaped,
    forged_closed_honeypot_and_oversized_posts_store_nothing,
    pages_carry_strict_security_headers,
);

#[actix_web::test]
async fn too_many_posts_get_a_friendly_429() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit_per_second = 1;
        s.rate_limit_burst = 3;
    })
    .await
    .expect("app");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&app, FORM, &[("sex", "female")]).await);
    }
    let limited = statuses
        .iter()
        .find(|(s, _)| *s == 429)
        .expect("rate limited");
    assert!(limited.1.contains("Забагато спроб") && limited.1.contains("Too many attempts"));
    let mut api = Vec::new();
    for _ in 0..6 {
        api.push(
            app.submit(FORM, &serde_json::json!({"answers": {}}))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(api.last(), Some(&429), "{api:?}");
    let body: serde_json::Value = app
        .submit(FORM, &serde_json::json!({"answers": {}}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(
        app.get("/f/test-survey").await.status(),
        200,
        "reading the form is never limited"
    );
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit_per_second = 1;
        s.rate_limit_burst = 2;
        s.trust_forwarded_for = true;
    })
    .await
    .expect("app");
    let send = |client: &'static str| {
        app.client
            .post(format!("{}/api/v1/forms/{FORM}/submissions", app.address))
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({"answers": {}}))
            .send()
    };
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(send("203.0.113.7").await.expect("send").status().as_u16());
    }
    assert_eq!(first.last(), Some(&429), "{first:?}");
    // Another resident behind the same proxy is not limited by the first; a spoofed
    // leading entry does not choose the bucket, the proxy's appended one does.
    assert_eq!(send("198.51.100.4").await.expect("send").status(), 422);
    assert_eq!(
        send("198.51.100.9, 203.0.113.7")
            .await
            .expect("send")
            .status(),
        429
    );
}
