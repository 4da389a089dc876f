//! `cleat config show NAME` (the merged definition with the file each value came from) and
//! `cleat config check FILE|NAME` (validation, every problem with file:line:column).

use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Subcommand, ValueEnum};

use cleat::containers::{Found, Registry};
use cleat::spec::load;

use super::{CmdResult, name};

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum ShowFormat {
    #[default]
    Toml,
    Json,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print a declared container's merged definition, each value with the file it came from
    Show {
        #[arg(value_name = "NAME")]
        name: String,
        /// Output format
        #[arg(long, value_enum, default_value_t)]
        format: ShowFormat,
    },
    /// Check a definition file, or a declared container with its drop-ins
    Check {
        #[arg(value_name = "FILE|NAME")]
        target: String,
    },
}

pub fn config(cmd: ConfigCommand) -> CmdResult {
    match cmd {
        ConfigCommand::Show { name: arg, format } => {
            let name = name(&arg)?;
            let registry = Registry::system();
            let def = match registry.require(&name)? {
                Found::Declared(def) => def,
                Found::Adhoc => {
                    return Err(anyhow!(
                        "{name} is an ad-hoc container (made by `cleat run` or `cleat create`), not a declared one; \
                         `cleat inspect {name}` shows its definition"
                    )
                    .into());
                }
            };
            let loaded = def.load()?;
            match format {
                ShowFormat::Toml => print!("{}", loaded.merged.to_toml()),
                ShowFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&loaded.merged.to_json())?
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { target } => {
            let path = Path::new(&target);
            let loaded = if target.contains('/') || path.extension().is_some_and(|e| e == "toml") {
                load::load_file(path)?
            } else {
                let name = name(&target)?;
                match Registry::system().require(&name)? {
                    Found::Declared(def) => def.load()?,
                    Found::Adhoc => {
                        return Err(anyhow!(
                            "{name} is an ad-hoc container; there is no file to check"
                        )
                        .into());
                    }
                }
            };
            let files: Vec<String> = loaded
                .merged
                .files()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            println!("{}: OK ({})", loaded.spec.name, files.join(", "));
            Ok(ExitCode::SUCCESS)
        }
    }
}
