//! The fully built request of one delivery: what a real run sends and a dry-run shows, byte for byte.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minijinja::Value;

use super::sign::{self, Signer};
use crate::identity;
use crate::journey::model::Method;
use crate::journey::plan::{AuthPlan, BodyPlan, SignPlan, WebhookPlan};
use crate::render::{RenderError, Tmpl};

/// A rendered request, before per-attempt headers.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: String,
    /// Headers in sending order.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
    /// The body is JSON (see [`Request::json`]).
    pub is_json: bool,
    /// Total timeout of one attempt.
    pub timeout: Duration,
    /// The delivery id (idempotency key, `webhook-id`).
    pub delivery_id: String,
    /// The entry's trace id.
    pub trace_id: String,
    /// How to sign each attempt.
    pub signer: Option<Signer>,
    /// Lowercase header names whose values are secrets.
    pub sensitive: Vec<String>,
    /// The query parameters and body fields that read a secret ([`super::masked`]); `None`
    /// when none does (most steps: no shared count to touch per request).
    pub secrets: Option<std::sync::Arc<crate::journey::plan::SecretFields>>,
    /// The step's own TLS files (`tls`, `defaults.tls`), if any.
    pub tls: Option<std::sync::Arc<crate::journey::plan::TlsFiles>>,
}

/// What identifies a delivery.
#[derive(Debug, Clone)]
pub struct Ids {
    /// The delivery id.
    pub delivery_id: String,
    /// The trace id.
    pub trace_id: String,
}

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("journey/", env!("CARGO_PKG_VERSION"));

/// The request of webhook step `step_id` for the entry `entry_key` (traced as `trace_id`),
/// rendered against the entry's context, signed with `keys` and, when it is to be sent,
/// checked by `safety` (its origin, secrets over plain http): a run's walk and `replay` build
/// every request here.
pub fn for_step(
    entry: (&str, &str, String),
    step_id: &str,
    w: &WebhookPlan,
    ctx: &crate::render::context::EntryContext,
    keys: Keys,
    safety: Option<&super::safety::Safety>,
) -> Result<Request, RenderError> {
    let (journey, entry_key, trace_id) = entry;
    let ids = Ids {
        delivery_id: identity::delivery_id(journey, entry_key, step_id),
        trace_id,
    };
    let value = ctx.value(&crate::render::context::Scope {
        step: Some(step_id),
        delivery: Some((&ids.delivery_id, 1)),
        response: None,
    });
    let req = build(w, &value, ids, keys)?;
    if let Some(safety) = safety {
        safety.check(&req, w)?;
    }
    Ok(req)
}

/// Which keys sign a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// The rendered secrets: a real run, or a replay.
    Given,
    /// A dummy key where a secret is only a placeholder (a dry-run without secrets).
    DummyForPlaceholders,
}

/// Renders a webhook step for one entry, signed with `keys`.
pub fn build(
    plan: &WebhookPlan,
    ctx: &Value,
    ids: Ids,
    keys: Keys,
) -> Result<Request, RenderError> {
    let dummy_keys = keys == Keys::DummyForPlaceholders;
    let mut headers = Vec::with_capacity(4 + plan.headers.len());
    headers.push(("User-Agent".to_string(), USER_AGENT.to_string()));
    let (body, is_json, content_type) = body(&plan.body, ctx)?;
    if let Some(schema) = &plan.schema
        && is_json
        && let Ok(v) = serde_json::from_slice(&body)
        && let Some(why) = schema.violation(&v)
    {
        return Err(RenderError {
            pos: schema.pos.clone(),
            field: schema.field.clone(),
            message: why,
        });
    }
    if let Some(ct) = content_type {
        headers.push(("Content-Type".into(), ct));
    }
    let mut sensitive = Vec::new();
    for (name, t) in &plan.headers {
        set(&mut headers, name, header_value(t, ctx)?);
        if t.reads_secret() {
            sensitive.push(name.to_ascii_lowercase());
        }
    }
    if let Some(auth) = &plan.auth {
        let (name, value) = auth_header(auth, ctx)?;
        sensitive.push(name.to_ascii_lowercase());
        set(&mut headers, &name, value);
    }
    if let Some(name) = &plan.idempotency_header {
        set(&mut headers, name, ids.delivery_id.clone());
    }
    let signer = plan
        .sign
        .as_ref()
        .map(|s| signer(s, ctx, dummy_keys))
        .transpose()?;
    if let Some(s) = &signer {
        sensitive.extend(s.header_names());
    }
    Ok(Request {
        method: plan.method,
        url: url(plan, ctx)?,
        headers,
        body,
        is_json,
        timeout: plan.timeout,
        delivery_id: ids.delivery_id,
        trace_id: ids.trace_id,
        signer,
        sensitive,
        secrets: plan.secrets.clone(),
        tls: plan.tls.clone(),
    })
}

