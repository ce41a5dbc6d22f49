//! What every command that runs journeys does first, once: load and check the journeys, open
//! the fixtures and check the steps and journeys they name, and resolve the environment with
//! its secrets. `validate`, `run`, `test` and `replay` all start here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fixture::Fixtures;
use crate::journey::Journey;
use crate::output;
use crate::redact::Redactor;
use crate::render::EnvVars;

/// How the environment is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// Variables not set render as placeholders (`<env.NAME>`): nothing is sent.
    Placeholders,
    /// Every variable the journeys read must be set: requests are sent.
    Required,
}

/// What to prepare.
pub struct Ask<'a> {
    /// Journey files or folders.
    pub journeys: &'a [PathBuf],
    /// Warnings (unreachable steps) are errors.
    pub strict: bool,
    /// Checks on the journeys before anything else is read (a real run's waits).
    pub check: &'a dyn Fn(&[Journey]) -> Result<()>,
    /// Fixture files or folders (none for a replay).
    pub fixtures: &'a [PathBuf],
    /// Mocks and expectations must name steps and journeys that exist (not for a real run,
    /// whose fixtures folder may be shared with other journeys).
    pub check_references: bool,
    /// How the environment is resolved.
    pub env: Env,
    /// The environment variables.
    pub vars: &'a HashMap<String, String>,
    /// Say no warning.
    pub quiet: bool,
    /// More values to redact everywhere (a proxy's password).
    pub secrets: &'a [String],
    /// `--alert FILE`s: alerts for every journey.
    pub alerts: &'a [PathBuf],
}

/// Everything a command runs with.
pub struct Prepared {
    /// The journeys, compiled and valid.
    pub journeys: Vec<Journey>,
    /// The fixtures (streams are opened as they are read).
    pub fixtures: Arc<Fixtures>,
    /// Environment variables as templates see them.
    pub env: EnvVars,
    /// Knows the secret values.
    pub redactor: Redactor,
    /// Which variables render as placeholders, to say once.
    pub notice: Option<String>,
}

/// Loads and checks everything `ask` names; the first thing that is unusable is the error.
pub fn prepare(ask: &Ask<'_>) -> Result<Prepared> {
    let mut journeys = super::load_journeys(ask.journeys, ask.strict)?;
    with_alerts(&mut journeys, ask.alerts)?;
    (ask.check)(&journeys)?;
    let fixtures = Arc::new(crate::fixture::load(ask.fixtures).map_err(fixture_errors)?);
    if ask.check_references {
        let unknown = crate::expect::unknown_references(&fixtures, &journeys);
        if !unknown.errors.is_empty() {
            return Err(fixture_errors(unknown.errors));
        }
        if !ask.quiet {
            for w in &unknown.warnings {
                output::stderr(&format!("warning: {w}"));
            }
        }
    }
    let (env, redactor, notice) = match ask.env {
        Env::Placeholders => super::placeholder_env(&journeys, ask.vars),
        Env::Required => {
            let (env, redactor) = super::send::real_env(&journeys, ask.vars, ask.secrets)?;
            (env, redactor, None)
        }
    };
    Ok(Prepared {
        journeys,
        fixtures,
        env,
        redactor,
        notice,
    })
}

/// Adds the alerts of each `--alert FILE` to every journey (and the variables they read).
fn with_alerts(journeys: &mut [Journey], files: &[PathBuf]) -> Result<()> {
    let mut errors = Vec::new();
    for file in files {
        match crate::journey::load_alerts(file) {
            Ok((alerts, env, secret)) => {
                for j in journeys.iter_mut() {
                    j.alerts.extend(alerts.iter().cloned());
                    j.env_names.extend(env.iter().cloned());
                    j.secret_names.extend(secret.iter().cloned());
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => {
            let closing = format!(
                "{} error(s) in --alert files; nothing was run",
                errors.len()
            );
            Err(Error::usage_all(errors, closing))
        }
    }
}

/// Fixture errors, as one usage error.
pub fn fixture_errors(errors: Vec<String>) -> Error {
    let closing = format!("{} error(s) in fixtures; nothing was run", errors.len());
    Error::usage_all(errors, closing)
}

/// No check on the journeys.
pub fn no_check(_: &[Journey]) -> Result<()> {
    Ok(())
}
