//! Every figure against the reference values computed by scipy and statsmodels
//! (`tests/fixtures/refvalues.json`, a copy of `shared/refvalues/refvalues.json`), twice:
//! the formula functions on their own, and the report exactly as the API serves it (each
//! case's inputs laid out as columns, through `build_report` and JSON). Estimates,
//! interval bounds and statistics to a relative 1e-9; p- and q-values to a relative 1e-7
//! or an absolute 1e-15, as the spec allows.

use genderlens::stats::formulas::{self, Summary};
use genderlens::stats::{
    build_report, normal_critical, t_critical, Item, ItemData, ReportInput, ReportOptions, Sex,
};
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

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {v}"))
}

/// An estimate, a bound or a statistic: relative 1e-9 (an expected 0 must be exact).
fn estimate(actual: f64, expected: &Value, what: &str) {
    close(actual, num(expected, what), 1e-9, 0.0, what);
}

fn p_value(actual: f64, expected: &Value, what: &str) {
    close(actual, num(expected, what), 1e-7, 1e-15, what);
}

fn interval(actual: Option<(f64, f64)>, expected: &Value, what: &str) {
    let (lo, hi) = actual.unwrap_or_else(|| panic!("{what}: no interval"));
    estimate(lo, &expected[0], what);
    estimate(hi, &expected[1], what);
}

/// The same comparisons on served JSON figures.
fn served(actual: &Value, expected: &Value, what: &str) {
    estimate(num(actual, what), expected, what);
}

fn served_interval(actual: &Value, expected: &Value, what: &str) {
    served(&actual[0], &expected[0], what);
    served(&actual[1], &expected[1], what);
}

fn served_p(actual: &Value, expected: &Value, what: &str) {
    p_value(num(actual, what), expected, what);
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("count")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("values")
        .iter()
        .map(|x| x.as_f64().expect("x"))
        .collect()
}

// ------------------------------------------------------------------ reports from cases

/// Per sex, the values of one item, laid out as the report's columns.
enum Sample {
    /// Per option, how many chose it.
    Counts(Vec<u64>),
    /// (selected, answered) of one select_multiple option.
    Selected(u64, u64),
    Numbers(Vec<f64>),
}

fn column<T: Clone>(f: Vec<T>, m: Vec<T>) -> (Vec<Sex>, Vec<Option<T>>) {
    let sex = std::iter::repeat_n(Sex::Female, f.len())
        .chain(std::iter::repeat_n(Sex::Male, m.len()))
        .collect();
    (sex, f.into_iter().chain(m).map(Some).collect())
}

fn expand(sample: &Sample) -> Vec<f64> {
    match sample {
        Sample::Counts(counts) => counts
            .iter()
            .enumerate()
            .flat_map(|(k, &c)| std::iter::repeat_n(k as f64, c as usize))
            .collect(),
        Sample::Selected(x, n) => (0..*n).map(|i| f64::from(u8::from(i < *x))).collect(),
        Sample::Numbers(v) => v.clone(),
    }
}

/// The served JSON report of one item, female `f` against male `m`, nothing suppressed.
fn report(f: Sample, m: Sample, weights: Option<(Vec<f64>, Vec<f64>)>, alpha: f64) -> Value {
    let (sex, values) = column(expand(&f), expand(&m));
    let data = match f {
        Sample::Counts(counts) => ItemData::SelectOne {
            options: (0..counts.len()).map(|k| format!("o{k}")).collect(),
            values: values.iter().map(|v| v.map(|v| v as u32)).collect(),
        },
        Sample::Selected(..) => ItemData::SelectMultiple {
            options: vec!["o0".into()],
            values: values.iter().map(|v| v.map(|v| v as u64)).collect(),
        },
        Sample::Numbers(_) => ItemData::Numeric {
            values,
            ratio_scale: true,
        },
    };
    let input = ReportInput {
        sex,
        other_sex_values: vec![],
        dimension: None,
        weights: weights.map(|(f, m)| f.into_iter().chain(m).map(Some).collect()),
        items: vec![Item {
            question: "q".into(),
            data,
        }],
    };
    let options = ReportOptions {
        alpha,
        min_cell: 1,
        public: false,
    };
    serde_json::to_value(build_report(&input, &options)).expect("serializes")
}