fn set(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_string(), value));
}

fn header_value(t: &Tmpl, ctx: &Value) -> Result<String, RenderError> {
    let v = t.render(ctx)?;
    // HTTP allows visible characters, spaces and tabs: anything else is refused here, for this
    // entry, rather than by the client as a connect error that is retried against the host.
    if v.chars().any(|c| c.is_control() && c != '\t') {
        return Err(RenderError {
            pos: t.pos.clone(),
            field: t.field.clone(),
            message: "a header value may not contain a line break or control character (it could inject headers): clean the value, e.g. with `| replace`".into(),
        });
    }
    Ok(v)
}

fn url(plan: &WebhookPlan, ctx: &Value) -> Result<String, RenderError> {
    let mut url = plan.url.render(ctx)?;
    if !plan.query.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, t) in &plan.query {
            q.append_pair(k, &t.render(ctx)?);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&q.finish());
    }
    Ok(url)
}

type Body = (Vec<u8>, bool, Option<String>);

fn body(plan: &BodyPlan, ctx: &Value) -> Result<Body, RenderError> {
    Ok(match plan {
        BodyPlan::None => (Vec::new(), false, None),
        BodyPlan::Json(t) => {
            let mut bytes = Vec::with_capacity(256);
            t.write(ctx, &mut bytes)?;
            (bytes, true, Some("application/json".into()))
        }
        BodyPlan::Text(t, ct) => (t.render(ctx)?.into_bytes(), false, Some(ct.clone())),
        BodyPlan::Form(fields) => {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for (k, t) in fields {
                f.append_pair(k, &t.render(ctx)?);
            }
            (
                f.finish().into_bytes(),
                false,
                Some("application/x-www-form-urlencoded".into()),
            )
        }
    })
}

fn auth_header(auth: &AuthPlan, ctx: &Value) -> Result<(String, String), RenderError> {
    Ok(match auth {
        AuthPlan::Bearer(t) => (
            "Authorization".into(),
            format!("Bearer {}", header_value(t, ctx)?),
        ),
        AuthPlan::Basic(u, p) => {
            let pair = format!("{}:{}", u.render(ctx)?, p.render(ctx)?);
            (
                "Authorization".into(),
                format!("Basic {}", STANDARD.encode(pair)),
            )
        }
        AuthPlan::Header(name, t) => (name.clone(), header_value(t, ctx)?),
    })
}

fn signer(s: &SignPlan, ctx: &Value, dummy_keys: bool) -> Result<Signer, RenderError> {
    match s {
        SignPlan::StandardWebhooks(t) => {
            let secret = t.render(ctx)?;
            let key = match sign::decode_whsec(&secret) {
                Some(k) if !k.is_empty() => k,
                _ if dummy_keys => sign::DUMMY_KEY.to_vec(),
                _ => {
                    return Err(RenderError {
                        pos: t.pos.clone(),
                        field: t.field.clone(),
                        message: "the Standard Webhooks secret must be `whsec_` followed by base64"
                            .into(),
                    });
                }
            };
            Ok(Signer::StandardWebhooks { key })
        }
        SignPlan::HmacSha256 { secret, header } => {
            let value = secret.render(ctx)?;
            let key = if dummy_keys && value.starts_with("<secret.") {
                sign::DUMMY_KEY.to_vec()
            } else {
                value.into_bytes()
            };
            Ok(Signer::HmacSha256 {
                key,
                header: header.clone(),
            })
        }
    }
}

impl Request {
    /// The headers of one attempt: the request's, then `traceparent` and any signature.
    pub fn attempt_headers(&self, attempt: u32, unix_seconds: i64) -> Vec<(String, String)> {
        let mut out = self.headers.clone();
        out.extend(self.attempt_only_headers(attempt, unix_seconds));
        out
    }

    /// The headers that differ by attempt: `traceparent` and any signature.
    pub fn attempt_only_headers(&self, attempt: u32, unix_seconds: i64) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(4);
        out.push((
            "traceparent".into(),
            identity::traceparent(&self.trace_id, &self.delivery_id, attempt),
        ));
        if let Some(s) = &self.signer {
            out.extend(s.headers(&self.delivery_id, unix_seconds, &self.body));
        }
        out
    }

    /// True when this header's value must never be shown.
    pub fn is_sensitive(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        crate::redact::SENSITIVE_HEADERS.contains(&lower.as_str())
            || self.sensitive.contains(&lower)
    }

    /// The body as JSON, when it is JSON (for display, mocks and expectations).
    pub fn json(&self) -> Option<serde_json::Value> {
        self.is_json
            .then(|| serde_json::from_slice(&self.body).ok())
            .flatten()
    }

    /// The body as text (JSON or not).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
