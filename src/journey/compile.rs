//! From the file model to a runnable plan: compile every template, resolve step ids, merge defaults.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;

use super::model::{self, JourneyFile, Step, Text};
use super::plan::*;
use crate::render::{BodyTemplate, Compiler, Tmpl};

/// Compiles a file; errors are recorded in `c`.
pub fn compile(file: &JourneyFile, c: &mut Compiler) -> Journey {
    let ids = step_ids(file, c);
    super::validate::check_settings(file, c);
    let steps = file
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| step(file, s, i, &ids, c))
        .collect();
    let journey = Journey {
        name: file.journey.clone(),
        file: Arc::clone(c.positions.file()),
        trigger: trigger(&file.trigger, c),
        entry_key: file
            .trigger
            .entry_key
            .as_ref()
            .map(|t| c.template("trigger.entry_key", t)),
        consent: file.consent.clone(),
        exit_when: file.exit_when.as_ref().map(|e| ExitPlan {
            event: e.event.clone(),
            filter: e
                .where_
                .as_ref()
                .and_then(|w| c.expression("exit_when.where", w)),
        }),
        holdout: file.holdout.as_ref().and_then(|h| percent(&h.0, c)),
        send_window: file
            .send_window
            .as_ref()
            .and_then(|w| window(w, "send_window", c)),
        rate_share_dynamic: file.defaults.rate_share == Some(model::RateShare::Dynamic),
        vars: file
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), c.template(&format!("vars.{k}"), &v.0)))
            .collect(),
        steps,
        alerts: file
            .alerts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| alert(a, &format!("alerts[{i}]"), i, c))
            .collect(),
        env_names: Default::default(),
        secret_names: Default::default(),
    };
    super::validate::check_refs(&journey, c);
    journey
}

fn step_ids(file: &JourneyFile, c: &mut Compiler) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for (i, s) in file.steps.iter().enumerate() {
        if !is_name(&s.id) {
            c.error(
                &format!("steps[{i}].id"),
                format!("step id `{}` must match [a-z][a-z0-9_]*", s.id),
            );
        }
        if ids.insert(s.id.clone(), i).is_some() {
            c.error(
                &format!("steps[{i}].id"),
                format!(
                    "duplicate step id `{}`: step ids are unique in a journey",
                    s.id
                ),
            );
        }
    }
    ids
}

/// True for `[a-z][a-z0-9_]*`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn trigger(t: &model::Trigger, c: &mut Compiler) -> TriggerPlan {
    match (&t.event, &t.segment) {
        (Some(name), None) => TriggerPlan::Event {
            name: name.clone(),
            filter: t
                .where_
                .as_ref()
                .and_then(|w| c.expression("trigger.where", w)),
        },
        (None, Some(seg)) => {
            if t.where_.is_some() {
                c.error(
                    "trigger.where",
                    "`where` goes with `event`; a segment is itself the condition",
                );
            }
            match c.expression("trigger.segment", seg) {
                Some(e) => TriggerPlan::Segment(e),
                None => placeholder_trigger(),
            }
        }
        _ => {
            c.error(
                "trigger",
                "a trigger has exactly one of `event: NAME` or `segment: EXPRESSION`",
            );
            placeholder_trigger()
        }
    }
}

fn placeholder_trigger() -> TriggerPlan {
    TriggerPlan::Event {
        name: String::new(),
        filter: None,
    }
}

fn percent(text: &str, c: &mut Compiler) -> Option<f64> {
    let parsed = super::duration::parse_percent(text);
    if parsed.is_none() {
        c.error(
            "holdout",
            format!("holdout `{text}` must be a percentage such as `10%`"),
        );
    }
    parsed
}

fn step(
    file: &JourneyFile,
    s: &Step,
    i: usize,
    ids: &HashMap<String, usize>,
    c: &mut Compiler,
) -> StepPlan {
    let at = format!("steps[{i}]");
    let following = (i + 1 < file.steps.len()).then_some(i + 1);
    let next = match &s.next {
        Some(id) => reference(ids, id, &format!("{at}.next"), c),
        None => following,
    };
    let kind = kind(file, s, &at, ids, c);
    if !matches!(kind, StepKind::Webhook(_)) && (s.on_failure.is_some() || !s.save.is_empty()) {
        c.error(
            &at,
            format!(
                "step `{}`: `on_failure` and `save` belong to webhook steps",
                s.id
            ),
        );
    }
    StepPlan {
        id: s.id.clone(),
        on_failure: on_failure(s, &at, ids, c),
        save: s
            .save
            .iter()
            .filter_map(|(k, v)| {
                c.expression(&format!("{at}.save.{k}"), v)
                    .map(|e| (k.clone(), e))
            })
            .collect(),
        consent: s.consent.clone(),
        send_window: s
            .send_window
            .as_ref()
            .and_then(|w| window(w, &format!("{at}.send_window"), c)),
        channel: s.channel.clone(),
        cap: s.frequency_cap.as_ref().map(|f| CapPlan {
            channel: f.channel.clone(),
            max: f.max,
            per: f.per.0,
        }),
        next: if matches!(kind, StepKind::End(_)) {
            None
        } else {
            next
        },
        kind,
    }
}

