"""The same indicators report computed the usual way, with pandas + scipy + statsmodels,
reading the same SQLite database: the baseline `benches/indicators.rs` compares against.

Usage: python3 benches/indicators_baseline.py DB.sqlite [FORM_ID] [BY]
Reads the analysis vectors (one little-endian f64 per analysed question, NaN = no answer)
and the stored form definition, then, overall and by BY, computes per question and sex:
Wilson intervals, Newcombe differences, chi-square or Fisher tests, distributions, means
with t intervals, Welch and Mann-Whitney tests, and Benjamini-Hochberg q-values.
"""
import json
import sqlite3
import sys
import time

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

SLOT_TYPES = {"select_one", "likert", "select_multiple", "integer", "decimal", "date", "calculate"}


def flatten(questions):
    for q in questions:
        yield q
        if q.get("type") == "group":
            yield from flatten(q.get("questions", []))


def load(db, form_id):
    con = sqlite3.connect(db)
    definition = json.loads(con.execute(
        "SELECT definition FROM form_versions WHERE form_id = ? ORDER BY version DESC LIMIT 1",
        (form_id,)).fetchone()[0])
    blobs = [row[0] for row in con.execute(
        "SELECT analysis FROM responses WHERE form_id = ?", (form_id,))]
    questions = [q for q in flatten(definition["questions"]) if q["type"] in SLOT_TYPES]
    data = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), len(questions))
    frame = pd.DataFrame(data, columns=[q["id"] for q in questions])
    return definition, questions, frame


def proportion(f, m, alpha, p_values):
    """f, m: boolean Series of one option among those who answered."""
    xf, nf, xm, nm = int(f.sum()), len(f), int(m.sum()), len(m)
    out = {"f": proportion_confint(xf, nf, alpha=alpha, method="wilson") if nf else None,
           "m": proportion_confint(xm, nm, alpha=alpha, method="wilson") if nm else None}
    if nf and nm:
        out["diff"] = confint_proportions_2indep(xf, nf, xm, nm, method="newcomb", compare="diff", alpha=alpha)
        table = np.array([[xf, nf - xf], [xm, nm - xm]])
        if (table.sum(axis=0) > 0).all():
            chi2, p, _, expected = stats.chi2_contingency(table, correction=False)
            if expected.min() < 5:
                p = stats.fisher_exact(table).pvalue
            p_values.append(p)
    return out


def numeric(f, m, alpha, p_values):
    out = {}
    for name, v in (("f", f), ("m", m)):
        if len(v) >= 2:
            half = stats.t.ppf(1 - alpha / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
            out[name] = (v.mean(), v.median(), v.mean() - half, v.mean() + half)
    if len(f) >= 2 and len(m) >= 2:
        welch = stats.ttest_ind(f, m, equal_var=False)
        out["ci"] = welch.confidence_interval(confidence_level=1 - alpha)
        out["mw"] = stats.mannwhitneyu(f, m, alternative="two-sided", use_continuity=True, method="asymptotic")
        p_values.append(welch.pvalue)
    return out


def report(definition, questions, frame, by, alpha=0.05):
    sex_q = definition["disaggregation"]["sex"]
    sex_values = [c["value"] for c in definition["choices"][next(
        q for q in questions if q["id"] == sex_q["question"])["choices"]]]
    female, male = sex_values.index(sex_q["female"]), sex_values.index(sex_q["male"])
    cells = [("all", frame)]
    if by:
        cells += list(frame.groupby(by))
    p_values, indicators = [], 0
    for q in questions:
        if q["id"] in (sex_q["question"],) or q["type"] == "date":
            continue
        options = definition["choices"].get(q.get("choices") or "", [])
        for _, cell in cells:
            f = cell[cell[sex_q["question"]] == female][q["id"]].dropna()
            m = cell[cell[sex_q["question"]] == male][q["id"]].dropna()
            if q["type"] in ("select_one", "likert") or (q["type"] == "calculate" and options):
                for k in range(len(options)):
                    proportion(f == k, m == k, alpha, p_values)
                    indicators += 1
                if len(options) > 2:
                    table = pd.crosstab(np.r_[np.zeros(len(f)), np.ones(len(m))], np.r_[f, m])
                    if table.shape[1] > 1 and len(f) and len(m):
                        p_values.append(stats.chi2_contingency(table.values, correction=False)[1])
                    indicators += 1
                if q["type"] == "likert":
                    numeric(f + 1, m + 1, alpha, p_values)
                    indicators += 1
            elif q["type"] == "select_multiple":
                fb, mb = f.astype(np.int64), m.astype(np.int64)
                for k in range(len(options)):
                    proportion((fb & (1 << k)) != 0, (mb & (1 << k)) != 0, alpha, p_values)
                    indicators += 1
            else:
                numeric(f, m, alpha, p_values)
                indicators += 1
    q_values = multipletests(p_values, method="fdr_bh")[1] if p_values else []
    return indicators, len(q_values)


def main():
    db = sys.argv[1]
    form_id = sys.argv[2] if len(sys.argv) > 2 else "bench-survey"
    by = sys.argv[3] if len(sys.argv) > 3 else "region"
    started = time.perf_counter()
    definition, questions, frame = load(db, form_id)
    loaded = time.perf_counter() - started
    for dimension in (None, by):
        t0 = time.perf_counter()
        indicators, tests = report(definition, questions, frame, dimension)
        print(f"python: {len(frame)} responses, by {dimension or 'none':<7} {indicators} indicators, "
              f"{tests} tests: {time.perf_counter() - t0 + loaded:.1f} s (incl. {loaded:.1f} s reading)")


if __name__ == "__main__":
    main()
