//! `cleat config show NAME` (the merged definition with the file each value came from) and
//! `cleat config check FILE|NAME` (validation, every problem with file:line:column).

use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Subcommand, ValueEnum};

use cleat::containers::{Found, Registry};
use cleat::image::pull;
use cleat::spec::{Source, load};

use super::{CmdResult, diag, name};

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
            // What the first start would refuse: the user in the image, the seccomp profile,
            // the mounts... (the image only if it is in the store: checking never pulls).
            let spec = &loaded.spec;
            let local = match &spec.source {
                Source::Image(text) => pull::find_in_system_store(text),
                Source::Rootfs(_) => None,
            };
            let unchecked = matches!(spec.source, Source::Image(_)) && local.is_none();
            super::prepare::check(spec, local, &Registry::system())
                .map_err(|e| anyhow!("{}: {e:#}", spec.name))?;
            println!("{}: OK ({})", spec.name, files.join(", "));
            if let (true, Source::Image(image)) = (unchecked, &spec.source) {
                diag::note(format!(
                    "{image} is not in the store: the user, groups and image volumes are checked \
                     when it is (`cleat pull {image}`)"
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
