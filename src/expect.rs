//! `journey test`: checks each `expect` against the entries a dry-run produced; the first difference is the message.

use serde_json::Value as Json;

use crate::execute::result::{EntryResult, StepStatus};
use crate::fixture::Expect;
use crate::journey::Journey;
use crate::redact::Redactor;
use crate::report::ExpectationResult;

/// What the fixtures name and the journeys do not have.
#[derive(Debug, Default)]
pub struct Unknown {
    /// A typo: an expectation's `path`, `not_called`, `attempts` or `requests` naming a step
    /// its journey does not have, or a mock whose step or journey is close to a loaded one.
    pub errors: Vec<String>,
    /// A mock for a step or journey that no loaded journey has, nor anything close to it (a
    /// shared fixtures folder run with some of the journeys): it is not used.
    pub warnings: Vec<String>,
}

/// Checks the steps and journeys the fixtures name. An expectation about a journey that is not
/// loaded is a failing expectation, not an error here.
pub fn unknown_references(fixtures: &crate::fixture::Fixtures, journeys: &[Journey]) -> Unknown {
    let mut found = Unknown::default();
    for (key, pos) in &fixtures.mock_keys {
        match unknown_mock(key, journeys) {
            Some((why, true)) => found.errors.push(format!("{pos}: mocks `{key}`: {why}")),
            Some((why, false)) => found
                .warnings
                .push(format!("{pos}: mocks `{key}`: {why}; it is not used")),
            None => {}
        }
    }
    let errors = &mut found.errors;
    for e in &fixtures.expects {
        let s = &e.spec;
        let Some(j) = journeys.iter().find(|j| j.name == s.journey) else {
            continue;
        };
        let named = s.path.iter().flatten().map(|n| ("path", n));
        let named = named
            .chain(s.not_called.iter().map(|n| ("not_called", n)))
            .chain(
                s.attempts
                    .iter()
                    .flat_map(|a| a.keys())
                    .map(|n| ("attempts", n)),
            )
            .chain(s.requests.keys().map(|n| ("requests", n)));
        for (field, step) in named {
            if let Some(why) = unknown_step(j, step) {
                errors.push(format!("{}: expect `{field}`: {why}", e.pos));
            }
        }
    }
    found
}

/// Why a mock key names nothing loaded, and whether it looks like a typo (an error).
fn unknown_mock(key: &str, journeys: &[Journey]) -> Option<(String, bool)> {
    let names: Vec<&str> = journeys.iter().map(|j| j.name.as_str()).collect();
    match key.split_once('.') {
        Some((journey, step)) => match journeys.iter().find(|j| j.name == journey) {
            Some(j) => unknown_step(j, step).map(|why| (why, true)),
            None => Some(near(
                &format!("no journey `{journey}` is loaded"),
                journey,
                &names,
            )),
        },
        None if journeys.iter().any(|j| j.steps.iter().any(|s| s.id == key)) => None,
        None => {
            let ids: Vec<&str> = journeys
                .iter()
                .flat_map(|j| j.steps.iter().map(|s| s.id.as_str()))
                .collect();
            Some(near(
                &format!("no loaded journey has a step `{key}`"),
                key,
                &ids,
            ))
        }
    }
}

/// `what`, with a suggestion and `true` when a candidate is close (a typo).
fn near(what: &str, word: &str, candidates: &[&str]) -> (String, bool) {
    match crate::journey::yaml::closest(word, candidates) {
        Some(best) => (format!("{what}; did you mean `{best}`?"), true),
        None => (what.to_string(), false),
    }
}

fn unknown_step(j: &Journey, step: &str) -> Option<String> {
    if j.steps.iter().any(|s| s.id == step) {
        return None;
    }
    let ids: Vec<&str> = j.steps.iter().map(|s| s.id.as_str()).collect();
    Some(did_you_mean(
        &format!("journey `{}` has no step `{step}`", j.name),
        step,
        &ids,
    ))
}

fn did_you_mean(what: &str, word: &str, candidates: &[&str]) -> String {
    match crate::journey::yaml::closest(word, candidates) {
        Some(best) => format!("{what}; did you mean `{best}`?"),
        None => format!(
            "{what} (it has {})",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

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
    let form = req.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type") && v.starts_with("application/x-www-form-urlencoded")
    });
    let body = match &req.json() {
        Some(v) => redactor.redact_json(v),
        // A form is checked as the mapping it was written as.
        None if form => Json::Object(
            url::form_urlencoded::parse(&req.body)
                .map(|(k, v)| (k.into_owned(), Json::String(redactor.redact(&v))))
                .collect(),
        ),
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
