//! Shared by the benchmark programs: the release server binary as a child process, a
//! plausible response to the fixture survey, and a load generator that classifies every
//! outcome (the throughput benchmark wants only 201s; the fault scenarios count the rest).

// Each benchmark program uses a part of this module.
#![allow(dead_code)]

use serde_json::json;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fixture form every load posts to.
pub const FORM: &str = "test-survey";

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A plausible response to the fixture survey; varied so rows differ.
pub fn answers(i: u64) -> serde_json::Value {
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

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string()
}

/// The server binary: `GENDERLENS_BIN` when set, else the one cargo built with this bench.
pub fn server_binary() -> PathBuf {
    std::env::var_os("GENDERLENS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_genderlens")))
}

/// `genderlens serve` as a child process on loopback; killed when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    database_url: String,
    data_dir: PathBuf,
    /// Where the server's log goes (appended across restarts); inherited when `None`.
    log: Option<PathBuf>,
}

impl Server {
    pub fn start(database_url: &str, data_dir: &Path, log: Option<&Path>) -> Server {
        let address = free_address();
        let child = spawn(&address, database_url, data_dir, log);
        Server {
            child,
            address,
            database_url: database_url.to_owned(),
            data_dir: data_dir.to_owned(),
            log: log.map(Path::to_owned),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A fresh process on the same address, database and data directory.
    pub fn respawn(&mut self) {
        self.child = spawn(
            &self.address,
            &self.database_url,
            &self.data_dir,
            self.log.as_deref(),
        );
    }

    /// Whether the process is still the one started (it has not exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory of the server process, from /proc (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits until `/healthz` answers; panics after a minute.
    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client
                .get(format!("http://{}/healthz", self.address))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(address: &str, database_url: &str, data_dir: &Path, log: Option<&Path>) -> Child {
    let forms = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms");
    let stderr = match log {
        Some(path) => Stdio::from(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("server log file"),
        ),
        None => Stdio::inherit(),
    };
    Command::new(server_binary())
        .arg("serve")
        .env("GENDERLENS_CONFIG", "/nonexistent/genderlens.toml")
        // Many clients from one address on purpose: no per-address limit here.
        .env("GENDERLENS_RATE_LIMIT_PER_SECOND", "0")
        .env("GENDERLENS_BIND", address)
        .env("GENDERLENS_DATABASE_URL", database_url)
        .env("GENDERLENS_FORMS_DIR", forms)
        .env("GENDERLENS_DATA_DIR", data_dir)
        // `BENCH_RUST_LOG=info` measures with the per-request log lines of a default setup.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start genderlens")
}

/// How one submission ended, as a client sees it.
enum Outcome {
    /// 201 with a receipt: acknowledged, so it must be stored.
    Created(String),
    /// 503 with `{"error":"unavailable",…}`: the clean refusal expected under faults.
    Unavailable,
    /// Any other status, or a 201/503 without the expected JSON body.
    Unexpected(u16, String),
    /// No response (connection refused or reset): expected only while the server is down.
    Connection,
    /// No response within the client's timeout: a hang.
    Timeout,
}

async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> Outcome {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            Outcome::Timeout
        } else {
            Outcome::Connection
        }
    };
    let response = match client.post(url).json(body).send().await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let status = response.status().as_u16();
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    let json = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
    match (status, &json["id"], &json["error"]) {
        (201, serde_json::Value::String(id), _) => Outcome::Created(id.clone()),
        (503, _, error) if error == "unavailable" => Outcome::Unavailable,
        _ => Outcome::Unexpected(
            status,
            String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        ),
    }
}

/// Everything the clients saw.
#[derive(Default)]
pub struct Tally {
    pub created: u64,
    /// Receipt ids of acknowledged submissions (when the load keeps them).
    pub acknowledged: Vec<String>,
    /// Latencies of 201s while measuring.
    pub latencies: Vec<Duration>,
    pub unavailable: u64,
    /// Statuses other than 201 and a clean 503, with one body as an example.
    pub unexpected: BTreeMap<u16, u64>,
    pub unexpected_example: Option<String>,
    pub connection_errors: u64,
    pub timeouts: u64,
    /// The longest any request took, whatever its outcome.
    pub slowest: Duration,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.created += other.created;
        self.acknowledged.extend(other.acknowledged);
        self.latencies.extend(other.latencies);
        self.unavailable += other.unavailable;
        for (status, n) in other.unexpected {
            *self.unexpected.entry(status).or_default() += n;
        }
        if self.unexpected_example.is_none() {
            self.unexpected_example = other.unexpected_example;
        }
        self.connection_errors += other.connection_errors;
        self.timeouts += other.timeouts;
        self.slowest = self.slowest.max(other.slowest);
    }

