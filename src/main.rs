use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = genderlens::cli::Cli::parse();
    genderlens::telemetry::init();
    match genderlens::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("genderlens: {err:#}");
            ExitCode::FAILURE
        }
    }
}
