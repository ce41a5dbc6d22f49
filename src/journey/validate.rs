//! Checks beyond the format: the step graph (cycles, unreachable steps), the URL origin rule, async rules.

use std::collections::BTreeSet;

use super::model::JourneyFile;
use super::plan::{Journey, OnFailure, StepKind};
use crate::render::Compiler;
use crate::render::url::{is_env_ref, origin_end};

/// The steps a step can lead to.
pub fn successors(j: &Journey, i: usize) -> Vec<usize> {
    let s = &j.steps[i];
    let mut out: Vec<usize> = s.next.into_iter().collect();
    if let OnFailure::Goto(t) = s.on_failure {
        out.push(t);
    }
    match &s.kind {
        StepKind::Branch { arms, default } => {
            out.extend(arms.iter().map(|(_, t)| *t));
            out.extend(*default);
        }
        StepKind::Split(arms) => out.extend(arms.iter().map(|(_, t)| *t)),
        StepKind::End(_) => out.clear(),
        _ => {}
    }
    out
}

/// Graph checks; unreachable steps are warnings unless `strict`.
pub fn check_graph(j: &Journey, c: &mut Compiler, warnings: &mut Vec<String>, strict: bool) {
    if j.steps.is_empty() {
        c.error("steps", "a journey needs at least one step");
        return;
    }
    if let Some(cycle) = find_cycle(j) {
        let names: Vec<&str> = cycle.iter().map(|&i| j.steps[i].id.as_str()).collect();
        c.error(
            &format!("steps[{}].id", cycle[0]),
            format!("steps form a cycle: {} (a journey runs forward only; use a `wait` and a new entry instead)", names.join(" -> ")),
        );
    }
    let reachable = reachable(j);
    for (i, s) in j.steps.iter().enumerate() {
        if !reachable[i] {
            let msg = format!("step `{}` can never be reached", s.id);
            if strict {
                c.error(&format!("steps[{i}].id"), format!("{msg} (--strict)"));
            } else {
                warnings.push(format!(
                    "{}: warning: {msg}",
                    c.positions.at(&format!("steps[{i}].id"))
                ));
            }
        }
    }
}

fn reachable(j: &Journey) -> Vec<bool> {
    let mut seen = vec![false; j.steps.len()];
    let mut stack = vec![0];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        stack.extend(successors(j, i));
    }
    seen
}

fn find_cycle(j: &Journey) -> Option<Vec<usize>> {
    // 0 = new, 1 = on the stack, 2 = done
    let mut state = vec![0u8; j.steps.len()];
    let mut path = Vec::new();
    (0..j.steps.len()).find_map(|i| dfs(j, i, &mut state, &mut path))
}

fn dfs(j: &Journey, i: usize, state: &mut [u8], path: &mut Vec<usize>) -> Option<Vec<usize>> {
    match state[i] {
        2 => return None,
        1 => {
            let from = path.iter().position(|&p| p == i).unwrap_or(0);
            let mut cycle = path[from..].to_vec();
            cycle.push(i);
            return Some(cycle);
        }
        _ => {}
    }
    state[i] = 1;
    path.push(i);
    for n in successors(j, i) {
        if let Some(c) = dfs(j, n, state, path) {
            return Some(c);
        }
    }
    path.pop();
    state[i] = 2;
    None
}

/// Async steps are fire-and-forget: no `save`, no `on_failure`, never read through `steps.ID`.
pub fn check_async(file: &JourneyFile, c: &mut Compiler) {
    let async_ids: Vec<&str> = file
        .steps
        .iter()
        .filter(|s| s.webhook.as_ref().is_some_and(|w| w.is_async))
        .map(|s| s.id.as_str())
        .collect();
    for (i, s) in file.steps.iter().enumerate() {
        if async_ids.contains(&s.id.as_str()) && (s.on_failure.is_some() || !s.save.is_empty()) {
            c.error(
                &format!("steps[{i}]"),
                format!("async step `{}` cannot have `save` or `on_failure`: nothing waits for its answer", s.id),
            );
        }
    }
    let text = serde_yaml::to_string(&strings_of(file)).unwrap_or_default();
    for id in async_ids {
        if text.contains(&format!("steps.{id}.")) {
            c.error(
                "steps",
                format!("async step `{id}` cannot be read through `steps.{id}`"),
            );
        }
    }
}

fn strings_of(file: &JourneyFile) -> Vec<String> {
    file.steps
        .iter()
        .flat_map(|s| {
            let mut v: Vec<String> = s.branch.iter().flatten().map(|a| a.when.clone()).collect();
            v.extend(s.save.values().cloned());
            if let Some(w) = &s.webhook {
                v.push(serde_json::to_string(&w.body).unwrap_or_default());
                v.extend(w.success.clone());
                v.push(w.url.clone());
            }
            v
        })
        .collect()
}

