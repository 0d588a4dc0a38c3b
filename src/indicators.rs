//! From stored responses to the indicators report: read the analysis column of every
//! response once, lay it out as per-question columns, hand them to `stats`, and render
//! the result as JSON or CSV. The API and the CLI both call `compute`.

use crate::db::{responses, AnyConnection, DbError};
use crate::form::{self, Form, QuestionType, SlotKind};
use crate::stats::{self, Dimension, Item, ItemData, ReportInput, ReportOptions, Sex};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use std::collections::HashMap;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IndicatorError {
    #[error("`{0}` is not a `by` dimension of this form")]
    UnknownDimension(String),
    #[error("this form names no weight question, so weighted=true is not available")]
    NoWeight,
    #[error("alpha must be between 0 and 0.5")]
    BadAlpha,
    #[error("min_cell must be at least 1")]
    BadMinCell,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The suppression threshold of a report: a reader may raise the configured one, never
/// lower it (the API and the CLI alike; an operator lowers it with `GENDERLENS_MIN_CELL`).
pub fn min_cell(requested: Option<u64>, configured: u64) -> u64 {
    requested.unwrap_or(0).max(configured)
}

/// What a report is asked for.
#[derive(Clone, Debug)]
pub struct Query {
    pub by: Option<String>,
    pub min_cell: u64,
    pub alpha: f64,
    pub weighted: bool,
    /// Read without credentials: suppress small counts too (spec rule 2).
    pub public: bool,
}

#[derive(Debug, Serialize)]
pub struct IndicatorsReport {
    pub form: String,
    pub form_version: u32,
    pub generated_at: String,
    #[serde(flatten)]
    pub report: stats::Report,
}

/// Where one question's value sits in one form version's analysis vector, and how that
/// version's choice positions map onto the current form's.
#[derive(Clone)]
struct SlotMap {
    slot: usize,
    remap: Vec<Option<u32>>,
}

/// Per stored version: the slot of each column the report reads (None: not in that version).
struct VersionLayout {
    width: usize,
    columns: Vec<Option<SlotMap>>,
}

/// The columns a report reads: the sex question, the items, then the dimension and weight.
struct Plan {
    sex: usize,
    items: Vec<usize>,
    dimension: Option<usize>,
    weight: Option<usize>,
}

impl Plan {
    fn questions(&self) -> Vec<usize> {
        let mut all = vec![self.sex];
        all.extend(&self.items);
        all.extend(self.dimension);
        all.extend(self.weight);
        all
    }
}

fn layout(current: &Form, version: &Form, questions: &[usize]) -> VersionLayout {
    let columns = questions
        .iter()
        .map(|&qi| {
            let q = &current.questions[qi];
            let (vqi, kind) = version.index.get(&q.id).and_then(|&vqi| {
                version
                    .slots
                    .iter()
                    .find(|(i, _)| *i == vqi)
                    .map(|&(_, kind)| (vqi, kind))
            })?;
            let expected = current
                .slots
                .iter()
                .find(|(i, _)| *i == qi)
                .map(|&(_, k)| k);
            if expected != Some(kind) {
                return None; // the question changed type: its old answers are not comparable
            }
            let now = current.choices_of(q);
            let remap = version
                .choices_of(&version.questions[vqi])
                .iter()
                .map(|c| {
                    now.iter()
                        .position(|n| n.value == c.value)
                        .map(|p| p as u32)
                })
                .collect();
            let slot = version.questions[vqi].compiled.slot?;
            Some(SlotMap { slot, remap })
        })
        .collect();
    VersionLayout {
        width: version.slots.len(),
        columns,
    }
}

/// Per-question columns being filled while rows stream past.
enum Column {
    Choice(Vec<Option<u32>>),
    Multi(Vec<Option<u64>>),
    Number(Vec<Option<f64>>),
}

impl Column {
    fn push(&mut self, value: f64, map: Option<&SlotMap>) {
        let present = map.filter(|_| !value.is_nan());
        match self {
            Column::Choice(v) => {
                v.push(present.and_then(|m| m.remap.get(value as usize).copied().flatten()))
            }
            Column::Multi(v) => v.push(present.map(|m| {
                let bits = value as u64;
                m.remap
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .filter_map(|(_, to)| *to)
                    .fold(0u64, |acc, to| acc | (1 << to))
            })),
            Column::Number(v) => v.push(present.map(|_| value)),
        }
    }
}

fn item_for(form: &Form, qi: usize, column: Column) -> Option<Item> {
    let q = &form.questions[qi];
    let options: Vec<String> = form.choices_of(q).iter().map(|c| c.value.clone()).collect();
    let data = match (q.kind, column) {
        (QuestionType::Likert, Column::Choice(values)) => ItemData::Likert { options, values },
        (_, Column::Choice(values)) => ItemData::SelectOne { options, values },
        (_, Column::Multi(values)) => ItemData::SelectMultiple { options, values },
        (_, Column::Number(values)) => ItemData::Numeric {
            values,
            ratio_scale: q.min.is_none_or(|m| m >= 0.0),
        },
    };
    Some(Item {
        question: q.id.clone(),
        data,
    })
}

/// Computes the report for `form` (its current version; responses to older versions are
/// read through their stored definitions).
pub fn compute(
    conn: &mut AnyConnection,
    form: &Form,
    query: &Query,
) -> Result<IndicatorsReport, IndicatorError> {
    if !(query.alpha > 0.0 && query.alpha <= 0.5) {
        return Err(IndicatorError::BadAlpha);
    }
    if query.min_cell == 0 {
        return Err(IndicatorError::BadMinCell);
    }
    let dimension = match &query.by {
        None => None,
        Some(by) if form.disaggregation.by.contains(by) => form.index.get(by).copied(),
        Some(by) => return Err(IndicatorError::UnknownDimension(by.clone())),
    };
    let weight = match (query.weighted, &form.weight) {
        (false, _) => None,
        (true, Some(w)) => form.index.get(w).copied(),
        (true, None) => return Err(IndicatorError::NoWeight),
    };
    let items: Vec<usize> = form
        .slots
        .iter()
        // The sex question is the comparison itself, the weight a design variable, and
        // dates have no indicator in the spec.
        .filter(|&&(qi, kind)| {
            qi != form.sex.question
                && kind != SlotKind::Date
                && form.weight.as_deref() != Some(form.questions[qi].id.as_str())
        })
        .map(|&(qi, _)| qi)
        .collect();
    let plan = Plan {
        sex: form.sex.question,
        items,
        dimension,
        weight,
    };
    let questions = plan.questions();

    let mut layouts: HashMap<i32, VersionLayout> = HashMap::new();
    for (version, definition) in
        responses::form_definitions(conn, &form.id).map_err(DbError::from)?
    {
        let layout = if u32::try_from(version).ok() == Some(form.version) {
            layout(form, form, &questions)
        } else {
            match form::from_definition(&definition) {
                Some(old) => layout(form, &old, &questions),
                None => continue,
            }
        };
        layouts.insert(version, layout);
    }

    let mut columns: Vec<Column> = questions
        .iter()
        .map(
            |&qi| match form.slots.iter().find(|(i, _)| *i == qi).map(|&(_, k)| k) {
                Some(SlotKind::Choice) => Column::Choice(Vec::new()),
                Some(SlotKind::Multi) => Column::Multi(Vec::new()),
                _ => Column::Number(Vec::new()),
            },
        )
        .collect();
    // Reading rows and laying them out as columns run on two threads: the reader steps
    // through the database while the other decodes the previous chunk.
    let started = std::time::Instant::now();
    let (chunks, decode) = std::sync::mpsc::sync_channel::<Vec<(i32, Vec<u8>)>>(4);
    let (columns, rows) = std::thread::scope(|scope| {
        let layouts = &layouts;
        let decoder = scope.spawn(move || {
            let mut rows = 0usize;
            for chunk in decode {
                rows += chunk.len();
                for (version, analysis) in &chunk {
                    let layout = layouts
                        .get(version)
                        .filter(|l| analysis.len() == l.width * 8);
                    for (c, column) in columns.iter_mut().enumerate() {
                        let map = layout.and_then(|l| l.columns[c].as_ref());
                        let value = map.map_or(f64::NAN, |m| {
                            let bytes = &analysis[m.slot * 8..m.slot * 8 + 8];
                            f64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
                        });
                        column.push(value, map);
                    }
                }
            }
            (columns, rows)
        });
        let read = responses::for_each_analysis_chunk(conn, &form.id, 4096, |chunk| {
            // A closed channel means the decoder died; its panic surfaces at join.
            let _ = chunks.send(chunk);
        });
        drop(chunks);
        let decoded = decoder
            .join()
            .map_err(|_| DbError::Unavailable("decoding responses failed".into()));
        read.map_err(DbError::from)?;
        decoded
    })?;

    let mut columns = columns.into_iter();
    let sex_question = &form.questions[form.sex.question];
    let sex_values: Vec<String> = form
        .choices_of(sex_question)
        .iter()
        .map(|c| c.value.clone())
        .collect();
    let other_sex_values: Vec<String> = sex_values
        .iter()
        .filter(|v| **v != form.sex.female && **v != form.sex.male)
        .cloned()
        .collect();
    let sex = match columns.next() {
        Some(Column::Choice(codes)) => codes
            .into_iter()
            .map(|code| match code.and_then(|c| sex_values.get(c as usize)) {
                None => Sex::Missing,
                Some(v) if *v == form.sex.female => Sex::Female,
                Some(v) if *v == form.sex.male => Sex::Male,
                Some(v) => other_sex_values
                    .iter()
                    .position(|o| o == v)
                    .map_or(Sex::Missing, |p| Sex::Other(p as u16)),
            })
            .collect(),
        _ => vec![Sex::Missing; rows],
    };
    let items: Vec<Item> = plan
        .items
        .iter()
        .zip(columns.by_ref())
        .filter_map(|(&qi, column)| item_for(form, qi, column))
        .collect();
    let dimension = plan.dimension.and_then(|qi| match columns.next() {
        Some(Column::Choice(codes)) => Some(Dimension {
            name: form.questions[qi].id.clone(),
            levels: form
                .choices_of(&form.questions[qi])
                .iter()
                .map(|c| c.value.clone())
                .collect(),
            codes,
        }),
        _ => None,
    });
    let weights = plan.weight.and_then(|_| match columns.next() {
        Some(Column::Number(values)) => Some(values),
        _ => None,
    });

    let input = ReportInput {
        sex,
        other_sex_values,
        dimension,
        weights,
        items,
    };
    let options = ReportOptions {
        alpha: query.alpha,
        min_cell: query.min_cell,
        public: query.public,
    };
    let read = started.elapsed();
    let report = stats::build_report(&input, &options);
    tracing::debug!(
        form = %form.id,
        rows,
        read_ms = read.as_millis() as u64,
        stats_ms = (started.elapsed() - read).as_millis() as u64,
        "indicators computed"
    );
    Ok(IndicatorsReport {
        form: form.id.clone(),
        form_version: form.version,
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        report,
    })
}

/// The CSV's columns, fixed so that every report of every form has the same header: the
/// report's settings, then the JSON's figures flattened (`female_ci_low`, …). Per-option
/// counts and null reasons are one cell each (`yes=12; no=30`).
const CSV_COLUMNS: &[&str] = &[
    "form",
    "form_version",
    "by",
    "alpha",
    "min_cell",
    "weighted",
    "question",
    "kind",
    "option",
    "group",
    "group_value",
    "suppressed",
    "reason",
    "female_n",
    "female_count",
    "female_counts",
    "female_estimate",
    "female_sd",
    "female_median",
    "female_ci_low",
    "female_ci_high",
    "female_n_eff",
    "female_missing",
    "female_reasons",
    "male_n",
    "male_count",
    "male_counts",
    "male_estimate",
    "male_sd",
    "male_median",
    "male_ci_low",
    "male_ci_high",
    "male_n_eff",
    "male_missing",
    "male_reasons",
    "gap_difference",
    "gap_ci_low",
    "gap_ci_high",
    "gap_ratio",
    "gap_adjusted_ratio",
    "gap_relative",
    "gap_hedges_g",
    "gap_reasons",
    "test_method",
    "test_statistic",
    "test_df",
    "test_p_value",
    "test_q_value",
    "test_cramers_v",
    "test_reason",
    "mann_whitney_statistic",
    "mann_whitney_p_value",
    "mann_whitney_effect",
    "mann_whitney_reason",
];

/// A figure as JSON writes it (shortest round trip); empty for null.
fn cell<T: Serialize>(value: Option<T>) -> String {
    value
        .and_then(|v| serde_json::to_value(v).ok())
        .map_or(String::new(), |v| match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
}

fn reasons_cell(reasons: &stats::Reasons) -> String {
    reasons
        .iter()
        .map(|(figure, why)| format!("{figure}={why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn side_cells(side: &stats::Side) -> Vec<String> {
    let ci = side.ci.flatten();
    vec![
        cell(side.n),
        cell(side.count.flatten()),
        side.counts.clone().flatten().map_or(String::new(), |c| {
            c.0.iter()
                .map(|(option, n)| format!("{option}={n}"))
                .collect::<Vec<_>>()
                .join("; ")
        }),
        cell(side.estimate.flatten()),
        cell(side.sd.flatten()),
        cell(side.median.flatten()),
        cell(ci.map(|c| c[0])),
        cell(ci.map(|c| c[1])),
        cell(side.n_eff.flatten()),
        cell(side.missing),
        reasons_cell(&side.reasons),
    ]
}

fn test_cells(test: Option<&stats::Test>, with_method: bool) -> Vec<String> {
    let method = test.map(|t| cell(Some(t.method)));
    let statistic = cell(test.and_then(|t| t.statistic));
    let p = cell(test.and_then(|t| t.p_value));
    let reason = cell(test.and_then(|t| t.reason));
    if with_method {
        vec![
            method.unwrap_or_default(),
            statistic,
            // `df` through JSON, so a chi-square's is written as the integer it is.
            test.and_then(|t| serde_json::to_value(t).ok())
                .map_or(String::new(), |t| cell(Some(t["df"].clone()))),
            p,
            cell(test.and_then(|t| t.q_value.flatten())),
            cell(test.and_then(|t| t.cramers_v.flatten())),
            reason,
        ]
    } else {
        vec![
            statistic,
            p,
            cell(test.and_then(|t| t.effect.flatten())),
            reason,
        ]
    }
}

/// The report as CSV: one row per indicator, every row with the same columns.
pub fn to_csv(report: &IndicatorsReport) -> Result<String, csv::Error> {
    let r = &report.report;
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    for ind in &r.indicators {
        let gap = &ind.gap;
        let gap_ci = gap.ci;
        let mut row = vec![
            report.form.clone(),
            report.form_version.to_string(),
            cell(r.by.as_deref()),
            cell(Some(r.alpha)),
            r.min_cell.to_string(),
            r.weighted.to_string(),
            ind.question.clone(),
            cell(Some(ind.kind)),
            cell(ind.option.as_deref()),
            cell(ind.group.as_ref().map(|g| g.dimension.as_str())),
            cell(ind.group.as_ref().map(|g| g.level.as_str())),
            ind.suppressed.to_string(),
            cell(ind.reason),
        ];
        row.extend(side_cells(&ind.female));
        row.extend(side_cells(&ind.male));
        row.extend([
            cell(gap.difference),
            cell(gap_ci.map(|c| c[0])),
            cell(gap_ci.map(|c| c[1])),
            cell(gap.ratio),
            cell(gap.adjusted_ratio.flatten()),
            cell(gap.relative.flatten()),
            cell(gap.hedges_g.flatten()),
            reasons_cell(&gap.reasons),
        ]);
        row.extend(test_cells(Some(&ind.test), true));
        let mann_whitney = ind
            .tests
            .iter()
            .find(|t| t.method == stats::Method::MannWhitney);
        row.extend(test_cells(mann_whitney, false));
        debug_assert_eq!(row.len(), CSV_COLUMNS.len());
        writer.write_record(&row)?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The report as a terminal table: one line per indicator, the largest figures first in
/// each line (female, male, gap with intervals, p and q), suppressed cells marked.
pub fn to_table(report: &IndicatorsReport) -> String {
    use serde_json::Value as J;
    let json = serde_json::to_value(report).unwrap_or_default();
    let num = |v: &J, digits: usize| {
        v.as_f64()
            .map_or("–".to_owned(), |x| format!("{x:.digits$}"))
    };
    let with_ci = |side: &J, digits: usize| {
        let ci = &side["ci"];
        format!(
            "{} [{}, {}]",
            num(&side["estimate"], digits),
            num(&ci[0], digits),
            num(&ci[1], digits)
        )
    };
    let mut lines = vec![
        format!(
            "{} v{} · {} responses · by {} · alpha {} · min_cell {}{}",
            report.form,
            report.form_version,
            json["responses"],
            json["by"].as_str().unwrap_or("–"),
            json["alpha"],
            json["min_cell"],
            if json["weighted"] == J::Bool(true) {
                " · weighted"
            } else {
                ""
            }
        ),
        format!("sex counts: {}", json["sex_counts"]),
        String::new(),
    ];
    let mut rows = vec![[
        "question", "option", "group", "kind", "female", "male", "gap", "p", "q", "note",
    ]
    .map(str::to_owned)];
    for ind in json["indicators"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let digits = if ind["kind"] == "mean" { 2 } else { 3 };
        let group = match &ind["group"] {
            J::Object(g) => g
                .values()
                .filter_map(J::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => "all".to_owned(),
        };
        let note = if ind["suppressed"] == J::Bool(true) {
            format!(
                "suppressed ({})",
                ind["reason"].as_str().unwrap_or("small_cell")
            )
        } else {
            String::new()
        };
        let gap = &ind["gap"];
        let sci = |v: &J| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.2e}"));
        let (female, male, gap_text) = if ind["kind"] == "distribution" {
            (
                format!("n={}", num(&ind["female"]["n"], 0)),
                format!("n={}", num(&ind["male"]["n"], 0)),
                format!("Cramér's V {}", num(&ind["test"]["cramers_v"], 3)),
            )
        } else {
            (
                with_ci(&ind["female"], digits),
                with_ci(&ind["male"], digits),
                format!(
                    "{} [{}, {}]",
                    num(&gap["difference"], digits),
                    num(&gap["ci"][0], digits),
                    num(&gap["ci"][1], digits)
                ),
            )
        };
        rows.push([
            ind["question"].as_str().unwrap_or_default().to_owned(),
            ind["option"].as_str().unwrap_or("–").to_owned(),
            group,
            ind["kind"].as_str().unwrap_or_default().to_owned(),
            female,
            male,
            gap_text,
            sci(&ind["test"]["p_value"]),
            sci(&ind["test"]["q_value"]),
            note,
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}", w = *w))
            .collect();
        lines.push(cells.join("  ").trim_end().to_owned());
    }
    lines.join("\n") + "\n"
}
