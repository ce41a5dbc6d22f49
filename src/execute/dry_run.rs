//! The dry-run executor: answers each attempt from the fixtures' mocks; nothing leaves the machine.

use std::sync::Arc;
use std::time::Duration;

use minijinja::{Value, context};

use super::executor::{Attempt, Executor, Headers, Outcome, Response, TransportError};
use crate::fixture::{Fixtures, Mock, MockError, MockResponse};
use crate::render::{RenderError, value_of};

/// Answers from mocks; a step without a matching mock is assumed successful.
#[derive(Debug, Clone)]
pub struct DryRun {
    fixtures: Arc<Fixtures>,
}

impl DryRun {
    /// A dry-run executor over these fixtures' mocks.
    pub fn new(fixtures: Arc<Fixtures>) -> Self {
        DryRun { fixtures }
    }

    fn pick<'a>(
        &self,
        rules: &'a [Mock],
        a: &Attempt<'_>,
    ) -> Result<Option<&'a Mock>, RenderError> {
        let mut ctx = None;
        for rule in rules {
            let Some(when) = &rule.when else {
                return Ok(Some(rule));
            };
            let ctx = ctx.get_or_insert_with(|| mock_context(a));
            if when.is_true(ctx)? {
                return Ok(Some(rule));
            }
        }
        Ok(None)
    }
}

fn mock_context(a: &Attempt<'_>) -> Value {
    let r = a.request;
    let headers: indexmap::IndexMap<String, String> = r.headers.iter().cloned().collect();
    let body = r
        .json()
        .unwrap_or_else(|| serde_json::Value::String(r.body_text()));
    let request = context! {
        method => r.method.as_str(), url => &r.url, headers => value_of(&headers),
        body => value_of(&body),
    };
    let delivery = context! { id => &r.delivery_id, attempt => a.number };
    let step = crate::render::context::Scope {
        step: Some(a.step),
        ..Default::default()
    };
    context! { request => request, delivery => delivery, ..a.context.value(&step) }
}

fn respond(r: &MockResponse, timeout: Duration) -> Outcome {
    match r {
        MockResponse::Error(MockError::Timeout) => Outcome::Transport(TransportError::Timeout),
        MockResponse::Error(MockError::Connect) => Outcome::Transport(TransportError::Connect(
            "connection refused (mocked)".into(),
        )),
        MockResponse::Error(MockError::Reset) => {
            Outcome::Transport(TransportError::Reset("connection reset (mocked)".into()))
        }
        MockResponse::Reply { latency, .. } if *latency >= timeout => {
            Outcome::Transport(TransportError::Timeout)
        }
        MockResponse::Reply {
            status,
            headers,
            body,
            latency,
        } => {
            let mut headers = headers.clone();
            let bytes = match body {
                None => Vec::new(),
                Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
                Some(v) => {
                    if !headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                    {
                        headers.push(("content-type".into(), "application/json".into()));
                    }
                    serde_json::to_vec(v).unwrap_or_default()
                }
            };
            Outcome::Response(Response {
                status: *status,
                headers: Headers::Given(headers),
                body: bytes,
                latency: *latency,
            })
        }
    }
}

impl Executor for DryRun {
    async fn send(&self, a: Attempt<'_>) -> Outcome {
        if self.fixtures.mocks.is_empty() {
            return Outcome::Assumed;
        }
        let Some(rules) = self.fixtures.mocks_for(a.journey, a.step) else {
            return Outcome::Assumed;
        };
        match self.pick(rules, &a) {
            Err(e) => Outcome::MockFailed(e),
            Ok(None) => Outcome::Assumed,
            Ok(Some(rule)) if rule.responses.is_empty() => Outcome::Assumed,
            Ok(Some(rule)) => {
                let i = (a.number as usize - 1).min(rule.responses.len() - 1);
                respond(&rule.responses[i], a.request.timeout)
            }
        }
    }

    async fn pause(&self, _delay: Duration) {}

    fn mocks(&self) -> bool {
        true
    }
}
