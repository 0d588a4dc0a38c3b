//! Notifications against a real SMTP conversation on loopback: a small SMTP server in the
//! test records what lettre delivers.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::on_every_backend;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
struct Delivered {
    recipients: Vec<String>,
    data: String,
}

/// An SMTP server that accepts everything and keeps each message. While `hang` is set it
/// reads a message but never confirms it, like a server that dies mid-send; such
/// messages go to `unconfirmed`, never to `delivered`.
#[derive(Clone, Default)]
struct Inbox {
    delivered: Arc<Mutex<Vec<Delivered>>>,
    hang: Arc<AtomicBool>,
    unconfirmed: Arc<Mutex<Vec<Delivered>>>,
    /// How long the server takes to confirm each message, like a slow relay.
    delay_ms: Arc<AtomicU64>,
}

impl Inbox {
    async fn listen(&self, listener: TcpListener) {
        let inbox = self.clone();
        actix_web::rt::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let inbox = inbox.clone();
                actix_web::rt::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 localhost ESMTP test\r\n").await;
                    let mut recipients = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250 localhost\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            recipients.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                            b"250 OK\r\n"
                        } else if upper.starts_with("DATA") {
                            let _ = write.write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            let message = Delivered {
                                recipients: std::mem::take(&mut recipients),
                                data,
                            };
                            if inbox.hang.load(Ordering::SeqCst) {
                                inbox
                                    .unconfirmed
                                    .lock()
                                    .expect("inbox")
                                    .push(message.clone());
                                std::future::pending::<()>().await;
                            }
                            let delay = inbox.delay_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                            inbox.delivered.lock().expect("inbox").push(message);
                            b"250 OK queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
    }

    fn matching(&self, needle: &str) -> Vec<Delivered> {
        self.delivered
            .lock()
            .expect("inbox")
            .iter()
            .filter(|m| m.data.contains(needle))
            .cloned()
            .collect()
    }

    async fn wait_for(&self, needle: &str, timeout: Duration) -> Vec<Delivered> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let found = self.matching(needle);
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.matching(needle)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

async fn app_mailing_to(port: u16, backend: Backend, database: Option<String>) -> Option<TestApp> {
    spawn_app_with(backend, |s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}?tls=none"));
        s.mail_poll_seconds = 1;
        s.mail_retry_seconds = 1;
        s.mail_from = "genderlens@city.example".into();
        if let Some(url) = database {
            s.database_url = url;
        }
    })
    .await
}

async fn three_responses(app: &TestApp) {
    for (i, sex) in ["female", "male", "female"].into_iter().enumerate() {
        let answers =
            json!({ "sex": sex, "age": 30 + i, "district": "podilskyi", "has_children": "no" });
        assert_eq!(
            app.submit("test-survey", &json!({ "answers": answers }))
                .await
                .status(),
            201
        );
    }
}

const MILESTONE: &str = "Subject: Test survey: 3 responses";

/// A forms directory holding the fixture forms and `extra` (file name, YAML).
fn forms_dir_with(extra: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(crate::helpers::fixtures().join("forms")).expect("fixtures") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    for (name, yaml) in extra {
        std::fs::write(dir.path().join(name), yaml).expect("write form");
    }
    dir
}

fn outbox_rows(app: &TestApp) -> Vec<genderlens::db::outbox::OutboxRow> {
    let mut conn = app.db.get().expect("conn");
    ["pending", "sent", "failed", "skipped"]
        .iter()
        .flat_map(|s| genderlens::db::outbox::with_status(&mut conn, s).expect("query"))
        .collect()
}

/// Waits until some outbox row satisfies `found`.
async fn wait_for_row(
    app: &TestApp,
    found: impl Fn(&genderlens::db::outbox::OutboxRow) -> bool,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !outbox_rows(app).iter().any(&found) {
        assert!(Instant::now() < deadline, "no outbox row: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_form_not_open_yet_gets_no_closing_report() {
    let later = "id: later-survey\nversion: 1\ntitle: { en: Later }\nlanguages: [en]\n\
                 opens_at: 2099-01-01T00:00:00Z\nowners: [owner@example.org]\n\
                 disaggregation:\n  sex: { question: sex, female: f, male: m }\n\
                 questions:\n  - { id: sex, type: select_one, choices: sex, label: { en: Sex } }\n\
                 choices:\n  sex: [ { value: f, label: { en: F } }, { value: m, label: { en: M } } ]\n";
    let forms = forms_dir_with(&[("later.yaml", later.to_owned())]);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.forms_dir = forms.path().to_owned();
        s.mail_poll_seconds = 1;
    })
    .await
    .expect("app");
    wait_for_row(
        &app,
        |r| r.kind == "closing" && r.form_id == "closed-survey",
        "the closed survey's report",
    )
    .await;
    // Two more passes of the worker.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !outbox_rows(&app)
            .iter()
            .any(|r| r.form_id == "later-survey"),
        "a form that has not opened is not closed"
    );
}

