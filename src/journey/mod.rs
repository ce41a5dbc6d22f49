//! Journey files: the model, loading with positions, compiling to a plan and validating the graph.

pub(crate) mod compile;
pub(crate) mod depth;
pub(crate) mod duration;
pub mod model;
pub mod plan;
pub(crate) mod validate;
pub(crate) mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use plan::Journey;

use crate::files;
use crate::position::Positions;
use crate::render::Compiler;

/// Journeys loaded and checked, with warnings; or every error found, each with file:line:col.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The compiled journeys, in argument and file order.
    pub journeys: Vec<Journey>,
    /// Warnings (unreachable steps).
    pub warnings: Vec<String>,
    /// Errors; when any, nothing may run.
    pub errors: Vec<String>,
}

/// Loads every journey named by `args` (files, or folders of `*.yaml`/`*.yml`).
pub fn load(args: &[PathBuf], strict: bool) -> Loaded {
    let mut out = Loaded::default();
    let paths = match files::expand(args, &["yaml", "yml"]) {
        Ok(p) => p,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        if let Some(j) = load_one(&path, strict, &mut out) {
            match names.get(&j.name) {
                Some(first) => out.errors.push(format!(
                    "{}:1:1: journey `{}` is already defined in {}: names are unique across loaded files",
                    path.display(),
                    j.name,
                    first.display()
                )),
                None => {
                    names.insert(j.name.clone(), path.clone());
                    out.journeys.push(j);
                }
            }
        }
    }
    out
}

fn load_one(path: &Path, strict: bool, out: &mut Loaded) -> Option<Journey> {
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            out.errors
                .push(format!("{}: cannot read: {e}", path.display()));
            return None;
        }
    };
    // A file with unknown keys is still checked without them: every error in one run.
    let (file, mut unknown) = match yaml::from_str_lenient::<model::JourneyFile>(path, &source) {
        Ok(f) => (f, Vec::new()),
        Err((e, Some(rest))) => (rest, e),
        Err((mut e, None)) => {
            out.errors.append(&mut e);
            return None;
        }
    };
    let positions = Positions::read(path, &source);
    let mut c = Compiler::new(&positions);
    if !compile::is_name(&file.journey) {
        c.error(
            "journey",
            format!("journey name `{}` must match [a-z][a-z0-9_]*", file.journey),
        );
    }
    let mut journey = compile::compile(&file, &mut c);
    validate::check_async(&file, &mut c);
    if c.errors.is_empty() {
        validate::check_graph(&journey, &mut c, &mut out.warnings, strict);
    }
    let raw = yaml::value(path, &source).unwrap_or(serde_yaml::Value::Null);
    (journey.env_names, journey.secret_names) = validate::referenced_vars(&raw);
    let failed = !c.errors.is_empty() || !unknown.is_empty();
    out.errors.append(&mut unknown);
    out.errors.append(&mut c.errors);
    (!failed).then_some(journey)
}

/// An `--alert FILE`'s alerts, and the `env` and `secret` names they read.
pub type AlertsLoaded = (
    Vec<plan::AlertPlan>,
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
);

/// `--alert FILE`: its alerts, compiled, with the `env` and `secret` names they read; or every
/// error, each with file:line:column.
pub fn load_alerts(path: &Path) -> Result<AlertsLoaded, Vec<String>> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("--alert {}: cannot read: {e}", path.display())])?;
    let file = yaml::from_str_lenient::<model::AlertFile>(path, &source).map_err(|(e, _)| e)?;
    let positions = Positions::read(path, &source);
    let mut c = Compiler::new(&positions);
    let alerts: Vec<plan::AlertPlan> = file
        .alerts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| compile::alert(a, &format!("alerts[{i}]"), i, &mut c))
        .collect();
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let raw = yaml::value(path, &source).unwrap_or(serde_yaml::Value::Null);
    let (env, secret) = validate::referenced_vars(&raw);
    Ok((alerts, env, secret))
}
