//! Assembling the indicators report from per-question columns: aggregation per sex and
//! cell in one pass, the figures of each indicator, small-cell suppression (rules 1–3 of
//! the spec) and Benjamini–Hochberg q-values across the whole report.

use super::dist;
use super::formulas::{self, Summary};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sex of one respondent, already resolved from the form's sex question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
    /// Index into `ReportInput::other_sex_values`.
    Other(u16),
    Missing,
}

/// A `by` breakdown: a level index per response.
#[derive(Clone, Debug)]
pub struct Dimension {
    pub name: String,
    pub levels: Vec<String>,
    pub codes: Vec<Option<u32>>,
}

#[derive(Clone, Debug)]
pub enum ItemData {
    /// Index of the chosen option.
    SelectOne {
        options: Vec<String>,
        values: Vec<Option<u32>>,
    },
    /// Index into the ordered options; the score is index + 1.
    Likert {
        options: Vec<String>,
        values: Vec<Option<u32>>,
    },
    /// Bit i set when options[i] is selected; `None` = not answered.
    SelectMultiple {
        options: Vec<String>,
        values: Vec<Option<u64>>,
    },
    /// `ratio_scale` is false when the question allows values below 0.
    Numeric {
        values: Vec<Option<f64>>,
        ratio_scale: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Item {
    pub question: String,
    pub data: ItemData,
}

#[derive(Clone, Debug)]
pub struct ReportInput {
    /// One per response.
    pub sex: Vec<Sex>,
    /// Choice values of the sex question other than female/male, in choice order.
    pub other_sex_values: Vec<String>,
    pub dimension: Option<Dimension>,
    /// Design weights, when the report is weighted.
    pub weights: Option<Vec<Option<f64>>>,
    /// In form order.
    pub items: Vec<Item>,
}

#[derive(Clone, Copy, Debug)]
pub struct ReportOptions {
    pub alpha: f64,
    pub min_cell: u64,
    /// Read without credentials: counts under `min_cell` are suppressed too (rule 2).
    pub public: bool,
}

// ------------------------------------------------------------------ output

/// A JSON object whose keys keep the order they were given in (choice order), not the
/// alphabetical order of a map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ordered<V>(pub Vec<(String, V)>);

/// Counts by sex category, in a fixed order: female, male, each other value, missing.
/// A count is `null` when it was suppressed.
pub type SexCounts = Ordered<Option<u64>>;

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `{dimension: level}` of a breakdown cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub dimension: String,
    pub level: String,
}

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.dimension, &self.level)?;
        map.end()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Proportion,
    Distribution,
    Mean,
}

/// Why figures are null: figure name → reason (`no_responses`, `small_cell`, `too_few`,
/// `zero_variance`, `no_variation`, `division_by_zero`, `not_ratio_scale`).
pub type Reasons = BTreeMap<&'static str, &'static str>;

/// The figures of one sex in one indicator. Fields that do not belong to the indicator's
/// kind are left out; fields that belong but cannot be computed are `null`, with the
/// reason in `reasons`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    pub n: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<Option<u64>>,
    /// Per option in choice order, for distributions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Option<Ordered<u64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sd: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<Option<[f64; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_eff: Option<Option<f64>>,
    /// `null` when the side is suppressed: n + missing is the same for every question of
    /// a cell, so a visible `missing` would give the hidden `n` away.
    pub missing: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: Reasons,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Gap {
    pub difference: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjusted_ratio: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedges_g: Option<Option<f64>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: Reasons,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    ChiSquare,
    Fisher,
    WelchT,
    MannWhitney,
    WaldZ,
}

#[derive(Clone, Debug, Serialize)]
pub struct Test {
    pub method: Method,
    pub statistic: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "whole_numbers_as_integers"
    )]
    pub df: Option<Option<f64>>,
    pub p_value: Option<f64>,
    /// Primary tests only: their Benjamini–Hochberg q-value across the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_value: Option<Option<f64>>,
    /// Mann–Whitney's rank-biserial correlation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Option<f64>>,
    /// Distributions: Cramér's V.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cramers_v: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Chi-square degrees of freedom are counts (`"df": 1`); Welch's are fractional.
fn whole_numbers_as_integers<S: Serializer>(
    df: &Option<Option<f64>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match df.flatten() {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => serializer.serialize_i64(x as i64),
        other => other.serialize(serializer),
    }
}

impl Test {
    fn null(method: Method, reason: &'static str) -> Test {
        Test {
            method,
            statistic: None,
            df: None,
            p_value: None,
            q_value: None,
            effect: None,
            cramers_v: None,
            reason: Some(reason),
        }
    }

