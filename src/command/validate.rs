//! `journey validate`: checks journey files and, with fixtures, renders every request of every
//! entry: the same preparation and the same dry-run as `run --dry-run`, said as a verdict.

use std::sync::Arc;

use super::prepare::{Ask, Env, Prepared, no_check, prepare};
use super::run::Batch;
use crate::config::ValidateConfig;
use crate::error::Result;
use crate::execute::dry_run::DryRun;
use crate::exit::Exit;
use crate::output;

/// Validates; exit 2 for unusable files, 1 when an entry cannot be rendered.
pub async fn validate(config: ValidateConfig) -> Result<Exit> {
    let dry = &*config.dry;
    let prepared = prepare(&Ask {
        journeys: &dry.journeys,
        strict: config.strict,
        check: &no_check,
        fixtures: &dry.fixtures,
        check_references: true,
        env: Env::Placeholders,
        vars: &dry.env,
        quiet: false,
    })?;
    if dry.fixtures.is_empty() {
        let ok = format!("ok: {} journey(s) valid\n", prepared.journeys.len());
        output::stdout(ok.as_bytes())?;
        return Ok(Exit::Ok);
    }
    if let Some(n) = &prepared.notice {
        output::stderr(n);
    }
    rendered(dry, &prepared).await
}

/// Renders every entry through the dry-run of `run`; says how many could not be.
async fn rendered(dry: &crate::config::RunConfig, prepared: &Prepared) -> Result<Exit> {
    let batch = Batch::new(dry, prepared)?;
    let (list, total) = batch.candidates();
    let exec = DryRun::new(Arc::clone(&batch.fixtures));
    let report = batch
        .execute(list, total, &exec, &batch.dry_settings())
        .await?;
    super::run::print_problems(&report, false);
    if report.totals.invalid > 0 {
        output::stderr(&format!(
            "{} of {} entries cannot be rendered",
            report.totals.invalid, report.totals.entries
        ));
        return Ok(Exit::Failures);
    }
    let msg = format!(
        "ok: {} journey(s) valid, {} entries rendered\n",
        prepared.journeys.len(),
        report.totals.entries
    );
    output::stdout(msg.as_bytes())?;
    Ok(Exit::Ok)
}
