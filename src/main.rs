//! The `refine` binary: parse arguments, run, exit with the result's code.

use clap::Parser;

fn main() {
    let cli = refine::cli::Cli::parse();
    std::process::exit(refine::cli::run(cli));
}

/// mimalloc: evaluation allocates many small values; the system allocator
/// made up a third of a no-op run on a large workspace (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