/// Settings that later stages act on (send windows, rate limits, frequency caps) are checked now.
pub fn check_settings(file: &JourneyFile, c: &mut Compiler) {
    if let Some(w) = &file.send_window {
        check_window(w, "send_window", c);
    }
    if let Some(r) = &file.defaults.rate_limit {
        check_rate(r, "defaults.rate_limit", c);
    }
    for (i, s) in file.steps.iter().enumerate() {
        if let Some(w) = &s.send_window {
            check_window(w, &format!("steps[{i}].send_window"), c);
        }
        if let Some(r) = s.webhook.as_ref().and_then(|w| w.rate_limit.as_ref()) {
            check_rate(r, &format!("steps[{i}].webhook.rate_limit"), c);
        }
        if let Some(cap) = &s.frequency_cap
            && (cap.max == 0 || cap.per.0.is_zero())
        {
            c.error(
                &format!("steps[{i}].frequency_cap"),
                "`frequency_cap` needs `max` of at least 1 and a `per` longer than zero",
            );
        }
        if s.frequency_cap.is_some() && s.webhook.is_none() {
            c.error(
                &format!("steps[{i}].frequency_cap"),
                "`frequency_cap` belongs to a webhook step",
            );
        }
    }
}

fn check_window(w: &super::model::SendWindow, at: &str, c: &mut Compiler) {
    if parse_hours(&w.hours).is_none() {
        c.error(
            &format!("{at}.hours"),
            format!(
                "send window hours `{}` must look like `09:00-20:00`",
                w.hours
            ),
        );
    }
}

/// `HH:MM-HH:MM` as minutes after midnight.
pub fn parse_hours(text: &str) -> Option<(u32, u32)> {
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (from, to) = text.split_once('-')?;
    let (from, to) = (minutes(from)?, minutes(to)?);
    (from != to).then_some((from, to))
}

fn check_rate(text: &str, at: &str, c: &mut Compiler) {
    if let Err(why) = super::duration::parse_rate(text) {
        c.error(at, format!("`{at}`: {why}"));
    }
}

/// Filters a "did you mean" can suggest: ours and minijinja's common ones.
const FILTERS: &[&str] = &[
    "normalize_email",
    "normalize_phone",
    "sha256",
    "datetimeformat",
    "as_path",
    "default",
    "int",
    "float",
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "length",
    "first",
    "last",
    "join",
    "replace",
    "round",
    "abs",
    "tojson",
    "urlencode",
    "string",
    "list",
    "sort",
    "unique",
    "reverse",
    "split",
    "lines",
    "min",
    "max",
    "sum",
    "map",
    "select",
    "reject",
    "attr",
    "items",
    "bool",
    "format",
    "indent",
    "escape",
    "safe",
    "dictsort",
    "batch",
    "slice",
    "wordcount",
];

/// Every filter, `vars.NAME`, `saved.NAME` and `steps.ID` a template or expression of the
/// journey uses must exist: a typo is an error at its file:line:column, with "did you mean",
/// before any entry runs (minijinja would find it only when an entry renders it).
pub fn check_refs(j: &Journey, c: &mut Compiler) {
    use crate::render::refs::{Ref, is_filter};
    let vars: Vec<&str> = j.vars.iter().map(|(k, _)| k.as_str()).collect();
    let saved: Vec<&str> = j
        .steps
        .iter()
        .flat_map(|s| s.save.iter().map(|(k, _)| k.as_str()))
        .collect();
    let steps: Vec<&str> = j.steps.iter().map(|s| s.id.as_str()).collect();
    let refs = std::mem::take(&mut c.refs);
    let mut said = BTreeSet::new();
    for (field, r) in &refs {
        let why = match r {
            Ref::Filter(f) if !is_filter(f) => Some(unknown("filter", f, FILTERS)),
            Ref::Var(v) if !vars.contains(&v.as_str()) => Some(unknown("`vars`", v, &vars)),
            Ref::Saved(v) if !saved.contains(&v.as_str()) => {
                Some(unknown("saved value (no step saves it)", v, &saved))
            }
            Ref::Step(id) => step_ref(j, id, &steps),
            _ => None,
        };
        if let Some(why) = why
            && said.insert((field.clone(), why.clone()))
        {
            c.error(field, format!("`{field}`: {why}"));
        }
    }
}

fn step_ref(j: &Journey, id: &str, steps: &[&str]) -> Option<String> {
    match j.steps.iter().find(|s| s.id == id) {
        None => Some(unknown("step", id, steps)),
        Some(s) if matches!(&s.kind, StepKind::Webhook(w) if w.is_async) => Some(format!(
            "step `{id}` is async: it has no status to read through `steps.{id}`"
        )),
        Some(_) => None,
    }
}