#[actix_web::test]
async fn a_milestone_email_arrives_with_both_parts() {
    let port = free_port();
    let inbox = Inbox::default();
    inbox
        .listen(TcpListener::bind(("127.0.0.1", port)).await.expect("bind"))
        .await;
    let app = app_mailing_to(port, Backend::Sqlite, None)
        .await
        .expect("app");
    three_responses(&app).await;
    let mail = inbox.wait_for(MILESTONE, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 1, "one milestone message");
    let m = &mail[0];
    assert_eq!(m.recipients, vec!["owner@example.org".to_owned()]);
    for part in [
        "text/plain",
        "text/html",
        "Message-ID:",
        "Date:",
        "From: genderlens@city.example",
        "reached 3 responses",
    ] {
        assert!(m.data.contains(part), "{part} missing in\n{}", m.data);
    }
    // The digest of the same responses comes too, with its unsubscribe header.
    let digest = inbox
        .wait_for("new responses", Duration::from_secs(10))
        .await;
    assert_eq!(digest.len(), 1);
    let unsubscribe =
        "List-Unsubscribe: <http://127.0.0.1:8080/unsubscribe/test-survey/owner@example.org/";
    assert!(digest[0].data.contains(unsubscribe));
    assert!(
        m.data.contains(unsubscribe),
        "milestones can be stopped too"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox.matching(MILESTONE).len(), 1, "sent once");

    // The closed fixture survey sends its closing report once, in its owners' language.
    let closing = inbox
        .wait_for("Content-Language: uk", Duration::from_secs(10))
        .await;
    assert_eq!(closing.len(), 1);
    assert_eq!(closing[0].recipients, vec!["owner@example.org".to_owned()]);
    assert!(!closing[0].data.contains("final report"), "not in English");
    assert_eq!(
        inbox.matching("Content-Language: en").len(),
        2,
        "milestone and digest"
    );

    // The digest's link is the opt-out link (its page and POST have their own test).
    let data = &digest[0].data;
    let start = data.find("/unsubscribe/").expect("link");
    let path: String = data[start..].chars().take_while(|c| *c != '>').collect();
    assert_eq!(app.get(&path).await.status(), 200);
}

#[actix_web::test]
async fn smtp_down_means_retried_and_delivered_once_it_is_back() {
    let port = free_port();
    let app = app_mailing_to(port, Backend::Sqlite, None)
        .await
        .expect("app");
    three_responses(&app).await;
    // Nothing listens: the message is attempted and kept for a retry.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending =
            genderlens::db::outbox::with_status(&mut app.db.get().expect("conn"), "pending")
                .expect("query");
        if pending
            .iter()
            .any(|r| r.kind == "milestone" && r.attempts >= 1 && r.last_error.is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inbox = Inbox::default();
    inbox
        .listen(TcpListener::bind(("127.0.0.1", port)).await.expect("bind"))
        .await;
    assert_eq!(
        inbox
            .wait_for(MILESTONE, Duration::from_secs(30))
            .await
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        inbox.matching(MILESTONE).len(),
        1,
        "no duplicate after the retry"
    );
    let sent = genderlens::db::outbox::with_status(&mut app.db.get().expect("conn"), "sent")
        .expect("query");
    assert!(sent
        .iter()
        .any(|r| r.kind == "milestone" && r.attempts >= 2));
}

#[actix_web::test]
async fn two_instances_on_postgres_send_each_message_once() {
    let port = free_port();
    let inbox = Inbox::default();
    inbox
        .listen(TcpListener::bind(("127.0.0.1", port)).await.expect("bind"))
        .await;
    let Some(first) = app_mailing_to(port, Backend::Postgres, None).await else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run two instances on PostgreSQL");
        return;
    };
    let second = app_mailing_to(port, Backend::Postgres, Some(first.database_url.clone()))
        .await
        .expect("second instance");
    three_responses(&first).await;
    assert_eq!(
        inbox
            .wait_for(MILESTONE, Duration::from_secs(20))
            .await
            .len(),
        1
    );
    assert_eq!(
        inbox
            .wait_for("new responses", Duration::from_secs(10))
            .await
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        inbox.matching(MILESTONE).len(),
        1,
        "exactly one copy across both instances"
    );
    assert_eq!(inbox.matching("new responses").len(), 1);
    drop(second);
}

