//! The commands: each takes its config, does its work, and returns the exit code computed from what happened.

pub(crate) mod graph;
pub(crate) mod prepare;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod send;
mod shares;
pub(crate) mod validate;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::journey::{self, Journey};
use crate::output;
use crate::redact::Redactor;
use crate::render::EnvVars;

/// Runs one command.
pub async fn execute(config: Config) -> Result<Exit> {
    match config {
        Config::Validate(c) => validate::validate(c).await,
        Config::Run(c) => run::run(*c).await,
        Config::Replay(c) => replay::replay(*c).await,
        Config::State(c) => state(*c).await,
        Config::Schema => print(&journey_schema()),
        Config::Completions(shell) => {
            let mut out = Vec::new();
            clap_complete::generate(
                shell,
                &mut <crate::cli::Cli as clap::CommandFactory>::command(),
                "journey",
                &mut out,
            );
            output::stdout(&out)?;
            Ok(Exit::Ok)
        }
        Config::Listen {
            port,
            secrets,
            respond,
            record,
        } => listen(port, secrets, respond, record).await,
        Config::Graph { journey, format } => graph::graph(&journey, format),
    }
}

/// Loads journeys, printing warnings; every error of every file is one usage error.
pub fn load_journeys(paths: &[std::path::PathBuf], strict: bool) -> Result<Vec<Journey>> {
    let loaded = journey::load(paths, strict);
    for w in &loaded.warnings {
        output::stderr(w);
    }
    if !loaded.errors.is_empty() {
        let closing = format!("{} error(s); nothing was run", loaded.errors.len());
        return Err(Error::usage_all(loaded.errors, closing));
    }
    Ok(loaded.journeys)
}

/// The secrets the journeys read, by name, for keeping them out of what is stored.
pub fn vault(journeys: &[Journey], vars: &HashMap<String, String>) -> crate::redact::Vault {
    crate::redact::Vault::new(
        journeys
            .iter()
            .flat_map(|j| j.secret_names.iter())
            .filter_map(|n| vars.get(n).map(|v| (n.as_str(), v.as_str()))),
    )
}

/// What the journeys read from the environment: the secrets' values that are set (to redact),
/// and every `env.NAME` and `secret.NAME` that is not, sorted.
pub struct Needs<'a> {
    /// The values of the secrets that are set.
    pub secrets: Vec<&'a str>,
    /// `env.NAME`, then `secret.NAME`, of each variable not set.
    pub missing: Vec<String>,
}

impl<'a> Needs<'a> {
    /// What `journeys` need of `vars`.
    pub fn of(journeys: &[Journey], vars: &'a HashMap<String, String>) -> Needs<'a> {
        let missing = |prefix: &str, names: &mut dyn Iterator<Item = &String>| {
            let set: std::collections::BTreeSet<String> = names
                .filter(|n| !vars.contains_key(*n))
                .map(|n| format!("{prefix}.{n}"))
                .collect();
            set.into_iter()
        };
        let mut env_names = journeys.iter().flat_map(|j| j.env_names.iter());
        let mut secret_names = journeys.iter().flat_map(|j| j.secret_names.iter());
        let missing = missing("env", &mut env_names)
            .chain(missing("secret", &mut secret_names))
            .collect();
        let secrets = journeys
            .iter()
            .flat_map(|j| j.secret_names.iter())
            .filter_map(|n| vars.get(n).map(String::as_str))
            .collect();
        Needs { secrets, missing }
    }
}

/// The variables as templates see them; `placeholders` renders missing ones as `<env.NAME>`.
pub fn env_vars(vars: &HashMap<String, String>, placeholders: bool) -> EnvVars {
    EnvVars {
        values: Arc::new(vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        placeholders,
    }
}

/// Environment variables for a run that needs no secrets: missing ones render as placeholders.
pub fn placeholder_env(
    journeys: &[Journey],
    vars: &HashMap<String, String>,
) -> (EnvVars, Redactor, Option<String>) {
    let needs = Needs::of(journeys, vars);
    let notice = (!needs.missing.is_empty()).then(|| {
        format!(
            "note: not set, rendered as placeholders (signatures use a dummy key): {}",
            needs.missing.join(", ")
        )
    });
    (env_vars(vars, true), Redactor::new(needs.secrets), notice)
}

/// `journey listen`: serves until stopped; a bad answers file or port is a usage error.
async fn listen(
    port: u16,
    secrets: Vec<String>,
    respond: Option<std::path::PathBuf>,
    record: Option<std::path::PathBuf>,
) -> Result<Exit> {
    let responder = respond
        .as_deref()
        .map(crate::listen::respond::Responder::load)
        .transpose()
        .map_err(|e| Error::usage(e.to_string()))?
        .unwrap_or_default();
    let record = record.as_deref().map(output::append_private).transpose()?;
    let listener = crate::listen::Listener {
        secrets,
        responder,
        record,
    };
    crate::listen::serve(port, listener)
        .await
        .map_err(|e| Error::usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    Ok(Exit::Ok)
}

/// The JSON Schema of the journey file format, derived from the model types.
pub fn journey_schema() -> String {
    let schema = schemars::schema_for!(crate::journey::model::JourneyFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// One JSON document, pretty, on its own.
pub fn json_line(value: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn print(text: &str) -> Result<Exit> {
    output::stdout(text.as_bytes())?;
    Ok(Exit::Ok)
}

/// `journey state show|prune|copy`; a store that cannot be read is exit 3, a held lock 75.
async fn state(c: crate::config::StateConfig) -> Result<Exit> {
    use crate::config::StateConfig;
    use crate::state::{Location, pg, show};
    let text = match c {
        StateConfig::Show(at, output, how) => {
            let summary = match &at {
                Location::File(p) => show::show(p.shown())?,
                Location::Postgres(t) => pg::show::show(t, &how).await?,
            };
            match output {
                crate::cli::Output::Table => summary.text(),
                crate::cli::Output::Json => json_line(&summary),
            }
        }
        StateConfig::Prune(at, age, how) => {
            let (e, d, reuse) = match &at {
                Location::File(p) => {
                    let (e, d) = show::prune(p.shown(), age)?;
                    (
                        e,
                        d,
                        " (the file keeps its size: later runs reuse the space)",
                    )
                }
                Location::Postgres(t) => {
                    let (e, d) = pg::show::prune(t, age, &how).await?;
                    (e, d, "")
                }
            };
            let reuse = if e + d > 0 { reuse } else { "" };
            format!("pruned {e} ended entries and {d} deliveries{reuse}\n")
        }
        StateConfig::Copy(from, to, how) => {
            let copied = crate::state::copy::copy(&from, &to, &how).await?;
            format!(
                "copied {} entries and {} deliveries from {} to {}\n",
                copied.entries,
                copied.deliveries,
                from.shown(),
                to.shown()
            )
        }
    };
    print(&text)
}
