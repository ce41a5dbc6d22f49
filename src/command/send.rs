//! A real run: every variable present, targets confirmed, requests sent, failures dead-lettered.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::sync::Arc;

use minijinja::context;

use super::run::{Batch, finish};
use super::shares;
use crate::config::RealConfig;
use crate::error::Error;
use crate::execute::entries::Candidates;
use crate::execute::entries::resumed;
use crate::execute::http::Http;
use crate::execute::protect::Protection;
use crate::execute::recorder::{Fanout, Recorder};
use crate::execute::runner::RunSettings;
use crate::execute::safety::Safety;
use crate::execute::stop::{Stop, StopReason};
use crate::exit::Exit;
use crate::journey::Journey;
use crate::journey::plan::StepKind;
use crate::output;
use crate::redact::Redactor;
use crate::render::EnvVars;
use crate::render::env_vars::Namespace;
use crate::report::mocks::MockRecorder;
use crate::report::ndjson::NdjsonRecorder;
use crate::report::{Left, RunReport};
use crate::state::Storage;

/// A wait parks the entry in the state store; without one, only `--fast-forward` can run it.
pub fn check_waits(journeys: &[Journey], real: &RealConfig) -> Result<(), Error> {
    if real.fast_forward || real.state.is_some() {
        return Ok(());
    }
    for j in journeys {
        let holds = |s: &&crate::journey::plan::StepPlan| {
            matches!(s.kind, StepKind::Wait(_))
                || s.send_window.is_some()
                || (j.send_window.is_some() && matches!(s.kind, StepKind::Webhook(_)))
        };
        if let Some(s) = j.steps.iter().find(holds) {
            return Err(Error::usage(format!(
                "journey `{}` waits at step `{}` (a wait or a send window): a real run parks such entries in the state store, and this one runs with --no-state; drop --no-state, or pass --fast-forward to count waits as elapsed",
                j.name, s.id
            )));
        }
    }
    Ok(())
}

/// The environment of a real run: every `env.NAME` and `secret.NAME` must be set.
pub fn real_env(
    journeys: &[Journey],
    vars: &std::collections::HashMap<String, String>,
    more_secrets: &[String],
) -> Result<(EnvVars, Redactor), Error> {
    let needs = super::Needs::of(journeys, vars);
    if !needs.missing.is_empty() {
        return Err(Error::usage(format!(
            "a real run needs every variable its journeys use; not set: {} (set them in the environment; `--dry-run` needs none). Nothing was sent.",
            needs.missing.join(", ")
        )));
    }
    let secrets = needs
        .secrets
        .into_iter()
        .chain(more_secrets.iter().map(String::as_str));
    Ok((super::env_vars(vars, false), Redactor::new(secrets)))
}