fn reference(
    ids: &HashMap<String, usize>,
    id: &str,
    field: &str,
    c: &mut Compiler,
) -> Option<usize> {
    let found = ids.get(id).copied();
    if found.is_none() {
        let names: Vec<&str> = ids.keys().map(String::as_str).collect();
        let hint = match super::yaml::closest(id, &names) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "name a step id of this journey".to_string(),
        };
        c.error(field, format!("no step `{id}` in this journey; {hint}"));
    }
    found
}

fn on_failure(s: &Step, at: &str, ids: &HashMap<String, usize>, c: &mut Compiler) -> OnFailure {
    match s.on_failure.as_deref() {
        None => OnFailure::Fail,
        Some("continue") => OnFailure::Continue,
        Some("stop") => OnFailure::Stop,
        Some(id) => reference(ids, id, &format!("{at}.on_failure"), c)
            .map(OnFailure::Goto)
            .unwrap_or(OnFailure::Fail),
    }
}

fn kind(
    file: &JourneyFile,
    s: &Step,
    at: &str,
    ids: &HashMap<String, usize>,
    c: &mut Compiler,
) -> StepKind {
    let present: Vec<&str> = [
        ("webhook", s.webhook.is_some()),
        ("branch", s.branch.is_some()),
        ("split", s.split.is_some()),
        ("wait", s.wait.is_some()),
        ("end", s.end.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    if present.len() != 1 {
        c.error(
            at,
            format!(
                "step `{}` must have exactly one of `webhook`, `branch`, `split`, `wait`, `end` (found {})",
                s.id,
                if present.is_empty() { "none".to_string() } else { present.join(", ") }
            ),
        );
        return StepKind::End("failed".into());
    }
    if s.default.is_some() && s.branch.is_none() {
        c.error(
            at,
            format!("step `{}`: `default` belongs to a `branch`", s.id),
        );
    }
    if let Some(w) = &s.webhook {
        return StepKind::Webhook(Box::new(webhook(file, w, &format!("{at}.webhook"), c)));
    }
    if let Some(arms) = &s.branch {
        return branch(s, arms, at, ids, c);
    }
    if let Some(arms) = &s.split {
        return split(arms, at, ids, c);
    }
    if let Some(w) = &s.wait {
        return match super::duration::parse(&w.0) {
            Ok(d) => StepKind::Wait(d),
            Err(msg) => {
                c.error(&format!("{at}.wait"), format!("`wait`: {msg}"));
                StepKind::Wait(std::time::Duration::ZERO)
            }
        };
    }
    StepKind::End(s.end.clone().unwrap_or_default())
}

fn branch(
    s: &Step,
    arms: &[model::BranchArm],
    at: &str,
    ids: &HashMap<String, usize>,
    c: &mut Compiler,
) -> StepKind {
    let arms = arms
        .iter()
        .enumerate()
        .filter_map(|(j, arm)| {
            let expr = c.expression(&format!("{at}.branch[{j}].when"), &arm.when);
            let target = reference(ids, &arm.goto, &format!("{at}.branch[{j}].goto"), c);
            Some((expr?, target?))
        })
        .collect();
    let default = s
        .default
        .as_ref()
        .and_then(|d| reference(ids, d, &format!("{at}.default"), c));
    StepKind::Branch { arms, default }
}

fn split(
    arms: &[model::SplitArm],
    at: &str,
    ids: &HashMap<String, usize>,
    c: &mut Compiler,
) -> StepKind {
    let total: u32 = arms.iter().map(|a| a.percent).sum();
    if total != 100 {
        c.error(
            &format!("{at}.split"),
            format!("split percentages add up to {total}, not 100"),
        );
    }
    let mut cumulative = 0;
    let arms = arms
        .iter()
        .enumerate()
        .filter_map(|(j, arm)| {
            cumulative += arm.percent;
            reference(ids, &arm.goto, &format!("{at}.split[{j}].goto"), c).map(|t| (cumulative, t))
        })
        .collect();
    StepKind::Split(arms)
}

fn webhook(file: &JourneyFile, w: &model::Webhook, at: &str, c: &mut Compiler) -> WebhookPlan {
    if let Err(msg) = super::validate::check_origin(&w.url) {
        c.error(&format!("{at}.url"), msg);
    }
    let bodies = [w.body.is_some(), w.body_text.is_some(), w.form.is_some()];
    if bodies.iter().filter(|b| **b).count() > 1 {
        c.error(
            at,
            "a webhook has at most one of `body`, `body_text`, `form`",
        );
    }
    let d = &file.defaults;
    for (field, t) in [
        (format!("{at}.timeout"), w.timeout),
        ("defaults.timeout".into(), d.timeout),
    ] {
        if t.is_some_and(|t| t.0.is_zero()) {
            c.error(
                &field,
                format!("`{field}` must be more than 0: every attempt would time out at once"),
            );
        }
    }
    let mut plan = WebhookPlan {
        method: w.method,
        url: c.url_template(&format!("{at}.url"), &w.url),
        query: texts(&w.query, &format!("{at}.query"), c),
        headers: merged_headers(&d.headers, &w.headers, at, c),
        auth: w.auth.as_ref().map(|a| auth(a, &format!("{at}.auth"), c)),
        sign: w.sign.as_ref().map(|s| sign(s, &format!("{at}.sign"), c)),
        body: body(w, at, c),
        timeout: w.timeout.or(d.timeout).map_or(DEFAULT_TIMEOUT, |t| t.0),
        retry: retry(d.retry.as_ref(), w.retry.as_ref()),
        success: w
            .success
            .as_ref()
            .and_then(|e| c.expression(&format!("{at}.success"), e)),
        is_async: w.is_async,
        schema: w
            .schema
            .as_ref()
            .and_then(|path| body_schema(path, &format!("{at}.schema"), c)),
        rate: w
            .rate_limit
            .as_ref()
            .or(d.rate_limit.as_ref())
            .and_then(|r| super::duration::parse_rate(r).ok()),
        rate_share_dynamic: w.rate_share.or(d.rate_share) == Some(model::RateShare::Dynamic),
        idempotency_header: match &w.idempotency_header {
            None | Some(model::IdempotencyHeader::Enabled(true)) => Some("Idempotency-Key".into()),
            Some(model::IdempotencyHeader::Enabled(false)) => None,
            Some(model::IdempotencyHeader::Name(n)) => Some(n.clone()),
        },
        secrets: Default::default(),
        tls: w
            .tls
            .as_ref()
            .map(|t| (t, format!("{at}.tls")))
            .or(d.tls.as_ref().map(|t| (t, "defaults.tls".to_string())))
            .and_then(|(t, field)| tls_files(t, &field, c)),
    };
    let secrets = secret_fields(&plan);
    plan.secrets = (secrets != SecretFields::default()).then(|| Arc::new(secrets));
    plan
}

/// What of a webhook's request reads a secret: query parameters, body leaves or the whole body.
fn secret_fields(plan: &WebhookPlan) -> SecretFields {
    let mut query: Vec<String> = plan
        .query
        .iter()
        .filter(|(_, t)| t.reads_secret())
        .map(|(k, _)| k.clone())
        .collect();
    // `?key={{ secret.TOKEN }}` written in the url itself.
    if let Some((_, q)) = plan.url.source.split_once('?') {
        for pair in q.split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && v.contains("secret.")
            {
                query.push(k.to_string());
            }
        }
    }
    let (body, whole_body) = match &plan.body {
        BodyPlan::Json(t) => (t.secret_paths(), false),
        BodyPlan::Form(fields) => (
            fields
                .iter()
                .filter(|(_, t)| t.reads_secret())
                .map(|(k, _)| vec![crate::render::body::BodyKey::Key(k.clone())])
                .collect(),
            false,
        ),
        BodyPlan::Text(t, _) => (vec![], t.reads_secret()),
        BodyPlan::None => (vec![], false),
    };
    SecretFields {
        query,
        body,
        whole_body,
    }
}

fn texts(map: &IndexMap<String, Text>, at: &str, c: &mut Compiler) -> Vec<(String, Tmpl)> {
    map.iter()
        .map(|(k, v)| (k.clone(), c.template(&format!("{at}.{k}"), &v.0)))
        .collect()
}

fn merged_headers(
    defaults: &IndexMap<String, Text>,
    step: &IndexMap<String, Text>,
    at: &str,
    c: &mut Compiler,
) -> Vec<(String, Tmpl)> {
    refuse_reserved_headers(defaults, "defaults.headers", c);
    refuse_reserved_headers(step, &format!("{at}.headers"), c);
    let mut out = texts(defaults, "defaults.headers", c);
    for (name, tmpl) in texts(step, &format!("{at}.headers"), c) {
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        out.push((name, tmpl));
    }
    out
}

/// Headers the client owns: `Host` (data must never pick the host), the body's length, and the
/// hop-by-hop headers of RFC 9110 §7.6.1.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

fn refuse_reserved_headers(headers: &IndexMap<String, Text>, at: &str, c: &mut Compiler) {
    for name in headers.keys() {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            c.error(
                &format!("{at}.{name}"),
                format!("header `{name}` cannot be set: the HTTP client sets it from the URL and the body; remove it"),
            );
        }
    }
}