#[actix_web::test]
async fn a_server_killed_mid_send_delivers_after_restart_once() {
    use std::process::{Command, Stdio};
    let smtp_port = free_port();
    let inbox = Inbox::default();
    inbox.hang.store(true, Ordering::SeqCst);
    inbox
        .listen(
            TcpListener::bind(("127.0.0.1", smtp_port))
                .await
                .expect("bind"),
        )
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let address = format!("127.0.0.1:{}", free_port());
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_genderlens"))
            .arg("serve")
            .env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml")
            .env("GENDERLENS_BIND", &address)
            .env(
                "GENDERLENS_DATABASE_URL",
                format!("sqlite://{}/g.db", dir.path().display()),
            )
            .env(
                "GENDERLENS_FORMS_DIR",
                crate::helpers::fixtures().join("forms"),
            )
            .env("GENDERLENS_DATA_DIR", dir.path())
            .env(
                "GENDERLENS_SMTP_URL",
                format!("smtp://127.0.0.1:{smtp_port}?tls=none"),
            )
            .env("GENDERLENS_MAIL_POLL_SECONDS", "1")
            .env("GENDERLENS_MAIL_RETRY_SECONDS", "1")
            .env("GENDERLENS_MAIL_LEASE_SECONDS", "2")
            .env("GENDERLENS_RATE_LIMIT_PER_SECOND", "0")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("start genderlens")
    };
    let client = reqwest::Client::new();
    let ready = |client: reqwest::Client, address: String| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while client
            .get(format!("http://{address}/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut server = start();
    ready(client.clone(), address.clone()).await;
    for (i, sex) in ["female", "male", "female"].into_iter().enumerate() {
        let answers =
            json!({ "sex": sex, "age": 30 + i, "district": "podilskyi", "has_children": "no" });
        let r = client
            .post(format!(
                "http://{address}/api/v1/forms/test-survey/submissions"
            ))
            .json(&json!({ "answers": answers }))
            .send()
            .await
            .expect("submit");
        assert_eq!(r.status(), 201);
    }
    // Wait until a message is on the wire and unconfirmed, then kill the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.unconfirmed.lock().expect("inbox").is_empty() {
        assert!(Instant::now() < deadline, "no send started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().expect("SIGKILL");
    let _ = server.wait();
    inbox.hang.store(false, Ordering::SeqCst);

    let mut server = start();
    ready(client.clone(), address.clone()).await;
    let hung = inbox.unconfirmed.lock().expect("inbox")[0].data.clone();
    let subject = hung
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .expect("subject")
        .to_owned();
    assert_eq!(
        inbox
            .wait_for(&subject, Duration::from_secs(30))
            .await
            .len(),
        1,
        "delivered after the restart"
    );
    assert_eq!(
        inbox
            .wait_for(MILESTONE, Duration::from_secs(30))
            .await
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(inbox.matching(&subject).len(), 1, "once");
    assert_eq!(inbox.matching(MILESTONE).len(), 1, "once");
    server.kill().expect("stop");
    let _ = server.wait();
}

/// A form with several owners, closed: one closing report each.
fn crowd_form(owners: usize) -> String {
    let owners: Vec<String> = (1..=owners)
        .map(|i| format!("o{i:02}@example.org"))
        .collect();
    format!(
        "id: crowd-survey\nversion: 1\ntitle: {{ en: Crowd }}\nlanguages: [en]\nstatus: closed\n\
         owners: [{}]\ndisaggregation:\n  sex: {{ question: sex, female: f, male: m }}\n\
         questions:\n  - {{ id: sex, type: select_one, choices: sex, label: {{ en: Sex }} }}\n\
         choices:\n  sex: [ {{ value: f, label: {{ en: F }} }}, {{ value: m, label: {{ en: M }} }} ]\n",
        owners.join(", ")
    )
}

#[actix_web::test]
async fn a_slow_relay_and_two_instances_still_send_each_message_once() {
    let port = free_port();
    let inbox = Inbox::default();
    // Seven messages at 1.2 s each outlast the 3 s lease many times over.
    inbox.delay_ms.store(1200, Ordering::SeqCst);
    inbox
        .listen(TcpListener::bind(("127.0.0.1", port)).await.expect("bind"))
        .await;
    let forms = forms_dir_with(&[("crowd.yaml", crowd_form(4))]);
    let start = |database: Option<String>| {
        let forms = forms.path().to_owned();
        spawn_app_with(Backend::Postgres, move |s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}?tls=none"));
            s.mail_poll_seconds = 1;
            s.mail_lease_seconds = 3;
            s.forms_dir = forms;
            if let Some(url) = database {
                s.database_url = url;
            }
        })
    };
    let Some(first) = start(None).await else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run two instances on PostgreSQL");
        return;
    };
    let second = start(Some(first.database_url.clone()))
        .await
        .expect("second instance");
    three_responses(&first).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while inbox.delivered.lock().expect("inbox").len() < 7 {
        assert!(Instant::now() < deadline, "not every message arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let delivered = inbox.delivered.lock().expect("inbox").clone();
    let mut seen: Vec<(String, Vec<String>)> = delivered
        .iter()
        .map(|m| {
            let subject = m.data.lines().find(|l| l.starts_with("Subject:"));
            (subject.unwrap_or_default().to_owned(), m.recipients.clone())
        })
        .collect();
    seen.sort();
    let total = seen.len();
    seen.dedup();
    assert_eq!(total, seen.len(), "a duplicate among {seen:#?}");
    assert_eq!(total, 7);
    drop(second);
}

/// A lost claim can neither renew its lease nor overwrite what the new holder recorded.
async fn a_lost_claim_changes_nothing(app: TestApp) {
    use genderlens::db::outbox;
    let mut conn = app.db.get().expect("conn");
    let t0 = chrono::Utc::now().naive_utc();
    let row = outbox::OutboxRow {
        id: "c1".into(),
        dedupe_key: "test:c1".into(),
        kind: "digest".into(),
        form_id: "test-survey".into(),
        recipient: "owner@example.org".into(),
        payload: "{}".into(),
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: t0,
        locked_until: None,
        last_error: None,
        created_at: t0,
        sent_at: None,
    };
    assert!(outbox::enqueue(&mut conn, &row).expect("enqueue"));
    let second = chrono::Duration::seconds(1);
    let stale = outbox::claim_due(&mut conn, t0, t0 + second, 5).expect("claim");
    assert_eq!(stale.len(), 1);
    assert!(
        outbox::claim_due(&mut conn, t0, t0 + second, 5)
            .expect("claim")
            .is_empty(),
        "held"
    );
    // The lease runs out; another instance claims the message.
    let t1 = t0 + second * 2;
    let fresh = outbox::claim_due(&mut conn, t1, t1 + second, 5).expect("claim");
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].row.attempts, 2);
    let (stale, fresh) = (&stale[0], &fresh[0]);
    assert!(!outbox::renew(&mut conn, stale, t1 + second * 10).expect("renew"));
    assert!(outbox::mark_sent(&mut conn, fresh, t1).expect("sent"));
    assert!(!outbox::mark_failed(&mut conn, stale, "timed out").expect("failed"));
    assert!(!outbox::mark_retry(&mut conn, stale, t1, "timed out").expect("retry"));
    let sent = outbox::with_status(&mut conn, "sent").expect("query");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].last_error, None);
}

