//! The `refine` binary: parse arguments, run, exit with the result's code.

use clap::Parser;

fn main() {
    let cli = refine::cli::Cli::parse();
    std::process::exit(refine::cli::run(cli));
}
