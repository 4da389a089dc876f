//! The `cleat` command. All logic lives in the library and in `cli/`, one file per command.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
