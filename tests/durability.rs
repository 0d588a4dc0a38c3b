//! The real server binary: every acknowledged (201) submission survives `kill -9`, a
//! graceful stop (SIGTERM) finishes the submissions in flight and exits cleanly, and its
//! logs never carry what residents answered.

use genderlens::db::{responses, Database};
use serde_json::json;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

fn start(address: &str, database_url: &str, data_dir: &std::path::Path) -> Child {
    start_logging(address, database_url, data_dir, "warn", Stdio::inherit())
}

fn start_logging(
    address: &str,
    database_url: &str,
    data_dir: &std::path::Path,
    log_level: &str,
    stderr: Stdio,
) -> Child {
    let forms = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms");
    Command::new(env!("CARGO_BIN_EXE_genderlens"))
        .arg("serve")
        .env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml")
        // Many clients from one address on purpose: no per-address limit here.
        .env("GENDERLENS_RATE_LIMIT_PER_SECOND", "0")
        .env("GENDERLENS_BIND", address)
        .env("GENDERLENS_DATABASE_URL", database_url)
        .env("GENDERLENS_FORMS_DIR", forms)
        .env("GENDERLENS_DATA_DIR", data_dir)
        .env("RUST_LOG", log_level)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start genderlens")
}

async fn wait_ready(client: &reqwest::Client, address: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("http://{address}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

fn answers(i: usize) -> serde_json::Value {
    json!({
        "sex": if i % 2 == 0 { "female" } else { "male" },
        "age": 18 + (i % 70),
        "district": "obolonskyi",
        "has_children": "no",
        "comments": format!("response {i}")
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a graceful shutdown, which must exit on its own and in time.
    Terminate,
}

fn stop(server: &mut Child, how: Stop) {
    match how {
        Stop::Kill => {
            server.kill().expect("SIGKILL");
            let _ = server.wait();
        }
        Stop::Terminate => {
            let status = Command::new("kill")
                .args(["-TERM", &server.id().to_string()])
                .status()
                .expect("kill -TERM");
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                if let Some(exit) = server.try_wait().expect("wait") {
                    assert!(exit.success(), "a graceful stop exits with 0, not {exit}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "did not stop within 40 s of SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Submits from 16 clients, stops the server while requests are in flight, restarts it,
/// and checks that every acknowledged response is there.
async fn kill_and_check(database_url: String, data_dir: PathBuf) {
    stop_and_check(database_url, data_dir, Stop::Kill).await;
}

async fn stop_and_check(database_url: String, data_dir: PathBuf, how: Stop) {
    let address = free_address();
    let client = reqwest::Client::new();
    let mut server = start(&address, &database_url, &data_dir);
    wait_ready(&client, &address).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for worker in 0..16 {
        let (client, address, acknowledged) =
            (client.clone(), address.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                let body = json!({ "answers": answers(worker * 10_000 + i) });
                let url = format!("http://{address}/api/v1/forms/test-survey/submissions");
                let Ok(response) = client.post(url).json(&body).send().await else {
                    break;
                };
                if response.status() != 201 {
                    break;
                }
                let Ok(receipt) = response.json::<serde_json::Value>().await else {
                    break;
                };
                if let Some(id) = receipt["id"].as_str() {
                    acknowledged.lock().expect("lock").push(id.to_owned());
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop(&mut server, how);
    for c in clients {
        let _ = c.await;
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 400,
        "only {} acknowledged",
        acknowledged.len()
    );

    let mut server = start(&address, &database_url, &data_dir);
    wait_ready(&client, &address).await;
    let db = Database::connect(&database_url, Default::default(), 1).expect("database");
    let mut conn = db.get().expect("connection");
    if how == Stop::Terminate {
        // Graceful: every submission the server stored was answered before it exited,
        // so nothing is stored whose 201 never reached its client.
        let stored = responses::count(&mut conn, "test-survey").expect("count");
        assert_eq!(stored as usize, acknowledged.len(), "stored = acknowledged");
    }
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| responses::find(&mut conn, id).expect("query").is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged responses lost",
        missing.len(),
        acknowledged.len()
    );
    // The restarted server takes submissions again.
    let response = client
        .post(format!(
            "http://{address}/api/v1/forms/test-survey/submissions"
        ))
        .json(&json!({ "answers": answers(1) }))
        .send()
        .await
        .expect("submit after restart");
    assert_eq!(response.status(), 201);
    server.kill().expect("stop");
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_submissions_survive_kill_9_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/genderlens.db", dir.path().display());
    kill_and_check(url, dir.path().to_owned()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_submissions_in_flight_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/genderlens.db", dir.path().display());
    stop_and_check(url, dir.path().to_owned(), Stop::Terminate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_submissions_survive_kill_9_on_postgres() {
    let Ok(admin_url) = std::env::var("GENDERLENS_TEST_POSTGRES_URL") else {
        eprintln!("skipped: set GENDERLENS_TEST_POSTGRES_URL to run on PostgreSQL");
        return;
    };
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let name = format!("gl_kill_{}", uuid::Uuid::new_v4().simple());
    let mut admin = diesel::pg::PgConnection::establish(&admin_url).expect("connect");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let dir = tempfile::tempdir().expect("tempdir");
    kill_and_check(format!("{base}/{name}"), dir.path().to_owned()).await;
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .expect("drop database");
}

/// At the default level, one line per request (route, form, status) and nothing of the
/// answers: not in a rejected one's error, not in a stored one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_carry_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/genderlens.db", dir.path().display());
    let log = dir.path().join("server.log");
    let address = free_address();
    let client = reqwest::Client::new();
    let mut server = start_logging(
        &address,
        &url,
        dir.path(),
        "info",
        Stdio::from(std::fs::File::create(&log).expect("log file")),
    );
    wait_ready(&client, &address).await;
    let secret = "Olena Petrenko, Khreshchatyk 12, +380501234567";
    let submit = |answers: serde_json::Value| {
        client
            .post(format!(
                "http://{address}/api/v1/forms/test-survey/submissions"
            ))
            .json(&json!({ "answers": answers }))
            .send()
    };
    let mut stored = answers(0);
    stored["comments"] = json!(secret);
    let mut rejected = answers(1);
    rejected["district"] = json!(secret);
    rejected[secret] = json!(secret);
    let statuses = [
        submit(stored).await.expect("submit").status(),
        submit(rejected).await.expect("submit").status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [201, 422]);
    stop(&mut server, Stop::Terminate);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("test-survey") && text.contains("422"),
        "the requests are logged: {text}"
    );
    for fragment in ["Olena", "Khreshchatyk", "380501234567"] {
        assert!(!text.contains(fragment), "`{fragment}` in the log: {text}");
    }
}
