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
    let super::prepare::Prepared {
        journeys,
        fixtures,
        env,
        redactor,
        notice,
    } = super::prepare::prepare(&super::prepare::Ask {
        journeys: &config.journeys,
        strict: config.strict,
        check: &super::prepare::no_check,
        fixtures: &config.fixtures,
        check_references: true,
        env: super::prepare::Env::Placeholders,
        vars: &config.env,
        quiet: false,
    })?;
    if config.fixtures.is_empty() {
        output::stdout(format!("ok: {} journey(s) valid\n", journeys.len()).as_bytes())?;
        return Ok(Exit::Ok);
    }
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
