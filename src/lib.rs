//! genderlens: gender-responsive needs assessments.
//!
//! Data flows one way: request → `web` → `submit` (validate) → `db` (store);
//! store → columns → `stats` → JSON/CSV.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod export;
pub mod form;
pub mod import;
pub mod indicators;
pub mod notify;
pub mod privacy;
pub mod startup;
pub mod stats;
pub mod submit;
pub mod telemetry;
pub mod web;
