//! Core's modules depend on each other without a circle: each module's non-test code, read as
//! text, names other modules through `crate::…` and `super::…` paths, and those edges form no
//! cycle. A parent's `pub use child::…` re-exports are not edges. A circle fails here with the
//! modules on it, before it grows into a tangle. Everything from a file's first `#[cfg(test)]`
//! on counts as test code (the house layout keeps tests at the end).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name (`webhooks::outbox`) → its source without tests, comments or string literals.
fn sources() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().map(String::as_str) == Some("mod") {
                parts.pop();
            }
            let name = parts.join("::");
            if name == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            out.insert(name, strip(code));
        }
    }
    out
}

/// The code without `//` comments and string literals (so prose naming a path is no edge).
fn strip(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// The `a::b::c` paths that follow each `prefix` in `code`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + prefix.len()..];
        let len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        if !before.is_some_and(|b| b.is_alphanumeric() || b == '_') {
            found.push(after[..len].trim_end_matches(':'));
        }
        rest = &after[len..];
    }
    found
}

/// The longest module that `path` starts with.
fn module_of(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("::"))
        .find(|m| modules.contains(m))
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut deps = BTreeMap::new();
    for (name, code) in &sources {
        let parent = name.rsplit_once("::").map(|(p, _)| p);
        let mut to = BTreeSet::new();
        let mut add = |target: Option<String>| {
            if let Some(t) = target
                && t != *name
                && !t.starts_with(&format!("{name}::"))
            {
                to.insert(t);
            }
        };
        for path in paths_after(code, "crate::") {
            add(module_of(&modules, path));
        }
        if let Some(parent) = parent {
            for path in paths_after(code, "super::") {
                add(module_of(&modules, &format!("{parent}::{path}")));
            }
        }
        // A parent naming its children (not in a `pub use` re-export) depends on them.
        for child in modules.iter().filter_map(|m| {
            m.strip_prefix(&format!("{name}::"))
                .filter(|c| !c.contains("::"))
        }) {
            let uses = code.match_indices(&format!("{child}::")).any(|(at, _)| {
                let line_start = code[..at].rfind('\n').map_or(0, |i| i + 1);
                !code[line_start..at].trim_start().starts_with("pub use")
                    && !code[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|b| b.is_alphanumeric() || b == '_' || b == ':')
            });
            if uses {
                to.insert(format!("{name}::{child}"));
            }
        }
        deps.insert(name.clone(), to);
    }
    deps
}

/// A cycle through `start`, if any: the path back to it.
fn cycle_from(deps: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in deps.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn core_modules_form_no_cycle() {
    let deps = edges();
    assert!(deps.len() > 30, "read {} modules", deps.len());
    assert!(
        deps["audit"].contains("webhooks::outbox"),
        "the scan must see known edges: {:?}",
        deps["audit"]
    );
    let cycles: Vec<Vec<String>> = deps.keys().filter_map(|m| cycle_from(&deps, m)).collect();
    assert!(cycles.is_empty(), "module cycles: {cycles:?}");
}

#[test]
fn the_scan_finds_a_cycle_when_there_is_one() {
    let mut deps = edges();
    deps.get_mut("webhooks::outbox")
        .unwrap()
        .insert("audit".into());
    let cycle = cycle_from(&deps, "audit").unwrap();
    assert_eq!(cycle.first().map(String::as_str), Some("audit"));
    assert_eq!(cycle.last().map(String::as_str), Some("audit"));
}
