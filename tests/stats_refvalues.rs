//! Every formula against the reference values computed by scipy and statsmodels
//! (`tests/fixtures/refvalues.json`, a copy of `shared/refvalues/refvalues.json`).
//! Estimates, interval bounds and statistics to a relative 1e-9; p- and q-values to a
//! relative 1e-7 or an absolute 1e-15.

use genderlens::stats::formulas::{self, Summary};
use genderlens::stats::{normal_critical, t_critical};
use serde_json::Value;

fn refvalues() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/refvalues.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("refvalues.json")).expect("json")
}

fn close(actual: f64, expected: f64, rel: f64, abs: f64, what: &str) {
    let ok = (actual - expected).abs() <= abs.max(rel * expected.abs());
    assert!(
        ok,
        "{what}: got {actual:e}, expected {expected:e} (rel {:e})",
        ((actual - expected) / expected).abs()
    );
}

fn estimate(actual: f64, expected: &Value, what: &str) {
    close(actual, expected.as_f64().expect(what), 1e-9, 0.0, what);
}

fn p_value(actual: f64, expected: &Value, what: &str) {
    close(actual, expected.as_f64().expect(what), 1e-7, 1e-15, what);
}

fn interval(actual: Option<(f64, f64)>, expected: &Value, what: &str) {
    let (lo, hi) = actual.unwrap_or_else(|| panic!("{what}: no interval"));
    // Bounds of exactly 0 compare absolutely: a relative check on 0 needs exact equality.
    close(lo, expected[0].as_f64().expect(what), 1e-9, 1e-15, what);
    close(hi, expected[1].as_f64().expect(what), 1e-9, 1e-15, what);
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("count")
}

#[test]
fn wilson_intervals() {
    let r = refvalues();
    for case in r["proportions"].as_array().expect("cases") {
        let z = normal_critical(case["alpha"].as_f64().expect("alpha"));
        let what = format!("wilson {case}");
        interval(
            formulas::wilson(u(&case["x"]), u(&case["n"]), z),
            &case["wilson"],
            &what,
        );
    }
}

#[test]
fn newcombe_differences_and_parity() {
    let r = refvalues();
    for case in r["two_proportions"].as_array().expect("cases") {
        let z = normal_critical(case["alpha"].as_f64().expect("alpha"));
        let (xf, nf, xm, nm) = (
            u(&case["x_f"]),
            u(&case["n_f"]),
            u(&case["x_m"]),
            u(&case["n_m"]),
        );
        let what = format!("newcombe {case}");
        interval(
            formulas::newcombe(xf, nf, xm, nm, z),
            &case["newcombe"],
            &what,
        );
        let (pf, pm) = (xf as f64 / nf as f64, xm as f64 / nm as f64);
        close(
            pf - pm,
            case["difference"].as_f64().expect("d"),
            1e-9,
            1e-15,
            &what,
        );
        match case["ratio"].as_f64() {
            Some(ratio) => {
                estimate(pf / pm, &case["ratio"], &what);
                close(
                    formulas::adjusted_ratio(pf / pm),
                    case["adjusted_ratio"].as_f64().expect("adj"),
                    1e-9,
                    0.0,
                    &what,
                );
                assert!(ratio.is_finite());
            }
            None => assert_eq!(pm, 0.0, "{what}"),
        }
    }
}

#[test]
fn chi_square_and_fisher() {
    let r = refvalues();
    for case in r["tables"].as_array().expect("cases") {
        let table: Vec<Vec<u64>> = case["table"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| row.as_array().expect("row").iter().map(u).collect())
            .collect();
        let what = format!("table {case}");
        let chi = formulas::chi_square(&table).expect("chi-square defined");
        estimate(chi.statistic, &case["statistic"], &what);
        assert_eq!(chi.df, case["df"].as_f64().expect("df"), "{what}");
        p_value(chi.p_value, &case["p_value"], &what);
        estimate(chi.min_expected, &case["min_expected"], &what);
        estimate(chi.cramers_v, &case["cramers_v"], &what);
        if let Some(expected) = case.get("fisher_p_value") {
            // Fisher's test runs on the 2×2 table left after empty columns are dropped.
            let kept: Vec<usize> = (0..table[0].len())
                .filter(|&c| table[0][c] + table[1][c] > 0)
                .collect();
            let t = [
                [table[0][kept[0]], table[0][kept[1]]],
                [table[1][kept[0]], table[1][kept[1]]],
            ];
            p_value(formulas::fisher_exact(t), expected, &what);
            close(
                formulas::min_expected_2x2(t),
                case["min_expected"].as_f64().expect("min"),
                1e-9,
                0.0,
                &what,
            );
        }
    }
}

fn summary(values: &Value) -> (Vec<f64>, Summary) {
    let mut v: Vec<f64> = values
        .as_array()
        .expect("values")
        .iter()
        .map(|x| x.as_f64().expect("x"))
        .collect();
    let original = v.clone();
    let s = formulas::summarize(&mut v).expect("non-empty");
    (original, s)
}

