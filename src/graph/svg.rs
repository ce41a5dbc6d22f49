//! A journey drawn as SVG from [`super::layout`]: the entry conditions in a box at the top, a
//! box per step, the endings the edges reach, each edge with its label. With a run's [`Counts`]
//! (the HTML report's canvas) each box gains a line of counts and each edge how many entries took
//! it; failures are red and also marked in words, for readers without colour.

use std::fmt::Write as _;

use super::layout::{Layout, Rect, layout};
use super::{Edge, To, edges, endings, entry_lines, node_id, node_label};
use crate::journey::Journey;

/// A text line's height, and the width of one character at the drawing's font size (an
/// estimate: the boxes are sized before any browser measures the text).
const LINE: f64 = 17.0;
const CHAR: f64 = 7.0;
const PAD: f64 = 10.0;

/// The drawing's own style, so that it reads the same alone (`graph --format svg`) and inside
/// the HTML report.
const STYLE: &str = ".journey-graph text{fill:#1d1d1d}.journey-graph .title{font-weight:bold}\
.journey-graph .node rect{fill:#fff;stroke:#555}.journey-graph .start rect{fill:#eaf1fb}\
.journey-graph .ending rect{fill:#f2f2f2}.journey-graph .failed rect{fill:#fdecea;stroke:#b71c1c;stroke-width:2}\
.journey-graph .edge path{stroke:#555;stroke-width:1.4}.journey-graph .edge.failure path{stroke:#b71c1c;stroke-dasharray:5 3}\
.journey-graph .edge.unused path{stroke:#bbb}.journey-graph .label-bg{fill:#fff;opacity:.9}\
.journey-graph .step{cursor:pointer}";

/// What a run adds to the drawing.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// A line under the entry conditions: `12 entries · 2 holdout`.
    pub start: String,
    /// Entries that went from the entry conditions to the first step.
    pub start_edge: u64,
    /// A line of counts per step, and whether any entry failed there.
    pub steps: Vec<(String, bool)>,
    /// How many entries took each edge, in the order of [`super::edges`].
    pub edges: Vec<u64>,
}

/// A node of the drawing.
struct Node {
    /// The `data-node` name: `start`, `s3`, `completed`.
    id: String,
    /// The step id, for a step.
    step: Option<String>,
    lines: Vec<String>,
    class: &'static str,
}

/// One edge as drawn: the nodes it joins, its label (with a count), its class, and the whole
/// `when` or label text for the tooltip (none for the entry's own edge).
struct Link {
    from: usize,
    to: usize,
    label: String,
    class: &'static str,
    full: String,
}

/// The SVG of journey `j`; `counts` adds a run's numbers. Ids inside are prefixed with the
/// journey's name, so that several drawings can share one page. Each edge's label is laid out
/// as a small node of its own between the two boxes (as Graphviz does), so labels never overlap.
pub fn draw(j: &Journey, counts: Option<&Counts>) -> String {
    let edges = edges(j);
    let ends = endings(&edges);
    let nodes = nodes(j, counts, &ends, &edges);
    let links = links(j, counts, &edges, &ends, nodes.len());
    let mut sizes: Vec<(f64, f64)> = nodes.iter().map(size).collect();
    let mut pairs = Vec::new();
    for link in &links {
        let mid = sizes.len();
        let height = if link.label.is_empty() { 0.0 } else { 16.0 };
        sizes.push((label_width(&link.label), height));
        pairs.push((link.from, mid));
        pairs.push((mid, link.to));
    }
    let l = layout(&sizes, &pairs, 0);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="journey-graph" data-journey="{name}" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="journey {name}" font-family="sans-serif" font-size="12">
<style>{STYLE}</style>
<defs><marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>
"##,
        w = l.width + 60.0,
        h = l.height,
        name = esc(&j.name),
    );
    for (k, link) in links.iter().enumerate() {
        let ids = (&nodes[link.from].id, &nodes[link.to].id);
        draw_link(&mut out, &l, (k, nodes.len() + k), link, ids, &j.name);
    }
    for (v, node) in nodes.iter().enumerate() {
        draw_node(&mut out, node, &l.boxes[v]);
    }
    out.push_str("</svg>\n");
    out
}

