//! `journey run --dry-run` and `journey test`: load, walk every entry, report, compute the exit code.

use std::sync::Arc;

use super::prepare::{Ask, Env, Prepared, prepare};
use crate::cli::{Output, Show};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::execute::dry_run::DryRun;
use crate::execute::entries::{self, Candidates};
use crate::execute::executor::Executor;
use crate::execute::result::EntryResult;
use crate::execute::runner::{self, RunSettings};
use crate::exit::{self, Exit};
use crate::fixture::Fixtures;
use crate::journey::Journey;
use crate::output;
use crate::progress::Progress;
use crate::redact::Redactor;
use crate::render::EnvVars;
use crate::report::ndjson::NdjsonRecorder;
use crate::report::{self, Mode, RunReport, Tally};

/// Prints aggregated errors (and, unless `quiet`, warnings) to stderr: one line per distinct message.
pub fn print_problems(report: &RunReport, quiet: bool) {
    let warnings: &[_] = if quiet { &[] } else { &report.warnings };
    for (kind, groups) in [("error", &report.errors[..]), ("warning", warnings)] {
        for g in groups {
            let noun = if g.count == 1 { "entry" } else { "entries" };
            // Records too malformed to name a customer have no example to give.
            let named: Vec<&str> = g
                .examples
                .iter()
                .map(String::as_str)
                .filter(|id| !id.is_empty())
                .collect();
            let examples = match named.is_empty() {
                true => String::new(),
                false => format!(", e.g. {}", named.join(", ")),
            };
            output::stderr(&format!(
                "{kind}: {} ({} {noun}{examples})",
                g.message, g.count
            ));
        }
    }
}

/// Says `text` as a warning on stderr (unless `quiet`) and keeps it among the report's notices.
pub fn warn(notices: &mut Vec<String>, quiet: bool, text: String) {
    if !quiet {
        output::stderr(&format!("warning: {text}"));
    }
    notices.push(text);
}

/// Names each stream that holds no records (an export that came out empty).
fn warn_empty_streams(
    fixtures: &Fixtures,
    options: crate::fixture::stream::Options,
    notices: &mut Vec<String>,
    quiet: bool,
) {
    for path in &fixtures.streams {
        if crate::fixture::stream::is_empty(path, options) {
            let empty = format!(
                "{} holds no records: nothing was run from it",
                path.display()
            );
            warn(notices, quiet, empty);
        }
    }
}

/// What every kind of run shares once files are loaded.
pub struct Batch<'a> {
    /// The settings.
    pub config: &'a RunConfig,
    /// The journeys.
    pub journeys: &'a [Journey],
    /// The fixtures.
    pub fixtures: Arc<Fixtures>,
    /// Environment variables as templates see them.
    pub env: EnvVars,
    /// Knows the secret values.
    pub redactor: Redactor,
    /// Keeps secrets out of the state store and dead letters, by reference.
    pub vault: crate::redact::Vault,
    /// Secret names for `--show curl`.
    pub refs: report::curl::SecretRefs,
    /// `--suppress`.
    pub suppress: Arc<crate::gate::suppression::Suppressions>,
    /// The run id.
    pub run_id: String,
    /// Things said once.
    pub notices: Vec<String>,
    /// What tonight's streams say about the customers of parked entries.
    pub sightings: entries::Sightings,
    /// What `--html` keeps of the entries as they end.
    pub html: std::sync::Mutex<Option<report::html::Collector>>,
    /// The alerts with `every`, checked while a real run goes.
    pub watch: std::sync::Mutex<Option<crate::alert::Watch>>,
}

/// Runs a dry-run, a real run or a test.
pub async fn run(config: RunConfig) -> Result<Exit> {
    let check = |journeys: &[Journey]| match config.real() {
        Some(real) => super::send::check_waits(journeys, real),
        None => Ok(()),
    };
    let prepared = prepare(&Ask {
        journeys: &config.journeys,
        strict: false,
        check: &check,
        fixtures: &config.fixtures,
        check_references: config.mode() != Mode::Run,
        env: match config.real() {
            Some(_) => Env::Required,
            None => Env::Placeholders,
        },
        vars: &config.env,
        quiet: config.quiet,
        secrets: &config
            .real()
            .map(|r| r.proxies.secrets())
            .unwrap_or_default(),
        alerts: &config.alerts,
    })?;
    if config.mode() == Mode::Test && prepared.fixtures.expects.is_empty() {
        return Err(Error::usage(
            "the fixtures hold no `expect`: `journey test` has nothing to check (use `journey run --dry-run` to just run)",
        ));
    }
    if let Some(n) = &prepared.notice
        && !config.quiet
    {
        output::stderr(n);
    }
    let batch = Batch::new(&config, &prepared)?;
    let (list, total) = batch.candidates();
    match config.real() {
        Some(real) => super::send::send(&batch, real, list, total).await,
        None => dry_run(&batch, list, total).await,
    }
}

