//! `journey validate`: checks journey files and, with fixtures, renders every request of every entry.

use std::sync::Arc;

use crate::config::ValidateConfig;
use crate::error::Result;
use crate::execute::dry_run::DryRun;
use crate::execute::entries;
use crate::execute::runner::{self, RunSettings};
use crate::exit::Exit;
use crate::output;
use crate::report::{Mode, Tally};

/// Validates; exit 2 for unusable files, 1 when an entry cannot be rendered.
pub async fn validate(config: ValidateConfig) -> Result<Exit> {
    let journeys = super::load_journeys(&config.journeys, config.strict)?;
    if config.fixtures.is_empty() {
        output::stdout(format!("ok: {} journey(s) valid\n", journeys.len()).as_bytes())?;
        return Ok(Exit::Ok);
    }
    let fixtures =
        Arc::new(crate::fixture::load(&config.fixtures).map_err(super::run::fixture_errors)?);
    let unknown = crate::expect::unknown_references(&fixtures, &journeys);
    if !unknown.errors.is_empty() {
        return Err(super::run::fixture_errors(unknown.errors));
    }
    unknown
        .warnings
        .iter()
        .for_each(|w| output::stderr(&format!("warning: {w}")));
    let (env, redactor, notice) = super::placeholder_env(&journeys, &config.env);
    if let Some(n) = notice {
        output::stderr(&n);
    }
    let settings = RunSettings::dry(config.now, env.clone(), 32, 0, false);
    let sightings = entries::Sightings::default();
    let list = entries::all(
        &journeys,
        &fixtures,
        &env,
        config.now,
        crate::fixture::stream::Options {
            delimiter: config.csv_delimiter,
        },
        &sightings,
    );
    let mut tally = Tally::new(&journeys, Mode::DryRun, String::new(), String::new());
    runner::run(
        &journeys,
        list,
        &DryRun::new(Arc::clone(&fixtures)),
        &settings,
        |r| tally.add(&r),
    )
    .await;
    let mut report = tally.finish();
    for g in report.errors.iter_mut().chain(&mut report.warnings) {
        g.message = redactor.redact(&g.message);
    }
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
        journeys.len(),
        report.totals.entries
    );
    output::stdout(msg.as_bytes())?;
    Ok(Exit::Ok)
}