/// The entry's edge to the first step (a journey always has one), then every edge of the graph.
fn links(
    j: &Journey,
    counts: Option<&Counts>,
    edges: &[Edge],
    ends: &[To],
    node_count: usize,
) -> Vec<Link> {
    let index = |to: To| match to {
        To::Step(i) => i + 1,
        end => 1 + j.steps.len() + ends.iter().position(|e| *e == end).unwrap_or(0),
    };
    let mut links = vec![Link {
        from: 0,
        to: 1.min(node_count - 1),
        label: counts.map_or(String::new(), |c| entries(c.start_edge)),
        class: "edge",
        full: String::new(),
    }];
    for (k, e) in edges.iter().enumerate() {
        let taken = counts.and_then(|c| c.edges.get(k).copied());
        let label = match taken {
            Some(n) => count_label(&short(&e.label), n),
            None => short(&e.label),
        };
        links.push(Link {
            from: e.from + 1,
            to: index(e.to),
            label,
            class: edge_class(e, taken),
            full: e.label.clone(),
        });
    }
    links
}

/// One edge: its group, its path through its label node `mid` (the `k`th link), the label.
fn draw_link(
    out: &mut String,
    l: &Layout,
    (k, mid): (usize, usize),
    link: &Link,
    (from, to): (&String, &String),
    journey: &str,
) {
    let title = match link.full.is_empty() {
        true => String::new(),
        false => format!("<title>{}</title>", esc(&link.full)),
    };
    let _ = writeln!(
        out,
        r#"<g class="{}" data-from="{}" data-to="{}" data-label="{}">{title}"#,
        link.class,
        esc(from),
        esc(to),
        esc(&link.full),
    );
    let path = route(l, (2 * k, 2 * k + 1), (link.from, mid, link.to));
    let _ = writeln!(
        out,
        r##"<path d="{path}" fill="none" marker-end="url(#arrow-{})"/>"##,
        esc(journey)
    );
    if !link.label.is_empty() {
        let r = l.boxes[mid];
        let _ = writeln!(
            out,
            r#"<rect class="label-bg" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3"/><text class="label" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
            r.x,
            r.y,
            r.w,
            r.h,
            r.cx(),
            r.y + 12.0,
            esc(&link.label)
        );
    }
    out.push_str("</g>\n");
}

/// A label cut to fit the drawing; the whole text is the edge's tooltip.
fn short(label: &str) -> String {
    const MAX: usize = 32;
    match label.chars().count() > MAX {
        true => format!("{}…", label.chars().take(MAX - 1).collect::<String>()),
        false => label.to_string(),
    }
}

fn label_width(label: &str) -> f64 {
    match label.is_empty() {
        true => 2.0,
        false => label.chars().count() as f64 * 6.2 + 10.0,
    }
}

/// The path of one edge `a → mid → b` (`mid` its label): down through the bends the layout
/// gave it; a part that goes back up runs around the right of the boxes it joins.
fn route(
    l: &Layout,
    (first, second): (usize, usize),
    (a, mid, b): (usize, usize, usize),
) -> String {
    let (from, label, to) = (l.boxes[a], l.boxes[mid], l.boxes[b]);
    let mut points = vec![(from.cx(), from.bottom())];
    points.extend(l.bends[first].iter().copied());
    let mut d = String::new();
    if l.goes_back(mid, b) {
        points.push((label.cx(), label.y));
        d.push_str(&curve(&points));
        let x = label.right().max(to.right()) + 30.0;
        let (y1, y2) = (label.cy(), to.cy());
        let _ = write!(
            d,
            " M{:.1},{y1:.1} C{x:.1},{y1:.1} {x:.1},{y2:.1} {:.1},{y2:.1}",
            label.right(),
            to.right()
        );
        return d;
    }
    points.push((label.cx(), label.cy()));
    points.extend(l.bends[second].iter().copied());
    points.push((to.cx(), to.y));
    curve(&points)
}