on_every_backend!(a_lost_claim_changes_nothing);

fn fixture_form(id: &str) -> genderlens::form::Form {
    genderlens::form::load_dir(&crate::helpers::fixtures().join("forms"))
        .forms
        .into_iter()
        .find(|f| f.id == id)
        .expect("fixture form")
}

/// Runs `case(backend)` on SQLite and, when configured, on PostgreSQL (for cases that
/// start their app with their own settings).
macro_rules! on_each_backend {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::helpers::Backend;

            #[actix_web::test]
            async fn sqlite() {
                super::$case(Backend::Sqlite).await;
            }

            #[actix_web::test]
            async fn postgres() {
                super::$case(Backend::Postgres).await;
            }
        }
    )*};
}

fn rows_of_kind(app: &TestApp, kind: &str) -> Vec<genderlens::db::outbox::OutboxRow> {
    outbox_rows(app)
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

/// An app whose worker makes its first pass at start (before any response) and then
/// sleeps, so only the code under test queues anything.
async fn app_with_idle_worker(backend: Backend) -> Option<TestApp> {
    let app = spawn_app_with(backend, |s| s.mail_poll_seconds = 3600).await;
    if app.is_none() {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run on PostgreSQL");
    }
    app
}

/// Two instances deciding at once that a digest is due write one digest per window. On
/// PostgreSQL the second decides in a snapshot taken before the first committed, as when
/// both check at the same moment.
async fn a_digest_is_queued_once_per_window(backend: Backend) {
    use diesel::RunQueryDsl;
    use genderlens::db::AnyConnection;
    let Some(app) = app_with_idle_worker(backend).await else {
        return;
    };
    three_responses(&app).await;
    let form = fixture_form("test-survey");
    let window = 60 * 60;
    let mut first = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(1);
    if window - first.and_utc().timestamp().rem_euclid(window) < 10 {
        first += chrono::Duration::seconds(20);
    }
    let second = first + chrono::Duration::seconds(2);
    let (mut a, mut b) = (app.db.get().expect("conn"), app.db.get().expect("conn"));
    let snapshot = matches!(&*b, AnyConnection::Postgresql(_));
    if let AnyConnection::Postgresql(pg) = &mut *b {
        use diesel::connection::AnsiTransactionManager;
        AnsiTransactionManager::begin_transaction_sql(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ")
            .expect("begin");
        diesel::sql_query("SELECT 1 FROM outbox")
            .execute(pg)
            .expect("snapshot");
    }
    genderlens::notify::enqueue_digest(&mut a, &form, first).expect("first instance");
    genderlens::notify::enqueue_digest(&mut b, &form, second).expect("second instance");
    if let AnyConnection::Postgresql(pg) = &mut *b {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        AnsiTransactionManager::commit_transaction(pg).expect("commit");
    }
    assert!(snapshot || matches!(backend, Backend::Sqlite));
    // The test pool holds two connections; `digests` needs one.
    drop((a, b));
    assert_eq!(
        rows_of_kind(&app, "digest").len(),
        1,
        "one digest for one owner and window"
    );
}

on_each_backend!(a_digest_is_queued_once_per_window);

#[actix_web::test]
async fn a_retried_digest_counts_only_its_own_window() {
    let port = free_port();
    let app = app_mailing_to(port, Backend::Sqlite, None)
        .await
        .expect("app");
    three_responses(&app).await;
    // The relay is down: the digest is queued and its first attempt fails.
    wait_for_row(
        &app,
        |r| r.kind == "digest" && r.attempts >= 1 && r.last_error.is_some(),
        "a failed digest",
    )
    .await;
    let digest = rows_of_kind(&app, "digest").remove(0);
    let until: serde_json::Value = serde_json::from_str(&digest.payload).expect("payload");
    let until = chrono::DateTime::parse_from_rfc3339(until["until"].as_str().expect("until"))
        .expect("time")
        .naive_utc();
    let counted: i64 = genderlens::db::outbox::received_between(
        &mut app.db.get().expect("conn"),
        "test-survey",
        None,
        Some(until),
    )
    .expect("count")
    .iter()
    .map(|(_, n)| n)
    .sum();
    assert!((1..=3).contains(&counted));
    // Two more arrive before the relay is back; they belong to the next digest.
    for sex in ["male", "male"] {
        let answers =
            json!({ "sex": sex, "age": 50, "district": "podilskyi", "has_children": "no" });
        assert_eq!(
            app.submit("test-survey", &json!({ "answers": answers }))
                .await
                .status(),
            201
        );
    }
    let inbox = Inbox::default();
    inbox
        .listen(TcpListener::bind(("127.0.0.1", port)).await.expect("bind"))
        .await;
    let mail = inbox
        .wait_for("new responses", Duration::from_secs(30))
        .await;
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0]
            .data
            .contains(&format!("Subject: Test survey: {counted} new responses")),
        "{}",
        mail[0].data
    );
    assert!(mail[0].data.contains(&format!("Total so far: {counted}.")));
}

