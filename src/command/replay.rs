//! `journey replay FILE`: renders each dead-lettered delivery again from its snapshot (secrets read
//! from the environment now) and sends it with the same idempotency key. What still fails stays in
//! the file; what is delivered leaves it.

use std::path::PathBuf;

use crate::config::ReplayConfig;
use crate::execute::context::{EntryContext, Scope};
use crate::execute::deliver::Deliverer;
use crate::execute::http::Http;
use crate::execute::identity;
use crate::execute::recorder::{DeadLetter, NoRecorder};
use crate::execute::request::{self, Ids};
use crate::execute::result::StepStatus;
use crate::execute::safety::Safety;
use crate::exit::Exit;
use crate::journey::Journey;
use crate::journey::plan::StepKind;
use crate::output;
use crate::render::value_of;

/// One line of the file: the letter and its text as written.
struct Line {
    letter: DeadLetter,
    text: String,
}

/// Replays every letter of the file.
pub async fn replay(c: ReplayConfig) -> anyhow::Result<Exit> {
    let lines = match read(&c.file) {
        Ok(l) => l,
        Err(e) => {
            output::stderr(&format!("error: {e}"));
            return Ok(Exit::Usage);
        }
    };
    let files: Vec<PathBuf> = lines
        .iter()
        .map(|l| PathBuf::from(&l.letter.journey_file))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let journeys = match super::load_journeys(&files, false) {
        Ok(j) => j,
        Err(code) => return Ok(code),
    };
    let (env, redactor) = match super::send::real_env(&journeys, &c.env) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let http = Http::new(8);
    let safety = Safety {
        allow_insecure_http: c.allow_insecure_http,
        redactor,
    };
    let vault = super::vault(&journeys, &c.env);
    let mut remaining = Vec::new();
    for line in lines {
        let mut l = line.letter.clone();
        l.snapshot.vars = vault.open(&l.snapshot.vars);
        l.snapshot.saved = vault.open(&l.snapshot.saved);
        let l = &l;
        let result = send_again(l, &journeys, &env, &http, &safety).await;
        let name = format!(
            "{} / {} / customer {} ({})",
            l.journey, l.step, l.customer, l.delivery_id
        );
        match result {
            Ok(()) if !c.quiet => output::stderr(&format!("ok   {name}")),
            Ok(()) => {}
            Err(why) => {
                output::stderr(&format!("FAIL {name}: {why}"));
                remaining.push(line.text);
            }
        }
    }
    rewrite(&c.file, &remaining)?;
    let failed = remaining.len();
    if !c.quiet {
        output::stderr(&format!(
            "replay: {failed} still failing, kept in {}",
            c.file.display()
        ));
    }
    Ok(if failed == 0 {
        Exit::Ok
    } else {
        Exit::Failures
    })
}

fn read(file: &std::path::Path) -> Result<Vec<Line>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty())
        .map(|(i, t)| {
            serde_json::from_str(t)
                .map(|letter| Line {
                    letter,
                    text: t.to_string(),
                })
                .map_err(|e| format!("{}:{}: not a dead letter ({e})", file.display(), i + 1))
        })
        .collect()
}

/// Sends one letter again; `Err` says why it still fails.
async fn send_again(
    l: &DeadLetter,
    journeys: &[Journey],
    env: &crate::render::EnvVars,
    http: &Http,
    safety: &Safety,
) -> Result<(), String> {
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
    let ids = Ids {
        delivery_id: identity::delivery_id(&j.name, &l.entry_key, &step.id),
        trace_id: identity::trace_id(&l.entry_key),
    };
    let value = ctx.value(&Scope {
        step: Some(&step.id),
        delivery: Some((&ids.delivery_id, 1)),
        response: None,
    });
    let req = request::build(w, &value, ids, false).map_err(|e| e.to_string())?;
    safety.check(&req, w).map_err(|e| e.to_string())?;
    let deliverer = Deliverer {
        exec: http,
        recorder: &NoRecorder,
        journey: &j.name,
        entry_key: &l.entry_key,
        seed: 0,
        stop: &Default::default(),
        protect: None,
    };
    let d = deliverer
        .deliver(step, w, &req, &ctx)
        .await
        .map_err(|e| e.to_string())?;
    match d.step_status {
        StepStatus::Ok => Ok(()),
        _ => Err(d.error.unwrap_or_else(|| "failed".into())),
    }
}

fn context_of(l: &DeadLetter, env: &crate::render::EnvVars) -> Result<EntryContext, String> {
    let s = &l.snapshot;
    let now = crate::clock::parse(&s.now)?;
    let customer = std::sync::Arc::new(s.customer.clone());
    let event = s.event.clone().map(std::sync::Arc::new);
    let mut ctx = EntryContext::new(&l.journey, &customer, event.as_ref(), env, now);
    ctx.set_entry(&l.entry_key, &identity::trace_id(&l.entry_key));
    ctx.vars = values(&s.vars);
    ctx.saved = values(&s.saved);
    ctx.steps = values(&s.steps);
    Ok(ctx)
}

fn values(v: &serde_json::Value) -> crate::execute::context::Fields {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value_of(v))).collect())
        .unwrap_or_default()
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
