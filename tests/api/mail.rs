//! Notifications against a real SMTP conversation on loopback: a small SMTP server in the
//! test records what lettre delivers.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
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
    assert!(digest[0].data.contains(
        "List-Unsubscribe: <http://127.0.0.1:8080/unsubscribe/test-survey/owner@example.org/"
    ));
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

    // The unsubscribe link works once signed, and only then.
    let data = &digest[0].data;
    let start = data.find("/unsubscribe/").expect("link");
    let path: String = data[start..].chars().take_while(|c| *c != '>').collect();
    assert_eq!(
        app.get(&format!("{path}x")).await.status(),
        404,
        "a forged signature"
    );
    assert_eq!(app.get(&path).await.status(), 200);
    let mut conn = app.db.get().expect("conn");
    assert!(
        genderlens::db::outbox::opted_out(&mut conn, "owner@example.org", "test-survey")
            .expect("query")
    );
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
