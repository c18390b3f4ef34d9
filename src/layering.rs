//! The parts of `src/` and who may import whom (docs/architecture.md), checked on
//! the source itself: no import circle between the top-level modules, and none of
//! the imports the architecture forbids. Test code is left out (a test may drive a
//! part through the use cases above it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports the architecture forbids: `(part, parts it never imports)`.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The workflow carries stored work out; it never calls back into a use case or
    // knows who asked.
    (
        "workflow",
        &[
            "service",
            "api",
            "http",
            "grpc",
            "console",
            "downstream",
            "auth",
            "edge",
            "startup",
            "config",
        ],
    ),
    // The use cases know no transport, no auth layer, no wiring.
    (
        "service",
        &[
            "api",
            "http",
            "grpc",
            "console",
            "downstream",
            "auth",
            "edge",
            "startup",
            "config",
        ],
    ),
    ("domain", &["*"]),
    ("protocol", &["*"]),
    ("store", &["*except domain"]),
    ("metrics", &["*except domain"]),
    (
        "billmanager",
        &[
            "service",
            "workflow",
            "store",
            "http",
            "grpc",
            "console",
            "downstream",
        ],
    ),
    ("auth", &["service"]),
    // The transports call the core; they never reach past it.
    ("http", &["store", "workflow", "billmanager"]),
    ("grpc", &["store", "workflow", "billmanager"]),
    ("downstream", &["store", "workflow", "http"]),
    ("console", &["store", "workflow", "http"]),
    // Integrations are clients of the public API.
    ("watcher", &["service", "store", "workflow"]),
    ("platform", &["service", "store", "workflow"]),
];

/// Every top-level module of `src/` and the top-level modules its non-test code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let name = stem.to_owned();
        if ["main", "lib", "bin", "layering"].contains(&name.as_str()) {
            continue;
        }
        let files = if path.is_dir() {
            rust_files(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            vec![path.clone()]
        } else {
            continue;
        };
        let mut named = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            named.extend(crate_paths(&code_of(&text)));
        }
        named.remove(&name);
        modules.insert(name, named);
    }
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    for named in modules.values_mut() {
        named.retain(|m| known.contains(m));
    }
    modules
}

/// The `.rs` files under `dir`, test files left out.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let is_test =
            name == "tests.rs" || name.starts_with("tests_") || name.ends_with("_tests.rs");
        if name.ends_with(".rs") && !is_test {
            out.push(path);
        }
    }
    out
}

/// The code of a file: comments and an inline `mod tests { … }` at the end left out.
fn code_of(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests {")
        .map_or(text, |end| &text[..end]);
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names: `crate::x…` and `use crate::{x…, y…}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            // Top-level items of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            out.insert(ident(group[start..].trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// A circle of imports, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_paths_of_a_file_are_read_with_groups_and_without_comments() {
    let code = code_of(
        "use crate::domain::{A, B};\nuse crate::{store::Store, billmanager::{X, Y}};\n// crate::http\nlet x = crate::metrics::order(); // crate::grpc\n#[cfg(test)]\nmod tests {\n    use crate::service;\n}\n",
    );
    let paths: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(paths, ["billmanager", "domain", "metrics", "store"]);
}

#[test]
fn a_circle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circle(&graph).expect("a circle").len(), 4);
    let mut acyclic = graph;
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(circle(&acyclic), None);
}

#[test]
fn no_import_circle_between_the_top_level_modules() {
    let graph = imports();
    assert!(graph.contains_key("workflow") && graph.contains_key("service"));
    if let Some(found) = circle(&graph) {
        panic!("import circle: {}", found.join(" → "));
    }
}

#[test]
fn no_part_imports_what_the_architecture_forbids() {
    let graph = imports();
    let mut broken = Vec::new();
    for (part, never) in FORBIDDEN {
        let named = graph.get(*part).expect("a part of src/");
        for other in named {
            let forbidden = never.iter().any(|n| match *n {
                "*" => true,
                rule => match rule.strip_prefix("*except ") {
                    Some(allowed) => other != allowed,
                    None => rule == other,
                },
            });
            if forbidden {
                broken.push(format!("{part} imports {other}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
