//! `device-tools`: the admin CLI that provisions Gatehouse's hardware.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = device_tools::cli::Cli::parse();
    device_tools::run(cli)
}
