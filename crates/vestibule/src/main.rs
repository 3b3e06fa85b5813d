//! The `vestibule` binary: see `vestibule --help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    vestibule::cli::run(vestibule::cli::Cli::parse()).await
}