/// A smooth path through `points`, leaving and reaching each one downwards.
fn curve(points: &[(f64, f64)]) -> String {
    let mut d = format!("M{:.1},{:.1}", points[0].0, points[0].1);
    for w in points.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        let my = (y1 + y2) / 2.0;
        let _ = write!(d, " C{x1:.1},{my:.1} {x2:.1},{my:.1} {x2:.1},{y2:.1}");
    }
    d
}

/// The boxes: the entry conditions, each step, each ending reached.
fn nodes(j: &Journey, counts: Option<&Counts>, ends: &[To], edges: &[Edge]) -> Vec<Node> {
    let mut start = vec![j.name.clone()];
    start.extend(entry_lines(j));
    start.extend(counts.map(|c| c.start.clone()));
    let mut out = vec![Node {
        id: "start".into(),
        step: None,
        lines: start,
        class: "node start",
    }];
    for i in 0..j.steps.len() {
        let mut lines = vec![node_label(j, i)];
        let mut class = "node step";
        if let Some((line, failed)) = counts.and_then(|c| c.steps.get(i)) {
            lines.push(line.clone());
            if *failed {
                class = "node step failed";
            }
        }
        out.push(Node {
            id: format!("s{i}"),
            step: Some(j.steps[i].id.clone()),
            lines,
            class,
        });
    }
    for &end in ends {
        let mut lines = vec![node_id(end)];
        if let Some(c) = counts {
            let n: u64 = edges
                .iter()
                .zip(&c.edges)
                .filter(|(e, _)| e.to == end)
                .map(|(_, n)| n)
                .sum();
            lines.push(entries(n));
        }
        let class = match end {
            To::Failed | To::Stopped => "node ending failed",
            _ => "node ending",
        };
        out.push(Node {
            id: node_id(end),
            step: None,
            lines,
            class,
        });
    }
    out
}

fn entries(n: u64) -> String {
    match n {
        1 => "1 entry".into(),
        n => format!("{n} entries"),
    }
}

/// `success · 4`, or the count alone on an unlabelled edge.
fn count_label(label: &str, n: u64) -> String {
    match label.is_empty() {
        true => entries(n),
        false => format!("{label} · {n}"),
    }
}

fn edge_class(e: &Edge, taken: Option<u64>) -> &'static str {
    match (e.on_failure, taken) {
        (true, Some(n)) if n > 0 => "edge failure taken",
        (true, _) => "edge failure",
        (false, Some(0)) => "edge unused",
        (false, _) => "edge",
    }
}

fn size(node: &Node) -> (f64, f64) {
    let longest = node
        .lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    (
        (longest as f64 * CHAR + 2.0 * PAD).max(90.0),
        node.lines.len() as f64 * LINE + PAD,
    )
}

fn draw_node(out: &mut String, node: &Node, r: &Rect) {
    let step = node
        .step
        .as_deref()
        .map(|s| format!(r#" data-step="{}""#, esc(s)))
        .unwrap_or_default();
    let round = if node.class.contains("step") { 4 } else { 16 };
    let _ = writeln!(
        out,
        r#"<g class="{}" data-node="{}"{step}><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{round}"/>"#,
        node.class,
        esc(&node.id),
        r.x,
        r.y,
        r.w,
        r.h
    );
    for (k, line) in node.lines.iter().enumerate() {
        let class = match k {
            0 => "title",
            _ if k + 1 == node.lines.len() && node.class.contains("step") => "counts",
            _ => "detail",
        };
        let _ = writeln!(
            out,
            r#"<text class="{class}" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            r.cx(),
            r.y + PAD / 2.0 + LINE * (k as f64 + 0.75),
            esc(line)
        );
    }
    out.push_str("</g>\n");
}

/// Escapes text for XML and HTML.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