#[test]
fn numeric_summaries_welch_mann_whitney_hedges() {
    let r = refvalues();
    for case in r["numeric"].as_array().expect("cases") {
        let alpha = case["alpha"].as_f64().expect("alpha");
        let what = format!("numeric n_f={} alpha={alpha}", case["female"]["n"]);
        let (f, sf) = summary(&case["f"]);
        let (m, sm) = summary(&case["m"]);
        for (s, expected) in [(&sf, &case["female"]), (&sm, &case["male"])] {
            assert_eq!(s.n, u(&expected["n"]));
            estimate(s.mean, &expected["mean"], &what);
            close(
                s.median,
                expected["median"].as_f64().expect("median"),
                1e-9,
                0.0,
                &what,
            );
            close(
                s.sd.expect("sd"),
                expected["sd"].as_f64().expect("sd"),
                1e-9,
                1e-15,
                &what,
            );
            interval(formulas::mean_ci(s, alpha), &expected["ci"], &what);
        }
        estimate(sf.mean - sm.mean, &case["difference"], &what);
        estimate(sf.mean / sm.mean, &case["ratio"], &what);
        estimate((sm.mean - sf.mean) / sm.mean, &case["relative"], &what);
        let w = formulas::welch(&sf, &sm, alpha).expect("welch");
        estimate(w.statistic, &case["welch"]["statistic"], &what);
        estimate(w.df, &case["welch"]["df"], &what);
        p_value(w.p_value, &case["welch"]["p_value"], &what);
        interval(Some(w.ci), &case["welch"]["ci"], &what);
        let mw = formulas::mann_whitney(&f, &m).expect("mann-whitney");
        estimate(mw.statistic, &case["mann_whitney"]["statistic"], &what);
        p_value(mw.p_value, &case["mann_whitney"]["p_value"], &what);
        estimate(mw.effect, &case["mann_whitney"]["rank_biserial"], &what);
        estimate(
            formulas::hedges_g(&sf, &sm).expect("g"),
            &case["hedges_g"],
            &what,
        );
    }
}

#[test]
fn benjamini_hochberg() {
    let r = refvalues();
    for case in r["bh"].as_array().expect("cases") {
        let p: Vec<f64> = case["p"]
            .as_array()
            .expect("p")
            .iter()
            .map(|x| x.as_f64().expect("p"))
            .collect();
        let q = formulas::benjamini_hochberg(&p);
        for (i, expected) in case["q"].as_array().expect("q").iter().enumerate() {
            p_value(q[i], expected, &format!("bh q[{i}]"));
        }
    }
}

fn weighted_case(case: &Value, what: &str) -> formulas::Weighted {
    let y = case["y"].as_array().expect("y");
    let w = case["w"].as_array().expect("w");
    let units: Vec<(f64, f64)> = y
        .iter()
        .zip(w)
        .map(|(y, w)| (y.as_f64().expect("y"), w.as_f64().expect("w")))
        .collect();
    let est = formulas::weighted(&units).expect("weighted");
    estimate(est.estimate, &case["estimate"], what);
    estimate(est.se.expect("se"), &case["se"], what);
    estimate(est.n_eff, &case["n_eff"], what);
    let z = normal_critical(case["alpha"].as_f64().unwrap_or(0.05));
    let se = est.se.expect("se");
    let (mut lo, mut hi) = (est.estimate - z * se, est.estimate + z * se);
    if case["kind"] == "proportion" {
        (lo, hi) = (lo.max(0.0), hi.min(1.0));
    }
    interval(Some((lo, hi)), &case["ci"], what);
    est
}

#[test]
fn weighted_estimates_and_differences() {
    let r = refvalues();
    for case in r["weighted"].as_array().expect("cases") {
        weighted_case(case, &format!("weighted {}", case["kind"]));
    }
    for case in r["weighted_differences"].as_array().expect("cases") {
        let what = format!("weighted difference {}", case["kind"]);
        let f = weighted_case(&case["female"], &what);
        let m = weighted_case(&case["male"], &what);
        let d = f.estimate - m.estimate;
        let se = (f.se.expect("se").powi(2) + m.se.expect("se").powi(2)).sqrt();
        estimate(d, &case["difference"], &what);
        estimate(se, &case["se"], &what);
        estimate(d / se, &case["statistic"], &what);
        let z = normal_critical(0.05);
        interval(Some((d - z * se, d + z * se)), &case["ci"], &what);
        p_value(
            genderlens::stats::formulas::wald_p(d / se),
            &case["p_value"],
            &what,
        );
    }
}

#[test]
fn quantiles_match_scipy() {
    // scipy.stats.norm.ppf(0.975) and t.ppf(0.975, 10). The t quantile is solved on
    // statrs' incomplete beta, good to about 1e-11 relative: ample for the 1e-9 intervals.
    close(normal_critical(0.05), 1.959963984540054, 1e-12, 0.0, "z");
    close(t_critical(0.05, 10.0), 2.2281388519649385, 1e-10, 0.0, "t");
}
