//! Indicators report speed over many stored responses, against a pandas + scipy +
//! statsmodels baseline reading the same SQLite database in the same session.
//!
//! `cargo bench --bench indicators` generates `BENCH_RESPONSES` (1,000,000) responses to
//! `benches/fixtures/bench-survey.yaml` (about 30 analysable questions, a 20-level region)
//! once into `target/bench-data/`, then times the full report overall and by region (the
//! same `indicators::compute` the API and CLI call), then runs
//! `benches/indicators_baseline.py` on the same file when Python with pandas, scipy and
//! statsmodels is available (`pip install pandas scipy statsmodels`).

use genderlens::config::Settings;
use genderlens::db::responses;
use genderlens::indicators::{self, Query};
use genderlens::startup;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let count: u64 = std::env::var("BENCH_RESPONSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("bench data dir");
    let path = dir.join(format!("indicators-{count}.db"));
    let settings = Settings {
        database_url: format!("sqlite://{}", path.display()),
        forms_dir: root.join("benches/fixtures"),
        ..Settings::default()
    };
    let forms = startup::load_forms(&settings).expect("bench form");
    let form = forms.get("bench-survey").expect("bench form");
    let db = startup::open_database(&settings, &forms).expect("database");
    if responses::count(&mut db.get().expect("connection"), &form.id).expect("count") as u64
        != count
    {
        drop(db);
        std::fs::remove_file(&path).expect("remove stale bench data");
        let db = startup::open_database(&settings, &forms).expect("database");
        let started = Instant::now();
        genderlens::demo::generate(&mut db.get().expect("connection"), &form, count, 2026)
            .expect("generate");
        println!(
            "generated {count} responses in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let db = startup::open_database(&settings, &forms).expect("database");
    let mut conn = db.get().expect("connection");

    let started = Instant::now();
    let mut bytes = 0usize;
    responses::for_each_analysis_chunk(&mut conn, &form.id, 4096, |chunk| {
        bytes += chunk.iter().map(|(_, a)| a.len()).sum::<usize>()
    })
    .expect("scan");
    println!(
        "rust: reading the analysis column alone: {:.3} s ({} MB)",
        started.elapsed().as_secs_f64(),
        bytes / 1_000_000
    );

    let mut results = Vec::new();
    for by in [None, Some("region")] {
        let query = Query {
            by: by.map(str::to_owned),
            min_cell: 5,
            alpha: 0.05,
            weighted: false,
            public: false,
        };
        let mut times: Vec<Duration> = Vec::new();
        let mut indicators_count = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let report = indicators::compute(&mut conn, &form, &query).expect("report");
            times.push(started.elapsed());
            indicators_count = report.report.indicators.len();
        }
        times.sort();
        println!(
            "rust: {count} responses, by {:<7} {} indicators: median {:.3} s (min {:.3} s)",
            by.unwrap_or("none"),
            indicators_count,
            times[1].as_secs_f64(),
            times[0].as_secs_f64()
        );
        results.push((by, times[1]));
    }

    let script = root.join("benches/indicators_baseline.py");
    let started = Instant::now();
    let baseline = Command::new("python3").arg(&script).arg(&path).output();
    match baseline {
        Ok(out) if out.status.success() => {
            let total = started.elapsed();
            print!("{}", String::from_utf8_lossy(&out.stdout));
            let rust_total: Duration = results.iter().map(|(_, t)| *t).sum();
            println!(
                "python baseline total {:.1} s vs rust total {:.3} s: {:.0}x",
                total.as_secs_f64(),
                rust_total.as_secs_f64(),
                total.as_secs_f64() / rust_total.as_secs_f64()
            );
        }
        Ok(out) => println!(
            "python baseline skipped: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        ),
        Err(err) => println!("python baseline skipped: {err}"),
    }
}
