//! Alerts: when a journey's results call for it (`failed > 0`, `failure_rate >= 5`, a stopped
//! host, a failed store), a message to the channel the team watches — Slack, Teams or any
//! webhook. A dry-run and `test` render and show them; a real run sends them, retried, and never
//! lets them change its outcome: an alert that cannot be delivered is an error line, a count in
//! the report and a line in the dead-letter file.

mod context;
mod deliver;
mod message;
pub(crate) mod watch;

pub use context::Facts;
pub use deliver::{Sending, send_all};
pub use watch::Watch;

use crate::journey::Journey;
use crate::journey::plan::{AlertPlan, AlertTo};
use crate::report::{AlertOutcome, RunReport};

/// An alert whose `when` held (or a resolved one), rendered.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The journey.
    pub journey: String,
    /// The alert's name.
    pub name: String,
    /// `slack`, `teams` or `webhook`.
    pub to: &'static str,
    /// Where it goes.
    pub url: String,
    /// Headers (values may hold the endpoint's key).
    pub headers: Vec<(String, String)>,
    /// Whether a header reads a secret.
    pub secret_headers: bool,
    /// The JSON body (it never holds a secret: its templates see `run` and `env` only).
    pub body: serde_json::Value,
    /// Total timeout of one attempt.
    pub timeout: std::time::Duration,
    /// Tries in all, and their backoff.
    pub retry: crate::journey::plan::RetryPolicy,
    /// This says the journey is clean again (a `resolved: true` alert that fired before).
    pub resolution: bool,
    /// The alert keeps what it said in the state store (`resolved: true`).
    pub remembered: bool,
}

impl Fired {
    /// The key the state store keeps a fired `resolved: true` alert by.
    pub fn key(&self) -> String {
        mark(&self.journey, &self.name)
    }
}

/// `alert:JOURNEY/NAME`.
fn mark(journey: &str, name: &str) -> String {
    format!("alert:{journey}/{name}")
}

/// What an alert is evaluated and rendered with.
pub struct Scene<'a> {
    /// The run's report (or, during the run, its counts so far).
    pub report: &'a RunReport,
    /// What the run knows beside it.
    pub facts: &'a Facts,
    /// The environment.
    pub env: &'a crate::render::EnvVars,
    /// The keys of the `resolved: true` alerts that fired before and are not resolved.
    pub marks: &'a [String],
}

/// The alerts whose `when` holds for each journey's results (only those `pick` takes), and the
/// `resolved: true` alerts that fired before and whose `when` no longer holds; an alert that
/// cannot be rendered or evaluated is an outcome of its own (`failed`, with why), never an error
/// of the run.
pub fn fire(
    scene: &Scene<'_>,
    journeys: &[Journey],
    pick: &dyn Fn(&str, &AlertPlan) -> bool,
) -> (Vec<Fired>, Vec<AlertOutcome>) {
    let mut fired = Vec::new();
    let mut broken = Vec::new();
    for j in journeys {
        if j.alerts.is_empty() {
            continue;
        }
        let run = context::run(scene.report, &j.name, scene.facts);
        for a in j.alerts.iter().filter(|a| pick(&j.name, a)) {
            let was = a.resolved && scene.marks.contains(&mark(&j.name, &a.name));
            let rendered = holds(a, &run).and_then(|now| match (now, was) {
                (true, _) => render(a, &j.name, &run, scene.env, false).map(Some),
                (false, true) => render(a, &j.name, &run, scene.env, true).map(Some),
                (false, false) => Ok(None),
            });
            match rendered {
                Ok(Some(f)) => fired.push(f),
                Ok(None) => {}
                Err(why) => broken.push(AlertOutcome {
                    journey: j.name.clone(),
                    name: a.name.clone(),
                    to: a.to.kind().into(),
                    state: "failed".into(),
                    attempts: 0,
                    error: Some(why),
                    body: serde_json::Value::Null,
                }),
            }
        }
    }
    (fired, broken)
}

/// Whether `when` holds: it reads the results by name (`failed > 0`) or under `run`.
fn holds(a: &AlertPlan, run: &serde_json::Value) -> Result<bool, String> {
    let mut top = run.as_object().cloned().unwrap_or_default();
    top.insert("run".into(), run.clone());
    a.when
        .is_true(&crate::render::value_of(&top))
        .map_err(|e| e.to_string())
}

