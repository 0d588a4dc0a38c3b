//! The formulas of `indicators-spec.md`, one function each, on plain numbers.
//! Functions return `None` where the spec gives `null`; callers attach the reason.

use super::dist;

/// Wilson score interval for x successes in n trials (statsmodels `method="wilson"`).
pub fn wilson(x: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (x, n) = (x as f64, n as f64);
    let z2 = z * z;
    let center = (x + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (x * (n - x) / n + z2 / 4.0).sqrt();
    // At x = 0 and x = n a bound is exactly 0 or 1 (c − h and c + h cancel there), as
    // statsmodels gives it; computed, it would be a few ulps off.
    let low = if x == 0.0 { 0.0 } else { center - half };
    let high = if x == n { 1.0 } else { center + half };
    Some((low, high))
}

/// Newcombe's hybrid score interval for p_F − p_M (method 10).
pub fn newcombe(xf: u64, nf: u64, xm: u64, nm: u64, z: f64) -> Option<(f64, f64)> {
    let (lf, uf) = wilson(xf, nf, z)?;
    let (lm, um) = wilson(xm, nm, z)?;
    let pf = xf as f64 / nf as f64;
    let pm = xm as f64 / nm as f64;
    let d = pf - pm;
    let low = d - ((pf - lf).powi(2) + (um - pm).powi(2)).sqrt();
    let high = d + ((uf - pf).powi(2) + (pm - lm).powi(2)).sqrt();
    Some((low, high))
}

/// UNESCO's adjusted parity index, symmetric around 1.
pub fn adjusted_ratio(ratio: f64) -> f64 {
    if ratio <= 1.0 {
        ratio
    } else {
        2.0 - 1.0 / ratio
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub df: f64,
    pub p_value: f64,
    pub min_expected: f64,
    pub cramers_v: f64,
}

/// Pearson chi-square without continuity correction on an r×c table (rows: sexes);
/// columns nobody chose are dropped. `None` when fewer than two columns or rows remain.
pub fn chi_square(table: &[Vec<u64>]) -> Option<ChiSquare> {
    let cols = table.first().map_or(0, Vec::len);
    let col_totals: Vec<u64> = (0..cols)
        .map(|c| table.iter().map(|r| r[c]).sum())
        .collect();
    let kept: Vec<usize> = (0..cols).filter(|&c| col_totals[c] > 0).collect();
    let row_totals: Vec<u64> = table
        .iter()
        .map(|r| kept.iter().map(|&c| r[c]).sum())
        .collect();
    let n: u64 = row_totals.iter().sum();
    if kept.len() < 2 || row_totals.iter().filter(|&&t| t > 0).count() < 2 {
        return None;
    }
    let n_f = n as f64;
    let mut statistic = 0.0;
    let mut min_expected = f64::INFINITY;
    for (r, row) in table.iter().enumerate() {
        for &c in &kept {
            let expected = row_totals[r] as f64 * col_totals[c] as f64 / n_f;
            min_expected = min_expected.min(expected);
            let diff = row[c] as f64 - expected;
            statistic += diff * diff / expected;
        }
    }
    let df = ((table.len() - 1) * (kept.len() - 1)) as f64;
    let k = table.len().min(kept.len()) as f64;
    Some(ChiSquare {
        statistic,
        df,
        p_value: dist::chi2_upper(statistic, df),
        min_expected,
        cramers_v: (statistic / (n_f * (k - 1.0))).sqrt(),
    })
}

/// Smallest expected count of a 2×2 table (0 when a margin is empty).
pub fn min_expected_2x2(t: [[u64; 2]; 2]) -> f64 {
    let n = (t[0][0] + t[0][1] + t[1][0] + t[1][1]) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let rows = [(t[0][0] + t[0][1]) as f64, (t[1][0] + t[1][1]) as f64];
    let cols = [(t[0][0] + t[1][0]) as f64, (t[0][1] + t[1][1]) as f64];
    rows.iter()
        .flat_map(|r| cols.iter().map(move |c| r * c / n))
        .fold(f64::INFINITY, f64::min)
}

/// Fisher's exact test, two-sided, as scipy: the probability of every table with the
/// observed margins that is no more probable than the observed one (relative tolerance 1e-7).
pub fn fisher_exact(t: [[u64; 2]; 2]) -> f64 {
    let r1 = t[0][0] + t[0][1];
    let r2 = t[1][0] + t[1][1];
    let c1 = t[0][0] + t[1][0];
    let n = r1 + r2;
    let ln_choose =
        |a: u64, b: u64| dist::ln_factorial(a) - dist::ln_factorial(b) - dist::ln_factorial(a - b);
    let denominator = ln_choose(n, c1);
    let ln_p = |a: u64| ln_choose(r1, a) + ln_choose(r2, c1 - a) - denominator;
    let low = c1.saturating_sub(r2);
    let high = c1.min(r1);
    let observed = ln_p(t[0][0]);
    let threshold = observed + (1.0 + 1e-7f64).ln();
    let p: f64 = (low..=high)
        .map(ln_p)
        .filter(|&lp| lp <= threshold)
        .map(f64::exp)
        .sum();
    p.min(1.0)
}

/// Mean, SD (n − 1), median of a sample (sorted in place for the median).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: u64,
    pub mean: f64,
    pub sd: Option<f64>,
    pub median: f64,
}

pub fn summarize(values: &mut [f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    // Sorted first, so the sums do not depend on the order the database returned the
    // rows in: every backend and index gives the same figures to the last bit.
    sort_values(values);
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = (n >= 2).then(|| {
        let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        (ss / (n - 1) as f64).sqrt()
    });
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Some(Summary {
        n: n as u64,
        mean,
        sd,
        median,
    })
}

/// Largest value range sorted by counting rather than comparison.
const COUNTING_SORT_RANGE: f64 = 65_536.0;

/// Sorts ascending. Survey numbers are mostly whole numbers in a small range (scores,
/// ages, minutes), which a counting sort orders in linear time; anything else is sorted
/// by comparison.
pub fn sort_values(values: &mut [f64]) {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let small_integers = values.len() > 64
        && max - min < COUNTING_SORT_RANGE
        && values.iter().all(|v| v.fract() == 0.0);
    if !small_integers {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    let mut counts = vec![0usize; (max - min) as usize + 1];
    for v in values.iter() {
        counts[(v - min) as usize] += 1;
    }
    let mut i = 0;
    for (offset, &count) in counts.iter().enumerate() {
        values[i..i + count].fill(min + offset as f64);
        i += count;
    }
}

/// mean ± t_{n−1}(1 − α/2)·sd/√n
pub fn mean_ci(s: &Summary, alpha: f64) -> Option<(f64, f64)> {
    let sd = s.sd?;
    let half = dist::t_critical(alpha, (s.n - 1) as f64) * sd / (s.n as f64).sqrt();
    Some((s.mean - half, s.mean + half))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    pub statistic: f64,
    pub df: f64,
    pub p_value: f64,
    pub ci: (f64, f64),
}

/// Welch's t-test of mean_F − mean_M with its interval (scipy `ttest_ind(equal_var=False)`).
pub fn welch(f: &Summary, m: &Summary, alpha: f64) -> Option<Welch> {
    let (sf, sm) = (f.sd?, m.sd?);
    let vf = sf * sf / f.n as f64;
    let vm = sm * sm / m.n as f64;
    let se2 = vf + vm;
    if se2 == 0.0 {
        return None;
    }
    let se = se2.sqrt();
    let diff = f.mean - m.mean;
    let statistic = diff / se;
    let df = se2 * se2 / (vf * vf / (f.n - 1) as f64 + vm * vm / (m.n - 1) as f64);
    let half = dist::t_critical(alpha, df) * se;
    Some(Welch {
        statistic,
        df,
        p_value: dist::t_two_sided(statistic, df),
        ci: (diff - half, diff + half),
    })
}

/// Hedges' g with the pooled SD and the small-sample correction.
pub fn hedges_g(f: &Summary, m: &Summary) -> Option<f64> {
    let (sf, sm) = (f.sd?, m.sd?);
    let dof = (f.n + m.n) as f64 - 2.0;
    let pooled = (((f.n - 1) as f64 * sf * sf + (m.n - 1) as f64 * sm * sm) / dof).sqrt();
    if pooled == 0.0 {
        return None;
    }
    let correction = 1.0 - 3.0 / (4.0 * (f.n + m.n) as f64 - 9.0);
    Some((f.mean - m.mean) / pooled * correction)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    pub statistic: f64,
    pub p_value: f64,
    pub effect: f64,
}

/// Mann–Whitney U for female vs male values with tie and continuity correction (scipy
/// `mannwhitneyu(method="asymptotic", use_continuity=True)`), by mid-ranks of one sort.
pub fn mann_whitney(f: &[f64], m: &[f64]) -> Option<MannWhitney> {
    let (nf, nm) = (f.len(), m.len());
    if nf == 0 || nm == 0 {
        return None;
    }
    let pooled = pooled_sorted(f, m);
    let n = pooled.len();
    let mut rank_sum_f = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let count = (j - i + 1) as f64;
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_f += mid_rank * pooled[i..=j].iter().filter(|(_, female)| *female).count() as f64;
        ties += count * count * count - count;
        i = j + 1;
    }
    let (nf_f, nm_f, n_f) = (nf as f64, nm as f64, n as f64);
    let u = rank_sum_f - nf_f * (nf_f + 1.0) / 2.0;
    let variance = nf_f * nm_f / 12.0 * ((n_f + 1.0) - ties / (n_f * (n_f - 1.0)));
    if !dist::positive(variance) {
        return None;
    }
    let z = (u.max(nf_f * nm_f - u) - nf_f * nm_f / 2.0 - 0.5) / variance.sqrt();
    Some(MannWhitney {
        statistic: u,
        p_value: dist::normal_upper_doubled(z).min(1.0),
        effect: 2.0 * u / (nf_f * nm_f) - 1.0,
    })
}

/// Both samples in one ascending sequence, tagged `true` for female. Samples that are
/// already sorted (after `summarize`) are merged in one pass instead of sorted again.
fn pooled_sorted(f: &[f64], m: &[f64]) -> Vec<(f64, bool)> {
    let sorted = |v: &[f64]| -> Vec<f64> {
        let mut v = v.to_vec();
        if !v.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
            sort_values(&mut v);
        }
        v
    };
    let (f, m) = (sorted(f), sorted(m));
    let mut out = Vec::with_capacity(f.len() + m.len());
    let (mut i, mut j) = (0, 0);
    while i < f.len() || j < m.len() {
        if j == m.len() || (i < f.len() && f[i].total_cmp(&m[j]).is_le()) {
            out.push((f[i], true));
            i += 1;
        } else {
            out.push((m[j], false));
            j += 1;
        }
    }
    out
}

/// Benjamini–Hochberg adjusted p-values, in the input's order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![0.0; m];
    let mut running = f64::INFINITY;
    for rank in (0..m).rev() {
        let i = order[rank];
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weighted {
    pub estimate: f64,
    /// Linearised (with-replacement) standard error; `None` with a single unit.
    pub se: Option<f64>,
    pub n_eff: f64,
}

/// Weighted estimate, linearised variance and Kish's effective n (R `survey`,
/// `svydesign(ids=~1, weights=~w)`). Units are (y, w) with w > 0.
pub fn weighted(units: &[(f64, f64)]) -> Option<Weighted> {
    let n = units.len();
    let sw: f64 = units.iter().map(|(_, w)| w).sum();
    if n == 0 || !dist::positive(sw) {
        return None;
    }
    let estimate = units.iter().map(|(y, w)| w * y).sum::<f64>() / sw;
    let sw2: f64 = units.iter().map(|(_, w)| w * w).sum();
    let se = (n >= 2).then(|| {
        let s: f64 = units
            .iter()
            .map(|(y, w)| w * w * (y - estimate).powi(2))
            .sum();
        (n as f64 / (n - 1) as f64 * s / (sw * sw)).sqrt()
    });
    Some(Weighted {
        estimate,
        se,
        n_eff: sw * sw / sw2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_sort_orders_like_a_comparison_sort() {
        let mut ints: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 600) as f64 - 50.0)
            .collect();
        let mut expected = ints.clone();
        expected.sort_by(f64::total_cmp);
        sort_values(&mut ints);
        assert_eq!(ints, expected);
        let mut mixed = vec![3.5, -1.0, 2.0, 1e9, 0.0];
        sort_values(&mut mixed);
        assert_eq!(mixed, vec![-1.0, 0.0, 2.0, 3.5, 1e9]);
    }
}
