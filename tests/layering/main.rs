//! The layering check (run by `cargo test`, so by CI): reads every `crate::` path in
//! `src/` and in `telehub-client/src/`, and fails on an import that points up the layers
//! below, or on a circle of imports between top-level modules (within one layer too).
//!
//! The layers, bottom up (`src/lib.rs` and `telehub-client/src/lib.rs` document what each
//! module owns): 1 `domain`, `shutdown`, `backoff` · 2 `protocol`, `auth`, `tls`, `config` · 3
//! `storage`, `metrics`, `client`, `sim` · 4 `ingest`, `live`, `presence`, `sessions`, `alerts`,
//! `commands`, `devconfig`, `influxql`, `export` · 5 `server`, `mqtt`, `bridge` · 6 `hub`, `cli`. `domain`, `protocol`, `client` and `sim`
//! live in `telehub-client` and the hub re-exports them, so the hub's `crate::domain`
//! paths keep their layer; `tls` is a module in both crates.

/// The same for the files of one top-level module: no circle of imports between them.
mod files;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("domain", 1),
    ("shutdown", 1),
    ("backoff", 1),
    ("protocol", 2),
    ("auth", 2),
    ("tls", 2),
    ("config", 2),
    ("storage", 3),
    ("metrics", 3),
    ("client", 3),
    ("sim", 3),
    ("ingest", 4),
    ("live", 4),
    ("presence", 4),
    ("sessions", 4),
    ("alerts", 4),
    ("commands", 4),
    ("devconfig", 4),
    ("influxql", 4),
    ("export", 4),
    ("server", 5),
    ("mqtt", 5),
    ("bridge", 5),
    ("hub", 6),
    ("cli", 6),
];

/// The top-level modules of `telehub-client`; its files may name no other.
const CLIENT_MODULES: &[&str] = &[
    "domain", "shutdown", "backoff", "protocol", "tls", "client", "sim",
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// One import of another top-level module: where it is and what it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    from: String,
    to: String,
    at: String,
}

/// The top-level modules that `code` names with `crate::` paths (comments skipped),
/// including every module of a `use crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let preceded_by_ident = rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if !preceded_by_ident {
                if let Some(group) = after.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for part in group[..end].split(',') {
                        let name: String = part
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            out.push((n + 1, name));
                        }
                    }
                } else {
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push((n + 1, name));
                    }
                }
            }
            rest = after;
        }
    }
    out
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn imports(src: &Path) -> Vec<Import> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let Some(from) = module_of(src, &file) else {
            continue;
        };
        let code = std::fs::read_to_string(&file).expect("a source file is readable");
        for (line, to) in crate_paths(&code) {
            if to != from {
                out.push(Import {
                    from: from.clone(),
                    to,
                    at: format!("{}:{line}", file.display()),
                });
            }
        }
    }
    out
}

/// Every import that names an unknown module or points up the layers.
fn upward(imports: &[Import]) -> Vec<String> {
    let mut bad = Vec::new();
    for i in imports {
        match (layer(&i.from), layer(&i.to)) {
            (Some(a), Some(b)) if b > a => bad.push(format!(
                "{}: `{}` (layer {a}) imports `{}` (layer {b}), which is above it",
                i.at, i.from, i.to
            )),
            (Some(_), Some(_)) => {}
            (None, _) => bad.push(format!(
                "{}: module `{}` has no layer: add it to LAYERS and to src/lib.rs",
                i.at, i.from
            )),
            (_, None) => bad.push(format!(
                "{}: `{}` imports `crate::{}`, which has no layer",
                i.at, i.from, i.to
            )),
        }
    }
    bad
}

/// A circle of imports between top-level modules, if any, as `a → b → … → a`.
fn circle(imports: &[Import]) -> Option<String> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        edges.entry(&i.from).or_default().insert(&i.to);
    }
    fn visit<'a>(
        m: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut c = path[i..].to_vec();
            c.push(m);
            return Some(c.join(" → "));
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(c) = visit(m, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = imports(&src);
    assert!(
        all.len() > 50,
        "the check read too few imports: {}",
        all.len()
    );
    let bad = upward(&all);
    assert!(bad.is_empty(), "imports that point up:\n{}", bad.join("\n"));
}

#[test]
fn top_level_modules_import_each_other_in_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = imports(&src);
    if let Some(c) = circle(&all) {
        let used: Vec<&Import> = all
            .iter()
            .filter(|i| c.contains(&format!("{} → {}", i.from, i.to)))
            .collect();
        panic!("a circle of imports: {c}\n{used:#?}");
    }
}

#[test]
fn the_client_crate_imports_only_its_own_modules_down_the_layers_and_in_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("telehub-client/src");
    let all = imports(&src);
    assert!(
        all.len() > 20,
        "the check read too few imports: {}",
        all.len()
    );
    let foreign: Vec<&Import> = all
        .iter()
        .filter(|i| !CLIENT_MODULES.contains(&i.to.as_str()))
        .collect();
    assert!(foreign.is_empty(), "not in telehub-client: {foreign:#?}");
    let bad = upward(&all);
    assert!(bad.is_empty(), "imports that point up:\n{}", bad.join("\n"));
    if let Some(c) = circle(&all) {
        panic!("a circle of imports in telehub-client: {c}");
    }
}

fn import(from: &str, to: &str) -> Import {
    Import {
        from: from.into(),
        to: to.into(),
        at: "x.rs:1".into(),
    }
}

#[test]
fn the_check_sees_paths_in_groups_and_expressions_but_not_in_comments() {
    let code = "use crate::{domain::X, protocol};\n\
                // crate::hub in a comment\n\
                let s = crate::storage::open(); /// crate::cli\n\
                use mycrate::thing;\n";
    let names: Vec<String> = crate_paths(code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["domain", "protocol", "storage"]);
}

#[test]
fn an_upward_import_and_a_circle_are_caught() {
    assert!(upward(&[import("storage", "domain")]).is_empty());
    let bad = upward(&[import("storage", "server")]);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].contains("above"), "{bad:?}");
    assert_eq!(upward(&[import("nowhere", "domain")]).len(), 1);
    assert!(circle(&[import("live", "sessions")]).is_none());
    let c = circle(&[
        import("live", "sessions"),
        import("sessions", "ingest"),
        import("ingest", "live"),
    ])
    .expect("a circle");
    assert_eq!(c, "ingest → live → sessions → ingest");
}
