//! The code's shape, checked: no cycle among the top-level modules of `src/` (read from the
//! `crate::NAME` paths and `use crate::{...}` lists outside `#[cfg(test)]` modules), so that
//! data flows one way. `cargo test structure` prints the edges of any cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::repo;

/// Each top-level module and the top-level modules it uses.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let path = regex::Regex::new(r"\bcrate::(\w+)").unwrap();
    let list = regex::Regex::new(r"use crate::\{([^}]*)\}").unwrap();
    for file in files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let mut used: Vec<String> = path.captures_iter(code).map(|c| c[1].to_string()).collect();
        for c in list.captures_iter(code) {
            used.extend(c[1].split(',').filter_map(|p| {
                let name = p.trim().split("::").next()?.trim();
                (!name.is_empty()).then(|| name.to_string())
            }));
        }
        let mine = edges.entry(top.clone()).or_default();
        mine.extend(used.into_iter().filter(|u| *u != top));
    }
    edges
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The modules that can reach `from` again, if any: a cycle through it.
fn cycle_through(from: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in edges.get(last).into_iter().flatten() {
            if next == from {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_module_cycles_in_src() {
    let edges = edges(&repo().join("src"));
    assert!(edges.len() > 10, "read the modules: {edges:?}");
    let cycles: Vec<String> = edges
        .keys()
        .filter_map(|m| cycle_through(m, &edges))
        .map(|c| format!("{} -> {}", c.join(" -> "), c[0]))
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle_through("a", &edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        cycle_through("a", &edges),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
}
