//! `journey replay FILE`: renders each dead-lettered delivery again from its snapshot (secrets read
//! from the environment now) and sends it with the same idempotency key. What still fails stays in
//! the file; what is delivered leaves it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::ReplayConfig;
use crate::error::Error;
use crate::execute::deliver::Deliverer;
use crate::execute::deliver::Delivery;
use crate::execute::http::Http;
use crate::execute::recorder::{DeadLetter, NoRecorder};
use crate::execute::request;
use crate::execute::result::StepStatus;
use crate::execute::safety::Safety;
use crate::exit::Exit;
use crate::identity;
use crate::journey::Journey;
use crate::journey::plan::StepKind;
use crate::output;
use crate::render::context::{EntryContext, Scope};
use crate::state::{Claim, Location, Opening, Storage};

/// One line of the file: the letter and its text as written.
struct Line {
    letter: DeadLetter,
    text: String,
}

/// Replays every letter of the file.
pub async fn replay(config: ReplayConfig) -> Result<Exit, Error> {
    let (lines, alerts) = read(&config.file).map_err(|e| Error::usage(e.to_string()))?;
    let files: Vec<PathBuf> = lines
        .iter()
        .map(|l| PathBuf::from(&l.letter.journey_file))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let super::prepare::Prepared {
        journeys,
        env,
        redactor,
        ..
    } = prepared(&config, &files)?;
    let http = Http::configured(
        8,
        &config.proxies,
        config.cacert.as_deref(),
        config.client_cert.as_ref(),
    )
    .map_err(Error::usage)?;
    let safety = Safety {
        allow_insecure_http: config.allow_insecure_http,
        redactor,
    };
    let hosts = super::send::target_hosts(&journeys, &env);
    if config.ask && !super::send::confirm(&hosts, Some(lines.len())) {
        output::stderr("nothing was sent");
        return Ok(Exit::Ok);
    }
    let vault = super::vault(&journeys, &config.env);
    // Opened before anything is sent: a store another run holds (75) or cannot use (3) stops
    // the replay, which would otherwise send what the store would not know of.
    let stores = open_stores(&lines, &vault, &config.env).await?;
    let replayer = Replayer {
        journeys: &journeys,
        env: &env,
        http: &http,
        safety: &safety,
        stores: &stores,
        vault: &vault,
    };
    // Alerts that could not be delivered stay in the file: a person reads them.
    let kept = alerts.len();
    let mut remaining = alerts;
    for line in lines {
        let l = &line.letter;
        let name = format!(
            "{} / {} / customer {} ({})",
            l.journey, l.step, l.customer, l.delivery_id
        );
        match replayer.one(l).await {
            Ok(note) if !config.quiet => output::stderr(&format!("ok   {name}{note}")),
            Ok(_) => {}
            Err(why) => {
                output::stderr(&format!("FAIL {name}: {why}"));
                remaining.push(line.text);
            }
        }
    }
    if let Some(code) = close_stores(&stores).await {
        return Ok(code);
    }
    rewrite(&config.file, &remaining)?;
    let failed = remaining.len() - kept;
    if !config.quiet {
        output::stderr(&format!(
            "replay: {failed} still failing, kept in {}",
            config.file.display()
        ));
    }
    Ok(if failed == 0 {
        Exit::Ok
    } else {
        Exit::Failures
    })
}

/// The letters' journeys, loaded and checked, with every variable they read (a replay sends).
fn prepared(config: &ReplayConfig, files: &[PathBuf]) -> Result<super::prepare::Prepared, Error> {
    super::prepare::prepare(&super::prepare::Ask {
        journeys: files,
        strict: false,
        check: &super::prepare::no_check,
        fixtures: &[],
        check_references: false,
        env: super::prepare::Env::Required,
        vars: &config.env,
        quiet: config.quiet,
        secrets: &config.proxies.secrets(),
        alerts: &[],
    })
}

/// The letters of the file, and its lines about alerts (not deliveries: nothing to replay).
fn read(file: &std::path::Path) -> Result<(Vec<Line>, Vec<String>), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let is_alert =
        |t: &str| serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v["kind"] == "alert");
    let alerts = text
        .lines()
        .filter(|t| is_alert(t))
        .map(String::from)
        .collect();
    let letters = text
        .lines()
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty() && !is_alert(t))
        .map(|(i, t)| {
            serde_json::from_str(t)
                .map(|letter| Line {
                    letter,
                    text: t.to_string(),
                })
                .map_err(|e| format!("{}:{}: not a dead letter ({e})", file.display(), i + 1))
        })
        .collect::<Result<_, _>>()?;
    Ok((letters, alerts))
}