impl<'a> Batch<'a> {
    /// Everything a run shares, from its config and what was prepared.
    pub fn new(config: &'a RunConfig, prepared: &'a Prepared) -> Result<Batch<'a>> {
        let journeys = &prepared.journeys;
        let names = journeys.iter().flat_map(|j| j.secret_names.iter().cloned());
        let env_names = journeys.iter().flat_map(|j| j.env_names.iter().cloned());
        let mut notices: Vec<String> = prepared.notice.iter().cloned().collect();
        warn_empty_streams(
            &prepared.fixtures,
            options(config),
            &mut notices,
            config.quiet,
        );
        let html = config.html.as_ref().map(|_| {
            let mocked = config.mode() != Mode::Run;
            report::html::Collector::new(
                journeys,
                config.html_entries,
                mocked,
                prepared.redactor.clone(),
                config.now.timestamp(),
            )
        });
        Ok(Batch {
            refs: report::curl::SecretRefs::new(names, env_names, &config.env),
            suppress: suppressions(config)?,
            config,
            journeys,
            fixtures: Arc::clone(&prepared.fixtures),
            env: prepared.env.clone(),
            redactor: prepared.redactor.clone(),
            vault: super::vault(journeys, &config.env),
            run_id: run_id(config),
            notices,
            sightings: Default::default(),
            html: std::sync::Mutex::new(html),
            watch: std::sync::Mutex::new(None),
        })
    }

    /// The entries to run, as `--customer`, `--shard` and `--limit` choose them, and how many
    /// when they are all in memory.
    pub fn candidates(&self) -> (Candidates<'_>, Option<usize>) {
        let config = self.config;
        let all = entries::all(
            self.journeys,
            &self.fixtures,
            &self.env,
            config.now,
            options(config),
            &self.sightings,
        );
        counted(
            config.selection.apply(all, &self.sightings),
            self.fixtures.streams.is_empty(),
        )
    }

    /// The settings of a dry-run (and `test`, and `validate`): mocks answer.
    pub fn dry_settings(&self) -> RunSettings {
        let config = self.config;
        let mut settings = RunSettings::dry(
            config.now,
            self.env.clone(),
            config.concurrency,
            config.seed,
            config.show.is_some() || config.html.is_some() || config.mode() == Mode::Test,
        );
        settings.suppress = Arc::clone(&self.suppress);
        settings.lanes = config.lanes;
        settings
    }
}

/// How streams are read.
fn options(config: &RunConfig) -> crate::fixture::stream::Options {
    crate::fixture::stream::Options {
        delimiter: config.csv_delimiter,
    }
}

/// Walks every entry with the dry-run executor and computes the exit code.
async fn dry_run(batch: &Batch<'_>, list: Candidates<'_>, total: Option<usize>) -> Result<Exit> {
    let config = batch.config;
    let mut settings = batch.dry_settings();
    // `--log` in a dry-run: the same per-attempt lines a real run writes, marked `mocked`; no
    // dead letters (nothing was sent, so nothing is to be sent again).
    let log = config
        .log
        .as_deref()
        .map(|p| {
            NdjsonRecorder::new(
                &batch.run_id,
                batch.redactor.clone(),
                Some(p),
                config.log_bodies,
                None,
            )
        })
        .transpose()?
        .map(Arc::new);
    if let Some(log) = &log {
        settings.recorder = Arc::clone(log) as Arc<dyn crate::execute::recorder::Recorder>;
    }
    let exec = DryRun::new(Arc::clone(&batch.fixtures));
    let mut report = batch.execute(list, total, &exec, &settings).await?;
    report.alerts = alerts_shown(batch, &report)?;
    if let Some(log) = &log {
        log.flush();
        for f in log.failures() {
            output::stderr(&format!("error: {f}"));
        }
    }
    finish(batch, &report)
}

/// `--suppress`, loaded; a file that cannot be read is a usage error.
fn suppressions(config: &RunConfig) -> Result<Arc<crate::gate::suppression::Suppressions>> {
    let loaded = config
        .suppress
        .as_deref()
        .map(crate::gate::suppression::Suppressions::load)
        .transpose()
        .map_err(|e| Error::usage(e.to_string()))?;
    Ok(Arc::new(loaded.unwrap_or_default()))
}