fn auth(a: &model::Auth, at: &str, c: &mut Compiler) -> AuthPlan {
    match (&a.bearer, &a.basic, &a.header) {
        (Some(t), None, None) => AuthPlan::Bearer(c.template(&format!("{at}.bearer"), t)),
        (None, Some(b), None) => AuthPlan::Basic(
            c.template(&format!("{at}.basic.user"), &b.user),
            c.template(&format!("{at}.basic.password"), &b.password),
        ),
        (None, None, Some(h)) => AuthPlan::Header(
            h.name.clone(),
            c.template(&format!("{at}.header.value"), &h.value),
        ),
        _ => {
            c.error(at, "`auth` has exactly one of `bearer`, `basic: {user, password}` or `header: {name, value}`");
            AuthPlan::Header(String::new(), c.template(at, ""))
        }
    }
}

fn sign(s: &model::Sign, at: &str, c: &mut Compiler) -> SignPlan {
    match (&s.standard_webhooks, &s.hmac_sha256) {
        (Some(t), None) => {
            SignPlan::StandardWebhooks(c.template(&format!("{at}.standard_webhooks"), t))
        }
        (None, Some(h)) => SignPlan::HmacSha256 {
            secret: c.template(&format!("{at}.hmac_sha256.secret"), &h.secret),
            header: h.header.clone(),
        },
        _ => {
            c.error(at, "`sign` has exactly one of `standard_webhooks: SECRET` or `hmac_sha256: {secret, header}`");
            SignPlan::StandardWebhooks(c.template(at, ""))
        }
    }
}