/// `scheme://host:port` of every webhook step, rendered from literals and `env` alone.
pub fn target_hosts(journeys: &[Journey], env: &EnvVars) -> BTreeSet<String> {
    let engine = crate::render::engine::environment();
    let ctx = context! { env => env.value(Namespace::Env) };
    journeys
        .iter()
        .flat_map(|j| j.steps.iter())
        .filter_map(|s| match &s.kind {
            StepKind::Webhook(w) => Some(w.url.source),
            _ => None,
        })
        .filter_map(|src| {
            engine
                .render_str(crate::render::url::origin_source(src), &ctx)
                .ok()
        })
        .filter_map(|u| url::Url::parse(&u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect()
}

/// Asks on the terminal; anything but `y`/`yes` declines.
pub fn confirm(hosts: &BTreeSet<String>, entries: Option<usize>) -> bool {
    let list: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let entries = match entries {
        Some(n) => format!("{n} entries"),
        None => "every entry of the streamed files".to_string(),
    };
    eprint!(
        "about to send requests for {entries} to {}. Continue? [y/N] ",
        list.join(", ")
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Opens the store of a real run for its shard; a held lock is exit 75, a shard that does not
/// fit exit 2, an unusable store exit 3.
async fn open_store(
    batch: &Batch<'_>,
    real: &RealConfig,
) -> Result<Option<Arc<dyn Storage>>, Error> {
    let Some(at) = &real.state else {
        return Ok(None);
    };
    let how = crate::state::Opening {
        vault: batch.vault.clone(),
        env: batch.config.env.clone(),
        timeout: real.state_timeout,
        home: match crate::execute::runner::real_lanes(batch.config.concurrency, batch.config.lanes)
        {
            1 => crate::state::Home::Runtime,
            _ => crate::state::Home::Thread,
        },
    };
    let claim = crate::state::Claim::Run(batch.config.selection.shard);
    Ok(Some(crate::state::open(at, claim, &how).await?))
}

/// Says which hosts the circuit breaker stopped (errors) or paused (warnings).
fn tell_breakers(protect: &Protection, notices: &mut Vec<String>, quiet: bool) {
    for why in protect.breakers.stopped() {
        output::stderr(&format!("error: {why}"));
        notices.push(why);
    }
    for why in protect.breakers.paused() {
        super::run::warn(notices, quiet, why);
    }
}

/// A parked entry that is due.
struct Resumable {
    /// Its journey's index.
    journey: usize,
    /// Its entry key.
    key: String,
    /// What its templates saw when it parked.
    snapshot: crate::state::Snapshot,
}

/// Parked entries that are due (a journey no longer loaded is skipped).
async fn due_waits(batch: &Batch<'_>, store: &dyn Storage) -> Result<Vec<Resumable>, String> {
    let mut out = Vec::new();
    for due in store.due(batch.config.now).await? {
        let Some(ji) = batch.journeys.iter().position(|j| j.name == due.journey) else {
            output::stderr(&format!(
                "warning: entry `{}` waits in journey `{}`, which is not loaded",
                due.key, due.journey
            ));
            continue;
        };
        if let Some(snapshot) = store.load(&due.key).await?.and_then(|e| e.snapshot) {
            out.push(Resumable {
                journey: ji,
                key: due.key,
                snapshot,
            });
        }
    }
    Ok(out)
}

/// The due entries, made once tonight's fixtures have all been read (they run after the new
/// entries): their customers' records and `exit_when` events come from tonight's streams too.
fn resumes<'a>(batch: &'a Batch<'_>, due: Vec<Resumable>, stop: &Arc<Stop>) -> Candidates<'a> {
    let customers = due
        .iter()
        .filter_map(|r| Some(r.snapshot.customer.get("id")?.as_str()?.to_string()));
    batch.sightings.want(customers, batch.journeys, stop);
    Box::new(std::iter::once(due).flat_map(move |due| {
        due.into_iter().filter_map(move |r| {
            resumed(
                &batch.journeys[r.journey],
                r.journey,
                &r.key,
                &r.snapshot,
                &batch.fixtures,
                &batch.sightings,
            )
        })
    }))
}

/// Turns the first SIGINT/SIGTERM (or the end of `--max-duration`) into a stop; a second
/// signal ends the process at once.
///
/// The signals are caught from this call on, not from the task's first turn: with the lanes on
/// threads of their own, the runtime's thread reads the input and may not give the task a turn
/// before the first requests go, and a SIGTERM meanwhile ended the process as if uncaught.
fn watch(
    stop: Arc<Stop>,
    max_duration: Option<std::time::Duration>,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    tokio::spawn(async move {
        let deadline = async {
            match max_duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let (Ok(mut int), Ok(mut term)) = signals else {
            return;
        };
        let mut deadline_fired = false;
        loop {
            let reason = tokio::select! {
                _ = int.recv() => StopReason::Interrupt,
                _ = term.recv() => StopReason::Terminate,
                _ = &mut deadline, if !deadline_fired => {
                    deadline_fired = true;
                    StopReason::Deadline
                }
            };
            if stop.request(reason) {
                output::stderr(
                    "stopping: no new attempts; waiting for those in flight (a second signal aborts)",
                );
            } else if reason != StopReason::Deadline {
                output::stderr(
                    "aborted: deliveries in flight are in doubt and will be re-sent by the next run",
                );
                // At once, by design: the deliveries in flight cannot be waited for.
                let code = match reason {
                    StopReason::Interrupt => Exit::Interrupted,
                    _ => Exit::Terminated,
                };
                std::process::exit(code.code());
            }
        }
    })
}

/// Sends for real.
pub async fn send(
    batch: &Batch<'_>,
    real: &RealConfig,
    list: Candidates<'_>,
    total: Option<usize>,
) -> Result<Exit, Error> {
    let config = batch.config;
    let (store, due_list) = store_and_due(batch, real).await?;
    let (list, total): (Candidates<'_>, Option<usize>) = if real.resume_only {
        // Sightings's fixtures are still read: they may end or update the parked entries.
        (Box::new(list.filter(|_| false)), Some(0))
    } else {
        (list, total)
    };
    let total = total.map(|t| t + due_list.len());
    let stop = Arc::new(Stop::default());
    let due_list = resumes(batch, due_list, &stop);
    if real.ask
        && total.is_none_or(|t| t > 0)
        && !confirm(&target_hosts(batch.journeys, &batch.env), total)
    {
        output::stderr("nothing was sent");
        return Ok(Exit::Ok);
    }
    let watcher = watch(Arc::clone(&stop), real.max_duration);
    *batch.watch.lock().unwrap_or_else(|e| e.into_inner()) = crate::alert::Watch::start(
        batch.journeys,
        super::run::alert_facts(batch, &[], Some(&real.dead_letter)),
        batch.env.clone(),
        crate::alert::watch::Sender {
            redactor: batch.redactor.clone(),
            allow_insecure_http: real.allow_insecure_http,
            dead_letter: Some(real.dead_letter.clone()),
            run_id: batch.run_id.clone(),
        },
    );
    if let Some(store) = &store {
        let stopping = Arc::clone(&stop);
        store.on_failure(Box::new(move || {
            stopping.request(StopReason::StateStore);
        }));
    }
    let sharing = crate::execute::protect::Sharing {
        hosts: config.selection.shard.map_or(1, |(_, n)| n),
        shared_store: store.as_ref().is_some_and(|s| s.shared()),
    };
    let protect = Arc::new(Protection::new(batch.journeys, real.rate, sharing));
    let mut notices = Vec::new();
    if !sharing.shared_store && protect.wants_dynamic(batch.journeys) {
        super::run::warn(
            &mut notices,
            config.quiet,
            "rate_share: dynamic divides a limit through a shared PostgreSQL store (--state postgres://...); with this store each host keeps 1/N of it (static)".into(),
        );
    }
    let coordinator = store.as_ref().filter(|s| s.shared()).map(|s| {
        shares::coordinate(
            Arc::clone(s),
            Arc::clone(&protect),
            Arc::clone(&stop),
            sharing.hosts,
        )
    });
    let recorded = recorders(batch, real)?;
    let parts = RealParts {
        recorder: Arc::clone(&recorded.all),
        state: store.clone(),
        stop: Arc::clone(&stop),
        protect: Arc::clone(&protect),
    };
    let settings = real_settings(batch, real, parts);
    let list = Box::new(list.chain(due_list));
    let exec = Http::configured(
        config.concurrency,
        &real.proxies,
        real.cacert.as_deref(),
        real.client_cert.as_ref(),
    )
    .map_err(Error::usage)?;
    let mut report = batch.execute(list, total, &exec, &settings).await?;
    report.left = left_undone(&stop, total, &report);
    recorded.log.flush();
    tell_breakers(&protect, &mut report.notices, config.quiet);
    if let Some(m) = &recorded.mocks {
        m.write(&batch.run_id)?;
    }
    tell_recorded(&recorded.log, config.quiet);
    if let Some(c) = coordinator {
        c.leave().await;
    }
    report.rate_shares = protect.shares_used(sharing);
    report.alerts = send_alerts(batch, real, &report, &protect, store.as_deref()).await?;
    report.notices.extend(notices);
    let store_failed = match &store {
        Some(store) => {
            report.state = Some(store.shown());
            !closed(store).await
        }
        None => false,
    };
    watcher.abort();
    report.stopped_by = stop.reason();
    report.store_failed = store_failed;
    finish(batch, &report)
}

/// Sends the alerts whose `when` holds (an alert with `every` only when it was not sent within
/// it during the run) and the resolutions of those that fired before; what became of each,
/// the run's own included (never an error of the run). The store keeps which `resolved: true`
/// alerts fired.
async fn send_alerts(
    batch: &Batch<'_>,
    real: &RealConfig,
    report: &RunReport,
    protect: &Protection,
    store: Option<&dyn Storage>,
) -> Result<Vec<crate::report::AlertOutcome>, Error> {
    let mut watch = batch.watch.lock().unwrap_or_else(|e| e.into_inner()).take();
    let during = watch.as_mut().map(|w| w.finish()).unwrap_or_default();
    let marks = match store {
        Some(s) => s.alert_marks().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let stopped = protect.breakers.stopped();
    let facts = super::run::alert_facts(batch, &stopped, Some(&real.dead_letter));
    let scene = crate::alert::Scene {
        report,
        facts: &facts,
        env: &batch.env,
        marks: &marks,
    };
    let due = |journey: &str, a: &crate::journey::plan::AlertPlan| {
        watch.as_ref().is_none_or(|w| w.due(journey, a))
    };
    let (fired, mut outcomes) = crate::alert::fire(&scene, batch.journeys, &due);
    super::run::show_alerts(batch, &fired)?;
    let how = crate::alert::Sending {
        redactor: &batch.redactor,
        allow_insecure_http: real.allow_insecure_http,
        dead_letter: Some(&real.dead_letter),
        run_id: &batch.run_id,
    };
    let sent = crate::alert::send_all(&fired, &how).await;
    if let Some(store) = store {
        remember(store, batch.journeys, &fired, &sent, &during);
    }
    outcomes.extend(during);
    outcomes.extend(sent);
    Ok(outcomes)
}

/// Keeps in the store which `resolved: true` alerts fired (sent at the end or during the run),
/// and forgets those whose resolution was sent.
fn remember(
    store: &dyn Storage,
    journeys: &[crate::journey::Journey],
    fired: &[crate::alert::Fired],
    sent: &[crate::report::AlertOutcome],
    during: &[crate::report::AlertOutcome],
) {
    for (f, o) in fired.iter().zip(sent).filter(|(f, _)| f.remembered) {
        if o.state == "sent" {
            store.mark_alert(&f.key(), !f.resolution);
        }
    }
    for o in during.iter().filter(|o| o.state == "sent") {
        let remembered = journeys
            .iter()
            .filter(|j| j.name == o.journey)
            .flat_map(|j| &j.alerts)
            .any(|a| a.name == o.name && a.resolved);
        if remembered {
            store.mark_alert(&format!("alert:{}/{}", o.journey, o.name), true);
        }
    }
}

/// What a real run records to.
struct Recorders {
    /// The log and dead letters.
    log: Arc<NdjsonRecorder>,
    /// The mocks it records (`--record-mocks`).
    mocks: Option<Arc<MockRecorder>>,
    /// Both, as one.
    all: Arc<dyn Recorder>,
}

/// The run's recorders, from its flags.
fn recorders(batch: &Batch<'_>, real: &RealConfig) -> anyhow::Result<Recorders> {
    let mocks = real
        .record_mocks
        .as_deref()
        .map(|p| Arc::new(MockRecorder::new(p, batch.redactor.clone())));
    let recorder = Arc::new(
        NdjsonRecorder::new(
            &batch.run_id,
            batch.redactor.clone(),
            batch.config.log.as_deref(),
            batch.config.log_bodies,
            Some(&real.dead_letter),
        )?
        .with_vault(batch.vault.clone()),
    );
    let both = std::iter::once(Arc::clone(&recorder) as Arc<dyn Recorder>)
        .chain(mocks.iter().map(|m| Arc::clone(m) as Arc<dyn Recorder>))
        .collect();
    Ok(Recorders {
        log: recorder,
        mocks,
        all: Arc::new(Fanout(both)),
    })
}

/// What a real run makes for itself before its settings.
struct RealParts {
    recorder: Arc<dyn Recorder>,
    state: Option<Arc<dyn Storage>>,
    stop: Arc<Stop>,
    protect: Arc<Protection>,
}

/// The settings of a real run: its flags, and the parts it made.
fn real_settings(batch: &Batch<'_>, real: &RealConfig, parts: RealParts) -> RunSettings {
    let config = batch.config;
    RunSettings {
        now: config.now,
        env: batch.env.clone(),
        concurrency: config.concurrency,
        lanes: config.lanes,
        seed: config.seed,
        keep_requests: config.show.is_some() || config.html.is_some(),
        recorder: parts.recorder,
        sending: crate::execute::runner::Sending::Real(Safety {
            allow_insecure_http: real.allow_insecure_http,
            redactor: batch.redactor.clone(),
        }),
        state: match parts.state {
            Some(store) => store,
            None => Arc::new(crate::state::Memory::default()),
        },
        fast_forward: real.fast_forward,
        retry_failed: real.retry_failed,
        stop: parts.stop,
        suppress: Arc::clone(&batch.suppress),
        protect: Some(parts.protect),
    }
}

/// Opens the store (if any) for the run's shard and finds the parked entries now due.
async fn store_and_due(
    batch: &Batch<'_>,
    real: &RealConfig,
) -> Result<(Option<Arc<dyn Storage>>, Vec<Resumable>), Error> {
    let Some(store) = open_store(batch, real).await? else {
        return Ok((None, Vec::new()));
    };
    match due_waits(batch, store.as_ref()).await {
        Ok(due) => Ok((Some(store), due)),
        Err(why) => Err(Error::State(format!(
            "the state store {} cannot be read: {why}",
            store.shown()
        ))),
    }
}

/// Says what the log and dead-letter files could not take, and where dead letters went.
fn tell_recorded(recorder: &NdjsonRecorder, quiet: bool) {
    for f in recorder.failures() {
        output::stderr(&format!("error: {f}"));
    }
    let written = recorder
        .dead_letter_path()
        .filter(|_| recorder.dead_letters() > 0);
    if let Some(path) = written.filter(|_| !quiet) {
        let path = path.display();
        output::stderr(&format!(
            "{} failed deliveries were written to {path}; `journey replay {path}` sends them again with the same idempotency keys",
            recorder.dead_letters()
        ));
    }
}

/// Commits what the store still holds and closes it; `false` (said on stderr) when it cannot.
async fn closed(store: &Arc<dyn Storage>) -> bool {
    let flushed = store.flush().await;
    // Off the runtime: a second signal still aborts at once meanwhile.
    let closing = Arc::clone(store);
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    match flushed {
        Ok(()) => true,
        Err(why) => {
            output::stderr(&format!(
                "error: the state store {} cannot be written: {why}",
                store.shown()
            ));
            false
        }
    }
}

/// What a stopped run left undone: entries not finished (counted when the input's size is
/// known), or `None` when it stopped with nothing left.
fn left_undone(stop: &Stop, total: Option<usize>, report: &RunReport) -> Option<Left> {
    let reason = match stop.reason()? {
        StopReason::Deadline => "max_duration",
        StopReason::Interrupt => "sigint",
        StopReason::Terminate => "sigterm",
        StopReason::StateStore => "state_store",
        StopReason::ClosedOutput => return None,
    };
    let t = &report.totals;
    // Reported but not finished: interrupted, or put off by the stop before an attempt.
    let unfinished = t.interrupted + stop.deferred();
    let entries = match total {
        Some(total) => Some((total as u64).saturating_sub(t.entries) + unfinished),
        None if stop.skipped() + unfinished == 0 => Some(0),
        None => None,
    };
    (entries != Some(0)).then(|| Left {
        reason: reason.into(),
        entries,
    })
}
