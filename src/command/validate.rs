//! `journey validate`: checks journey files and, with fixtures, renders every request of every
//! entry: the same preparation and the same dry-run as `run --dry-run`, said as a verdict, in
//! words or as one JSON document (`--output json`).

use std::sync::Arc;

use serde::Serialize;

use super::prepare::{Ask, Env, Prepared, no_check, prepare};
use super::run::Batch;
use crate::cli::Output;
use crate::config::ValidateConfig;
use crate::error::{Error, Result};
use crate::execute::dry_run::DryRun;
use crate::exit::Exit;
use crate::output;
use crate::report::{ErrorGroup, RunReport};

/// What `validate` found.
#[derive(Debug, Serialize)]
struct Verdict {
    /// Every file is usable and every entry rendered.
    valid: bool,
    /// Journeys loaded.
    journeys: usize,
    /// Entries rendered, when fixtures were given.
    entries: Option<u64>,
    /// Entries that could not be rendered.
    invalid: u64,
    /// What is wrong: for unusable files their `file:line:column: message` lines, for entries
    /// the grouped render errors.
    errors: Vec<ErrorGroup>,
    /// Grouped warnings.
    warnings: Vec<ErrorGroup>,
}

/// Validates; exit 2 for unusable files, 1 when an entry cannot be rendered.
pub async fn validate(config: ValidateConfig) -> Result<Exit> {
    match verdict(&config).await {
        Ok((verdict, report)) => tell(&config, &verdict, report.as_ref()),
        Err(e) => {
            if config.output == Output::Json {
                output::stdout(super::json_line(&unusable(&e)).as_bytes())?;
            }
            Err(e)
        }
    }
}

/// The verdict, and the dry-run's report when there were fixtures.
async fn verdict(config: &ValidateConfig) -> Result<(Verdict, Option<RunReport>)> {
    let dry = &*config.dry;
    let prepared = prepare(&Ask {
        journeys: &dry.journeys,
        strict: config.strict,
        check: &no_check,
        fixtures: &dry.fixtures,
        check_references: true,
        env: Env::Placeholders,
        vars: &dry.env,
        quiet: config.output == Output::Json,
        secrets: &[],
        alerts: &dry.alerts,
    })?;
    let journeys = prepared.journeys.len();
    if dry.fixtures.is_empty() {
        let verdict = Verdict {
            valid: true,
            journeys,
            entries: None,
            invalid: 0,
            errors: vec![],
            warnings: vec![],
        };
        return Ok((verdict, None));
    }
    if let Some(n) = prepared
        .notice
        .as_ref()
        .filter(|_| config.output == Output::Table)
    {
        output::stderr(n);
    }
    let report = rendered(dry, &prepared).await?;
    let verdict = Verdict {
        valid: report.totals.invalid == 0,
        journeys,
        entries: Some(report.totals.entries),
        invalid: report.totals.invalid,
        errors: report.errors.clone(),
        warnings: report.warnings.clone(),
    };
    Ok((verdict, Some(report)))
}

/// Renders every entry through the dry-run of `run`.
async fn rendered(dry: &crate::config::RunConfig, prepared: &Prepared) -> Result<RunReport> {
    let batch = Batch::new(dry, prepared)?;
    let (list, total) = batch.candidates();
    let exec = DryRun::new(Arc::clone(&batch.fixtures));
    Ok(batch
        .execute(list, total, &exec, &batch.dry_settings())
        .await?)
}

/// Says the verdict: words on stdout and stderr, or one JSON document on stdout.
fn tell(config: &ValidateConfig, v: &Verdict, report: Option<&RunReport>) -> Result<Exit> {
    let code = if v.valid { Exit::Ok } else { Exit::Failures };
    if config.output == Output::Json {
        output::stdout(super::json_line(v).as_bytes())?;
        return Ok(code);
    }
    if let Some(report) = report {
        super::run::print_problems(report, false);
    }
    let text = match v.entries {
        None => format!("ok: {} journey(s) valid\n", v.journeys),
        Some(n) if v.valid => format!(
            "ok: {} journey(s) valid, {n} entries rendered\n",
            v.journeys
        ),
        Some(n) => {
            output::stderr(&format!("{} of {n} entries cannot be rendered", v.invalid));
            return Ok(code);
        }
    };
    output::stdout(text.as_bytes())?;
    Ok(code)
}

/// The verdict on files that cannot be used.
fn unusable(e: &Error) -> Verdict {
    let errors = match e {
        Error::Usage { lines, .. } => lines.clone(),
        other => vec![other.to_string()],
    };
    Verdict {
        valid: false,
        journeys: 0,
        entries: None,
        invalid: 0,
        errors: errors
            .into_iter()
            .map(|message| ErrorGroup {
                message,
                count: 1,
                examples: vec![],
            })
            .collect(),
        warnings: vec![],
    }
}