    fn clear(&mut self, reason: &'static str) {
        *self = Test {
            df: self.df.map(|_| None),
            q_value: self.q_value.map(|_| None),
            effect: self.effect.map(|_| None),
            cramers_v: self.cramers_v.map(|_| None),
            ..Test::null(self.method, reason)
        };
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Indicator {
    pub question: String,
    pub kind: Kind,
    pub option: Option<String>,
    pub group: Option<Group>,
    pub female: Side,
    pub male: Side,
    pub gap: Gap,
    pub test: Test,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<Test>,
    pub suppressed: bool,
    pub reason: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `null` only in a public report where it would give a hidden sex count away.
    pub responses: Option<u64>,
    pub by: Option<String>,
    pub alpha: f64,
    pub min_cell: u64,
    pub weighted: bool,
    pub sex_counts: SexCounts,
    pub indicators: Vec<Indicator>,
}

// ------------------------------------------------------------------ aggregation

/// What one sex contributes to one cell of one item.
#[derive(Clone, Debug, Default)]
struct Group2 {
    /// Answered (and, when weighted, with a valid weight).
    n: u64,
    missing: u64,
    /// Per option: how many chose it (categorical) or selected it (multiple).
    counts: Vec<u64>,
    /// Numeric values, or Likert scores.
    values: Vec<f64>,
    /// (value or 0/1-code, weight) per unit, when weighted; for categorical items the
    /// code is the option index or the selection bit set.
    units: Vec<(f64, f64)>,
}

fn sex_index(sex: Sex) -> Option<usize> {
    match sex {
        Sex::Female => Some(0),
        Sex::Male => Some(1),
        _ => None,
    }
}

/// Per cell (0 = whole sample, then each level) and sex, for one item.
fn aggregate(input: &ReportInput, item: &Item, options: usize) -> Vec<[Group2; 2]> {
    let levels = input.dimension.as_ref().map_or(0, |d| d.levels.len());
    let mut cells: Vec<[Group2; 2]> = (0..=levels)
        .map(|_| {
            let g = Group2 {
                counts: vec![0; options],
                ..Group2::default()
            };
            [g.clone(), g]
        })
        .collect();
    let weight_of = |i: usize| -> Option<Option<f64>> {
        input.weights.as_ref().map(|w| {
            w.get(i)
                .copied()
                .flatten()
                .filter(|w| w.is_finite() && *w > 0.0)
        })
    };
    for (i, &sex) in input.sex.iter().enumerate() {
        let Some(s) = sex_index(sex) else { continue };
        let cell = input
            .dimension
            .as_ref()
            .and_then(|d| d.codes.get(i).copied().flatten())
            .filter(|&c| (c as usize) < levels)
            .map(|c| c as usize + 1);
        // The answer as (option index / bit set / value); None = missing.
        let value: Option<f64> = match &item.data {
            ItemData::SelectOne { values, .. } | ItemData::Likert { values, .. } => values
                .get(i)
                .copied()
                .flatten()
                .filter(|&c| (c as usize) < options)
                .map(f64::from),
            ItemData::SelectMultiple { values, .. } => {
                values.get(i).copied().flatten().map(|b| b as f64)
            }
            ItemData::Numeric { values, .. } => {
                values.get(i).copied().flatten().filter(|v| v.is_finite())
            }
        };
        let weight = weight_of(i);
        let present = value.filter(|_| weight.is_none_or(|w| w.is_some()));
        for c in std::iter::once(0).chain(cell) {
            let g = &mut cells[c][s];
            let Some(v) = present else {
                g.missing += 1;
                continue;
            };
            g.n += 1;
            match &item.data {
                ItemData::SelectOne { .. } => g.counts[v as usize] += 1,
                ItemData::Likert { .. } => {
                    g.counts[v as usize] += 1;
                    g.values.push(v + 1.0);
                }
                ItemData::SelectMultiple { .. } => {
                    let bits = v as u64;
                    for (k, count) in g.counts.iter_mut().enumerate() {
                        if bits & (1 << k) != 0 {
                            *count += 1;
                        }
                    }
                }
                ItemData::Numeric { .. } => g.values.push(v),
            }
            if let Some(Some(w)) = weight {
                g.units.push((v, w));
            }
        }
    }
    // Weighted sums run over the units in a fixed order, not the order the database
    // returned the rows in: every backend and index gives the same figures to the last bit.
    for g in cells.iter_mut().flatten() {
        g.units
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    }
    cells
}

// ------------------------------------------------------------------ indicators

/// An indicator being built, with what suppression and the q-values need to know.
struct Draft {
    out: Indicator,
    /// Identifies the indicator across cells (item, kind, option).
    key: (usize, Kind, Option<usize>),
    cell: usize,
    n: [u64; 2],
    /// Per sex, how many chose the option: proportions of a single-choice question only,
    /// whose options split `n` between them (a partition that suppression must respect).
    partition_count: Option<[u64; 2]>,
    /// Identifies the primary test for the BH family (shared by the two options of a
    /// two-option question).
    test_key: usize,
}

struct Builder<'a> {
    opts: &'a ReportOptions,
    z: f64,
    weighted: bool,
    drafts: Vec<Draft>,
    next_test: usize,
}

fn ci(pair: Option<(f64, f64)>) -> Option<[f64; 2]> {
    pair.filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| [a, b])
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Builder<'_> {
    fn new_test_key(&mut self) -> usize {
        self.next_test += 1;
        self.next_test
    }

    fn proportion_side(&self, g: &Group2, x: u64, option: usize, multi: bool) -> Side {
        let mut side = Side {
            n: Some(g.n),
            count: Some(Some(x)),
            estimate: Some(None),
            ci: Some(None),
            missing: Some(g.missing),
            n_eff: self.weighted.then_some(None),
            ..Side::default()
        };
        if g.n == 0 {
            side.reasons.insert("estimate", "no_responses");
            return side;
        }
        if self.weighted {
            if let Some(w) = formulas::weighted(&option_units(g, option, multi)) {
                side.estimate = Some(finite(w.estimate));
                side.n_eff = Some(finite(w.n_eff));
                match w.se {
                    Some(se) => {
                        side.ci = Some(ci(Some((
                            (w.estimate - self.z * se).max(0.0),
                            (w.estimate + self.z * se).min(1.0),
                        ))))
                    }
                    None => {
                        side.reasons.insert("ci", "too_few");
                    }
                }
            }
        } else {
            side.estimate = Some(Some(x as f64 / g.n as f64));
            side.ci = Some(ci(formulas::wilson(x, g.n, self.z)));
        }
        side
    }

