//! Pure indicator maths: shares with Wilson intervals, gaps with Newcombe and Welch
//! intervals, chi-square/Fisher/Welch/Mann–Whitney tests, Benjamini–Hochberg q-values,
//! survey weights and small-cell suppression. No I/O, no web or database types: inputs are
//! columns, outputs plain structs that serialize to the contract's JSON.

mod dist;
pub mod formulas;
mod report;

pub use dist::{normal_critical, t_critical};
pub use report::*;
