//! The messages of the usual channels: one summary line, and the top errors with example
//! customer ids, as Slack blocks or a Teams card; and the same as plain JSON for a webhook.

use serde_json::{Value, json};

/// `journey j failed on HOST: 3 failed, 1 invalid of 10 entries; 3 of 9 deliveries failed (33.3%) — run RUN`.
pub fn summary(run: &Value) -> String {
    let n = |k: &str| run[k].as_u64().unwrap_or(0);
    let mut text = format!(
        "journey {} on {}: {} failed, {} invalid of {} entries; {} of {} deliveries failed ({}%) — run {} ({})",
        run["journey"].as_str().unwrap_or(""),
        run["host"].as_str().unwrap_or(""),
        n("failed"),
        n("invalid"),
        n("entries"),
        n("deliveries_failed"),
        n("deliveries"),
        run["failure_rate"],
        run["run_id"].as_str().unwrap_or(""),
        run["mode"].as_str().unwrap_or(""),
    );
    if let Some(hosts) = run["stopped_hosts"].as_array().filter(|h| !h.is_empty()) {
        let hosts: Vec<&str> = hosts.iter().filter_map(Value::as_str).collect();
        text.push_str(&format!("; stopped: {}", hosts.join("; ")));
    }
    if run["state_failed"] == json!(true) {
        text.push_str("; the state store failed");
    }
    text
}

/// `resolved: journey j is clean again on HOST — run RUN`, for a resolution; else [`summary`].
fn headline(run: &Value) -> String {
    match run["resolved"] == json!(true) {
        true => format!(
            "resolved: journey {} is clean again on {} — run {} ({})",
            run["journey"].as_str().unwrap_or(""),
            run["host"].as_str().unwrap_or(""),
            run["run_id"].as_str().unwrap_or(""),
            run["mode"].as_str().unwrap_or(""),
        ),
        false => summary(run),
    }
}

/// The line, and the team's link after it when there is one.
fn with_link(text: String, run: &Value) -> String {
    match run["link"].as_str() {
        Some(link) => format!("{text} — {link}"),
        None => text,
    }
}

/// Each error: `message (N entries, e.g. c1, c2)`.
fn errors(run: &Value) -> Vec<String> {
    run["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let customers: Vec<&str> = e["customers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let count = e["count"].as_u64().unwrap_or(0);
            let entries = if count == 1 { "entry" } else { "entries" };
            format!(
                "{} ({count} {entries}, e.g. {})",
                e["message"].as_str().unwrap_or(""),
                customers.join(", ")
            )
        })
        .collect()
}

/// A Slack incoming-webhook message.
pub fn slack(run: &Value) -> Value {
    let text = with_link(headline(run), run);
    let mut blocks = vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })];
    for e in errors(run) {
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("• {e}") } }),
        );
    }
    json!({ "text": text, "blocks": blocks })
}

/// A Microsoft Teams incoming-webhook message card.
pub fn teams(run: &Value) -> Value {
    let facts: Vec<Value> = errors(run)
        .into_iter()
        .map(|e| json!({ "name": "error", "value": e }))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": headline(run),
        "text": with_link(headline(run), run),
        "sections": [{ "facts": facts }],
    })
}

/// The summary and the results, for a webhook without a body of its own.
pub fn summary_json(run: &Value) -> Value {
    json!({ "text": headline(run), "run": run })
}
