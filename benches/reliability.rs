//! Load and fault scenarios against the real server binary, on loopback, each bounded in
//! time; exits non-zero when an invariant fails. `scripts/reliability.sh` runs them all.
//!
//! ```sh
//! cargo bench --bench reliability -- sustained [--seconds 300] [--postgres]
//! cargo bench --bench reliability -- kill9 [--rounds 3] [--postgres]
//! cargo bench --bench reliability -- disk-full          # SQLite on a small tmpfs (root)
//! cargo bench --bench reliability -- pg-restart [--rounds 2]
//! ```
//!
//! Every scenario starts `genderlens serve` (`GENDERLENS_BIN`, else the release binary
//! cargo built) on a fresh database: a SQLite file in a temporary directory, or with
//! `--postgres` (always for `pg-restart`) a fresh database on `RELIABILITY_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards. The
//! server's log goes to `target/reliability/SCENARIO.log`. `--clients N` (64) sets the
//! concurrent clients, as in `benches/submissions.rs`.

mod support;

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use genderlens::db::{responses, Database};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{ms, percentile, Load, LoadOptions, Server, FORM};

/// A request without an answer after this long is a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits after a failed request before the next one.
const BACKOFF: Duration = Duration::from_millis(20);
/// How long service may take to come back once a fault is over.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

struct Options {
    seconds: u64,
    clients: u64,
    /// Kills or restarts; each scenario has its own default.
    rounds: Option<u32>,
    postgres: bool,
}

const USAGE: &str = "usage: cargo bench --bench reliability -- sustained|kill9|disk-full|pg-restart [--seconds N] [--clients N] [--rounds N] [--postgres]";

fn main() {
    // cargo bench passes `--bench` to programs without the test harness.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut scenario = None;
    let mut options = Options {
        seconds: 300,
        clients: 64,
        rounds: None,
        postgres: false,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| exit_usage(&format!("{name} needs a whole number")))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds").max(1),
            "--clients" => options.clients = number("--clients").max(1),
            "--rounds" => options.rounds = Some(number("--rounds").clamp(1, 100) as u32),
            "--postgres" => options.postgres = true,
            s if !s.starts_with('-') && scenario.is_none() => scenario = Some(arg),
            _ => exit_usage(&format!("unknown argument `{arg}`")),
        }
    }
    let scenario = scenario.unwrap_or_else(|| exit_usage("name a scenario"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let verdict = runtime.block_on(async {
        match scenario.as_str() {
            "sustained" => sustained(&options).await,
            "kill9" => kill9(&options).await,
            "disk-full" => disk_full(&options).await,
            "pg-restart" => pg_restart(&options).await,
            other => exit_usage(&format!("unknown scenario `{other}`")),
        }
    });
    let outcome = if verdict.failures.is_empty() {
        "passed".to_owned()
    } else {
        format!("FAILED ({})", verdict.failures.join("; "))
    };
    println!(
        "{scenario}: {outcome} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !verdict.failures.is_empty() {
        std::process::exit(1);
    }
}

fn exit_usage(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    std::process::exit(2)
}

/// The invariants a scenario checked, printed as they are decided.
#[derive(Default)]
struct Verdict {
    failures: Vec<String>,
}

impl Verdict {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("  {} {what}", if ok { "ok:    " } else { "FAILED:" });
        if !ok {
            self.failures.push(what);
        }
    }
}

/// Where a scenario stores: a fresh SQLite file, or a fresh PostgreSQL database.
struct Store {
    url: String,
    dir: tempfile::TempDir,
    postgres: Option<FreshPostgres>,
}

impl Store {
    /// A fresh store; `None`, with the reason as a failed check, when PostgreSQL is out of reach.
    fn open(postgres: bool, verdict: &mut Verdict) -> Option<Store> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, postgres) = if postgres {
            let fresh = FreshPostgres::create()
                .map_err(|e| verdict.check(false, e))
                .ok()?;
            (fresh.url.clone(), Some(fresh))
        } else {
            (
                format!("sqlite://{}/genderlens.db", dir.path().display()),
                None,
            )
        };
        Some(Store { url, dir, postgres })
    }

    fn sqlite_path(&self) -> Option<PathBuf> {
        self.postgres
            .is_none()
            .then(|| self.dir.path().join("genderlens.db"))
    }

    fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }
}

