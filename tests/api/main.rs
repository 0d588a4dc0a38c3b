//! API tests: each spawns the real application on a random port with its own database
//! (SQLite always; PostgreSQL too when GENDERLENS_TEST_POSTGRES_URL is set).

mod access;
mod browser;
mod fuzz;
mod helpers;
mod hostile;
mod indicators;
mod mail;
mod openapi;
mod ops;
mod pages;
mod planners;
mod privacy;
mod submissions;
mod workbooks;