fn body(w: &model::Webhook, at: &str, c: &mut Compiler) -> BodyPlan {
    if let Some(b) = &w.body {
        return BodyPlan::Json(BodyTemplate::compile(c, &format!("{at}.body"), b));
    }
    if let Some(t) = &w.body_text {
        let ct = w
            .content_type
            .clone()
            .unwrap_or_else(|| "text/plain; charset=utf-8".into());
        return BodyPlan::Text(c.template(&format!("{at}.body_text"), t), ct);
    }
    if let Some(f) = &w.form {
        return BodyPlan::Form(texts(f, &format!("{at}.form"), c));
    }
    BodyPlan::None
}

fn retry(defaults: Option<&model::Retry>, step: Option<&model::Retry>) -> RetryPolicy {
    let pick =
        |f: fn(&model::Retry) -> Option<_>| step.and_then(f).or_else(|| defaults.and_then(f));
    RetryPolicy {
        attempts: step
            .and_then(|r| r.attempts)
            .or_else(|| defaults.and_then(|r| r.attempts))
            .unwrap_or(DEFAULT_RETRY.attempts)
            .max(1),
        backoff: pick(|r| r.backoff).map_or(DEFAULT_RETRY.backoff, |d| d.0),
        max_backoff: pick(|r| r.max_backoff).map_or(DEFAULT_RETRY.max_backoff, |d| d.0),
    }
}

fn window(w: &model::SendWindow, at: &str, c: &mut Compiler) -> Option<WindowPlan> {
    let (from, to) = super::validate::parse_hours(&w.hours)?;
    Some(WindowPlan {
        from,
        to,
        tz: w.tz.as_ref().map(|t| c.template(&format!("{at}.tz"), t)),
    })
}