/// A database of its own on the local PostgreSQL, dropped when done.
struct FreshPostgres {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshPostgres {
    fn create() -> Result<FreshPostgres, String> {
        let admin_url = std::env::var("RELIABILITY_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("gl_reliability_{}", uuid::Uuid::new_v4().simple());
        diesel::pg::PgConnection::establish(&admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("PostgreSQL at {admin_url}: {e}"))?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(FreshPostgres {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        // A new admin connection: a restart during the scenario ended any earlier one.
        if let Ok(mut admin) = diesel::pg::PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `target/reliability/SCENARIO.log`, emptied first.
fn log_file(scenario: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reliability");
    std::fs::create_dir_all(&dir).expect("log directory");
    let path = dir.join(format!("{scenario}.log"));
    let _ = std::fs::remove_file(&path);
    path
}

fn load_options(options: &Options, keep_ids: bool) -> LoadOptions {
    LoadOptions {
        clients: options.clients,
        keep_ids,
        timeout: REQUEST_TIMEOUT,
        backoff: BACKOFF,
    }
}

/// Checks that the database holds every acknowledged receipt id.
fn check_none_missing(verdict: &mut Verdict, database_url: &str, ids: &[String]) {
    let db = Database::connect(database_url, Default::default(), 1).expect("database");
    let mut conn = db.get().expect("connection");
    let lost = ids
        .iter()
        .filter(|id| responses::find(&mut conn, id).expect("query").is_none())
        .count();
    verdict.check(
        lost == 0,
        format!("acknowledged but missing: {lost} of {}", ids.len()),
    );
}

fn stored(database_url: &str) -> u64 {
    let db = Database::connect(database_url, Default::default(), 1).expect("database");
    let count = responses::count(&mut db.get().expect("connection"), FORM).expect("count");
    count as u64
}

#[derive(diesel::QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// `PRAGMA integrity_check` of a SQLite file, on a connection of its own: "ok" when sound.
fn integrity_check(path: &Path) -> String {
    let mut conn = diesel::sqlite::SqliteConnection::establish(&path.display().to_string())
        .expect("open the SQLite file");
    diesel::sql_query("PRAGMA integrity_check")
        .load::<IntegrityRow>(&mut conn)
        .map(|rows| {
            rows.into_iter()
                .map(|r| r.integrity_check)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|e| format!("integrity_check failed: {e}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Reads that go through the read pool, polled beside the load during a fault.
const READ_PATHS: [&str; 2] = ["/readyz", "/api/v1/forms/test-survey/indicators"];

/// One client per path of `READ_PATHS`, each reading every 20 ms until stopped.
struct Reads {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ReadTally>>,
}

#[derive(Default)]
struct ReadTally {
    statuses: BTreeMap<u16, u64>,
    /// Answers whose body is not JSON, and requests without an answer.
    not_json: u64,
    no_answer: u64,
    slowest: Duration,
    /// The status of the latest read of each path.
    last: BTreeMap<&'static str, u16>,
}

impl ReadTally {
    fn clean(&self) -> bool {
        self.statuses.keys().all(|s| *s == 200 || *s == 503)
            && self.not_json == 0
            && self.no_answer == 0
    }

    fn recovered(&self) -> bool {
        self.last.len() == READ_PATHS.len() && self.last.values().all(|s| *s == 200)
    }

    fn merge(&mut self, other: ReadTally) {
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.not_json += other.not_json;
        self.no_answer += other.no_answer;
        self.slowest = self.slowest.max(other.slowest);
        self.last.extend(other.last);
    }
}

impl Reads {
    fn start(address: &str) -> Reads {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = READ_PATHS
            .into_iter()
            .map(|path| {
                let (client, stop) = (client.clone(), stop.clone());
                let url = format!("http://{address}{path}");
                tokio::spawn(async move {
                    let mut tally = ReadTally::default();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let answer = match client.get(&url).send().await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                r.json::<serde_json::Value>().await.map(|_| status)
                            }
                            Err(e) => Err(e),
                        };
                        tally.slowest = tally.slowest.max(started.elapsed());
                        match answer {
                            Ok(status) => {
                                *tally.statuses.entry(status).or_default() += 1;
                                tally.last.insert(path, status);
                            }
                            Err(e) if e.is_decode() => tally.not_json += 1,
                            Err(_) => tally.no_answer += 1,
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tally
                })
            })
            .collect();
        Reads { stop, tasks }
    }

    async fn stop(self) -> ReadTally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = ReadTally::default();
        for task in self.tasks {
            all.merge(task.await.expect("reader task"));
        }
        all
    }

    /// Stops the readers, prints what they saw and checks it: every read answered 200 or
    /// a JSON 503, none hung, and 200 again at the end.
    async fn stop_and_check(self, verdict: &mut Verdict) {
        let read = self.stop().await;
        println!(
            "  reads ({}): statuses {:?}, {} not JSON, {} unanswered, slowest {:.0} ms",
            READ_PATHS.join(", "),
            read.statuses,
            read.not_json,
            read.no_answer,
            ms(read.slowest)
        );
        verdict.check(read.clean(), "reads answered 200 or a JSON 503, none hung");
        verdict.check(read.recovered(), "reads answer 200 at the end");
    }
}

/// Submissions from `--clients` clients for `--seconds` after a 3 s warm-up, sampling the
/// server's resident memory: throughput and latency hold and memory stays flat.
async fn sustained(options: &Options) -> Verdict {
    let mut verdict = Verdict::default();
    let Some(store) = Store::open(options.postgres, &mut verdict) else {
        return verdict;
    };
    println!(
        "sustained: {} clients for {} s on {}",
        options.clients,
        options.seconds,
        store.backend()
    );
    let mut server = Server::start(&store.url, store.dir.path(), Some(&log_file("sustained")));
    server.wait_healthy().await;
    let load = Load::start(&server.address, &load_options(options, false));
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.measure(true);
    let started = Instant::now();
    let total = Duration::from_secs(options.seconds);
    // Every 10 s, or ten samples in a shorter run.
    let interval = Duration::from_secs((options.seconds / 10).clamp(1, 10));
    let mut samples = vec![server.rss_kib().unwrap_or(0)];
    let mut last = (Duration::ZERO, load.live().created());
    println!("  {:>6}  {:>9}  {:>13}", "time", "RSS", "submissions/s");
    println!("  {:>5}s  {:>5.1} MiB", 0, mib(samples[0]));
    while started.elapsed() < total {
        let next = (last.0 + interval).min(total);
        tokio::time::sleep(next.saturating_sub(started.elapsed())).await;
        let (now, created) = (started.elapsed(), load.live().created());
        let rss = server.rss_kib().unwrap_or(0);
        let rate = (created - last.1) as f64 / (now - last.0).as_secs_f64();
        println!(
            "  {:>5.0}s  {:>5.1} MiB  {:>13.0}",
            now.as_secs_f64(),
            mib(rss),
            rate
        );
        samples.push(rss);
        last = (now, created);
    }
    load.measure(false);
    let wall = started.elapsed();
    let mut tally = load.stop().await;
    let in_database = stored(&store.url);

    let mut latencies = std::mem::take(&mut tally.latencies);
    latencies.sort();
    let max_rss = samples.iter().copied().max().unwrap_or(0);
    println!(
        "  {:.0} submissions/s over {:.0} s ({} acknowledged), p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        latencies.len() as f64 / wall.as_secs_f64(),
        wall.as_secs_f64(),
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "  RSS first {:.1} MiB, last {:.1} MiB, max {:.1} MiB",
        mib(samples[0]),
        mib(samples.last().copied().unwrap_or(0)),
        mib(max_rss)
    );
    println!("  {}", tally.summary());
    // Flat: the second half of the run peaks at most 20% + 16 MiB above the first half,
    // which leaves room for allocator and page-cache warm-up but not for a leak.
    verdict.check(
        samples.iter().all(|&kib| kib > 0),
        "server RSS read from /proc at every sample",
    );
    let half = samples.len() / 2;
    let first_half = samples[..=half].iter().copied().max().unwrap_or(0);
    let second_half = samples[half..].iter().copied().max().unwrap_or(0);
    verdict.check(
        second_half <= first_half + first_half / 5 + 16 * 1024,
        format!(
            "memory flat: peak {:.1} MiB in the second half vs {:.1} MiB in the first",
            mib(second_half),
            mib(first_half)
        ),
    );
    verdict.check(tally.failures() == 0, "every submission acknowledged (201)");
    verdict.check(
        tally.created == in_database,
        format!("acknowledged = stored: {} = {in_database}", tally.created),
    );
    verdict.check(server.running(), "the server ran throughout");
    verdict
}

/// SIGKILL of the server under load, `--rounds` (3) times, each followed by a restart:
/// every acknowledged submission is in the database afterwards.
async fn kill9(options: &Options) -> Verdict {
    let mut verdict = Verdict::default();
    let Some(store) = Store::open(options.postgres, &mut verdict) else {
        return verdict;
    };
    let rounds = options.rounds.unwrap_or(3);
    println!(
        "kill9: {} clients, {rounds} kills on {}",
        options.clients,
        store.backend()
    );
    let mut server = Server::start(&store.url, store.dir.path(), Some(&log_file("kill9")));
    server.wait_healthy().await;
    let load = Load::start(&server.address, &load_options(options, true));
    let mut recovered = true;
    for round in 1..=rounds {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let acknowledged = load.live().created();
        server.kill9();
        let killed = Instant::now();
        server.respawn();
        server.wait_healthy().await;
        let healthy = killed.elapsed();
        let before = load.live().created();
        let back = load
            .wait_for(RECOVERY_LIMIT, |live| live.created() > before)
            .await;
        recovered &= back.is_some();
        println!(
            "  kill {round}: after {acknowledged} acknowledged; healthy again {:.2} s after the kill; {}",
            healthy.as_secs_f64(),
            match back {
                Some(t) => format!("201s again {:.2} s after that", t.as_secs_f64()),
                None => "no 201 since".into(),
            }
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = load.stop().await;
    println!("  {}", tally.summary());
    let in_database = stored(&store.url);
    println!(
        "  {} acknowledged, {in_database} stored ({} stored without an acknowledgement: in flight at a kill)",
        tally.acknowledged.len(),
        in_database.saturating_sub(tally.acknowledged.len() as u64)
    );
    check_none_missing(&mut verdict, &store.url, &tally.acknowledged);
    verdict.check(
        recovered,
        "submissions acknowledged again after every restart",
    );
    verdict.check(
        tally.unexpected_total() == 0 && tally.timeouts == 0,
        "no status other than 201 and clean 503s, no hung request",
    );
    if let Some(path) = store.sqlite_path() {
        let integrity = integrity_check(&path);
        verdict.check(
            integrity == "ok",
            format!("PRAGMA integrity_check: {integrity}"),
        );
    }
    verdict
}

/// A tmpfs mounted for the scenario, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "genderlens-reliability",
            ])
            .arg(path))?;
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }

    fn resize(&self, size: &str) -> Result<(), String> {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg(&self.path));
    }
}

/// Runs a command to completion; its output when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The SQLite database on a 16 MiB tmpfs filled by the load: submissions get clean 503s,
/// the file stays sound, and once the tmpfs grows they are stored again without a restart.
async fn disk_full(options: &Options) -> Verdict {
    let mut verdict = Verdict::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mount_point = dir.path().join("db");
    std::fs::create_dir(&mount_point).expect("mount point");
    // Declared before the server so that the server stops before the unmount.
    let tmpfs = match Tmpfs::mount(&mount_point, "16m") {
        Ok(t) => t,
        Err(e) => {
            verdict.check(false, format!("mounting a tmpfs (needs root): {e}"));
            return verdict;
        }
    };
    let database = mount_point.join("genderlens.db");
    let url = format!("sqlite://{}", database.display());
    println!(
        "disk-full: {} clients, SQLite on a 16 MiB tmpfs",
        options.clients
    );
    let mut server = Server::start(&url, dir.path(), Some(&log_file("disk-full")));
    server.wait_healthy().await;
    let load = Load::start(&server.address, &load_options(options, true));
    let reads = Reads::start(&server.address);
    let Some(filled) = load
        .wait_for(Duration::from_secs(120), |live| live.failed() > 0)
        .await
    else {
        let _ = load.stop().await;
        let _ = reads.stop().await;
        verdict.check(false, "the tmpfs filled up within 120 s");
        return verdict;
    };
    let (created, failed) = (load.live().created(), load.live().failed());
    println!(
        "  full after {:.1} s and {created} acknowledged; holding the disk full for 5 s",
        filled.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "  while full: {} acknowledged, {} refused",
        load.live().created() - created,
        load.live().failed() - failed
    );
    let resized = tmpfs.resize("256m");
    verdict.check(
        resized.is_ok(),
        format!("tmpfs grown to 256 MiB {resized:?}"),
    );
    let before = load.live().created();
    let back = load
        .wait_for(RECOVERY_LIMIT, |live| live.created() > before)
        .await;
    if let Some(t) = back {
        println!("  201s again {:.2} s after space returned", t.as_secs_f64());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tally = load.stop().await;
    println!("  {}", tally.summary());
    reads.stop_and_check(&mut verdict).await;
    verdict.check(
        tally.unavailable > 0,
        format!(
            "{} submissions refused with a JSON 503 `unavailable`",
            tally.unavailable
        ),
    );
    verdict.check(
        tally.unexpected_total() == 0 && tally.connection_errors == 0 && tally.timeouts == 0,
        "no other status, no dropped connection, no hung request",
    );
    verdict.check(
        back.is_some() && server.running(),
        "submissions stored again once space returned, without restarting genderlens",
    );
    let integrity = integrity_check(&database);
    verdict.check(
        integrity == "ok",
        format!("PRAGMA integrity_check: {integrity}"),
    );
    check_none_missing(&mut verdict, &url, &tally.acknowledged);
    drop(server);
    verdict
}

/// PostgreSQL restarted `--rounds` (2) times under load: failures are clean 503s, nothing
/// hangs, submissions succeed again without restarting genderlens, none acknowledged is lost.
async fn pg_restart(options: &Options) -> Verdict {
    let mut verdict = Verdict::default();
    let Some(store) = Store::open(true, &mut verdict) else {
        return verdict;
    };
    let restart = std::env::var("RELIABILITY_PG_RESTART").unwrap_or_else(|_| {
        "pg_ctlcluster --skip-systemctl-redirect \"$(ls /etc/postgresql)\" main restart".into()
    });
    let rounds = options.rounds.unwrap_or(2);
    println!(
        "pg-restart: {} clients, PostgreSQL restarted {rounds} times with `{restart}`",
        options.clients
    );
    let mut server = Server::start(&store.url, store.dir.path(), Some(&log_file("pg-restart")));
    server.wait_healthy().await;
    let load = Load::start(&server.address, &load_options(options, true));
    let reads = Reads::start(&server.address);
    let mut recovered = true;
    for round in 1..=rounds {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let failed = load.live().failed();
        let started = Instant::now();
        let command = restart.clone();
        let restarted =
            tokio::task::spawn_blocking(move || run(Command::new("sh").arg("-c").arg(command)))
                .await
                .expect("restart task");
        let took = started.elapsed();
        verdict.check(
            restarted.is_ok(),
            format!(
                "restart {round} took {:.1} s {restarted:?}",
                took.as_secs_f64()
            ),
        );
        // 100 more acknowledgements: service is back, not a straggler from before.
        let before = load.live().created();
        let back = load
            .wait_for(RECOVERY_LIMIT, |live| live.created() >= before + 100)
            .await;
        recovered &= back.is_some();
        println!(
            "  restart {round}: {} requests refused meanwhile; {}",
            load.live().failed() - failed,
            match back {
                Some(t) => format!(
                    "100 more 201s within {:.2} s of PostgreSQL being back",
                    t.as_secs_f64()
                ),
                None => "no recovery".into(),
            }
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tally = load.stop().await;
    println!("  {}", tally.summary());
    reads.stop_and_check(&mut verdict).await;
    verdict.check(
        tally.unexpected_total() == 0 && tally.connection_errors == 0,
        "every failure a JSON 503 `unavailable` (no other 5xx, no dropped connection)",
    );
    verdict.check(
        tally.timeouts == 0,
        format!("no request hung beyond {} s", REQUEST_TIMEOUT.as_secs()),
    );
    verdict.check(
        recovered && server.running(),
        "submissions stored again after every restart, without restarting genderlens",
    );
    check_none_missing(&mut verdict, &store.url, &tally.acknowledged);
    drop(server);
    verdict
}
