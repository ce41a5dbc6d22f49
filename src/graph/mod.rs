//! `journey graph`: the steps as nodes and labelled edges, as Mermaid, Graphviz dot or SVG (laid
//! out here, in [`layout`], and drawn by [`svg`], which the HTML report's canvas also uses). The
//! entry conditions (trigger, `where`, consent, holdout, `exit_when`) head the drawing; every
//! edge a run can take is drawn, and an ending (completed, failed, stopped) is drawn only when an
//! edge reaches it.

pub(crate) mod layout;
pub(crate) mod svg;

use crate::journey::Journey;
use crate::journey::plan::{OnFailure, StepKind, TriggerPlan};

/// Where an edge goes: a step, or an ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum To {
    Step(usize),
    /// Past the last step: the entry completes.
    Completed,
    /// A failure nothing handles: the entry fails.
    Failed,
    /// `on_failure: stop`.
    Stopped,
}

/// An edge of the picture.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The step it leaves.
    pub from: usize,
    /// Where it goes.
    pub to: To,
    /// What takes it: `success`, `failure`, a branch's `when`, a split's share, a wait.
    pub label: String,
    /// Taken by a failed delivery.
    pub on_failure: bool,
}

/// Where a step's `next` goes.
pub fn next(to: Option<usize>) -> To {
    to.map_or(To::Completed, To::Step)
}

/// Every edge a run can take, step by step, in the order the journey file gives them.
pub fn edges(j: &Journey) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, s) in j.steps.iter().enumerate() {
        let mut push = |to: To, label: &str| {
            out.push(Edge {
                from: i,
                to,
                label: label.to_string(),
                on_failure: label.starts_with("failure"),
            })
        };
        match &s.kind {
            StepKind::Webhook(_) => {
                push(next(s.next), "success");
                match s.on_failure {
                    OnFailure::Goto(t) => push(To::Step(t), "failure"),
                    OnFailure::Continue => push(next(s.next), "failure (continue)"),
                    OnFailure::Stop => push(To::Stopped, "failure (stop)"),
                    OnFailure::Fail => push(To::Failed, "failure"),
                }
            }
            StepKind::Branch { arms, default } => {
                for (cond, t) in arms {
                    push(To::Step(*t), cond.source);
                }
                push(next(default.or(s.next)), "default");
            }
            StepKind::Split(arms) => {
                let mut prev = 0;
                for (upto, t) in arms {
                    push(To::Step(*t), &format!("{}%", upto - prev));
                    prev = *upto;
                }
            }
            StepKind::Wait(d) => push(
                next(s.next),
                &format!("after {}", crate::journey::duration::short(*d)),
            ),
            StepKind::End(_) => {}
        }
    }
    out
}

/// The entry conditions, one per line: trigger and `where`, consent, holdout, `exit_when`.
pub fn entry_lines(j: &Journey) -> Vec<String> {
    let mut lines = vec![match &j.trigger {
        TriggerPlan::Event { name, filter } => match filter {
            Some(f) => format!("event {name} where {}", f.source),
            None => format!("event {name}"),
        },
        TriggerPlan::Segment(e) => format!("segment {}", e.source),
    }];
    if let Some(c) = &j.consent {
        lines.push(format!("consent: {c}"));
    }
    if let Some(h) = j.holdout {
        // Kept as a fraction; shown as written.
        let percent = (h * 100.0 * 1000.0).round() / 1000.0;
        lines.push(format!("holdout: {percent}%"));
    }
    if let Some(x) = &j.exit_when {
        lines.push(match &x.filter {
            Some(f) => format!("exits on {} where {}", x.event, f.source),
            None => format!("exits on {}", x.event),
        });
    }
    lines
}

/// A step's label: `id (kind)`, or `id (end: label)`.
pub fn node_label(j: &Journey, i: usize) -> String {
    let s = &j.steps[i];
    match &s.kind {
        StepKind::End(label) => format!("{} (end: {label})", s.id),
        k => format!("{} ({})", s.id, k.name()),
    }
}

/// The endings some edge reaches, in a fixed order.
pub fn endings(edges: &[Edge]) -> Vec<To> {
    [To::Completed, To::Failed, To::Stopped]
        .into_iter()
        .filter(|t| edges.iter().any(|e| e.to == *t))
        .collect()
}

/// The node's name in the drawings: `s3`, `completed`, `failed`, `stopped`.
pub fn node_id(to: To) -> String {
    match to {
        To::Step(i) => format!("s{i}"),
        To::Completed => "completed".into(),
        To::Failed => "failed".into(),
        To::Stopped => "stopped".into(),
    }
}

fn quoted(text: &str) -> String {
    text.replace('"', "'")
}

/// Mermaid flowchart text.
pub fn mermaid(j: &Journey) -> String {
    let entry = entry_lines(j)
        .iter()
        .map(|l| quoted(l))
        .collect::<Vec<_>>()
        .join("<br/>");
    let mut out = format!(
        "flowchart TD\n  start([\"{}<br/>{entry}\"]) --> s0\n",
        quoted(&j.name)
    );
    for i in 0..j.steps.len() {
        out.push_str(&format!("  s{i}[\"{}\"]\n", quoted(&node_label(j, i))));
    }
    let edges = edges(j);
    for end in endings(&edges) {
        out.push_str(&format!("  {0}([{0}])\n", node_id(end)));
    }
    for e in &edges {
        out.push_str(&format!(
            "  s{} -->|\"{}\"| {}\n",
            e.from,
            quoted(&e.label),
            node_id(e.to)
        ));
    }
    out
}

/// Graphviz dot text.
pub fn dot(j: &Journey) -> String {
    let entry = entry_lines(j)
        .iter()
        .map(|l| quoted(l))
        .collect::<Vec<_>>()
        .join("\\n");
    let mut out = format!(
        "digraph \"{0}\" {{\n  rankdir=TB;\n  start [shape=oval, label=\"{0}\\n{entry}\"];\n  start -> s0;\n",
        quoted(&j.name)
    );
    for i in 0..j.steps.len() {
        out.push_str(&format!(
            "  s{i} [shape=box, label=\"{}\"];\n",
            quoted(&node_label(j, i))
        ));
    }
    let edges = edges(j);
    for end in endings(&edges) {
        out.push_str(&format!(
            "  {0} [shape=oval, label=\"{0}\"];\n",
            node_id(end)
        ));
    }
    for e in &edges {
        out.push_str(&format!(
            "  s{} -> {} [label=\"{}\"];\n",
            e.from,
            node_id(e.to),
            quoted(&e.label)
        ));
    }
    out.push_str("}\n");
    out
}