fn unknown(what: &str, name: &str, candidates: &[&str]) -> String {
    match super::yaml::closest(name, candidates) {
        Some(best) => format!("unknown {what} `{name}`; did you mean `{best}`?"),
        None => format!("unknown {what} `{name}`"),
    }
}

/// The scheme, host and port of a URL template must come from literals and `env` only.
pub fn check_origin(url: &str) -> Result<(), String> {
    let mut origin = String::new();
    let mut rest = url;
    loop {
        if origin_end(&origin).is_some() {
            return Ok(());
        }
        let Some(open) = rest.find("{{").or_else(|| rest.find("{%")) else {
            origin.push_str(rest);
            return if origin_end(&format!("{origin}/")).is_some() {
                Ok(())
            } else {
                Err(format!(
                    "url `{url}` has no scheme and host: start it with `https://host` or `{{{{ env.NAME }}}}`"
                ))
            };
        };
        origin.push_str(&rest[..open]);
        if origin_end(&origin).is_some() {
            return Ok(());
        }
        let close = rest[open..].find("}}").or_else(|| rest[open..].find("%}"));
        let Some(close) = close else {
            return Err(format!("url `{url}` has an unclosed `{{{{`"));
        };
        let inner = rest[open + 2..open + close].trim().trim_matches('-').trim();
        if !is_env_ref(inner) {
            return Err(format!(
                "the scheme, host and port of `url` must come from literals and `env`, not `{}`: data could move the request to another host; put the origin in an env var such as `{{{{ env.PROMO_URL }}}}`",
                &rest[open..open + close + 2]
            ));
        }
        origin.push_str("\u{0}ENV\u{0}");
        rest = &rest[open + close + 2..];
    }
}

/// Every `env.NAME` and `secret.NAME` the file's strings mention.
pub fn referenced_vars(source: &serde_yaml::Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut env = BTreeSet::new();
    let mut secret = BTreeSet::new();
    visit_strings(source, &mut |s| {
        collect_refs(s, "env.", &mut env);
        collect_refs(s, "secret.", &mut secret);
    });
    (env, secret)
}

fn visit_strings(v: &serde_yaml::Value, f: &mut dyn FnMut(&str)) {
    match v {
        serde_yaml::Value::String(s) => f(s),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| visit_strings(i, f)),
        serde_yaml::Value::Mapping(m) => m.values().for_each(|i| visit_strings(i, f)),
        serde_yaml::Value::Tagged(t) => visit_strings(&t.value, f),
        _ => {}
    }
}

fn collect_refs(s: &str, prefix: &str, out: &mut BTreeSet<String>) {
    let mut from = 0;
    while let Some(i) = s[from..].find(prefix) {
        let at = from + i;
        let before = s[..at].chars().next_back();
        let name: String = s[at + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !name.is_empty()
        {
            out.insert(name);
        }
        from = at + prefix.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::url::origin_source;

    #[test]
    fn origins_from_literals_and_env_pass() {
        for ok in [
            "https://api.example.com/v1/{{ customer.id }}",
            "{{ env.PROMO_URL }}/v1/incentives",
            "{{ env.PROMO_URL }}",
            "https://{{ env.HOST }}:8443/x?c={{ customer.id }}",
            "http://127.0.0.1:8080",
        ] {
            assert!(check_origin(ok).is_ok(), "{ok}: {:?}", check_origin(ok));
        }
    }

    #[test]
    fn origin_source_stops_at_data() {
        assert_eq!(
            origin_source("{{ env.A }}/v1/{{ customer.id }}"),
            "{{ env.A }}/v1/"
        );
        assert_eq!(
            origin_source("https://x.com/{{ customer.id }}/y"),
            "https://x.com/"
        );
        assert_eq!(origin_source("{{ env.A }}"), "{{ env.A }}");
    }

    #[test]
    fn origins_from_data_fail() {
        for bad in [
            "https://{{ customer.domain }}/x",
            "{{ customer.url }}/x",
            "https://api.example.com{{ vars.port }}/x",
            "/relative/path",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn send_window_hours() {
        assert_eq!(parse_hours("09:00-20:00"), Some((540, 1200)));
        assert_eq!(parse_hours("22:00-06:30"), Some((1320, 390)));
        assert_eq!(parse_hours("9-20"), None);
        assert_eq!(parse_hours("25:00-26:00"), None);
    }

    #[test]
    fn finds_referenced_variables() {
        let v: serde_yaml::Value =
            serde_yaml::from_str("a: '{{ env.A }}/x {{ secret.TOKEN }}'\nb: [\"{{ myenv.B }}\"]")
                .unwrap();
        let (env, secret) = referenced_vars(&v);
        assert_eq!(env.into_iter().collect::<Vec<_>>(), vec!["A"]);
        assert_eq!(secret.into_iter().collect::<Vec<_>>(), vec!["TOKEN"]);
    }
}
