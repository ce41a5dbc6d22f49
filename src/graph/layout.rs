//! A small layered layout for journey graphs (tens of nodes): ranks from the longest path over
//! the edges that go forward, each rank ordered by where its parents stand, then boxes placed
//! row by row. Edges that go back (a `goto` to an earlier step) are left to the drawing, which
//! routes them around the side.

/// Room between two boxes of one rank, and between ranks.
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 26.0;
/// Room around the drawing.
pub const MARGIN: f64 = 16.0;
/// The width of a bend point that an edge crossing a rank takes there.
const BEND: f64 = 10.0;

/// A placed box: its top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Rect {
    /// The middle of the box, across.
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }

    /// The middle of the box, down.
    pub fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }

    /// The bottom edge.
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    /// The right edge.
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
}

/// Where everything went.
#[derive(Debug, Clone)]
pub struct Layout {
    /// One box per node, in the order the nodes were given.
    pub boxes: Vec<Rect>,
    /// Each node's rank (row), from 0 at the top.
    pub ranks: Vec<usize>,
    /// For each edge given, the points it bends at on the ranks it crosses (empty for an edge
    /// to the next rank, or one that goes back up).
    pub bends: Vec<Vec<(f64, f64)>>,
    /// The drawing's size.
    pub width: f64,
    /// The drawing's height.
    pub height: f64,
}

impl Layout {
    /// True when the edge `from → to` goes up or across (drawn around the side).
    pub fn goes_back(&self, from: usize, to: usize) -> bool {
        self.ranks[to] <= self.ranks[from]
    }
}

/// Lays out nodes of the given sizes `(width, height)` joined by `edges`, `root` at the top.
/// An edge that crosses ranks gets a bend point on each, placed like a narrow node so that it
/// passes between boxes rather than through them.
pub fn layout(sizes: &[(f64, f64)], edges: &[(usize, usize)], root: usize) -> Layout {
    let n = sizes.len();
    let forward = forward_edges(n, edges, root);
    let mut ranks = ranks(n, &forward);
    let mut sizes = sizes.to_vec();
    let mut chains: Vec<(usize, usize)> = Vec::new();
    let mut bend_nodes: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (k, &(a, b)) in edges.iter().enumerate() {
        if !forward.contains(&(a, b)) || ranks[b] <= ranks[a] + 1 {
            if forward.contains(&(a, b)) {
                chains.push((a, b));
            }
            continue;
        }
        let mut prev = a;
        for r in ranks[a] + 1..ranks[b] {
            let d = sizes.len();
            sizes.push((BEND, 0.0));
            ranks.push(r);
            chains.push((prev, d));
            bend_nodes[k].push(d);
            prev = d;
        }
        chains.push((prev, b));
    }
    let rows = rows(&ranks, &chains, &sizes);
    let mut placed = place(&sizes, &ranks, &rows, &chains);
    placed.bends = bend_nodes
        .iter()
        .map(|ds| {
            ds.iter()
                .map(|&d| (placed.boxes[d].cx(), placed.boxes[d].cy()))
                .collect()
        })
        .collect();
    placed.boxes.truncate(n);
    placed.ranks.truncate(n);
    placed
}
/// The edges that do not close a cycle, found by a depth-first walk from `root` (then from any
/// node it did not reach, in order).
fn forward_edges(n: usize, edges: &[(usize, usize)], root: usize) -> Vec<(usize, usize)> {
    let mut out_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        out_of[a].push(b);
    }
    // 0 unseen, 1 on the walk's path, 2 done.
    let mut mark = vec![0u8; n];
    let mut forward = Vec::new();
    let starts = std::iter::once(root).chain(0..n);
    for s in starts {
        if mark[s] != 0 {
            continue;
        }
        let mut stack = vec![(s, 0usize)];
        mark[s] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            match out_of[v].get(*next).copied() {
                Some(w) => {
                    *next += 1;
                    if mark[w] == 1 {
                        continue; // closes a cycle: drawn as a back edge
                    }
                    forward.push((v, w));
                    if mark[w] == 0 {
                        mark[w] = 1;
                        stack.push((w, 0));
                    }
                }
                None => {
                    mark[v] = 2;
                    stack.pop();
                }
            }
        }
    }
    forward
}

/// Each node's rank: the longest path to it over the forward edges (which hold no cycle).
fn ranks(n: usize, forward: &[(usize, usize)]) -> Vec<usize> {
    let mut incoming = vec![0usize; n];
    for &(_, b) in forward {
        incoming[b] += 1;
    }
    let mut rank = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&v| incoming[v] == 0).rev().collect();
    while let Some(v) = ready.pop() {
        for &(a, b) in forward.iter().filter(|(a, _)| *a == v) {
            rank[b] = rank[b].max(rank[a] + 1);
            incoming[b] -= 1;
            if incoming[b] == 0 {
                ready.push(b);
            }
        }
    }
    rank
}