/// One alert's message (or, `resolution`, the message that the journey is clean again).
fn render(
    a: &AlertPlan,
    journey: &str,
    run: &serde_json::Value,
    env: &crate::render::EnvVars,
    resolution: bool,
) -> Result<Fired, String> {
    use crate::render::env_vars::Namespace;
    let mut run = run.clone();
    run["resolved"] = serde_json::json!(resolution);
    let ctx = minijinja::context! { run => crate::render::value_of(&run), env => env.value(Namespace::Env) };
    if let Some(link) = &a.link {
        run["link"] = serde_json::json!(link.render(&ctx).map_err(|e| e.to_string())?);
    }
    let ctx = minijinja::context! { run => crate::render::value_of(&run), env => env.value(Namespace::Env) };
    let with_secrets = minijinja::context! {
        run => crate::render::value_of(&run),
        env => env.value(Namespace::Env),
        secret => env.value(Namespace::Secret),
    };
    let url = a.to.url().render(&ctx).map_err(|e| e.to_string())?;
    let (headers, body) = match &a.to {
        AlertTo::Slack(_) => (Vec::new(), message::slack(&run)),
        AlertTo::Teams(_) => (Vec::new(), message::teams(&run)),
        AlertTo::Webhook(w) => {
            let (headers, auth, body) = (&w.headers, &w.auth, &w.body);
            let mut headers = headers
                .iter()
                .map(|(k, t)| {
                    Ok((
                        k.clone(),
                        t.render(&with_secrets).map_err(|e| e.to_string())?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()?;
            if let Some(auth) = auth {
                headers.push(auth_header(auth, &with_secrets)?);
            }
            let body = match body {
                Some(b) => {
                    let mut out = Vec::new();
                    b.write(&ctx, &mut out).map_err(|e| e.to_string())?;
                    serde_json::from_slice(&out).map_err(|e| e.to_string())?
                }
                None => message::summary_json(&run),
            };
            (headers, body)
        }
    };
    let secret_headers = match &a.to {
        AlertTo::Webhook(w) => {
            w.headers.iter().any(|(_, t)| t.reads_secret())
                || w.auth.as_ref().is_some_and(auth_reads_secret)
        }
        _ => false,
    };
    Ok(Fired {
        journey: journey.to_string(),
        name: a.name.clone(),
        to: a.to.kind(),
        url,
        headers,
        secret_headers,
        body,
        timeout: a.timeout,
        retry: a.retry,
        resolution,
        remembered: a.resolved,
    })
}

/// The header `auth` makes.
fn auth_header(
    auth: &crate::journey::plan::AuthPlan,
    ctx: &minijinja::Value,
) -> Result<(String, String), String> {
    use crate::journey::plan::AuthPlan;
    let render = |t: &crate::render::Tmpl| t.render(ctx).map_err(|e| e.to_string());
    Ok(match auth {
        AuthPlan::Bearer(t) => ("Authorization".into(), format!("Bearer {}", render(t)?)),
        AuthPlan::Basic(user, password) => {
            use base64::Engine;
            let pair = format!("{}:{}", render(user)?, render(password)?);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            ("Authorization".into(), format!("Basic {encoded}"))
        }
        AuthPlan::Header(name, t) => (name.clone(), render(t)?),
    })
}

fn auth_reads_secret(auth: &crate::journey::plan::AuthPlan) -> bool {
    use crate::journey::plan::AuthPlan;
    match auth {
        AuthPlan::Bearer(t) | AuthPlan::Header(_, t) => t.reads_secret(),
        AuthPlan::Basic(u, p) => u.reads_secret() || p.reads_secret(),
    }
}

/// The alerts of a dry-run or `test`: rendered, shown, not sent.
pub fn shown(fired: &[Fired], redactor: &crate::redact::Redactor) -> Vec<AlertOutcome> {
    fired
        .iter()
        .map(|f| AlertOutcome {
            journey: f.journey.clone(),
            name: f.name.clone(),
            to: f.to.into(),
            state: "shown".into(),
            attempts: 0,
            error: None,
            body: redactor.redact_json(&f.body),
        })
        .collect()
}

/// `--show requests`: each alert as it would be sent.
pub fn show_text(fired: &[Fired], redactor: &crate::redact::Redactor) -> String {
    fired
        .iter()
        .map(|f| {
            let body =
                serde_json::to_string_pretty(&redactor.redact_json(&f.body)).unwrap_or_default();
            format!(
                "### alert {} (journey {}) → {}\nPOST {}\n\n{}\n\n",
                f.name,
                f.journey,
                f.to,
                redactor.redact(&f.url),
                body
            )
        })
        .collect()
}
