//! The `strata` command-line tool.

fn main() {
    std::process::exit(strata_cli::run(std::env::args_os()));
}