/// What every letter is sent with.
struct Replayer<'a> {
    journeys: &'a [Journey],
    env: &'a crate::render::EnvVars,
    http: &'a Http,
    safety: &'a Safety,
    /// The stores the letters came from, by canonical path.
    stores: &'a BTreeMap<String, Arc<dyn Storage>>,
    vault: &'a crate::redact::Vault,
}

impl Replayer<'_> {
    /// Sends one letter again (its secrets read back from their references) unless a later
    /// run delivered it, and records the outcome in its store; `Ok` with a note, or why it
    /// still fails.
    async fn one(&self, letter: &DeadLetter) -> Result<&'static str, String> {
        let mut l = letter.clone();
        l.snapshot.vars = self.vault.open(&l.snapshot.vars);
        l.snapshot.saved = self.vault.open(&l.snapshot.saved);
        let store = l
            .state
            .as_ref()
            .and_then(|p| self.stores.get(p))
            .map(|s| s.as_ref());
        if let Some(store) = store
            && delivered_since(store, &l).await
        {
            return Ok(": a later run delivered it; not sent again");
        }
        let sent = send_again(&l, self.journeys, self.env, self.http, self.safety).await?;
        if let Some(store) = store {
            record(store, &l, &sent);
        }
        sent.delivered().map(|()| "")
    }
}

/// What one letter's delivery came to.
struct Sent {
    /// The delivery, as a run would record it.
    delivery: Delivery,
    /// What its step saved from the response.
    saved: serde_json::Map<String, serde_json::Value>,
}

impl Sent {
    /// `Err` says why it still fails.
    fn delivered(self) -> Result<(), String> {
        match self.delivery.step_status {
            StepStatus::Ok => Ok(()),
            _ => Err(self.delivery.error.unwrap_or_else(|| "failed".into())),
        }
    }
}

/// The stores the letters came from, each opened (and held whole) once.
async fn open_stores(
    lines: &[Line],
    vault: &crate::redact::Vault,
    env: &std::collections::HashMap<String, String>,
) -> Result<BTreeMap<String, Arc<dyn Storage>>, Error> {
    let how = Opening {
        vault: vault.clone(),
        env: env.clone(),
        timeout: std::time::Duration::from_secs(30),
        // One letter at a time, on this runtime.
        home: crate::state::Home::Runtime,
    };
    let mut stores = BTreeMap::new();
    for path in lines.iter().filter_map(|l| l.letter.state.clone()) {
        if stores.contains_key(&path) {
            continue;
        }
        let opened = match Location::given(&path, env) {
            Ok(at) => crate::state::open(&at, Claim::Whole, &how)
                .await
                .map_err(Error::from),
            Err(why) => Err(Error::usage(why)),
        };
        match opened {
            Ok(store) => {
                stores.insert(path, store);
            }
            Err(e) => {
                return Err(match e {
                    Error::Usage { lines, .. } => {
                        Error::usage(format!("{}; nothing was sent", lines.join("; ")))
                    }
                    Error::State(why) => Error::State(format!("{why}; nothing was sent")),
                    Error::Locked(why) => Error::Locked(format!("{why}; nothing was sent")),
                    other => other,
                });
            }
        }
    }
    Ok(stores)
}

/// True when the store holds the letter's delivery as delivered (a run with `--retry-failed`
/// sent it since): sending it again would send it twice.
async fn delivered_since(store: &dyn Storage, l: &DeadLetter) -> bool {
    matches!(
        store.load(&l.entry_key).await,
        Ok(Some(e)) if e.deliveries.get(&l.step).is_some_and(|d| d.status == crate::state::DeliveryState::Ok)
    )
}

/// Records a replayed delivery as a run records one; a delivered one opens its entry again, so
/// the next run walks it on from the step after it.
fn record(store: &dyn Storage, l: &DeadLetter, sent: &Sent) {
    let d = &sent.delivery;
    let ok = d.step_status == StepStatus::Ok;
    let status = match ok {
        true => crate::state::DeliveryState::Ok,
        false => crate::state::DeliveryState::Failed,
    };
    let saved = serde_json::Value::Object(sent.saved.clone());
    store.after(&l.entry_key, &l.step, status, d.status, &saved, d.attempts);
    if ok {
        let started = l
            .snapshot
            .started
            .as_deref()
            .and_then(|s| crate::clock::parse(s).ok())
            .unwrap_or_else(chrono::Utc::now);
        store.reopen(&crate::state::EntryRow {
            key: &l.entry_key,
            journey: &l.journey,
            customer: &l.customer,
            started,
            fresh: false,
        });
    }
}