/// The nodes of each rank, ordered by the mean place of their parents (two sweeps down).
fn rows(ranks: &[usize], forward: &[(usize, usize)], sizes: &[(f64, f64)]) -> Vec<Vec<usize>> {
    let depth = ranks.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (v, &r) in ranks.iter().enumerate() {
        rows[r].push(v);
    }
    for _ in 0..3 {
        let xs = centres(sizes, &rows, forward);
        for row in rows.iter_mut().skip(1) {
            let key = |v: usize| parent_mean(v, forward, &xs).unwrap_or(xs[v]);
            row.sort_by(|a, b| key(*a).total_cmp(&key(*b)));
        }
    }
    rows
}

/// The mean centre of `v`'s parents, when it has any.
fn parent_mean(v: usize, forward: &[(usize, usize)], xs: &[f64]) -> Option<f64> {
    let (sum, n) = forward
        .iter()
        .filter(|(_, b)| *b == v)
        .fold((0.0, 0usize), |(s, n), (a, _)| (s + xs[*a], n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Each node's centre across: a rank's nodes in their order, each as near the mean of its
/// parents as the boxes before it allow, the rank then shifted to sit under its parents.
fn centres(sizes: &[(f64, f64)], rows: &[Vec<usize>], forward: &[(usize, usize)]) -> Vec<f64> {
    let mut xs = vec![0.0; sizes.len()];
    for row in rows {
        let wanted: Vec<Option<f64>> = row.iter().map(|&v| parent_mean(v, forward, &xs)).collect();
        let mut right = f64::NEG_INFINITY;
        let mut placed = Vec::with_capacity(row.len());
        for (k, &v) in row.iter().enumerate() {
            let half = sizes[v].0 / 2.0;
            let least = right + GAP_X + half;
            let x = wanted[k].unwrap_or(least).max(least);
            let x = if x.is_finite() { x } else { half };
            placed.push(x);
            right = x + half;
        }
        let (sum, n) = wanted
            .iter()
            .zip(&placed)
            .filter_map(|(w, x)| w.map(|w| w - x))
            .fold((0.0, 0usize), |(s, n), d| (s + d, n + 1));
        let shift = if n > 0 { sum / n as f64 } else { 0.0 };
        for (k, &v) in row.iter().enumerate() {
            xs[v] = placed[k] + shift;
        }
    }
    xs
}

fn place(
    sizes: &[(f64, f64)],
    ranks: &[usize],
    rows: &[Vec<usize>],
    forward: &[(usize, usize)],
) -> Layout {
    let xs = centres(sizes, rows, forward);
    let left = xs
        .iter()
        .zip(sizes)
        .map(|(x, s)| x - s.0 / 2.0)
        .fold(f64::INFINITY, f64::min);
    let left = if left.is_finite() { left } else { 0.0 };
    let mut boxes = vec![
        Rect {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0
        };
        sizes.len()
    ];
    let mut y = MARGIN;
    for row in rows {
        let tallest = row.iter().map(|&v| sizes[v].1).fold(0.0, f64::max);
        for &v in row {
            let (w, h) = sizes[v];
            boxes[v] = Rect {
                x: xs[v] - w / 2.0 - left + MARGIN,
                y: y + (tallest - h) / 2.0,
                w,
                h,
            };
        }
        y += tallest + GAP_Y;
    }
    let width = boxes.iter().map(Rect::right).fold(0.0, f64::max) + MARGIN;
    let height = (y - GAP_Y + MARGIN).max(MARGIN * 2.0);
    Layout {
        boxes,
        ranks: ranks.to_vec(),
        bends: Vec::new(),
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: &Rect, b: &Rect) -> bool {
        a.x < b.right() && b.x < a.right() && a.y < b.bottom() && b.y < a.bottom()
    }

    #[test]
    fn ranks_follow_the_longest_path_and_boxes_never_overlap() {
        // 0 → 1 → 2 → 3, 0 → 3, 2 → 1 (a goto back), 1 → 4.
        let sizes = vec![(120.0, 40.0); 5];
        let edges = [(0, 1), (1, 2), (2, 3), (0, 3), (2, 1), (1, 4)];
        let l = layout(&sizes, &edges, 0);
        assert_eq!(l.ranks, vec![0, 1, 2, 3, 2]);
        assert!(l.goes_back(2, 1));
        assert!(!l.goes_back(0, 3));
        for a in 0..5 {
            for b in a + 1..5 {
                assert!(
                    !overlap(&l.boxes[a], &l.boxes[b]),
                    "{a} and {b} overlap: {l:?}"
                );
            }
            assert!(l.boxes[a].x >= MARGIN && l.boxes[a].right() <= l.width);
            assert!(l.boxes[a].bottom() <= l.height);
        }
        // Rows go down.
        assert!(l.boxes[0].bottom() < l.boxes[1].y && l.boxes[2].bottom() < l.boxes[3].y);
    }

    #[test]
    fn a_self_loop_and_an_unreached_node_are_placed() {
        let l = layout(&[(50.0, 20.0); 3], &[(0, 0), (0, 1)], 0);
        assert_eq!(l.ranks, vec![0, 1, 0]);
        assert!(!overlap(&l.boxes[0], &l.boxes[2]));
    }
}