impl Batch<'_> {
    /// Runs the entries through `exec`; returns the report (expectations checked for `test`).
    pub async fn execute<E: Executor>(
        &self,
        list: Candidates<'_>,
        total: Option<usize>,
        exec: &E,
        settings: &RunSettings,
    ) -> anyhow::Result<RunReport> {
        let config = self.config;
        let mut tally = Tally::new(
            self.journeys,
            config.mode(),
            self.run_id.clone(),
            crate::clock::rfc3339(config.now),
        );
        for n in &self.notices {
            tally.notice(n.clone());
        }
        let total = total.map(|t| t as u64);
        let bar = crate::progress::bar(config.progress == Progress::Bar, total);
        let beat = crate::progress::Heartbeat::start(config.progress == Progress::Heartbeat, total);
        let mut kept = Vec::new();
        let mut shown = Ok(());
        let mut asked = Asked::new(&config.selection.customers);
        // Taken out for the run and put back for `finish`, which writes the page.
        let mut html = self.html.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut metrics = Metrics::new(config.metrics.as_deref());
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner()).take();
        runner::run(self.journeys, list, exec, settings, |r| {
            tally.add(&r);
            metrics.beat(&tally);
            if let Some(w) = watch.as_mut() {
                w.beat(&tally, self.journeys);
            }
            if let Some(page) = html.as_mut() {
                page.add(self.journeys, &r);
            }
            asked.see(&r);
            bar.inc(1);
            beat.add(&r);
            if shown.is_ok() && config.show.is_some() {
                shown = self.show(&r);
                if shown.is_err() {
                    // Like a pipe's reader that has gone (`| head`): start nothing more.
                    settings
                        .stop
                        .request(crate::execute::stop::StopReason::ClosedOutput);
                }
            }
            if config.mode() == Mode::Test {
                kept.push(r);
                return None;
            }
            Some(r)
        })
        .await;
        bar.finish_and_clear();
        beat.stop();
        *self.html.lock().unwrap_or_else(|e| e.into_inner()) = html;
        *self.watch.lock().unwrap_or_else(|e| e.into_inner()) = watch;
        // A closed stdout stopped the run; it is not an error here, so that the store, the log and
        // the report files are still written (the table's own write then ends the run quietly).
        let mut report = self.finalize(tally, &kept);
        // A run stopped early may not have reached them.
        if !settings.stop.is_set() && !config.selection.customers.is_empty() {
            self.tell_not_entered(&asked, &mut report.notices);
        }
        Ok(report)
    }

    /// From what the entries came to, to the report: the tally's totals, errors redacted, the
    /// expectations checked (for `test`) and the thresholds crossed. Prints nothing.
    fn finalize(&self, tally: Tally, kept: &[EntryResult]) -> RunReport {
        let mut report = tally.finish();
        for g in report.errors.iter_mut().chain(&mut report.warnings) {
            g.message = self.redactor.redact(&g.message);
        }
        if self.config.mode() == Mode::Test {
            report.expectations = crate::expect::check_all(
                &self.fixtures.expects,
                self.journeys,
                kept,
                &self.redactor,
            );
        }
        thresholds(&mut report, self.config);
        report
    }
}

/// `--metrics` during a long run: the file is written again every 30 s, so a dashboard sees a
/// run that is still going (the last run's gauges come with the final write).
struct Metrics<'a> {
    path: Option<&'a std::path::Path>,
    last: std::time::Instant,
}

impl<'a> Metrics<'a> {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(30);

    fn new(path: Option<&'a std::path::Path>) -> Self {
        Metrics {
            path,
            last: std::time::Instant::now(),
        }
    }

    /// Writes the counters so far when 30 s have passed (a failed write is said once, at the
    /// end, by the final write).
    fn beat(&mut self, tally: &Tally) {
        let Some(path) = self.path else { return };
        if self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = std::time::Instant::now();
        let text = report::metrics::render(&tally.snapshot(), None);
        let _ = output::replace_private(path, text.as_bytes());
    }
}

/// What the run saw of the customers `--customer` asked for.
struct Asked<'a> {
    /// `--customer` was given: the run's entries are watched.
    asking: bool,
    /// The customers no entry has been about yet.
    unseen: std::collections::BTreeSet<&'a str>,
    /// Each entry's journey, customer and trigger event.
    seen: crate::execute::not_entered::Seen,
}

