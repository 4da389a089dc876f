//! `cleat inspect NAME`: the container's definition (merged spec, and where it came from) and
//! its state, as one JSON object.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use cleat::containers::{Found, Registry};
use cleat::time;
use cleat::unit::dbus::Systemd;
use cleat::unit::unit_name;

use super::ps::row;
use super::run::runtime_block;
use super::{CmdResult, name};

#[derive(Args)]
pub struct InspectArgs {
    #[arg(value_name = "NAME")]
    name: String,
}

pub fn inspect(args: InspectArgs) -> CmdResult {
    let name = name(&args.name)?;
    runtime_block(async move {
        let registry = Registry::system();
        let found = registry.require(&name)?;
        let kind = found.kind();
        let unit = unit_name(kind, &name);
        let systemd = Systemd::connect().await?;
        let state = systemd.state_if_loaded(&unit).await?;
        let now = time::now_usec();
        let r = row(&registry, &name, kind, state.as_ref(), now);
        let mut id = None;
        let (spec, definition) = match &found {
            Found::Declared(def) => {
                let loaded = def.load();
                let files: Vec<String> = def
                    .files()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                match loaded {
                    Ok(l) => (serde_json::to_value(&l.spec)?, json!({ "files": files })),
                    Err(e) => (
                        serde_json::Value::Null,
                        json!({ "files": files, "error": e.to_string() }),
                    ),
                }
            }
            Found::Adhoc => {
                let rec = registry.state.load_adhoc(&name)?;
                id = rec.as_ref().map(|r| r.id.clone());
                let spec = rec
                    .as_ref()
                    .map(|r| serde_json::to_value(&r.spec))
                    .transpose()?;
                let path = registry.state.dir(&name).join("definition.json");
                (
                    spec.unwrap_or(serde_json::Value::Null),
                    json!({ "record": path.display().to_string(), "auto_remove": rec.map(|r| r.auto_remove) }),
                )
            }
        };
        let s = state.unwrap_or_default();
        let out = json!({
            "name": name.to_string(),
            "id": id,
            "kind": kind,
            "unit": unit,
            "created": r.created,
            "definition": definition,
            "spec": spec,
            "network": r.pid.and_then(|_| cleat::network::attach::load(&registry.state.dir(&name)))
                .map(|a| super::network::describe_attachment(&a)),
            "state": {
                "status": r.state,
                "text": r.status,
                "running": s.is_running(),
                "pid": r.pid,
                "exit_code": r.exit_code,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "restarts": s.n_restarts,
                "result": (!s.result.is_empty()).then_some(&s.result),
                "active_state": (!s.active_state.is_empty()).then_some(&s.active_state),
                "sub_state": (!s.sub_state.is_empty()).then_some(&s.sub_state),
                "invocation_id": (!s.invocation_id.is_empty()).then_some(&s.invocation_id),
            },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(ExitCode::SUCCESS)
    })
}
