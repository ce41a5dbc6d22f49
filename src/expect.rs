//! `journey test`: checks each `expect` against the entries a dry-run produced; the first difference is the message.

use serde_json::Value as Json;

use crate::execute::result::{EntryResult, StepStatus};
use crate::fixture::Expect;
use crate::journey::Journey;
use crate::redact::Redactor;
use crate::report::ExpectationResult;

/// Checks every expectation.
pub fn check_all(
    expects: &[Expect],
    journeys: &[Journey],
    results: &[EntryResult],
    redactor: &Redactor,
) -> Vec<ExpectationResult> {
    expects
        .iter()
        .map(|e| check(e, journeys, results, redactor))
        .collect()
}

fn check(
    e: &Expect,
    journeys: &[Journey],
    results: &[EntryResult],
    redactor: &Redactor,
) -> ExpectationResult {
    let s = &e.spec;
    let event = s
        .event
        .as_ref()
        .map(|t| format!(", event {}", t.0))
        .unwrap_or_default();
    let mut out = ExpectationResult {
        journey: s.journey.clone(),
        name: format!("customer {}{event} (line {})", s.customer.0, e.pos.line),
        at: e.pos.to_string(),
        failure: None,
    };
    out.failure = find(e, journeys, results)
        .and_then(|r| differences(e, journeys, r, redactor))
        .err();
    out
}

/// The one result this expectation is about, `Ok(None)` when the customer never entered.
fn find<'a>(
    e: &Expect,
    journeys: &[Journey],
    results: &'a [EntryResult],
) -> Result<Option<&'a EntryResult>, String> {
    let s = &e.spec;
    let Some(ji) = journeys.iter().position(|j| j.name == s.journey) else {
        return Err(format!("no journey `{}` is loaded", s.journey));
    };
    let matching: Vec<&EntryResult> = results
        .iter()
        .filter(|r| r.journey == ji && r.customer == s.customer.0)
        .filter(|r| {
            s.event
                .as_ref()
                .is_none_or(|ev| r.event.as_deref() == Some(ev.0.as_str()))
        })
        .collect();
    match matching.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(format!(
            "customer `{}` has {} entries in `{}`; name the `event` this expectation is about",
            s.customer.0,
            many.len(),
            s.journey
        )),
    }
}

fn differences(
    e: &Expect,
    journeys: &[Journey],
    r: Option<&EntryResult>,
    redactor: &Redactor,
) -> Result<(), String> {
    let s = &e.spec;
    let path: Vec<&str> = r
        .map(|r| {
            let steps = &journeys[r.journey].steps;
            r.walked.iter().map(|&i| steps[i].id.as_str()).collect()
        })
        .unwrap_or_default();
    let outcome = r.map_or("not_entered", |r| r.outcome.as_str());
    if let Some(want) = &s.path
        && want != &path
    {
        return Err(format!(
            "expected path [{}], got [{}]",
            want.join(", "),
            path.join(", ")
        ));
    }
    if let Some(want) = &s.outcome
        && want != outcome
    {
        let why = r
            .and_then(|r| r.error.as_ref())
            .map(|e| format!(" ({})", e.message))
            .unwrap_or_default();
        return Err(format!("expected outcome `{want}`, got `{outcome}`{why}"));
    }
    let j = journeys
        .iter()
        .find(|j| j.name == s.journey)
        .expect("found above");
    for (step, want) in s.attempts.iter().flatten() {
        let got = record(j, r, step).map_or(0, |rec| rec.attempts);
        if got != *want {
            return Err(format!("expected {want} attempts at `{step}`, got {got}"));
        }
    }
    for step in &s.not_called {
        if record(j, r, step)
            .is_some_and(|rec| !matches!(rec.status, StepStatus::Suppressed | StepStatus::Capped))
        {
            return Err(format!("expected `{step}` not to be called, but it was"));
        }
    }
    for (step, want) in &s.requests {
        let Some(req) = record(j, r, step).and_then(|rec| rec.request.as_ref()) else {
            return Err(format!(
                "expected a request at `{step}`, but none was rendered"
            ));
        };
        subset(
            want,
            &request_view(req, redactor),
            &format!("requests.{step}"),
        )?;
    }
    Ok(())
}

fn record<'a>(
    j: &Journey,
    r: Option<&'a EntryResult>,
    step: &str,
) -> Option<&'a crate::execute::result::StepRecord> {
    let i = j.step_index(step)?;
    r?.steps.iter().find(|s| s.index == i)
}

/// The request as expectations see it: method, url, lowercase headers, body (JSON or text).
pub fn request_view(req: &crate::execute::request::Request, redactor: &Redactor) -> Json {
    let headers: serde_json::Map<String, Json> = req
        .headers
        .iter()
        .map(|(k, v)| {
            let shown = if req.is_sensitive(k) {
                crate::redact::MASK.to_string()
            } else {
                redactor.redact(v)
            };
            (k.to_ascii_lowercase(), Json::String(shown))
        })
        .collect();
    let body = match &req.json() {
        Some(v) => redactor.redact_json(v),
        None => Json::String(redactor.redact(&req.body_text())),
    };
    serde_json::json!({ "method": req.method.as_str(), "url": redactor.redact(&req.url), "headers": headers, "body": body })
}

/// Every part of `want` is in `got` (header names compare case-insensitively).
pub fn subset(want: &Json, got: &Json, at: &str) -> Result<(), String> {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => {
            for (k, wv) in w {
                let key = if at.ends_with(".headers") {
                    k.to_ascii_lowercase()
                } else {
                    k.clone()
                };
                match g.get(&key) {
                    Some(gv) => subset(wv, gv, &format!("{at}.{k}"))?,
                    None => {
                        return Err(format!(
                            "{at}.{k}: expected {}, but it is missing",
                            show(wv)
                        ));
                    }
                }
            }
            Ok(())
        }
        (Json::Array(w), Json::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .try_for_each(|(i, (wv, gv))| subset(wv, gv, &format!("{at}[{i}]"))),
        (w, g) if w == g => Ok(()),
        (Json::Number(w), Json::Number(g)) if w.as_f64() == g.as_f64() => Ok(()),
        (w, g) => Err(format!("{at}: expected {}, got {}", show(w), show(g))),
    }
}

fn show(v: &Json) -> String {
    format!(
        "`{}`",
        match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_subset() {
        let got = json!({"body": {"to": "a@b.c", "n": 1, "extra": true}, "headers": {"x-a": "1"}});
        assert!(subset(&json!({"body": {"to": "a@b.c"}}), &got, "r").is_ok());
        assert!(subset(&json!({"headers": {"X-A": "1"}}), &got, "r").is_ok());
        assert_eq!(
            subset(&json!({"body": {"to": "x@y.z"}}), &got, "r").unwrap_err(),
            "r.body.to: expected `x@y.z`, got `a@b.c`"
        );
        assert!(
            subset(&json!({"body": {"nope": 1}}), &got, "r")
                .unwrap_err()
                .contains("missing")
        );
    }
}
