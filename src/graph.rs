//! `journey graph`: the steps as nodes and labelled edges, as Mermaid or Graphviz dot.

use crate::journey::Journey;
use crate::journey::plan::{OnFailure, StepKind};

/// An edge of the picture.
struct Edge {
    from: usize,
    to: Option<usize>,
    label: String,
}

fn edges(j: &Journey) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, s) in j.steps.iter().enumerate() {
        let mut push = |to: Option<usize>, label: &str| {
            out.push(Edge {
                from: i,
                to,
                label: label.to_string(),
            })
        };
        match &s.kind {
            StepKind::Webhook(_) => {
                push(s.next, "success");
                match s.on_failure {
                    OnFailure::Goto(t) => push(Some(t), "failure"),
                    OnFailure::Continue => push(s.next, "failure (continue)"),
                    OnFailure::Stop | OnFailure::Fail => {}
                }
            }
            StepKind::Branch { arms, default } => {
                for (cond, t) in arms {
                    push(Some(*t), cond.source);
                }
                push(default.or(s.next), "default");
            }
            StepKind::Split(arms) => {
                let mut prev = 0;
                for (upto, t) in arms {
                    push(Some(*t), &format!("{}%", upto - prev));
                    prev = *upto;
                }
            }
            StepKind::Wait(d) => push(s.next, &format!("after {}", humantime::format_duration(*d))),
            StepKind::End(_) => {}
        }
    }
    out
}

fn node_label(j: &Journey, i: usize) -> String {
    let s = &j.steps[i];
    match &s.kind {
        StepKind::End(label) => format!("{} (end: {label})", s.id),
        k => format!("{} ({})", s.id, k.name()),
    }
}

/// Mermaid flowchart text.
pub fn mermaid(j: &Journey) -> String {
    let mut out = format!("flowchart TD\n  start([{}]) --> s0\n", j.name);
    for i in 0..j.steps.len() {
        out.push_str(&format!(
            "  s{i}[\"{}\"]\n",
            node_label(j, i).replace('"', "'")
        ));
    }
    out.push_str("  done([completed])\n");
    for e in edges(j) {
        let to = e.to.map_or("done".to_string(), |t| format!("s{t}"));
        out.push_str(&format!(
            "  s{} -->|\"{}\"| {to}\n",
            e.from,
            e.label.replace('"', "'")
        ));
    }
    out
}

/// Graphviz dot text.
pub fn dot(j: &Journey) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  start [shape=oval, label=\"{}\"];\n  start -> s0;\n",
        j.name, j.name
    );
    for i in 0..j.steps.len() {
        out.push_str(&format!(
            "  s{i} [shape=box, label=\"{}\"];\n",
            node_label(j, i).replace('"', "'")
        ));
    }
    out.push_str("  done [shape=oval, label=\"completed\"];\n");
    for e in edges(j) {
        let to = e.to.map_or("done".to_string(), |t| format!("s{t}"));
        out.push_str(&format!(
            "  s{} -> {to} [label=\"{}\"];\n",
            e.from,
            e.label.replace('"', "'")
        ));
    }
    out.push_str("}\n");
    out
}
