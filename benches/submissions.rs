//! Submission throughput and latency against the real server binary.
//!
//! `cargo bench --bench submissions` starts `genderlens serve` on a fresh SQLite file
//! (or `BENCH_DATABASE_URL`), drives it with `BENCH_CLIENTS` (64) concurrent HTTP
//! clients for `BENCH_SECONDS` (20) after a 3 s warm-up, and prints submissions/s and
//! p50/p99 latency of acknowledged (201) submissions. Every acknowledged response is
//! then counted in the database.

use genderlens::db::{responses, Database};
use serde_json::json;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A plausible response to the fixture survey; varied so rows differ.
fn answers(i: u64) -> serde_json::Value {
    let female = i % 2 == 0;
    let has_children = i % 3 != 0;
    let satisfaction = ["sd", "d", "n", "a", "sa"][(i % 5) as usize];
    let mut a = json!({
        "sex": if i % 29 == 0 { "other" } else if female { "female" } else { "male" },
        "age": 18 + (i * 7) % 70,
        "district": if i % 5 < 2 { "podilskyi" } else { "obolonskyi" },
        "has_children": if has_children { "yes" } else { "no" },
        "services_used": match i % 4 { 0 => json!(["social"]), 1 => json!(["health", "social"]), 2 => json!(["none"]), _ => json!([]) },
        "satisfaction": satisfaction,
        "last_visit": format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
        "comments": "Черга до соціального працівника занадто довга, а дитсадок далеко від дому.",
    });
    if has_children {
        a["childcare_hours"] = json!(((i % 60) as f64) + 0.5);
        a["needs_childcare"] = json!(if female { "yes" } else { "no" });
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let clients: u64 = env_or("BENCH_CLIENTS", 64);
    let seconds: u64 = env_or("BENCH_SECONDS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let forms = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms");
    let mut server = Command::new(env!("CARGO_BIN_EXE_genderlens"))
        .arg("serve")
        .env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml")
        // Many clients from one address on purpose: no per-address limit here.
        .env("GENDERLENS_RATE_LIMIT_PER_SECOND", "0")
        .env("GENDERLENS_BIND", &address)
        .env("GENDERLENS_DATABASE_URL", &database_url)
        .env("GENDERLENS_FORMS_DIR", forms)
        .env("GENDERLENS_DATA_DIR", dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start genderlens");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (latencies, wall, acknowledged) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients as usize)
            .build()
            .expect("client");
        let url = format!("http://{address}/api/v1/forms/test-survey/submissions");
        let deadline = Instant::now() + Duration::from_secs(60);
        while client
            .get(format!("http://{address}/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (client, url, measuring, stop) =
                (client.clone(), url.clone(), measuring.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut acknowledged = 0u64;
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({ "answers": answers(i) });
                    i += clients;
                    let started = Instant::now();
                    let response = client.post(&url).json(&body).send().await.expect("send");
                    let status = response.status();
                    let _ = response.bytes().await;
                    assert_eq!(status, 201, "submission rejected");
                    acknowledged += 1;
                    if measuring.load(Ordering::Relaxed) {
                        latencies.push(started.elapsed());
                    }
                }
                (latencies, acknowledged)
            }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let wall = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut acknowledged = 0;
        for t in tasks {
            let (latencies, acked) = t.await.expect("client task");
            all.extend(latencies);
            acknowledged += acked;
        }
        (all, wall, acknowledged)
    });
    let db = Database::connect(&database_url, Default::default(), 1).expect("database");
    let stored =
        responses::count(&mut db.get().expect("connection"), "test-survey").expect("count");
    let _ = server.kill();
    let _ = server.wait();

    let mut sorted = latencies;
    sorted.sort();
    let rate = sorted.len() as f64 / wall.as_secs_f64();
    println!(
        "submissions: {} clients, {:.1} s measured, {} acknowledged, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} acknowledged and {} stored in all",
        clients,
        wall.as_secs_f64(),
        sorted.len(),
        rate,
        percentile(&sorted, 50.0).as_secs_f64() * 1e3,
        percentile(&sorted, 99.0).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        acknowledged,
        stored
    );
    assert_eq!(
        acknowledged, stored as u64,
        "every acknowledged submission is stored"
    );
}