    fn proportions(
        &mut self,
        question: &str,
        item: usize,
        options: &[String],
        multi: bool,
        cells: &[[Group2; 2]],
        groups: &[Option<Group>],
    ) {
        // The two options of a two-option question are one 2×2 table: one test per cell.
        let shared: Option<Vec<usize>> = (options.len() == 2 && !multi)
            .then(|| cells.iter().map(|_| self.new_test_key()).collect());
        for (k, label) in options.iter().enumerate() {
            for (c, cell) in cells.iter().enumerate() {
                let test_key = match &shared {
                    Some(keys) => keys[c],
                    None => self.new_test_key(),
                };
                self.proportion(
                    question,
                    item,
                    (k, label),
                    multi,
                    cell,
                    groups[c].clone(),
                    c,
                    test_key,
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn proportion(
        &mut self,
        question: &str,
        item: usize,
        (k, label): (usize, &str),
        multi: bool,
        cell: &[Group2; 2],
        group: Option<Group>,
        c: usize,
        test_key: usize,
    ) {
        {
            let [f, m] = cell;
            let (xf, xm) = (f.counts[k], m.counts[k]);
            let female = self.proportion_side(f, xf, k, multi);
            let male = self.proportion_side(m, xm, k, multi);
            let mut gap = Gap {
                adjusted_ratio: Some(None),
                ..Gap::default()
            };
            let method = if self.weighted {
                Method::WaldZ
            } else {
                Method::ChiSquare
            };
            let mut test = Test::null(method, "no_responses");
            test.df = (!self.weighted).then_some(None);
            test.q_value = Some(None);
            if f.n > 0 && m.n > 0 {
                let (pf, pm) = (female.estimate.flatten(), male.estimate.flatten());
                if let (Some(pf), Some(pm)) = (pf, pm) {
                    gap.difference = Some(pf - pm);
                    if pm > 0.0 {
                        let ratio = pf / pm;
                        gap.ratio = Some(ratio);
                        gap.adjusted_ratio = Some(Some(formulas::adjusted_ratio(ratio)));
                    } else {
                        gap.reasons.insert("ratio", "division_by_zero");
                        gap.reasons.insert("adjusted_ratio", "division_by_zero");
                    }
                }
                if self.weighted {
                    (gap.ci, test) = self.wald(f, m, k, multi, gap.difference);
                } else {
                    gap.ci = ci(formulas::newcombe(xf, f.n, xm, m.n, self.z));
                    test = two_by_two([[xf, f.n - xf], [xm, m.n - xm]]);
                }
            } else {
                gap.reasons.insert("difference", "no_responses");
            }
            self.push(Draft {
                out: Indicator {
                    question: question.to_owned(),
                    kind: Kind::Proportion,
                    option: Some(label.to_owned()),
                    group,
                    female,
                    male,
                    gap,
                    test,
                    tests: Vec::new(),
                    suppressed: false,
                    reason: None,
                },
                key: (item, Kind::Proportion, Some(k)),
                cell: c,
                n: [f.n, m.n],
                partition_count: (!multi).then_some([xf, xm]),
                test_key,
            });
        }
    }

    /// Weighted difference with its Wald z test.
    fn wald(
        &self,
        f: &Group2,
        m: &Group2,
        option: usize,
        multi: bool,
        d: Option<f64>,
    ) -> (Option<[f64; 2]>, Test) {
        let se =
            |g: &Group2| formulas::weighted(&option_units(g, option, multi)).and_then(|w| w.se);
        match (d, se(f), se(m)) {
            (Some(d), Some(a), Some(b)) => wald_test(d, (a * a + b * b).sqrt(), self.z),
            (None, _, _) => (None, Test::null(Method::WaldZ, "no_responses")),
            _ => (None, Test::null(Method::WaldZ, "too_few")),
        }
    }

    fn distribution(
        &mut self,
        question: &str,
        item: usize,
        options: &[String],
        cells: &[[Group2; 2]],
        groups: &[Option<Group>],
    ) {
        for (c, cell) in cells.iter().enumerate() {
            let [f, m] = cell;
            let side = |g: &Group2| Side {
                n: Some(g.n),
                counts: Some(Some(Ordered(
                    options
                        .iter()
                        .zip(&g.counts)
                        .map(|(o, &n)| (o.clone(), n))
                        .collect(),
                ))),
                missing: Some(g.missing),
                ..Side::default()
            };
            let mut test = Test {
                q_value: Some(None),
                cramers_v: Some(None),
                df: Some(None),
                ..Test::null(Method::ChiSquare, "no_responses")
            };
            if self.weighted {
                // The spec gives no weighted test of a whole distribution (that would be
                // Rao–Scott's); the counts are shown, the test is not.
                test.reason = Some("weighted");
            } else if f.n > 0 && m.n > 0 {
                match formulas::chi_square(&[f.counts.clone(), m.counts.clone()]) {
                    Some(chi) => {
                        test = Test {
                            method: Method::ChiSquare,
                            statistic: finite(chi.statistic),
                            df: Some(Some(chi.df)),
                            p_value: finite(chi.p_value),
                            q_value: Some(None),
                            effect: None,
                            cramers_v: Some(finite(chi.cramers_v)),
                            reason: None,
                        }
                    }
                    None => test.reason = Some("no_variation"),
                }
            }
            let test_key = self.new_test_key();
            self.push(Draft {
                out: Indicator {
                    question: question.to_owned(),
                    kind: Kind::Distribution,
                    option: None,
                    group: groups[c].clone(),
                    female: side(f),
                    male: side(m),
                    gap: Gap::default(),
                    test,
                    tests: Vec::new(),
                    suppressed: false,
                    reason: None,
                },
                key: (item, Kind::Distribution, None),
                cell: c,
                n: [f.n, m.n],
                partition_count: None,
                test_key,
            });
        }
    }

    /// `offset` turns a weighted unit's code into its value (Likert: index + 1).
    fn mean_side(&self, g: &mut Group2, offset: f64) -> (Side, Option<Summary>) {
        let mut side = Side {
            n: Some(g.n),
            estimate: Some(None),
            sd: Some(None),
            median: Some(None),
            ci: Some(None),
            n_eff: self.weighted.then_some(None),
            missing: Some(g.missing),
            ..Side::default()
        };
        let summary = formulas::summarize(&mut g.values);
        let Some(s) = summary else {
            side.reasons.insert("estimate", "no_responses");
            return (side, None);
        };
        if self.weighted {
            // Medians are not given weighted (spec); the SD stays the sample SD.
            side.median = Some(None);
            side.reasons.insert("median", "weighted");
            let units: Vec<(f64, f64)> = g.units.iter().map(|&(v, w)| (v + offset, w)).collect();
            if let Some(w) = formulas::weighted(&units) {
                side.estimate = Some(finite(w.estimate));
                side.n_eff = Some(finite(w.n_eff));
                match w.se {
                    Some(se) => {
                        side.ci = Some(ci(Some((
                            w.estimate - self.z * se,
                            w.estimate + self.z * se,
                        ))))
                    }
                    None => {
                        side.reasons.insert("ci", "too_few");
                    }
                }
            }
        } else {
            side.estimate = Some(finite(s.mean));
            side.median = Some(finite(s.median));
            side.ci = Some(ci(formulas::mean_ci(&s, self.opts.alpha)));
        }
        side.sd = Some(s.sd.and_then(finite));
        if s.sd.is_none() {
            side.reasons.insert("sd", "too_few");
            side.reasons.entry("ci").or_insert("too_few");
        }
        (side, Some(s))
    }

    fn mean(
        &mut self,
        question: &str,
        item: usize,
        ratio_scale: bool,
        offset: f64,
        cells: &mut [[Group2; 2]],
        groups: &[Option<Group>],
    ) {
        // Ratios need a ratio scale: no value below 0 may have been answered.
        let ratio_scale = ratio_scale
            && cells
                .first()
                .is_none_or(|c| c.iter().all(|g| g.values.iter().all(|v| *v >= 0.0)));
        for (c, cell) in cells.iter_mut().enumerate() {
            let [f, m] = cell;
            let (female, sf) = self.mean_side(f, offset);
            let (male, sm) = self.mean_side(m, offset);
            let mut gap = Gap {
                relative: Some(None),
                hedges_g: Some(None),
                ..Gap::default()
            };
            let method = if self.weighted {
                Method::WaldZ
            } else {
                Method::WelchT
            };
            let mut test = Test {
                q_value: Some(None),
                df: (!self.weighted).then_some(None),
                ..Test::null(method, "no_responses")
            };
            let mut tests = Vec::new();
            if let (Some(sf), Some(sm)) = (sf, sm) {
                let (ef, em) = (female.estimate.flatten(), male.estimate.flatten());
                if let (Some(ef), Some(em)) = (ef, em) {
                    gap.difference = Some(ef - em);
                    if !ratio_scale {
                        for figure in ["ratio", "relative"] {
                            gap.reasons.insert(figure, "not_ratio_scale");
                        }
                    } else if em == 0.0 {
                        for figure in ["ratio", "relative"] {
                            gap.reasons.insert(figure, "division_by_zero");
                        }
                    } else {
                        gap.ratio = finite(ef / em);
                        gap.relative = Some(finite((em - ef) / em));
                    }
                }
                if self.weighted {
                    let se_of = |g: &Group2| {
                        let units: Vec<(f64, f64)> =
                            g.units.iter().map(|&(v, w)| (v + offset, w)).collect();
                        formulas::weighted(&units).and_then(|w| w.se)
                    };
                    let se = match (se_of(f), se_of(m)) {
                        (Some(a), Some(b)) => Some((a * a + b * b).sqrt()),
                        _ => None,
                    };
                    match (gap.difference, se) {
                        (Some(d), Some(se)) => (gap.ci, test) = wald_test(d, se, self.z),
                        _ => test.reason = Some("too_few"),
                    }
                    gap.reasons.insert("hedges_g", "weighted");
                } else {
                    match formulas::hedges_g(&sf, &sm) {
                        Some(g) => gap.hedges_g = Some(finite(g)),
                        None => {
                            let why = if sf.sd.is_none() || sm.sd.is_none() {
                                "too_few"
                            } else {
                                "zero_variance"
                            };
                            gap.reasons.insert("hedges_g", why);
                        }
                    }
                    if sf.n < 2 || sm.n < 2 {
                        test.reason = Some("too_few");
                        gap.reasons.insert("ci", "too_few");
                    } else {
                        match formulas::welch(&sf, &sm, self.opts.alpha) {
                            Some(w) => {
                                gap.ci = ci(Some(w.ci));
                                test = Test {
                                    method: Method::WelchT,
                                    statistic: finite(w.statistic),
                                    df: Some(finite(w.df)),
                                    p_value: finite(w.p_value),
                                    q_value: Some(None),
                                    effect: None,
                                    cramers_v: None,
                                    reason: None,
                                };
                            }
                            None => {
                                test.reason = Some("zero_variance");
                                gap.reasons.insert("ci", "zero_variance");
                            }
                        }
                    }
                    tests.push(match formulas::mann_whitney(&f.values, &m.values) {
                        Some(mw) => Test {
                            method: Method::MannWhitney,
                            statistic: finite(mw.statistic),
                            df: None,
                            p_value: finite(mw.p_value),
                            q_value: None,
                            effect: Some(finite(mw.effect)),
                            cramers_v: None,
                            reason: None,
                        },
                        None => Test {
                            effect: Some(None),
                            ..Test::null(Method::MannWhitney, "no_variation")
                        },
                    });
                }
            } else {
                gap.reasons.insert("difference", "no_responses");
                if !self.weighted {
                    tests.push(Test {
                        effect: Some(None),
                        ..Test::null(Method::MannWhitney, "no_responses")
                    });
                }
            }
            let test_key = self.new_test_key();
            self.push(Draft {
                out: Indicator {
                    question: question.to_owned(),
                    kind: Kind::Mean,
                    option: None,
                    group: groups[c].clone(),
                    female,
                    male,
                    gap,
                    test,
                    tests,
                    suppressed: false,
                    reason: None,
                },
                key: (item, Kind::Mean, None),
                cell: c,
                n: [f.n, m.n],
                partition_count: None,
                test_key,
            });
        }
    }

    /// Applies rules 1 and 2 of the spec to a fresh indicator, then keeps it.
    fn push(&mut self, mut draft: Draft) {
        let min = self.opts.min_cell;
        for s in 0..2 {
            let side = if s == 0 {
                &draft.out.female
            } else {
                &draft.out.male
            };
            let n = draft.n[s];
            let small_n = n > 0 && n < min;
            let small_count = self.opts.public
                && n > 0
                && match (side.count, &side.counts) {
                    (Some(Some(x)), _) => (x > 0 && x < min) || (n - x > 0 && n - x < min),
                    (_, Some(Some(counts))) => counts.0.iter().any(|&(_, x)| x > 0 && x < min),
                    _ => false,
                };
            if small_n || small_count {
                suppress(&mut draft.out, s);
            }
        }
        self.drafts.push(draft);
    }
}

/// Whether a respondent's code has option `k`: the option index for single choices, the
/// bit for multiple selections.
fn has_option(code: f64, k: usize, multi: bool) -> bool {
    if multi {
        (code as u64) & (1 << k) != 0
    } else {
        code as usize == k
    }
}

/// (0/1 for option `k`, weight) per weighted unit.
fn option_units(g: &Group2, k: usize, multi: bool) -> Vec<(f64, f64)> {
    g.units
        .iter()
        .map(|&(code, w)| (f64::from(u8::from(has_option(code, k, multi))), w))
        .collect()
}

fn wald_test(d: f64, se: f64, z: f64) -> (Option<[f64; 2]>, Test) {
    if !dist::positive(se) {
        return (None, Test::null(Method::WaldZ, "zero_variance"));
    }
    let statistic = d / se;
    (
        ci(Some((d - z * se, d + z * se))),
        Test {
            method: Method::WaldZ,
            statistic: finite(statistic),
            df: None,
            p_value: finite(dist::normal_two_sided(statistic)),
            q_value: Some(None),
            effect: None,
            cramers_v: None,
            reason: None,
        },
    )
}

/// Chi-square without correction, or Fisher's exact test when an expected count is below 5.
fn two_by_two(table: [[u64; 2]; 2]) -> Test {
    if formulas::min_expected_2x2(table) < 5.0 {
        return Test {
            method: Method::Fisher,
            statistic: None,
            df: Some(None),
            p_value: finite(formulas::fisher_exact(table)),
            q_value: Some(None),
            effect: None,
            cramers_v: None,
            reason: None,
        };
    }
    let rows = [table[0].to_vec(), table[1].to_vec()];
    match formulas::chi_square(&rows) {
        Some(chi) => Test {
            method: Method::ChiSquare,
            statistic: finite(chi.statistic),
            df: Some(Some(chi.df)),
            p_value: finite(chi.p_value),
            q_value: Some(None),
            effect: None,
            cramers_v: None,
            reason: None,
        },
        None => Test {
            df: Some(None),
            q_value: Some(None),
            ..Test::null(Method::ChiSquare, "no_variation")
        },
    }
}

/// Nulls every figure of sex `s` and the indicator's gap and tests (rules 1–3).
fn suppress(ind: &mut Indicator, s: usize) {
    let side = if s == 0 {
        &mut ind.female
    } else {
        &mut ind.male
    };
    *side = Side {
        n: None,
        count: side.count.map(|_| None),
        counts: side.counts.as_ref().map(|_| None),
        estimate: side.estimate.map(|_| None),
        sd: side.sd.map(|_| None),
        median: side.median.map(|_| None),
        ci: side.ci.map(|_| None),
        n_eff: side.n_eff.map(|_| None),
        missing: None,
        reasons: [("n", "small_cell")].into_iter().collect(),
    };
    ind.gap = Gap {
        adjusted_ratio: ind.gap.adjusted_ratio.map(|_| None),
        relative: ind.gap.relative.map(|_| None),
        hedges_g: ind.gap.hedges_g.map(|_| None),
        reasons: [("difference", "small_cell")].into_iter().collect(),
        ..Gap::default()
    };
    ind.test.clear("small_cell");
    for t in &mut ind.tests {
        t.clear("small_cell");
    }
    ind.suppressed = true;
    ind.reason = Some("small_cell");
}

fn is_suppressed(ind: &Indicator, s: usize) -> bool {
    let side = if s == 0 { &ind.female } else { &ind.male };
    side.n.is_none()
}

/// Rule 3: within a breakdown, a lone suppressed cell for a sex and indicator could be
/// recovered from the whole-sample figure; suppress the next smallest cell as well.
/// Returns whether it suppressed anything.
fn complementary_suppression(drafts: &mut [Draft]) -> bool {
    let mut changed = false;
    let mut by_key: HashMap<(usize, Kind, Option<usize>), Vec<usize>> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        if d.cell > 0 {
            by_key.entry(d.key).or_default().push(i);
        }
    }
    for indices in by_key.values() {
        for s in 0..2 {
            let suppressed = indices
                .iter()
                .filter(|&&i| is_suppressed(&drafts[i].out, s))
                .count();
            if suppressed != 1 {
                continue;
            }
            let next = indices
                .iter()
                .copied()
                .filter(|&i| !is_suppressed(&drafts[i].out, s) && drafts[i].n[s] > 0)
                .min_by_key(|&i| drafts[i].n[s]);
            if let Some(i) = next {
                suppress(&mut drafts[i].out, s);
                changed = true;
            }
        }
    }
    changed
}

/// The options of a single-choice question split one `n`, and its mean score and
/// distribution are functions of the same counts. If anything of such a question is
/// hidden for a sex and cell, at least two of its options are (a lone hidden count would
/// be n minus the others) and so are its distribution and mean score (with the visible
/// counts they would give the hidden ones back). Returns whether it suppressed anything.
fn partition_suppression(drafts: &mut [Draft]) -> bool {
    let mut by_cell: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        by_cell.entry((d.key.0, d.cell)).or_default().push(i);
    }
    let mut changed = false;
    for indices in by_cell.values() {
        let is_partition = indices.iter().any(|&i| drafts[i].partition_count.is_some());
        if !is_partition {
            continue;
        }
        for s in 0..2 {
            if !indices.iter().any(|&i| is_suppressed(&drafts[i].out, s)) {
                continue;
            }
            for &i in indices {
                if drafts[i].partition_count.is_none() && !is_suppressed(&drafts[i].out, s) {
                    suppress(&mut drafts[i].out, s);
                    changed = true;
                }
            }
            let hidden_options = |drafts: &[Draft]| {
                indices
                    .iter()
                    .filter(|&&i| drafts[i].partition_count.is_some())
                    .filter(|&&i| is_suppressed(&drafts[i].out, s))
                    .count()
            };
            while hidden_options(drafts) < 2 {
                let smallest = indices
                    .iter()
                    .copied()
                    .filter(|&i| !is_suppressed(&drafts[i].out, s))
                    .filter_map(|i| drafts[i].partition_count.map(|c| (c[s], i)))
                    .min();
                let Some((_, i)) = smallest else { break };
                suppress(&mut drafts[i].out, s);
                changed = true;
            }
        }
    }
    changed
}

/// The two options of a two-option question are one 2×2 table: they carry the very same
/// test (computed on the first option's table), not two that differ in the last digit.
/// A weighted test's statistic is the signed d/se, and the second option's difference is
/// the first's negated: so is its statistic.
fn share_tests(drafts: &mut [Draft]) {
    let mut first: HashMap<usize, (Test, Option<f64>)> = HashMap::new();
    for d in drafts.iter_mut() {
        match first.get(&d.test_key) {
            Some((test, difference)) => {
                let mut test = test.clone();
                let opposite = match (difference, d.out.gap.difference) {
                    (Some(a), Some(b)) => a * b < 0.0,
                    _ => false,
                };
                if test.method == Method::WaldZ && opposite {
                    test.statistic = test.statistic.map(|z| -z);
                }
                d.out.test = test;
            }
            None => {
                first.insert(d.test_key, (d.out.test.clone(), d.out.gap.difference));
            }
        }
    }
}

/// Every distinct non-null primary test of the report is one BH family.
fn assign_q_values(drafts: &mut [Draft]) {
    let mut family: Vec<(usize, f64)> = Vec::new();
    for d in drafts.iter() {
        if let Some(p) = d.out.test.p_value {
            if !family.iter().any(|(k, _)| *k == d.test_key) {
                family.push((d.test_key, p));
            }
        }
    }
    let p: Vec<f64> = family.iter().map(|(_, p)| *p).collect();
    let q: HashMap<usize, f64> = family
        .iter()
        .map(|(k, _)| *k)
        .zip(formulas::benjamini_hochberg(&p))
        .collect();
    for d in drafts.iter_mut() {
        if d.out.test.p_value.is_some() {
            d.out.test.q_value = Some(q.get(&d.test_key).copied().and_then(finite));
        }
    }
}

/// Responses per sex category and the total. In a public report a small count of a
/// category other than female and male is hidden (rule 2); since female and male are
/// visible (in every indicator's n) and so is the total, a second category is hidden with
/// a lone one, and where there is none the total is hidden instead.
fn sex_counts(input: &ReportInput, opts: &ReportOptions) -> (SexCounts, Option<u64>) {
    let mut counts = vec![0u64; 2 + input.other_sex_values.len()];
    let mut missing = 0u64;
    for &sex in &input.sex {
        match sex {
            Sex::Female => counts[0] += 1,
            Sex::Male => counts[1] += 1,
            Sex::Other(i) => match counts.get_mut(2 + i as usize) {
                Some(c) => *c += 1,
                None => missing += 1,
            },
            Sex::Missing => missing += 1,
        }
    }
    let names = ["female".to_owned(), "male".to_owned()]
        .into_iter()
        .chain(input.other_sex_values.iter().cloned());
    let mut shown: Vec<(String, u64)> = names.zip(counts).collect();
    if missing > 0 {
        shown.push(("missing".to_owned(), missing));
    }
    let total = input.sex.len() as u64;
    if !opts.public {
        return (
            Ordered(shown.into_iter().map(|(k, c)| (k, Some(c))).collect()),
            Some(total),
        );
    }
    let small = |c: u64| c > 0 && c < opts.min_cell;
    let mut hidden: Vec<bool> = shown
        .iter()
        .enumerate()
        .map(|(i, (_, c))| i >= 2 && small(*c))
        .collect();
    let mut total_hidden = false;
    if hidden.iter().filter(|&&h| h).count() == 1 {
        let next = (2..shown.len())
            .filter(|&i| !hidden[i])
            .min_by_key(|&i| shown[i].1);
        match next {
            Some(i) => hidden[i] = true,
            None => total_hidden = true,
        }
    }
    let out = shown
        .into_iter()
        .zip(hidden)
        .map(|((k, c), h)| (k, (!h).then_some(c)))
        .collect();
    (Ordered(out), (!total_hidden).then_some(total))
}

/// The indicators of one item, in the order they are built.
fn item_drafts(
    input: &ReportInput,
    opts: &ReportOptions,
    z: f64,
    groups: &[Option<Group>],
    i: usize,
) -> Vec<Draft> {
    let weighted = input.weights.is_some();
    let mut builder = Builder {
        opts,
        z,
        weighted,
        drafts: Vec::new(),
        // Test keys only need to be unique across the report: each item gets its own range.
        next_test: i << 24,
    };
    let item = &input.items[i];
    let q = item.question.as_str();
    match &item.data {
        ItemData::SelectOne { options, .. } | ItemData::Likert { options, .. } => {
            let mut cells = aggregate(input, item, options.len());
            builder.proportions(q, i, options, false, &cells, groups);
            if options.len() > 2 {
                builder.distribution(q, i, options, &cells, groups);
            }
            if matches!(item.data, ItemData::Likert { .. }) {
                builder.mean(q, i, false, 1.0, &mut cells, groups);
            }
        }
        ItemData::SelectMultiple { options, .. } => {
            let cells = aggregate(input, item, options.len());
            builder.proportions(q, i, options, true, &cells, groups);
        }
        ItemData::Numeric { ratio_scale, .. } => {
            let mut cells = aggregate(input, item, 0);
            builder.mean(q, i, *ratio_scale, 0.0, &mut cells, groups);
        }
    }
    builder.drafts
}

/// Builds the whole report. Pure: the same input always gives the same report. Items are
/// independent until suppression and q-values, so they are computed on every core.
pub fn build_report(input: &ReportInput, opts: &ReportOptions) -> Report {
    let weighted = input.weights.is_some();
    let z = dist::normal_critical(opts.alpha);
    let groups: Vec<Option<Group>> = std::iter::once(None)
        .chain(input.dimension.iter().flat_map(|d| {
            d.levels.iter().map(|l| {
                Some(Group {
                    dimension: d.name.clone(),
                    level: l.clone(),
                })
            })
        }))
        .collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(input.items.len().max(1));
    let mut per_item: Vec<(usize, Vec<Draft>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= input.items.len() {
                            break done;
                        }
                        done.push((i, item_drafts(input, opts, z, &groups, i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    per_item.sort_by_key(|(i, _)| *i);
    let mut drafts: Vec<Draft> = per_item.into_iter().flat_map(|(_, d)| d).collect();
    // Each rule can make another one apply again; suppression only grows, so this ends.
    while partition_suppression(&mut drafts) | complementary_suppression(&mut drafts) {}
    share_tests(&mut drafts);
    assign_q_values(&mut drafts);
    // Spec order: question (form order), then option, then cells (whole sample first).
    drafts.sort_by_key(|d| (d.key.0, kind_rank(d.key.1), d.key.2, d.cell));
    let (sex_counts, responses) = sex_counts(input, opts);
    Report {
        responses,
        by: input.dimension.as_ref().map(|d| d.name.clone()),
        alpha: opts.alpha,
        min_cell: opts.min_cell,
        weighted,
        sex_counts,
        indicators: drafts.into_iter().map(|d| d.out).collect(),
    }
}

fn kind_rank(kind: Kind) -> u8 {
    match kind {
        Kind::Proportion => 0,
        Kind::Distribution => 1,
        Kind::Mean => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPTS: ReportOptions = ReportOptions {
        alpha: 0.05,
        min_cell: 5,
        public: false,
    };

    fn sexes(f: usize, m: usize) -> Vec<Sex> {
        std::iter::repeat_n(Sex::Female, f)
            .chain(std::iter::repeat_n(Sex::Male, m))
            .collect()
    }

    fn input(sex: Vec<Sex>, items: Vec<Item>) -> ReportInput {
        ReportInput {
            sex,
            other_sex_values: vec!["other".into()],
            dimension: None,
            weights: None,
            items,
        }
    }

    fn yes_no(values: Vec<Option<u32>>) -> Item {
        Item {
            question: "q".into(),
            data: ItemData::SelectOne {
                options: vec!["yes".into(), "no".into()],
                values,
            },
        }
    }

    fn json(report: &Report) -> String {
        let text = serde_json::to_string(report).expect("serializes");
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        text
    }

    #[test]
    fn empty_and_one_sided_reports_are_well_formed() {
        let numeric = |values| Item {
            question: "minutes".into(),
            data: ItemData::Numeric {
                values,
                ratio_scale: true,
            },
        };
        let empty = build_report(&input(vec![], vec![numeric(vec![]), yes_no(vec![])]), &OPTS);
        json(&empty);
        assert_eq!(empty.indicators[0].test.reason, Some("no_responses"));
        assert_eq!(empty.indicators[0].female.n, Some(0));
        assert!(!empty.indicators[0].suppressed);

        let women_only = build_report(
            &input(sexes(8, 0), vec![numeric(vec![Some(3.0); 8])]),
            &OPTS,
        );
        json(&women_only);
        let mean = &women_only.indicators[0];
        assert_eq!(mean.female.estimate, Some(Some(3.0)));
        assert_eq!(mean.male.n, Some(0));
        assert_eq!(mean.gap.difference, None);
        assert_eq!(mean.test.p_value, None);
    }

    #[test]
    fn identical_answers_give_zero_variance_not_nan() {
        let item = Item {
            question: "x".into(),
            data: ItemData::Numeric {
                values: vec![Some(2.0); 20],
                ratio_scale: true,
            },
        };
        let report = build_report(&input(sexes(10, 10), vec![item]), &OPTS);
        json(&report);
        let ind = &report.indicators[0];
        assert_eq!(ind.test.reason, Some("zero_variance"));
        assert_eq!(ind.tests[0].reason, Some("no_variation"));
        assert_eq!(ind.gap.difference, Some(0.0));
        assert_eq!(ind.gap.ratio, Some(1.0));
        assert_eq!(ind.gap.reasons.get("hedges_g"), Some(&"zero_variance"));
    }

    #[test]
    fn a_small_sex_group_is_suppressed_with_gap_and_tests() {
        let values = (0..23).map(|i| Some(i % 2)).collect();
        let report = build_report(&input(sexes(3, 20), vec![yes_no(values)]), &OPTS);
        let text = json(&report);
        let ind = &report.indicators[0];
        assert!(ind.suppressed);
        assert_eq!(ind.reason, Some("small_cell"));
        assert_eq!(
            (ind.female.n, ind.female.count, ind.female.estimate),
            (None, Some(None), Some(None))
        );
        assert_eq!(ind.male.n, Some(20));
        assert_eq!((ind.gap.difference, ind.test.p_value), (None, None));
        assert!(
            !text.contains("\"n\":3"),
            "no figure of the small cell leaks: {text}"
        );
    }

    #[test]
    fn public_reports_suppress_small_counts() {
        // 2 of 40 women said yes: fine for planners, suppressed for the public.
        let values = (0..80)
            .map(|i| Some(u32::from(!(i < 2 || (40..60).contains(&i)))))
            .collect();
        let item = yes_no(values);
        let inner = build_report(&input(sexes(40, 40), vec![item.clone()]), &OPTS);
        assert!(!inner.indicators[0].suppressed);
        let public = ReportOptions {
            public: true,
            ..OPTS
        };
        let outer = build_report(&input(sexes(40, 40), vec![item]), &public);
        assert!(outer.indicators[0].suppressed);
        assert_eq!(outer.indicators[0].female.count, Some(None));
        json(&outer);
    }

    #[test]
    fn a_lone_suppressed_cell_gets_a_complement() {
        // Women per district: 30, 3 (small), 12, 20 → the 12 is suppressed too, so the
        // small cell cannot be recovered from the whole-sample figure.
        let mut sex = Vec::new();
        let mut codes = Vec::new();
        for (level, women) in [30, 3, 12, 20].into_iter().enumerate() {
            sex.extend(sexes(women, 25));
            codes.extend(std::iter::repeat_n(Some(level as u32), women + 25));
        }
        let values = (0..sex.len()).map(|i| Some((i % 3 == 0) as u32)).collect();
        let mut inp = input(sex, vec![yes_no(values)]);
        inp.dimension = Some(Dimension {
            name: "district".into(),
            levels: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            codes,
        });
        let report = build_report(&inp, &OPTS);
        json(&report);
        let yes: Vec<&Indicator> = report
            .indicators
            .iter()
            .filter(|i| i.option.as_deref() == Some("yes"))
            .collect();
        let suppressed: Vec<Option<&str>> = yes
            .iter()
            .filter(|i| i.suppressed)
            .map(|i| i.group.as_ref().map(|g| g.level.as_str()))
            .collect();
        assert_eq!(suppressed, vec![Some("b"), Some("c")]);
        assert_eq!(yes[0].group, None, "whole sample first");
        assert!(yes
            .iter()
            .filter(|i| i.suppressed)
            .all(|i| i.male.n == Some(25)));
    }

    #[test]
    fn two_option_questions_share_one_test_in_the_family() {
        let a = (0..100).map(|i| Some(u32::from(i % 3 == 0))).collect();
        let b = (0..100).map(|i| Some(u32::from(i < 30))).collect();
        let report = build_report(&input(sexes(50, 50), vec![yes_no(a), yes_no(b)]), &OPTS);
        let tests: Vec<&Test> = report.indicators.iter().map(|i| &i.test).collect();
        assert_eq!(tests.len(), 4);
        assert_eq!(tests[0].p_value, tests[1].p_value);
        let family = [
            tests[0].p_value.unwrap_or(1.0),
            tests[2].p_value.unwrap_or(1.0),
        ];
        let q = formulas::benjamini_hochberg(&family);
        assert_eq!(tests[0].q_value, Some(Some(q[0])));
        assert_eq!(tests[1].q_value, Some(Some(q[0])));
        assert_eq!(tests[3].q_value, Some(Some(q[1])));
    }

    #[test]
    fn others_count_but_are_never_compared() {
        let mut sex = sexes(10, 10);
        sex.extend([Sex::Other(0), Sex::Missing]);
        let values = (0..22).map(|i| Some((i % 2) as u32)).collect();
        let report = build_report(&input(sex, vec![yes_no(values)]), &OPTS);
        assert_eq!(report.responses, Some(22));
        let counts: Vec<(&str, Option<u64>)> = report
            .sex_counts
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("female", Some(10)),
                ("male", Some(10)),
                ("other", Some(1)),
                ("missing", Some(1))
            ]
        );
        assert_eq!(report.indicators[0].female.n, Some(10));
    }

    fn select_one(question: &str, options: usize, values: Vec<Option<u32>>) -> Item {
        Item {
            question: question.into(),
            data: ItemData::SelectOne {
                options: (0..options).map(|i| format!("o{i}")).collect(),
                values,
            },
        }
    }

    #[test]
    fn a_suppressed_side_shows_no_missing_count() {
        // 3 of 20 women answered: n + missing would give the hidden 3 back.
        let values = (0..40)
            .map(|i| (i >= 17).then_some((i % 2) as u32))
            .collect();
        let report = build_report(&input(sexes(20, 20), vec![yes_no(values)]), &OPTS);
        let ind = &report.indicators[0];
        assert!(ind.suppressed);
        assert_eq!((ind.female.n, ind.female.missing), (None, None));
        assert_eq!(ind.male.missing, Some(0));
    }

    #[test]
    fn public_reports_hide_a_second_option_the_distribution_and_the_mean() {
        // Women: 2 chose o0, 10 o1, 12 o2, 16 o3. o0 alone hidden would be 40 − 38.
        let mut values: Vec<Option<u32>> = [(0, 2), (1, 10), (2, 12), (3, 16)]
            .into_iter()
            .flat_map(|(o, k)| std::iter::repeat_n(Some(o), k))
            .collect();
        values.extend((0..40).map(|i| Some(i % 4)));
        let likert = Item {
            question: "q".into(),
            data: ItemData::Likert {
                options: (0..4).map(|i| format!("o{i}")).collect(),
                values,
            },
        };
        let public = ReportOptions {
            public: true,
            ..OPTS
        };
        let report = build_report(&input(sexes(40, 40), vec![likert]), &public);
        let hidden: Vec<(Kind, Option<&str>)> = report
            .indicators
            .iter()
            .filter(|i| i.female.n.is_none())
            .map(|i| (i.kind, i.option.as_deref()))
            .collect();
        assert_eq!(
            hidden,
            vec![
                (Kind::Proportion, Some("o0")),
                (Kind::Proportion, Some("o1")),
                (Kind::Distribution, None),
                (Kind::Mean, None)
            ]
        );
        assert!(report.indicators.iter().all(|i| i.male.n == Some(40)));
    }

    #[test]
    fn a_lone_small_sex_category_hides_the_total_in_public() {
        let public = ReportOptions {
            public: true,
            ..OPTS
        };
        let mut sex = sexes(10, 10);
        sex.push(Sex::Other(0));
        let one_other = build_report(&input(sex.clone(), vec![]), &public);
        assert_eq!(one_other.responses, None, "21 − 10 − 10 would be the 1");
        assert_eq!(one_other.sex_counts.0[2], ("other".to_owned(), None));
        sex.push(Sex::Missing);
        let two = build_report(&input(sex, vec![]), &public);
        assert_eq!(two.responses, Some(22), "1 + 1 hidden together");
        assert_eq!(
            two.sex_counts.0[2..],
            [("other".to_owned(), None), ("missing".to_owned(), None)]
        );
        let planners = build_report(&input(sexes(10, 10), vec![]), &OPTS);
        assert_eq!(planners.responses, Some(20));
    }

    #[test]
    fn weighted_two_option_tests_carry_each_options_sign() {
        let values: Vec<Option<u32>> = (0..60)
            .map(|i| Some(u32::from(i % 3 == 0 || (i < 30 && i % 2 == 0))))
            .collect();
        let mut inp = input(sexes(30, 30), vec![yes_no(values)]);
        inp.weights = Some((0..60).map(|i| Some(1.0 + (i % 5) as f64 / 4.0)).collect());
        let report = build_report(&inp, &OPTS);
        let (yes, no) = (&report.indicators[0], &report.indicators[1]);
        let (dy, dn) = (
            yes.gap.difference.expect("d"),
            no.gap.difference.expect("d"),
        );
        assert!(dy * dn < 0.0);
        let (zy, zn) = (
            yes.test.statistic.expect("z"),
            no.test.statistic.expect("z"),
        );
        assert_eq!((zy.signum(), zn), (dy.signum(), -zy));
        assert_eq!(yes.test.p_value, no.test.p_value);
    }

    #[test]
    fn weighted_reports_keep_the_distribution_without_a_test() {
        let values = (0..60).map(|i| Some(i % 3)).collect();
        let mut inp = input(sexes(30, 30), vec![select_one("q", 3, values)]);
        inp.weights = Some(vec![Some(1.5); 60]);
        let report = build_report(&inp, &OPTS);
        let dist = report
            .indicators
            .iter()
            .find(|i| i.kind == Kind::Distribution)
            .expect("a distribution");
        assert_eq!(dist.test.reason, Some("weighted"));
        assert_eq!(dist.female.n, Some(30));
    }

    #[test]
    fn counts_keep_choice_order_and_df_is_a_whole_number() {
        let values = (0..60).map(|i| Some(i % 3)).collect();
        let item = Item {
            question: "q".into(),
            data: ItemData::SelectOne {
                options: vec!["zeta".into(), "alpha".into(), "mid".into()],
                values,
            },
        };
        let report = build_report(&input(sexes(30, 30), vec![item]), &OPTS);
        let text = json(&report);
        assert!(
            text.contains(r#""counts":{"zeta":10,"alpha":10,"mid":10}"#),
            "{text}"
        );
        assert!(text.contains(r#""df":2,"#), "{text}");
    }

    fn any_input() -> impl Strategy<Value = ReportInput> {
        (1usize..60).prop_flat_map(|n| {
            (
                prop::collection::vec(
                    prop_oneof![
                        Just(Sex::Female),
                        Just(Sex::Male),
                        Just(Sex::Other(0)),
                        Just(Sex::Missing)
                    ],
                    n,
                ),
                prop::collection::vec(prop::option::of(0u32..4), n),
                prop::collection::vec(prop::option::of(0u64..16), n),
                prop::collection::vec(
                    prop::option::of(prop_oneof![Just(0.0), -5.0..5.0f64, Just(1e300)]),
                    n,
                ),
                prop::collection::vec(
                    prop::option::of(prop_oneof![Just(0.0), 0.1..3.0f64, Just(-1.0)]),
                    n,
                ),
                prop::collection::vec(prop::option::of(0u32..3), n),
                any::<bool>(),
            )
                .prop_map(|(sex, single, multi, numbers, weights, codes, weighted)| {
                    ReportInput {
                        sex,
                        other_sex_values: vec!["other".into()],
                        dimension: Some(Dimension {
                            name: "d".into(),
                            levels: vec!["a".into(), "b".into()],
                            codes,
                        }),
                        weights: weighted.then_some(weights),
                        items: vec![
                            Item {
                                question: "s".into(),
                                data: ItemData::Likert {
                                    options: (0..4).map(|i| i.to_string()).collect(),
                                    values: single,
                                },
                            },
                            Item {
                                question: "m".into(),
                                data: ItemData::SelectMultiple {
                                    options: (0..4).map(|i| i.to_string()).collect(),
                                    values: multi,
                                },
                            },
                            Item {
                                question: "n".into(),
                                data: ItemData::Numeric {
                                    values: numbers,
                                    ratio_scale: true,
                                },
                            },
                        ],
                    }
                })
        })
    }

    /// What the suppression rules promise, checked on a finished report: no lone hidden
    /// cell of an indicator while a complement was available (rule 3), and no lone hidden
    /// option of a single-choice question beside a visible distribution or mean.
    fn assert_nothing_recoverable(report: &Report, inp: &ReportInput) -> Result<(), TestCaseError> {
        let hidden = |i: &Indicator, s: usize| {
            if s == 0 {
                i.female.n.is_none()
            } else {
                i.male.n.is_none()
            }
        };
        let n_of = |i: &Indicator, s: usize| if s == 0 { i.female.n } else { i.male.n };
        for s in 0..2 {
            let mut by_key: HashMap<(String, Kind, Option<String>), Vec<&Indicator>> =
                HashMap::new();
            let mut by_cell: HashMap<(String, Option<String>), Vec<&Indicator>> = HashMap::new();
            for i in &report.indicators {
                let level = i.group.as_ref().map(|g| g.level.clone());
                by_cell
                    .entry((i.question.clone(), level.clone()))
                    .or_default()
                    .push(i);
                if level.is_some() {
                    by_key
                        .entry((i.question.clone(), i.kind, i.option.clone()))
                        .or_default()
                        .push(i);
                }
            }
            for cells in by_key.values() {
                let lone = cells.iter().filter(|i| hidden(i, s)).count() == 1;
                let complement = cells.iter().any(|i| !hidden(i, s) && n_of(i, s) > Some(0));
                prop_assert!(!(lone && complement), "a lone hidden cell: {cells:?}");
            }
            for (key, group) in &by_cell {
                let single_choice = inp.items.iter().any(|it| {
                    it.question == key.0
                        && !matches!(
                            it.data,
                            ItemData::SelectMultiple { .. } | ItemData::Numeric { .. }
                        )
                });
                if !single_choice || !group.iter().any(|i| hidden(i, s)) {
                    continue;
                }
                let options: Vec<&&Indicator> = group
                    .iter()
                    .filter(|i| i.kind == Kind::Proportion)
                    .collect();
                let hidden_options = options.iter().filter(|i| hidden(i, s)).count();
                prop_assert!(
                    hidden_options >= 2 || hidden_options == options.len(),
                    "{group:?}"
                );
                prop_assert!(
                    group
                        .iter()
                        .filter(|i| i.kind != Kind::Proportion)
                        .all(|i| hidden(i, s)),
                    "{group:?}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn suppression_leaves_nothing_to_recover(inp in any_input(), public in any::<bool>(), min_cell in 2u64..8) {
            let report = build_report(&inp, &ReportOptions { alpha: 0.05, min_cell, public });
            assert_nothing_recoverable(&report, &inp)?;
        }

        #[test]
        fn any_columns_give_a_well_formed_report(inp in any_input(), public in any::<bool>(), min_cell in 1u64..6) {
            let report = build_report(&inp, &ReportOptions { alpha: 0.05, min_cell, public });
            let text = serde_json::to_string(&report).expect("serializes");
            prop_assert!(!text.contains("NaN") && !text.contains("inf"));
        }
    }
}