impl<'a> Asked<'a> {
    fn new(customers: &'a [String]) -> Self {
        Asked {
            asking: !customers.is_empty(),
            unseen: customers.iter().map(String::as_str).collect(),
            seen: Default::default(),
        }
    }

    fn see(&mut self, r: &EntryResult) {
        if self.asking {
            self.unseen.remove(r.customer.as_str());
            self.seen
                .insert((r.journey, r.customer.clone(), r.event.clone()));
        }
    }
}

impl Batch<'_> {
    /// Says why each customer asked for did not enter: a warning for one no entry is about at
    /// all, and with `--show paths` a block for each journey (and trigger event) they missed.
    fn tell_not_entered(&self, asked: &Asked<'_>, notices: &mut Vec<String>) {
        let config = self.config;
        let input = crate::execute::not_entered::Inputs {
            fixtures: &self.fixtures,
            env: &self.env,
            now: config.now,
            options: crate::fixture::stream::Options {
                delimiter: config.csv_delimiter,
            },
        };
        let missed = crate::execute::not_entered::explain(
            self.journeys,
            &input,
            &config.selection,
            &asked.seen,
        );
        for id in &asked.unseen {
            let mut reasons: Vec<String> = Vec::new();
            for m in missed.iter().filter(|m| m.customer == *id) {
                if !reasons.contains(&m.reason) {
                    reasons.push(m.reason.clone());
                }
            }
            let why = match reasons.is_empty() {
                true => "is the id in the fixtures, and does a trigger take them?".to_string(),
                false => reasons.join("; "),
            };
            let text = format!("--customer {id}: no entry is about this customer ({why})");
            warn(notices, config.quiet, self.redactor.redact(&text));
        }
        if config.show != Some(Show::Paths) {
            return;
        }
        for m in &missed {
            let text = self.redactor.redact(&crate::execute::not_entered::block(m));
            match config.output {
                Output::Json => output::stderr(text.trim_end()),
                Output::Table => {
                    let _ = output::stdout(text.as_bytes());
                }
            }
        }
    }
}

impl Batch<'_> {
    /// Prints the requests of one entry as `--show` asks: redacted text, or curl commands.
    fn show(&self, r: &EntryResult) -> std::io::Result<()> {
        let (config, j) = (self.config, &self.journeys[r.journey]);
        if config.show == Some(Show::Paths) {
            let text = report::paths::entry(j, r, config.mode() != Mode::Run, &self.redactor);
            return match config.output {
                Output::Json => {
                    output::stderr(text.trim_end());
                    Ok(())
                }
                Output::Table => output::stdout(text.as_bytes()),
            };
        }
        for s in &r.steps {
            let Some(req) = &s.request else { continue };
            let title = format!(
                "{} / {} / customer {}",
                j.name, j.steps[s.index].id, r.customer
            );
            let text = match config.show {
                Some(Show::Curl) => self.redactor.redact(&report::curl::command(
                    &title,
                    req,
                    config.now.timestamp(),
                    &self.refs,
                    self.proxy_option(req),
                )),
                _ => report::show::request(&title, req, config.now.timestamp(), &self.redactor),
            };
            match config.output {
                Output::Json => output::stderr(text.trim_end()),
                Output::Table => output::stdout(text.as_bytes())?,
            }
        }
        Ok(())
    }
}

impl Batch<'_> {
    /// The curl option for the proxy a real run sends `req` through, if any.
    fn proxy_option(&self, req: &crate::execute::request::Request) -> Option<String> {
        let target = url::Url::parse(&req.url).ok()?;
        self.config.real()?.proxies.curl_option(&target)
    }
}

/// Marks `--max-failure-rate` and `--fail-if-empty` when crossed.
fn thresholds(report: &mut RunReport, config: &RunConfig) {
    let t = &report.totals;
    if let Some(max) = config.max_failure_rate
        && t.deliveries_sent > 0
    {
        let rate = 100.0 * t.deliveries_failed as f64 / t.deliveries_sent as f64;
        if rate > max {
            report.thresholds.push(format!(
                "failure rate {rate:.1}% is above --max-failure-rate {max}%"
            ));
        }
    }
    if config.fail_if_empty && t.entries == 0 {
        report.thresholds.push("no entries: --fail-if-empty".into());
    }
}

fn run_id(config: &RunConfig) -> String {
    let mut rng = fastrand::Rng::new();
    format!(
        "run_{}_{:08x}",
        config.now.format("%Y%m%dT%H%M%SZ"),
        rng.u32(..)
    )
}