fn indicator<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["indicators"]
        .as_array()
        .expect("indicators")
        .iter()
        .find(|i| i["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} indicator in {report}"))
}

fn alpha(case: &Value) -> f64 {
    case["alpha"].as_f64().unwrap_or(0.05)
}

// ------------------------------------------------------------------ proportions

#[test]
fn wilson_intervals() {
    let r = refvalues();
    for case in r["proportions"].as_array().expect("cases") {
        let z = normal_critical(alpha(case));
        let (x, n) = (u(&case["x"]), u(&case["n"]));
        let what = format!("wilson {case}");
        interval(formulas::wilson(x, n, z), &case["wilson"], &what);

        let report = report(
            Sample::Selected(x, n),
            Sample::Selected(x, n),
            None,
            alpha(case),
        );
        let female = &indicator(&report, "proportion")["female"];
        assert_eq!((u(&female["n"]), u(&female["count"])), (n, x), "{what}");
        served(&female["estimate"], &case["estimate"], &what);
        served_interval(&female["ci"], &case["wilson"], &what);
    }
}

#[test]
fn newcombe_differences_and_parity() {
    let r = refvalues();
    for case in r["two_proportions"].as_array().expect("cases") {
        let z = normal_critical(alpha(case));
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

        let report = report(
            Sample::Selected(xf, nf),
            Sample::Selected(xm, nm),
            None,
            alpha(case),
        );
        let gap = &indicator(&report, "proportion")["gap"];
        served(&gap["difference"], &case["difference"], &what);
        served_interval(&gap["ci"], &case["newcombe"], &what);
        if case["ratio"].is_null() {
            assert!(gap["ratio"].is_null(), "{what}: {gap}");
            assert!(gap["adjusted_ratio"].is_null(), "{what}: {gap}");
            assert_eq!(gap["reasons"]["ratio"], "division_by_zero", "{what}");
        } else {
            served(&gap["ratio"], &case["ratio"], &what);
            served(&gap["adjusted_ratio"], &case["adjusted_ratio"], &what);
        }
    }
}

// ------------------------------------------------------------------ tables

fn table_of(case: &Value) -> Vec<Vec<u64>> {
    case["table"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(u).collect())
        .collect()
}

#[test]
fn chi_square_and_fisher() {
    let r = refvalues();
    for case in r["tables"].as_array().expect("cases") {
        let table = table_of(case);
        let what = format!("table {case}");
        let chi = formulas::chi_square(&table).expect("chi-square defined");
        estimate(chi.statistic, &case["statistic"], &what);
        assert_eq!(chi.df, num(&case["df"], &what), "{what}");
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
            estimate(formulas::min_expected_2x2(t), &case["min_expected"], &what);
        }
    }
}

/// A 2×2 table is one two-option question: its test is Fisher's when an expected count is
/// under 5, else chi-square; a wider table is a question's distribution.
#[test]
fn tables_as_the_report_tests_them() {
    let r = refvalues();
    for case in r["tables"].as_array().expect("cases") {
        let table = table_of(case);
        let what = format!("served table {case}");
        let report = report(
            Sample::Counts(table[0].clone()),
            Sample::Counts(table[1].clone()),
            None,
            0.05,
        );
        if table[0].len() == 2 {
            let test = &indicator(&report, "proportion")["test"];
            if num(&case["min_expected"], &what) < 5.0 {
                assert_eq!(test["method"], "fisher", "{what}");
                served_p(&test["p_value"], &case["fisher_p_value"], &what);
            } else {
                assert_eq!(test["method"], "chi_square", "{what}");
                served(&test["statistic"], &case["statistic"], &what);
                assert_eq!(test["df"], case["df"], "{what}");
                served_p(&test["p_value"], &case["p_value"], &what);
            }
        } else {
            let test = &indicator(&report, "distribution")["test"];
            assert_eq!(test["method"], "chi_square", "{what}");
            served(&test["statistic"], &case["statistic"], &what);
            assert_eq!(test["df"], case["df"], "{what}: df is a whole number");
            served_p(&test["p_value"], &case["p_value"], &what);
            served(&test["cramers_v"], &case["cramers_v"], &what);
        }
    }
}

