//! Submission throughput and latency against the real server binary.
//!
//! `cargo bench --bench submissions` starts `genderlens serve` on a fresh SQLite file
//! (or `BENCH_DATABASE_URL`), drives it with `BENCH_CLIENTS` (64) concurrent HTTP
//! clients for `BENCH_SECONDS` (20) after a 3 s warm-up, and prints submissions/s and
//! p50/p99 latency of acknowledged (201) submissions. Every acknowledged response is
//! then counted in the database.

mod support;

use genderlens::db::{responses, Database};
use std::time::{Duration, Instant};
use support::{env_or, ms, percentile, Load, LoadOptions, Server, FORM};

fn main() {
    let clients: u64 = env_or("BENCH_CLIENTS", 64);
    let seconds: u64 = env_or("BENCH_SECONDS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
    let server = Server::start(&database_url, dir.path(), None);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (tally, wall) = runtime.block_on(async {
        server.wait_healthy().await;
        let load = Load::start(
            &server.address,
            &LoadOptions {
                clients,
                keep_ids: false,
                timeout: Duration::from_secs(30),
                backoff: Duration::ZERO,
            },
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        load.measure(true);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        load.measure(false);
        let wall = started.elapsed();
        (load.stop().await, wall)
    });
    let db = Database::connect(&database_url, Default::default(), 1).expect("database");
    let stored = responses::count(&mut db.get().expect("connection"), FORM).expect("count");
    drop(server);

    let mut sorted = tally.latencies.clone();
    sorted.sort();
    let rate = sorted.len() as f64 / wall.as_secs_f64();
    println!(
        "submissions: {} clients, {:.1} s measured, {} acknowledged, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} acknowledged and {} stored in all",
        clients,
        wall.as_secs_f64(),
        sorted.len(),
        rate,
        ms(percentile(&sorted, 50.0)),
        ms(percentile(&sorted, 99.0)),
        ms(sorted.last().copied().unwrap_or_default()),
        tally.created,
        stored
    );
    assert_eq!(
        tally.failures(),
        0,
        "submissions rejected: {}",
        tally.summary()
    );
    assert_eq!(
        tally.created, stored as u64,
        "every acknowledged submission is stored"
    );
}