/// Writes the report files, prints the summary, and computes the exit code.
/// The alerts a dry-run or `test` would send: rendered, shown with `--show requests`, sent
/// nowhere.
fn alerts_shown(batch: &Batch<'_>, report: &RunReport) -> Result<Vec<crate::report::AlertOutcome>> {
    let facts = alert_facts(batch, &[], None);
    let scene = crate::alert::Scene {
        report,
        facts: &facts,
        env: &batch.env,
        marks: &[],
    };
    let (fired, mut outcomes) = crate::alert::fire(&scene, batch.journeys, &|_, _| true);
    show_alerts(batch, &fired)?;
    outcomes.extend(crate::alert::shown(&fired, &batch.redactor));
    Ok(outcomes)
}

/// With `--show requests`, each alert as it would be sent.
pub fn show_alerts(batch: &Batch<'_>, fired: &[crate::alert::Fired]) -> Result<()> {
    if batch.config.show == Some(crate::cli::Show::Requests) && !fired.is_empty() {
        output::stdout(crate::alert::show_text(fired, &batch.redactor).as_bytes())?;
    }
    Ok(())
}

/// What an alert says of the run beside its report.
pub fn alert_facts(
    batch: &Batch<'_>,
    stopped_hosts: &[String],
    dead_letter: Option<&std::path::Path>,
) -> crate::alert::Facts {
    crate::alert::Facts {
        host: hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        stopped_hosts: stopped_hosts.to_vec(),
        report: batch
            .config
            .report
            .as_ref()
            .map(|p| p.display().to_string()),
        dead_letter: dead_letter.map(|p| p.display().to_string()),
    }
}

pub fn finish(batch: &Batch<'_>, report: &RunReport) -> Result<Exit> {
    let (config, journeys) = (batch.config, batch.journeys);
    if let Some(path) = &config.report {
        output::private_file(path, &report::json::render(report))?;
    }
    let page = batch.html.lock().unwrap_or_else(|e| e.into_inner());
    if let (Some(path), Some(page)) = (&config.html, page.as_ref()) {
        output::private_file(path, &page.render(report, journeys))?;
    }
    if let Some(path) = &config.junit {
        let names: Vec<String> = journeys.iter().map(|j| j.name.clone()).collect();
        output::private_file(path, &report::junit::render(report, &names))?;
    }
    print_problems(report, config.quiet);
    for t in &report.thresholds {
        output::stderr(&format!("error: threshold crossed: {t}"));
    }
    match config.output {
        Output::Json => output::stdout(&report::json::render(report))?,
        Output::Table if !config.quiet => {
            let layout = report::table::Layout {
                color: config.color,
                width: config.width,
            };
            output::stdout(report::table::render(report, layout).as_bytes())?;
            if config.mode() == Mode::Test {
                output::stdout(expectation_lines(report).as_bytes())?;
            }
        }
        Output::Table => {}
    }
    if config.quiet && config.mode() == Mode::Test {
        for e in report.expectations.iter().filter(|e| e.failure.is_some()) {
            output::stderr(&format!(
                "FAIL {} {}: {}",
                e.journey,
                e.name,
                e.failure.as_deref().unwrap_or("")
            ));
        }
    }
    let deadline = Some(crate::execute::stop::StopReason::Deadline);
    if report.stopped_by == deadline && report.left.is_some() {
        output::stderr("stopped: --max-duration ran out; a later run takes up what is left");
    }
    let code = exit::of(report);
    if let Some(path) = &config.metrics {
        let ended = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let text = report::metrics::render(report, Some((ended, code.code())));
        output::replace_private(path, text.as_bytes())?;
    }
    Ok(code)
}

fn expectation_lines(report: &RunReport) -> String {
    let mut out = String::new();
    for e in &report.expectations {
        match &e.failure {
            None => out.push_str(&format!("ok   {} {}\n", e.journey, e.name)),
            Some(f) => out.push_str(&format!(
                "FAIL {} {}: {f}\n     at {}\n",
                e.journey, e.name, e.at
            )),
        }
    }
    let failed = report
        .expectations
        .iter()
        .filter(|e| e.failure.is_some())
        .count();
    out.push_str(&format!(
        "expectations: {} passed, {failed} failed\n",
        report.expectations.len() - failed
    ));
    out
}

/// Counts the candidates when they are all in memory (no streams), for the progress bar and the
/// confirmation; streamed ones stay lazy and uncounted.
fn counted(list: Candidates<'_>, in_memory: bool) -> (Candidates<'_>, Option<usize>) {
    if !in_memory {
        return (list, None);
    }
    let all: Vec<_> = list.collect();
    let n = all.len();
    (Box::new(all.into_iter()), Some(n))
}