/// A `tls:` block's files, relative to the journey file; each must be there (the executor reads
/// them when it first sends through them). A client certificate comes with its key.
fn tls_files(t: &model::Tls, at: &str, c: &mut Compiler) -> Option<Arc<super::plan::TlsFiles>> {
    let base = c
        .positions
        .file()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut ok = true;
    let mut file = |name: &str, path: &Option<String>| {
        let full = base.join(path.as_ref()?);
        if !full.is_file() {
            c.error(
                &format!("{at}.{name}"),
                format!("`{}` is not a file", full.display()),
            );
            ok = false;
        }
        Some(full)
    };
    let cacert = file("cacert", &t.cacert);
    let cert = file("client_cert", &t.client_cert);
    let key = file("client_key", &t.client_key);
    if cert.is_some() != key.is_some() {
        c.error(at, "`client_cert` and `client_key` go together");
        return None;
    }
    let files = super::plan::TlsFiles {
        cacert,
        client: cert.zip(key),
    };
    ok.then(|| Arc::new(files))
}

/// Reads and compiles a `schema:` file (YAML or JSON), relative to the journey file.
fn body_schema(path: &str, at: &str, c: &mut Compiler) -> Option<BodySchema> {
    let base = c
        .positions
        .file()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let full = base.join(path);
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(e) => {
            c.error(
                at,
                format!("cannot read the schema `{}`: {e}", full.display()),
            );
            return None;
        }
    };
    let doc: serde_json::Value = match serde_yaml::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            c.error(
                at,
                format!("the schema `{}` is not JSON or YAML: {e}", full.display()),
            );
            return None;
        }
    };
    match jsonschema::validator_for(&doc) {
        Ok(v) => Some(BodySchema {
            path: path.to_string(),
            pos: c.positions.at(at),
            field: at.to_string(),
            validator: std::sync::Arc::new(v),
        }),
        Err(e) => {
            c.error(
                at,
                format!("`{}` is not a valid JSON Schema: {e}", full.display()),
            );
            None
        }
    }
}

/// An alert of a journey file or of `--alert FILE` (`at` is its field path).
pub(crate) fn alert(
    a: &model::Alert,
    at: &str,
    i: usize,
    c: &mut Compiler,
) -> Option<crate::journey::plan::AlertPlan> {
    use crate::journey::plan::{AlertPlan, AlertTo, AlertWebhookPlan};
    let url = |field: &str, url: &str, c: &mut Compiler| {
        if let Err(msg) = super::validate::check_origin(url) {
            c.error(field, msg);
        }
        c.url_template(field, url)
    };
    let to = match (&a.slack, &a.teams, &a.webhook) {
        (Some(u), None, None) => AlertTo::Slack(url(&format!("{at}.slack"), u, c)),
        (None, Some(u), None) => AlertTo::Teams(url(&format!("{at}.teams"), u, c)),
        (None, None, Some(w)) => AlertTo::Webhook(Box::new(AlertWebhookPlan {
            url: url(&format!("{at}.webhook.url"), &w.url, c),
            headers: w
                .headers
                .iter()
                .map(|(k, v)| {
                    let field = format!("{at}.webhook.headers.{k}");
                    (k.clone(), c.template(&field, &v.0))
                })
                .collect(),
            auth: w
                .auth
                .as_ref()
                .map(|x| auth(x, &format!("{at}.webhook.auth"), c)),
            body: w
                .body
                .as_ref()
                .map(|b| BodyTemplate::compile(c, &format!("{at}.webhook.body"), b)),
        })),
        _ => {
            c.error(
                at,
                "an alert goes to one of `slack`, `teams` or `webhook`: give exactly one",
            );
            return None;
        }
    };
    let when = c.expression(&format!("{at}.when"), &a.when)?;
    Some(AlertPlan {
        name: a.name.clone().unwrap_or_else(|| format!("alert {}", i + 1)),
        when,
        every: a.every.map(|d| d.0),
        resolved: a.resolved,
        link: a
            .link
            .as_ref()
            .map(|l| c.template(&format!("{at}.link"), l)),
        timeout: a
            .timeout
            .map_or(std::time::Duration::from_secs(10), |d| d.0),
        retry: RetryPolicy {
            attempts: a
                .retry
                .as_ref()
                .and_then(|r| r.attempts)
                .unwrap_or(3)
                .max(1),
            backoff: a
                .retry
                .as_ref()
                .and_then(|r| r.backoff)
                .map_or(std::time::Duration::from_secs(1), |d| d.0),
            max_backoff: a
                .retry
                .as_ref()
                .and_then(|r| r.max_backoff)
                .map_or(std::time::Duration::from_secs(10), |d| d.0),
        },
        to,
    })
}
