//! The residents' pages in a real headless Chromium over WebDriver: an example form in
//! two languages with and without JavaScript, skip logic, errors and their links, inert
//! script text, labels for screen readers. Phone-width screenshots go to
//! `target/screenshots/` for a person to look at.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KYIV: &str = "kyiv-social-services-2025";
const PHONE: (u32, u32) = (360, 780);

struct Browser {
    client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts chromedriver and a headless Chromium at phone width; `None` (the test is
/// skipped, saying why) where Chromium is not installed. `.ci/run` installs it and sets
/// `GENDERLENS_REQUIRE_BROWSER`, so there a missing browser fails instead of skipping.
async fn browser(javascript: bool) -> Option<Browser> {
    let Some(driver_path) = chromedriver() else {
        let why = "chromedriver not installed (apt-get install chromium chromium-driver)";
        assert!(
            std::env::var_os("GENDERLENS_REQUIRE_BROWSER").is_none(),
            "{why}, and GENDERLENS_REQUIRE_BROWSER is set"
        );
        eprintln!("skipped: {why}");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let driver = Command::new(driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=360,780",
    ];
    if !javascript {
        args.push("--blink-settings=scriptEnabled=false");
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => {
                let _ = client.set_window_size(PHONE.0, PHONE.1).await;
                return Some(Browser { client, driver });
            }
            Err(err) if Instant::now() > deadline => panic!("cannot start Chromium: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn kyiv_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.forms_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("forms")
    })
    .await
    .expect("app")
}

impl Browser {
    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.expect(css);
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    async fn visible(&self, css: &str) -> bool {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .is_displayed()
            .await
            .expect("displayed")
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .text()
            .await
            .expect("text")
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .attr(name)
            .await
            .expect("attr")
    }

    async fn submit(&self) {
        self.click("button[type=submit]").await;
        // The next page has loaded once the old form is gone or replaced.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Problems a screen reader user would meet: controls without a label or legend,
    /// `aria-describedby` and error links that point nowhere.
    async fn accessibility_problems(&self) -> Vec<String> {
        let script = r#"
            const problems = [];
            document.querySelectorAll('input:not([type=hidden]), textarea').forEach(el => {
              if (el.closest('.hp')) return;
              const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]'))
                || el.closest('label') || (el.closest('fieldset') && el.closest('fieldset').querySelector('legend'));
              if (!labelled) problems.push('no label: ' + (el.id || el.name));
            });
            document.querySelectorAll('[aria-describedby]').forEach(el => {
              el.getAttribute('aria-describedby').split(/\s+/).forEach(id => {
                if (!document.getElementById(id)) problems.push('describedby ' + id + ' missing');
              });
            });
            document.querySelectorAll('.error-summary a').forEach(a => {
              if (!document.getElementById(a.getAttribute('href').slice(1))) problems.push('dead link ' + a.href);
            });
            if (!document.documentElement.lang) problems.push('no page language');
            return problems;"#;
        let value = self.client.execute(script, vec![]).await.expect("script");
        serde_json::from_value(value).unwrap_or_default()
    }
}

fn stored_answers(app: &TestApp) -> Vec<Value> {
    let mut conn = app.db.get().expect("connection");
    use diesel::prelude::*;
    use genderlens::db::schema::responses;
    let rows: Vec<String> = responses::table
        .select(responses::answers)
        .load(&mut *conn)
        .expect("answers");
    rows.iter()
        .map(|r| serde_json::from_str(r).expect("json"))
        .collect()
}

#[actix_web::test]
async fn with_javascript_skip_logic_errors_and_a_saved_response_in_ukrainian() {
    let Some(b) = browser(true).await else { return };
    let app = kyiv_app().await;
    b.client
        .goto(&format!("{}/f/{KYIV}?lang=uk", app.address))
        .await
        .expect("open");
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("uk"));
    assert!(b.text("h1").await.contains("Оцінка потреб"));
    b.screenshot("kyiv-uk-phone").await;

    // Skip logic: the move date shows only for displaced people.
    assert!(!b.visible("#q-moved_to_kyiv").await);
    b.click("#displaced-yes").await;
    assert!(b.visible("#q-moved_to_kyiv").await);
    b.click("#displaced-no").await;
    assert!(!b.visible("#q-moved_to_kyiv").await);
    b.click("#displaced-yes").await;

    // A live constraint check: a move before 2014 is refused as it is typed.
    b.type_into("#input-moved_to_kyiv", "01012010").await;
    b.click("#sex-female").await;
    assert!(
        b.visible("#error-moved_to_kyiv").await,
        "the constraint message shows"
    );
    b.type_into("#input-moved_to_kyiv", "01052022").await;
    b.click("#sex-female").await;
    assert!(!b.visible("#error-moved_to_kyiv").await);

    // A mistake: too young, and required answers missing.
    b.type_into("#input-age", "7").await;
    b.type_into("#input-comments", "<script>window.__pwned = 1</script>")
        .await;
    b.submit().await;
    assert!(b.visible("#error-summary").await);
    assert_eq!(
        b.attr("#input-age", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert!(b.text("#error-age").await.contains("14"));
    assert_eq!(
        b.attr(".error-summary a[href='#input-age']", "href")
            .await
            .map(|h| h.ends_with("#input-age")),
        Some(true)
    );
    assert_eq!(b.accessibility_problems().await, Vec::<String>::new());
    b.screenshot("kyiv-uk-errors-phone").await;
    assert_eq!(app.count(KYIV), 0);

    // Fixed: the answers typed before are still there.
    b.type_into("#input-age", "34").await;
    for choice in [
        "#district-podilskyi",
        "#disability_status-no_difficulty",
        "#employment-employed_full",
        "#uses_transport-daily",
    ] {
        b.click(choice).await;
    }
    b.click("#feel_safe_night-unsafe").await;
    b.submit().await;
    assert_eq!(b.text("h1").await, "Дякуємо");
    let pwned = b
        .client
        .execute("return typeof window.__pwned", vec![])
        .await
        .expect("script");
    assert_eq!(pwned, json!("undefined"), "typed script stays inert");
    b.screenshot("kyiv-uk-thanks-phone").await;

    let answers = stored_answers(&app);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["moved_to_kyiv"], "2022-01-05");
    assert_eq!(answers[0]["feel_safe_night"], "unsafe");
    assert_eq!(
        answers[0]["comments"],
        "<script>window.__pwned = 1</script>"
    );
    let _ = b.client.clone().close().await;
}

/// A constraint without a `constraint_message`, checked whole as ODK's `regex()` does.
const LIVE_CHECK: &str = r#"
id: live-check
version: 1
title: { en: "Live check", uk: "Перевірка" }
languages: [uk, en]
disaggregation:
  sex: { question: sex, female: female, male: male }
questions:
  - { id: sex, type: select_one, choices: sex, required: true, label: { uk: Стать, en: Sex } }
  - { id: postcode, type: text, constraint: "regex(., '[0-9]{5}')", label: { uk: Індекс, en: Postcode } }
choices:
  sex: [ { value: female, label: { uk: Жінка, en: Female } }, { value: male, label: { uk: Чоловік, en: Male } } ]
"#;

#[actix_web::test]
async fn a_constraint_without_its_own_message_shows_the_default_one_as_typed() {
    let Some(b) = browser(true).await else { return };
    let forms = tempfile::tempdir().expect("tempdir");
    std::fs::write(forms.path().join("live-check.yaml"), LIVE_CHECK).expect("form");
    let dir = forms.path().to_path_buf();
    let app = spawn_app_with(Backend::Sqlite, move |s| s.forms_dir = dir)
        .await
        .expect("app");
    for (lang, message) in [
        ("uk", "Цю відповідь не можна прийняти."),
        ("en", "This answer is not accepted."),
    ] {
        b.client
            .goto(&format!("{}/f/live-check?lang={lang}", app.address))
            .await
            .expect("open");
        // Five digits inside a longer text: no match, as regex() matches the whole text.
        b.type_into("#input-postcode", "ab123456").await;
        b.click("#sex-female").await;
        assert!(
            b.visible("#error-postcode").await,
            "{lang}: the error shows"
        );
        assert_eq!(b.text("#error-postcode").await, message);
        assert_eq!(
            b.attr("#input-postcode", "aria-invalid").await.as_deref(),
            Some("true")
        );
        b.type_into("#input-postcode", "01234").await;
        b.click("#sex-male").await;
        assert!(!b.visible("#error-postcode").await, "{lang}: cleared");
    }
    let _ = b.client.clone().close().await;
}

#[actix_web::test]
async fn the_language_switcher_and_the_kazakh_default() {
    let Some(b) = browser(true).await else { return };
    let app = kyiv_app().await;
    b.client
        .goto(&format!("{}/f/{KYIV}?lang=uk", app.address))
        .await
        .expect("open");
    b.click("nav a[hreflang=en]").await;
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("en"));
    assert!(b.text("h1").await.contains("Kyiv social services"));
    assert_eq!(b.text("button[type=submit]").await, "Send my answers");
    b.client
        .goto(&format!("{}/f/kz-education-care-2025", app.address))
        .await
        .expect("open");
    assert_eq!(
        b.attr("html", "lang").await.as_deref(),
        Some("en"),
        "the browser asks for English"
    );
    b.client
        .goto(&format!("{}/f/kz-education-care-2025?lang=kk", app.address))
        .await
        .expect("open");
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("kk"));
    assert_eq!(b.text("button[type=submit]").await, "Жауаптарды жіберу");
    b.screenshot("kz-kk-phone").await;
    b.client
        .goto(&format!("{}/?lang=ru", app.address))
        .await
        .expect("open");
    assert_eq!(b.text("h1").await, "Открытые опросы");
    let _ = b.client.clone().close().await;
}

#[actix_web::test]
async fn without_javascript_every_question_shows_and_answers_that_do_not_apply_are_dropped() {
    let Some(b) = browser(false).await else {
        return;
    };
    let app = kyiv_app().await;
    b.client
        .goto(&format!("{}/f/{KYIV}?lang=en", app.address))
        .await
        .expect("open");
    assert!(
        b.visible("#q-moved_to_kyiv").await,
        "no script: every question shows"
    );
    assert!(b.visible("#q-care_hours_week").await);
    b.screenshot("kyiv-en-nojs-phone").await;
    b.click("#sex-male").await;
    // Without a script nothing is checked before the server: an age under 14 comes back
    // with the error beside it, linked from the summary, and the other answers kept.
    b.type_into("#input-age", "7").await;
    b.click("#district-obolonskyi").await;
    b.submit().await;
    assert!(
        b.visible("#error-summary").await,
        "the form again, with its errors"
    );
    assert!(b.text("#error-age").await.contains("14"));
    assert_eq!(
        b.attr("#input-age", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert_eq!(b.attr("#input-age", "value").await.as_deref(), Some("7"));
    assert!(
        b.client
            .find(Locator::Css("#sex-male"))
            .await
            .expect("sex")
            .is_selected()
            .await
            .expect("checked"),
        "answers kept"
    );
    assert!(b.accessibility_problems().await.is_empty());
    assert!(
        stored_answers(&app).is_empty(),
        "nothing stored from the invalid post"
    );
    b.type_into("#input-age", "52").await;
    for choice in [
        "#disability_status-some_difficulty",
        "#employment-retired",
        "#uses_transport-never",
        "#displaced-no",
    ] {
        b.click(choice).await;
    }
    // Answered although it does not apply (not displaced): dropped with a note.
    b.type_into("#input-moved_to_kyiv", "01052022").await;
    b.submit().await;
    assert_eq!(b.text("h1").await, "Thank you");
    assert!(b.text(".note").await.contains("When did you move to Kyiv?"));
    let answers = stored_answers(&app);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["sex"], "male");
    assert!(answers[0].get("moved_to_kyiv").is_none());
    let _ = b.client.clone().close().await;
}

#[actix_web::test]
async fn a_planner_signs_in_and_filters_the_dashboard() {
    let Some(b) = browser(true).await else { return };
    let app = kyiv_app().await;
    genderlens::auth::add_user(
        &mut app.db.get().expect("conn"),
        "planner@kyivcity.example",
        genderlens::auth::Role::Planner,
        Some("a long enough password"),
        &[KYIV.to_owned()],
    )
    .expect("planner");
    let form = genderlens::form::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == KYIV)
        .expect("form");
    genderlens::demo::generate(&mut app.db.get().expect("conn"), &form, 2_000, 11).expect("demo");
    let _ = b.client.set_window_size(1280, 2000).await;
    b.client
        .goto(&format!("{}/dashboard", app.address))
        .await
        .expect("open");
    // Signed out, the page asked for is the sign-in form; signing in returns to it.
    assert_eq!(b.text("h1").await, "Sign in");
    b.type_into("#email", "planner@kyivcity.example").await;
    b.type_into("#password", "a long enough password").await;
    b.submit().await;
    assert_eq!(b.text("h1").await, "Your surveys");
    b.click(&format!("a[href^='/dashboard/{KYIV}?']")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let by = b.client.find(Locator::Css("#by")).await.expect("by");
    by.select_by_value("district")
        .await
        .expect("select district");
    b.click(".filters button").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cell = b.client.find(Locator::Css("#cell")).await.expect("cell");
    cell.select_by_value("podilskyi")
        .await
        .expect("select cell");
    b.click(".filters button").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b
        .text("main")
        .await
        .contains("Largest and most significant gaps (Podilskyi)"));
    let charts = b
        .client
        .find_all(Locator::Css("svg.chart"))
        .await
        .expect("charts");
    assert!(charts.len() > 10, "a chart for each question");
    b.screenshot("dashboard-kyiv-podilskyi").await;
    // The switcher keeps the filters: the same cell, in Ukrainian.
    b.click("nav a[hreflang=uk]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("uk"));
    assert!(b
        .text("main")
        .await
        .contains("Найбільші та найзначущіші розриви (Подільський)"));
    b.screenshot("dashboard-kyiv-podilskyi-uk").await;
    let _ = b.client.clone().close().await;
}
