//! Distribution tails and quantiles accurate enough for tiny p-values: normal tails via
//! `erfc`, t and chi-square tails via the regularized incomplete beta/gamma in their
//! upper-tail form, quantiles polished by Newton steps on those tails.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::function::{beta, gamma};
use std::f64::consts::{PI, SQRT_2};

/// `x > 0`, false for NaN: the guard every formula needs before dividing or taking a root.
pub fn positive(x: f64) -> bool {
    x > 0.0
}

/// Whether `alpha` is a usable significance level.
fn valid_alpha(alpha: f64) -> bool {
    alpha > 0.0 && alpha < 1.0
}

/// Two-sided normal tail: P(|Z| ≥ z) = erfc(z/√2).
pub fn normal_two_sided(z: f64) -> f64 {
    libm::erfc(z.abs() / SQRT_2)
}

/// 2·(1 − Φ(z)) without folding z: above 1 for z < 0, as Mann–Whitney's corrected z can
/// be (U exactly at its mean), where the p-value is then capped at 1, not mirrored.
pub fn normal_upper_doubled(z: f64) -> f64 {
    libm::erfc(z / SQRT_2)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

/// z such that P(|Z| ≥ z) = alpha.
pub fn normal_critical(alpha: f64) -> f64 {
    if !valid_alpha(alpha) {
        return f64::NAN;
    }
    let mut z = Normal::standard().inverse_cdf(1.0 - alpha / 2.0);
    for _ in 0..3 {
        let step = (normal_two_sided(z) - alpha) / (2.0 * normal_pdf(z));
        if !step.is_finite() {
            break;
        }
        z += step;
    }
    z
}

/// Two-sided Student t tail: P(|T_ν| ≥ t) = I_{ν/(ν+t²)}(ν/2, 1/2).
/// NaN for inputs outside the distribution's domain (callers turn NaN into `null`).
pub fn t_two_sided(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    if !positive(df) || !x.is_finite() {
        return f64::NAN;
    }
    beta::checked_beta_reg(df / 2.0, 0.5, x.clamp(0.0, 1.0)).unwrap_or(f64::NAN)
}

fn t_pdf(t: f64, df: f64) -> f64 {
    let ln = gamma::ln_gamma((df + 1.0) / 2.0)
        - gamma::ln_gamma(df / 2.0)
        - 0.5 * (df * PI).ln()
        - (df + 1.0) / 2.0 * (1.0 + t * t / df).ln();
    ln.exp()
}

/// t such that P(|T_ν| ≥ t) = alpha.
pub fn t_critical(alpha: f64, df: f64) -> f64 {
    if !positive(df) || !df.is_finite() || !valid_alpha(alpha) {
        return f64::NAN;
    }
    let mut t = StudentsT::new(0.0, 1.0, df)
        .map(|d| d.inverse_cdf(1.0 - alpha / 2.0))
        .unwrap_or(f64::NAN);
    for _ in 0..4 {
        let step = (t_two_sided(t, df) - alpha) / (2.0 * t_pdf(t, df));
        if !step.is_finite() {
            break;
        }
        t += step;
    }
    t
}

/// Upper chi-square tail P(χ²_k ≥ x).
pub fn chi2_upper(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if !positive(df) || !x.is_finite() {
        return f64::NAN;
    }
    gamma::checked_gamma_ur(df / 2.0, x / 2.0).unwrap_or(f64::NAN)
}

/// ln(n!)
pub fn ln_factorial(n: u64) -> f64 {
    gamma::ln_gamma(n as f64 + 1.0)
}