    pub fn unexpected_total(&self) -> u64 {
        self.unexpected.values().sum()
    }

    /// Requests that were not acknowledged, whatever the reason.
    pub fn failures(&self) -> u64 {
        self.unavailable + self.unexpected_total() + self.connection_errors + self.timeouts
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} acknowledged (201), {} clean 503s, {} unexpected, {} connection errors, {} timeouts, slowest request {:.0} ms",
            self.created,
            self.unavailable,
            self.unexpected_total(),
            self.connection_errors,
            self.timeouts,
            ms(self.slowest)
        );
        if let Some(example) = &self.unexpected_example {
            s.push_str(&format!(
                "; unexpected: {:?} e.g. {example}",
                self.unexpected
            ));
        }
        s
    }
}

/// Counters the scenario reads while the load runs.
#[derive(Default)]
pub struct Live {
    pub created: AtomicU64,
    pub failed: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
}

impl Live {
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

pub struct LoadOptions {
    pub clients: u64,
    /// Keep every receipt id, to look each one up afterwards.
    pub keep_ids: bool,
    /// A request without an answer after this long counts as a hang.
    pub timeout: Duration,
    /// A client pauses this long after a failure, as a real client backs off.
    pub backoff: Duration,
}

/// `clients` concurrent keep-alive clients, one submission in flight each, until stopped.
pub struct Load {
    live: Arc<Live>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    pub fn start(address: &str, options: &LoadOptions) -> Load {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(options.clients as usize)
            .timeout(options.timeout)
            .build()
            .expect("client");
        let url = format!("http://{address}/api/v1/forms/{FORM}/submissions");
        let live = Arc::new(Live::default());
        let tasks = (0..options.clients)
            .map(|c| {
                let (client, url, live) = (client.clone(), url.clone(), live.clone());
                let (clients, keep_ids, backoff) =
                    (options.clients, options.keep_ids, options.backoff);
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut i = c;
                    while !live.stop.load(Ordering::Relaxed) {
                        let body = json!({ "answers": answers(i) });
                        i += clients;
                        let started = Instant::now();
                        let outcome = post(&client, &url, &body).await;
                        let elapsed = started.elapsed();
                        tally.slowest = tally.slowest.max(elapsed);
                        if let Outcome::Created(id) = outcome {
                            live.created.fetch_add(1, Ordering::Relaxed);
                            tally.created += 1;
                            if live.measuring.load(Ordering::Relaxed) {
                                tally.latencies.push(elapsed);
                            }
                            if keep_ids {
                                tally.acknowledged.push(id);
                            }
                            continue;
                        }
                        live.failed.fetch_add(1, Ordering::Relaxed);
                        match outcome {
                            Outcome::Unavailable => tally.unavailable += 1,
                            Outcome::Unexpected(status, body) => {
                                *tally.unexpected.entry(status).or_default() += 1;
                                tally
                                    .unexpected_example
                                    .get_or_insert_with(|| format!("{status} {body}"));
                            }
                            Outcome::Connection => tally.connection_errors += 1,
                            Outcome::Timeout => tally.timeouts += 1,
                            Outcome::Created(_) => {}
                        }
                        tokio::time::sleep(backoff).await;
                    }
                    tally
                })
            })
            .collect();
        Load { live, tasks }
    }

    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Whether 201 latencies are recorded from now on (off during warm-up).
    pub fn measure(&self, on: bool) {
        self.live.measuring.store(on, Ordering::Relaxed);
    }

    /// Polls until `done` holds; how long that took, or `None` after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&Live) -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if done(&self.live) {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Stops every client after its request in flight and adds up what they saw.
    pub async fn stop(self) -> Tally {
        self.live.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for task in self.tasks {
            all.merge(task.await.expect("client task"));
        }
        all
    }
}