/// Three responses stored without a milestone check stand for two instances that both
/// counted 2 and committed 3: the next response's batch still queues milestone 3.
async fn a_milestone_jumped_over_is_queued_by_the_next_batch(backend: Backend) {
    // The writer alone must queue it.
    let Some(app) = app_with_idle_worker(backend).await else {
        return;
    };
    let form = fixture_form("test-survey");
    genderlens::demo::generate(&mut app.db.get().expect("conn"), &form, 3, 7).expect("demo");
    assert!(rows_of_kind(&app, "milestone").is_empty());
    let answers =
        json!({ "sex": "male", "age": 40, "district": "podilskyi", "has_children": "no" });
    assert_eq!(
        app.submit("test-survey", &json!({ "answers": answers }))
            .await
            .status(),
        201
    );
    let queued = rows_of_kind(&app, "milestone");
    assert_eq!(queued.len(), 1, "milestone 3 for the one owner");
    assert_eq!(queued[0].payload, r#"{"count":3}"#);
    // Counting again queues nothing more.
    let mut conn = app.db.get().expect("conn");
    let now = chrono::Utc::now().naive_utc();
    genderlens::notify::enqueue_milestones(&mut conn, &form, 4, now).expect("enqueue");
    drop(conn);
    assert_eq!(rows_of_kind(&app, "milestone").len(), 1);
}

on_each_backend!(a_milestone_jumped_over_is_queued_by_the_next_batch);

/// With no response after the jump, the worker's pass queues the milestone.
#[actix_web::test]
async fn a_milestone_jumped_over_is_queued_by_the_worker() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.mail_poll_seconds = 1)
        .await
        .expect("app");
    let form = fixture_form("test-survey");
    genderlens::demo::generate(&mut app.db.get().expect("conn"), &form, 3, 7).expect("demo");
    wait_for_row(&app, |r| r.kind == "milestone", "milestone 3").await;
}

/// An app without SMTP (mail goes to `.eml` files in the returned data directory) whose
/// worker looks every second; `forms` replaces the fixture forms.
async fn app_writing_mail(forms: Option<&std::path::Path>) -> (tempfile::TempDir, TestApp) {
    let data = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(Backend::Sqlite, |s| {
        if let Some(forms) = forms {
            s.forms_dir = forms.to_owned();
        }
        s.data_dir = data.path().to_owned();
        s.mail_poll_seconds = 1;
    })
    .await
    .expect("app");
    (data, app)
}

/// The messages written under `data/mail/` (no SMTP configured), oldest first.
fn eml_files(data_dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("mail")) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, text)| text).collect()
}

/// The decoded body of a message's part of `content_type` (`text/plain`, `text/html`).
fn part(raw: &str, content_type: &str) -> String {
    use base64::Engine;
    let raw = raw.replace("\r\n", "\n");
    let start = raw
        .find(&format!("Content-Type: {content_type}"))
        .unwrap_or_else(|| panic!("no {content_type} part in\n{raw}"));
    let (headers, body) = raw[start..].split_once("\n\n").expect("a part body");
    let body = body.split("\n--").next().unwrap_or_default();
    let bytes = if headers.contains("quoted-printable") {
        quoted_printable::decode(body, quoted_printable::ParseMode::Robust).expect("QP")
    } else if headers.contains("base64") {
        let compact: String = body.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .expect("base64")
    } else {
        body.as_bytes().to_vec()
    };
    String::from_utf8(bytes).expect("UTF-8")
}