/// Closes the stores; exit 3 when one could not write what the replay recorded.
async fn close_stores(stores: &BTreeMap<String, Arc<dyn Storage>>) -> Option<Exit> {
    let mut failed = None;
    for store in stores.values() {
        let flushed = store.flush().await;
        let closing = Arc::clone(store);
        let _ = tokio::task::spawn_blocking(move || closing.close()).await;
        if let Err(why) = flushed {
            output::stderr(&format!(
                "error: the state store {} cannot be written: {why}",
                store.shown()
            ));
            failed = Some(Exit::State);
        }
    }
    failed
}

/// Sends one letter again; `Err` says why nothing could be sent.
async fn send_again(
    l: &DeadLetter,
    journeys: &[Journey],
    env: &crate::render::EnvVars,
    http: &Http,
    safety: &Safety,
) -> Result<Sent, String> {
    let j = journeys
        .iter()
        .find(|j| j.name == l.journey)
        .ok_or_else(|| format!("journey `{}` is no longer in {}", l.journey, l.journey_file))?;
    let step = j
        .steps
        .iter()
        .find(|s| s.id == l.step)
        .ok_or_else(|| format!("step `{}` is no longer in journey `{}`", l.step, l.journey))?;
    let StepKind::Webhook(w) = &step.kind else {
        return Err(format!("step `{}` is no longer a webhook", l.step));
    };
    let ctx = context_of(l, env)?;
    let entry = (
        j.name.as_str(),
        l.entry_key.as_str(),
        identity::trace_id(&l.entry_key),
    );
    let req = request::for_step(entry, &step.id, w, &ctx, request::Keys::Given, Some(safety))
        .map_err(|e| e.to_string())?;
    let deliverer = Deliverer {
        exec: http,
        recorder: &NoRecorder,
        journey: &j.name,
        entry_key: &l.entry_key,
        seed: 0,
        stop: &Default::default(),
        protect: None,
    };
    let delivery = deliverer
        .deliver(step, w, &req, &ctx)
        .await
        .map_err(|e| e.to_string())?;
    let saved = match &delivery.response {
        Some(r) if delivery.step_status == StepStatus::Ok => saved_of(step, &ctx, r)?,
        _ => Default::default(),
    };
    Ok(Sent { delivery, saved })
}

/// What the step's `save` takes from the response (a value that is undefined stays unset).
fn saved_of(
    step: &crate::journey::plan::StepPlan,
    ctx: &EntryContext,
    r: &crate::execute::executor::Response,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let value = ctx.value(&Scope {
        step: Some(&step.id),
        delivery: None,
        response: Some(crate::execute::deliver::response_value(r)),
    });
    let mut saved = serde_json::Map::new();
    for (name, expr) in &step.save {
        let v = expr.eval(&value).map_err(|e| e.to_string())?;
        if !v.is_undefined() {
            saved.insert(name.clone(), serde_json::to_value(&v).unwrap_or_default());
        }
    }
    Ok(saved)
}

fn context_of(l: &DeadLetter, env: &crate::render::EnvVars) -> Result<EntryContext, String> {
    let s = &l.snapshot;
    let now = crate::clock::parse(&s.now)?;
    let customer = std::sync::Arc::new(s.customer.clone());
    let event = s.event.clone().map(std::sync::Arc::new);
    let mut ctx = EntryContext::new(&l.journey, &customer, event.as_ref(), env, now);
    ctx.set_entry(&l.entry_key, &identity::trace_id(&l.entry_key));
    ctx.restore(&s.vars, &s.saved, &s.steps);
    Ok(ctx)
}

/// Replaces the file with the lines still failing, atomically, keeping it private. The rename
/// goes over the real file a link points to, never over the link, and a path that is not a
/// regular file (`/dev/null`, a FIFO) is left as it is.
fn rewrite(file: &std::path::Path, lines: &[String]) -> anyhow::Result<()> {
    if output::is_special(file) {
        return Ok(());
    }
    let file = std::fs::canonicalize(file)?;
    let tmp = file.with_extension("ndjson.tmp");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    output::private_file(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}