// ------------------------------------------------------------------ numeric

fn summary(values: &Value) -> Summary {
    formulas::summarize(&mut floats(values)).expect("non-empty")
}

#[test]
fn numeric_summaries_welch_mann_whitney_hedges() {
    let r = refvalues();
    for case in r["numeric"].as_array().expect("cases") {
        let alpha = alpha(case);
        let what = format!("numeric n_f={} alpha={alpha}", case["female"]["n"]);
        let (sf, sm) = (summary(&case["f"]), summary(&case["m"]));
        for (s, expected) in [(&sf, &case["female"]), (&sm, &case["male"])] {
            assert_eq!(s.n, u(&expected["n"]));
            estimate(s.mean, &expected["mean"], &what);
            estimate(s.median, &expected["median"], &what);
            estimate(s.sd.expect("sd"), &expected["sd"], &what);
            interval(formulas::mean_ci(s, alpha), &expected["ci"], &what);
        }
        let w = formulas::welch(&sf, &sm, alpha).expect("welch");
        estimate(w.statistic, &case["welch"]["statistic"], &what);
        estimate(w.df, &case["welch"]["df"], &what);
        p_value(w.p_value, &case["welch"]["p_value"], &what);
        interval(Some(w.ci), &case["welch"]["ci"], &what);
        let mw = formulas::mann_whitney(&floats(&case["f"]), &floats(&case["m"])).expect("mw");
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
fn means_as_the_report_serves_them() {
    let r = refvalues();
    for case in r["numeric"].as_array().expect("cases") {
        let what = format!("served numeric n_f={} {}", case["female"]["n"], alpha(case));
        let report = report(
            Sample::Numbers(floats(&case["f"])),
            Sample::Numbers(floats(&case["m"])),
            None,
            alpha(case),
        );
        let mean = indicator(&report, "mean");
        for sex in ["female", "male"] {
            let (side, expected) = (&mean[sex], &case[sex]);
            assert_eq!(side["n"], expected["n"], "{what}");
            for figure in ["sd", "median"] {
                served(&side[figure], &expected[figure], &what);
            }
            served(&side["estimate"], &expected["mean"], &what);
            served_interval(&side["ci"], &expected["ci"], &what);
        }
        let gap = &mean["gap"];
        for figure in ["difference", "ratio", "relative", "hedges_g"] {
            served(&gap[figure], &case[figure], &format!("{what} {figure}"));
        }
        served_interval(&gap["ci"], &case["welch"]["ci"], &what);
        let test = &mean["test"];
        assert_eq!(test["method"], "welch_t");
        served(&test["statistic"], &case["welch"]["statistic"], &what);
        served(&test["df"], &case["welch"]["df"], &what);
        served_p(&test["p_value"], &case["welch"]["p_value"], &what);
        let mw = &mean["tests"][0];
        assert_eq!(mw["method"], "mann_whitney");
        served(&mw["statistic"], &case["mann_whitney"]["statistic"], &what);
        served_p(&mw["p_value"], &case["mann_whitney"]["p_value"], &what);
        served(&mw["effect"], &case["mann_whitney"]["rank_biserial"], &what);
    }
}

/// U exactly at its mean: the corrected z is negative and scipy's p is 1, not mirrored.
#[test]
fn mann_whitney_at_the_mean_has_p_one() {
    let values = [1.0, 2.0, 3.0, 4.0, 5.0];
    let mw = formulas::mann_whitney(&values, &values).expect("defined");
    assert_eq!((mw.statistic, mw.p_value, mw.effect), (12.5, 1.0, 0.0));
}

// ------------------------------------------------------------------ q-values

#[test]
fn benjamini_hochberg() {
    let r = refvalues();
    for case in r["bh"].as_array().expect("cases") {
        let q = formulas::benjamini_hochberg(&floats(&case["p"]));
        for (i, expected) in case["q"].as_array().expect("q").iter().enumerate() {
            p_value(q[i], expected, &format!("bh q[{i}]"));
        }
    }
}

// ------------------------------------------------------------------ weights

fn units(case: &Value) -> (Vec<f64>, Vec<f64>) {
    (floats(&case["y"]), floats(&case["w"]))
}

fn weighted_sample(case: &Value) -> Sample {
    let y = floats(&case["y"]);
    if case["kind"] == "proportion" {
        let x = y.iter().filter(|&&v| v == 1.0).count() as u64;
        Sample::Selected(x, y.len() as u64)
    } else {
        Sample::Numbers(y)
    }
}

#[test]
fn weighted_estimates() {
    let r = refvalues();
    for case in r["weighted"].as_array().expect("cases") {
        let what = format!(
            "weighted {} n={}",
            case["kind"],
            case["y"].as_array().map_or(0, Vec::len)
        );
        let (y, w) = units(case);
        let pairs: Vec<(f64, f64)> = y.iter().copied().zip(w.iter().copied()).collect();
        let est = formulas::weighted(&pairs).expect("weighted");
        estimate(est.estimate, &case["estimate"], &what);
        estimate(est.se.expect("se"), &case["se"], &what);
        estimate(est.n_eff, &case["n_eff"], &what);

        // The same units as both sexes. A proportion's units are laid out selected first,
        // so its weights are reordered alike.
        let ordered_w: Vec<f64> = if case["kind"] == "proportion" {
            let mut by_y: Vec<(f64, f64)> = pairs.clone();
            by_y.sort_by(|a, b| b.0.total_cmp(&a.0));
            by_y.into_iter().map(|(_, w)| w).collect()
        } else {
            w.clone()
        };
        let report = report(
            weighted_sample(case),
            weighted_sample(case),
            Some((ordered_w.clone(), ordered_w)),
            alpha(case),
        );
        assert_eq!(report["weighted"], true);
        let kind = if case["kind"] == "proportion" {
            "proportion"
        } else {
            "mean"
        };
        let female = &indicator(&report, kind)["female"];
        served(&female["estimate"], &case["estimate"], &what);
        served_interval(&female["ci"], &case["ci"], &what);
        served(&female["n_eff"], &case["n_eff"], &what);
    }
}

#[test]
fn weighted_differences_with_wald_tests() {
    let r = refvalues();
    for case in r["weighted_differences"].as_array().expect("cases") {
        let what = format!("weighted difference {}", case["kind"]);
        let ordered = |side: &Value| -> Vec<f64> {
            let (y, w) = units(side);
            let mut pairs: Vec<(f64, f64)> = y.into_iter().zip(w).collect();
            if case["kind"] == "proportion" {
                pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
            }
            pairs.into_iter().map(|(_, w)| w).collect()
        };
        let report = report(
            weighted_sample(&case["female"]),
            weighted_sample(&case["male"]),
            Some((ordered(&case["female"]), ordered(&case["male"]))),
            0.05,
        );
        let kind = if case["kind"] == "proportion" {
            "proportion"
        } else {
            "mean"
        };
        let ind = indicator(&report, kind);
        for sex in ["female", "male"] {
            served(&ind[sex]["estimate"], &case[sex]["estimate"], &what);
            served_interval(&ind[sex]["ci"], &case[sex]["ci"], &what);
            served(&ind[sex]["n_eff"], &case[sex]["n_eff"], &what);
        }
        served(&ind["gap"]["difference"], &case["difference"], &what);
        served_interval(&ind["gap"]["ci"], &case["ci"], &what);
        assert_eq!(ind["test"]["method"], "wald_z");
        served(&ind["test"]["statistic"], &case["statistic"], &what);
        served_p(&ind["test"]["p_value"], &case["p_value"], &what);
    }
}

#[test]
fn quantiles_match_scipy() {
    // scipy.stats.norm.ppf(0.975) and t.ppf(0.975, 10). The t quantile is solved on
    // statrs' incomplete beta, good to about 1e-11 relative: ample for the 1e-9 intervals.
    close(normal_critical(0.05), 1.959963984540054, 1e-12, 0.0, "z");
    close(t_critical(0.05, 10.0), 2.2281388519649385, 1e-10, 0.0, "t");
}