/// Waits until a written message contains `needle`.
async fn wait_for_eml(data_dir: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = eml_files(data_dir).into_iter().find(|m| m.contains(needle)) {
            return found;
        }
        assert!(Instant::now() < deadline, "no .eml with {needle}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Without `GENDERLENS_SMTP_URL` each message is an `.eml` file under `data/mail/`.
#[actix_web::test]
async fn without_smtp_messages_are_written_to_data_mail() {
    let (data, app) = app_writing_mail(None).await;
    three_responses(&app).await;
    let milestone = wait_for_eml(data.path(), MILESTONE).await;
    for header in [
        "To: owner@example.org",
        "From: genderlens@localhost",
        "Message-ID:",
    ] {
        assert!(
            milestone.contains(header),
            "{header} missing in\n{milestone}"
        );
    }
    assert!(part(&milestone, "text/plain").contains("reached 3 responses"));
    assert!(part(&milestone, "text/html").contains("<p>The survey has reached 3 responses.</p>"));
    // Written means sent: the outbox does not try it again.
    wait_for_row(
        &app,
        |r| r.kind == "milestone" && r.status == "sent",
        "the milestone sent",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let written = eml_files(data.path());
    assert_eq!(written.iter().filter(|m| m.contains(MILESTONE)).count(), 1);
}

/// A form in a language the interface is not translated into gets English mail, and its
/// headers say so (not the form's language).
#[actix_web::test]
async fn mail_in_an_untranslated_language_says_it_is_english() {
    let german = "id: german-survey\nversion: 1\ntitle: { de: Umfrage, en: Survey }\n\
                  languages: [de, en]\nowners: [owner@example.org]\nnotify: { milestones: [1] }\n\
                  disaggregation:\n  sex: { question: sex, female: f, male: m }\n\
                  questions:\n  - { id: sex, type: select_one, choices: sex, label: { de: Geschlecht, en: Sex } }\n\
                  choices:\n  sex: [ { value: f, label: { de: Frau, en: Woman } }, { value: m, label: { de: Mann, en: Man } } ]\n";
    let forms = forms_dir_with(&[("german.yaml", german.to_owned())]);
    let (data, app) = app_writing_mail(Some(forms.path())).await;
    let answers = json!({ "answers": { "sex": "f" } });
    assert_eq!(app.submit("german-survey", &answers).await.status(), 201);
    let mail = wait_for_eml(data.path(), "reached 1 responses").await;
    assert!(mail.contains("Content-Language: en\r\n"), "{mail}");
    assert!(mail.contains("Subject: Survey: 1 responses"), "{mail}");
    assert!(part(&mail, "text/html").starts_with("<!doctype html><html lang=\"en\">"));
}

/// Stores `answers` (one JSON object per respondent) in one transaction, as a paper
/// import would, so the worker sees them all at once.
fn store_answers(app: &TestApp, form: &genderlens::form::Form, answers: &[serde_json::Value]) {
    use diesel::Connection;
    let today = chrono::Utc::now().date_naive();
    let mut conn = app.db.get().expect("conn");
    conn.transaction(|c| {
        for a in answers {
            let map = a.as_object().expect("an object").clone();
            let valid = genderlens::submit::validate(form, &map, today).expect("valid answers");
            let id = uuid::Uuid::new_v4().to_string();
            let row = genderlens::submit::build_row(form, &valid, &map, id, chrono::Utc::now());
            genderlens::db::responses::insert(c, &row)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .expect("store");
}

/// 40 women and 40 men. District: 75% of women and 25% of men in Podilskyi. Satisfaction
/// (scores 1–5): women a little higher. Children: 10 women and 3 men, with very different
/// childcare hours and needs — a gap the 3 men's small cell must keep out of mail.
fn gap_answers() -> Vec<serde_json::Value> {
    let scores = ["sd", "d", "n", "a", "sa"];
    let mut all = Vec::new();
    for i in 0..40usize {
        for female in [true, false] {
            let podil = if female { i < 30 } else { i < 10 };
            let score = if female {
                [1, 2, 3, 4, 2][i % 5]
            } else {
                [0, 0, 0, 1, 1, 2, 3, 4][i % 8]
            };
            let children = if female { i < 10 } else { i < 3 };
            let mut a = json!({
                "sex": if female { "female" } else { "male" },
                "age": 20 + i,
                "district": if podil { "podilskyi" } else { "obolonskyi" },
                "has_children": if children { "yes" } else { "no" },
                "satisfaction": scores[score],
            });
            if children {
                a["childcare_hours"] = json!(if female { 60 + i } else { 2 + i });
                a["needs_childcare"] = json!(if female { "yes" } else { "no" });
            }
            all.push(a);
        }
    }
    all
}

/// One gap line as the mail words it, from the indicators report's JSON.
fn expected_gap_line(form: &genderlens::form::Form, i: &serde_json::Value) -> String {
    let question = i["question"].as_str().expect("question");
    let proportion = i["kind"] == "proportion";
    let (scale, unit) = if proportion { (100.0, "%") } else { (1.0, "") };
    let option = i["option"].as_str().map_or(String::new(), |o| {
        format!(" — {}", form.choice_label(question, o, "en"))
    });
    let fig = |v: &serde_json::Value| format!("{:.1}{unit}", v.as_f64().expect("figure") * scale);
    let ci = &i["gap"]["ci"];
    format!(
        "{}{option}: ♀ {} · ♂ {} · {:+.1} [{:.1}, {:.1}] (q = {:.2e})",
        form.question_label(question, "en"),
        fig(&i["female"]["estimate"]),
        fig(&i["male"]["estimate"]),
        i["gap"]["difference"].as_f64().expect("difference") * scale,
        ci[0].as_f64().expect("low") * scale,
        ci[1].as_f64().expect("high") * scale,
        i["test"]["q_value"].as_f64().expect("q"),
    )
}

/// The milestone mail lists the three most certain significant gaps of the whole sample
/// with their intervals, exactly as the indicators report has them, ranked by q-value
/// (not by mixing a mean's Hedges g with proportions' differences), and nothing from a
/// suppressed cell.
#[actix_web::test]
async fn the_milestone_mail_lists_the_reports_clearest_gaps_without_small_cells() {
    let (data, app) = app_writing_mail(None).await;
    let form = fixture_form("test-survey");
    store_answers(&app, &form, &gap_answers());
    let mail = wait_for_eml(data.path(), MILESTONE).await;
    let text = part(&mail, "text/plain");
    // Mail suppresses as the public report does (the fixture's indicators are public).
    let report: serde_json::Value = app
        .get("/api/v1/forms/test-survey/indicators")
        .await
        .json()
        .await
        .expect("json");
    let whole: Vec<&serde_json::Value> = report["indicators"]
        .as_array()
        .expect("indicators")
        .iter()
        .filter(|i| i["group"].is_null() && i["kind"] != "distribution")
        .collect();
    let q = |i: &serde_json::Value| i["test"]["q_value"].as_f64().unwrap_or(1.0);
    let mut significant: Vec<&serde_json::Value> = whole
        .iter()
        .copied()
        .filter(|i| i["suppressed"] == false && q(i) < 0.05)
        .collect();
    let size = |i: &serde_json::Value| i["gap"]["difference"].as_f64().unwrap_or(0.0).abs();
    significant.sort_by(|a, b| {
        q(a).total_cmp(&q(b))
            .then((a["kind"] != "proportion").cmp(&(b["kind"] != "proportion")))
            .then(size(b).total_cmp(&size(a)))
    });
    let expected: Vec<String> = significant
        .iter()
        .take(3)
        .map(|i| format!("- {}", expected_gap_line(&form, i)))
        .collect();
    let listed: Vec<&str> = text.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(listed, expected, "in\n{text}");
    // The data is built so that ranking by size mixes scales differently: the
    // satisfaction mean's Hedges g outranks District's difference there.
    let g = |i: &serde_json::Value| i["gap"]["hedges_g"].as_f64().unwrap_or(0.0).abs();
    let mean = significant
        .iter()
        .find(|i| i["kind"] == "mean")
        .unwrap_or_else(|| panic!("a significant mean in {significant:#?}"));
    assert!(g(mean) > size(significant[0]) && q(mean) > q(significant[0]));
    // The childcare cells of 3 men are suppressed, and so absent from the mail.
    assert!(whole
        .iter()
        .filter(|i| i["question"] == "childcare_hours" || i["question"] == "needs_childcare")
        .all(|i| i["suppressed"] == true));
    assert!(!text.contains("childcare"), "{text}");
    assert!(text.contains("Groups with fewer than 5 respondents are not shown."));
}

/// The closing report names dimensions and their levels by their labels in the mail's
/// language, and keeps small cells out.
#[actix_web::test]
async fn the_closing_report_uses_labels_and_suppresses_small_cells() {
    let closes = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let yaml = format!(
        "id: labels-survey\nversion: 1\ntitle: {{ en: Labels }}\nlanguages: [en]\n\
         owners: [owner@example.org]\ncloses_at: {closes}\n\
         disaggregation:\n  sex: {{ question: sex, female: f, male: m }}\n  by: [district]\n\
         questions:\n  - {{ id: sex, type: select_one, choices: sex, label: {{ en: Sex }} }}\n  \
         - {{ id: district, type: select_one, choices: district, required: true, label: {{ en: City district }} }}\n\
         choices:\n  sex: [ {{ value: f, label: {{ en: F }} }}, {{ value: m, label: {{ en: M }} }} ]\n  \
         district: [ {{ value: pod, label: {{ en: Podil }} }}, {{ value: obo, label: {{ en: Obolon }} }}, \
         {{ value: dar, label: {{ en: Darnytsia }} }} ]\n"
    );
    let forms = forms_dir_with(&[("labels.yaml", yaml)]);
    let (data, app) = app_writing_mail(Some(forms.path())).await;
    let form = genderlens::form::load_dir(forms.path())
        .forms
        .into_iter()
        .find(|f| f.id == "labels-survey")
        .expect("form");
    let mut answers = Vec::new();
    for (district, n) in [("pod", 6), ("obo", 7), ("dar", 2)] {
        for sex in ["f", "m"] {
            answers.extend((0..n).map(|_| json!({ "sex": sex, "district": district })));
        }
    }
    store_answers(&app, &form, &answers);
    let mail = wait_for_eml(data.path(), "Subject: Labels: closed").await;
    let text = part(&mail, "text/plain");
    for line in [
        "The survey is closed with 30 responses: women 15, men 15",
        "By City district:",
        // Podil is hidden too: beside the totals, it alone would give Darnytsia away.
        "- Podil: ♀ – · ♂ –",
        "- Obolon: ♀ 7 · ♂ 7",
        "- Darnytsia: ♀ – · ♂ –",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(
        !text.contains("pod:") && !text.contains("By district"),
        "{text}"
    );
}

/// The opt-out path of an owner's mail, from its `List-Unsubscribe` header.
fn opt_out_path_of(mail: &str) -> String {
    let header = mail
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <"))
        .unwrap_or_else(|| panic!("no List-Unsubscribe in\n{mail}"));
    let link = header.trim_end_matches('>');
    link.strip_prefix("http://127.0.0.1:8080")
        .expect("under the public URL")
        .to_owned()
}

async fn post_form(app: &TestApp, path: &str, body: &str) -> (u16, String) {
    let response = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn opted_out(app: &TestApp, email: &str, form: &str) -> bool {
    genderlens::db::outbox::opted_out(&mut app.db.get().expect("conn"), email, form).expect("query")
}

/// Every mail carries a signed opt-out link with RFC 8058 one-click headers. A GET (a
/// mail scanner's prefetch) only shows what would stop; a POST — the page's button or
/// the provider's one-click — stops it; the page then offers to opt in again.
#[actix_web::test]
async fn the_opt_out_link_asks_first_stops_on_post_and_can_be_undone() {
    let (data, app) = app_writing_mail(None).await;
    three_responses(&app).await;
    let milestone = wait_for_eml(data.path(), MILESTONE).await;
    assert!(milestone.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    let path = opt_out_path_of(&milestone);
    assert!(part(&milestone, "text/plain").contains(&format!(
        "Stop all email about this survey: http://127.0.0.1:8080{path}"
    )));
    let closing = wait_for_eml(data.path(), "Content-Language: uk").await;
    assert!(
        closing.contains("List-Unsubscribe-Post:"),
        "closing reports too"
    );

    let page = app.get(&path).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.expect("page");
    assert!(page.contains("<html lang=\"en\">"), "the mail's language");
    for words in [
        "Stop email about this survey?",
        "owner@example.org receives email about “Test survey”: summaries of new responses, \
         a message at each response milestone, and the final report when the survey closes.",
        "name=\"action\" value=\"opt-out\"",
    ] {
        assert!(page.contains(words), "{words} missing in\n{page}");
    }
    assert!(
        !opted_out(&app, "owner@example.org", "test-survey"),
        "a GET changes nothing"
    );

    let (status, page) = post_form(&app, &path, "List-Unsubscribe=One-Click").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Email about this survey is stopped"),
        "{page}"
    );
    assert!(page.contains("Email about other surveys is not affected."));
    assert!(page.contains("value=\"opt-in\""), "a way back in");
    assert!(opted_out(&app, "owner@example.org", "test-survey"));
    assert!(!opted_out(&app, "owner@example.org", "closed-survey"));
    // The page shows the state on a later visit too.
    let again = app.get(&path).await.text().await.expect("page");
    assert!(again.contains("Email about this survey is stopped"));

    let (status, page) = post_form(&app, &path, "action=opt-in").await;
    assert_eq!(status, 200);
    assert!(page.contains("Email about this survey resumes"), "{page}");
    assert!(!opted_out(&app, "owner@example.org", "test-survey"));
    let (_, _) = post_form(&app, &path, "action=opt-out").await;
    assert!(opted_out(&app, "owner@example.org", "test-survey"));
}

/// Only the signature authorises a link: forged or moved ones are refused, GET or POST;
/// addresses with characters that mean something in a URL survive the path.
#[actix_web::test]
async fn opt_out_links_need_their_signature() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.secret_key = Some("a test key".into());
    })
    .await
    .expect("app");
    let secret = b"a test key";
    let email = "a+b/c?d@example.org";
    let path = genderlens::notify::opt_out_path(secret, "test-survey", email);
    assert!(path.contains("/a%2Bb%2Fc%3Fd@example.org/"), "{path}");
    let forged = format!("{path}0");
    let other_form = path.replace("/test-survey/", "/closed-survey/");
    for bad in [&forged, &other_form] {
        assert_eq!(app.get(bad).await.status(), 404);
        assert_eq!(
            post_form(&app, bad, "List-Unsubscribe=One-Click").await.0,
            404
        );
    }
    assert!(!opted_out(&app, email, "closed-survey"));
    assert_eq!(
        post_form(&app, &path, "List-Unsubscribe=One-Click").await.0,
        200
    );
    assert!(opted_out(&app, email, "test-survey"));
}
