//! Files inside one module: no circle of imports between the files of a top-level
//! module (`storage/commit.rs` → `storage/sqlite_commit.rs` → `storage/commit.rs` was one).
//!
//! A file's imports are its `super::…` and `crate::…` paths, resolved to the deepest file
//! module they name (`super::batch::Batch` in `storage/commit.rs` is `storage::batch`).
//! An import between a module and one of its ancestors is left out: a `mod.rs` declares
//! its children and they use what it holds, which is how Rust modules are built, not a
//! circle between siblings. Unit tests (`#[cfg(test)] mod tests`, and files of a `tests`
//! module) are left out too: they are compiled only for tests.

use super::{Import, circle, module_of, rust_files};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file module's path under `src/`: `storage/commit.rs` → `["storage", "commit"]`,
/// `storage/history/mod.rs` → `["storage", "history"]`.
fn file_module(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut path: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path.last().is_some_and(|l| l == "mod") {
        path.pop();
    }
    (path.len() > 1 || module_of(src, file).is_some()).then_some(path)
}

/// `code` without line comments and without its inline unit tests.
fn code_only(code: &str) -> String {
    let mut out = String::new();
    let mut lines = code.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests {"))
        {
            break;
        }
        out.push_str(line.find("//").map_or(line, |i| &line[..i]));
        out.push('\n');
    }
    out
}

/// The paths at the start of `rest` (`a::b::C`, or a `{a::B, c}` group, groups nested),
/// each as its identifier segments.
fn paths_after(rest: &str) -> Vec<Vec<String>> {
    fn ident(s: &str) -> (&str, &str) {
        let n = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        s.split_at(n)
    }
    fn parse(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let s = s.trim_start();
        if let Some(group) = s.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        parse(&group[start..i], prefix, out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parse(&group[start..i], prefix, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let (name, after) = ident(s);
        if name.is_empty() {
            if !prefix.is_empty() {
                out.push(prefix.to_vec());
            }
            return;
        }
        let mut path = prefix.to_vec();
        path.push(name.to_owned());
        match after.trim_start().strip_prefix("::") {
            Some(more) => parse(more, &path, out),
            None => out.push(path),
        }
    }
    let mut out = Vec::new();
    parse(rest, &[], &mut out);
    out
}

/// The module paths `code` (of the file module `here`) names with `super::` and
/// `crate::` paths, resolved to absolute paths, each with its line.
fn module_paths(here: &[String], code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let Some(i) = rest.find(['s', 'c']) else {
            break;
        };
        let start = at + i;
        at = start + 1;
        let preceded_by_ident = code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        if preceded_by_ident {
            continue;
        }
        let (mut base, mut after) = if let Some(a) = code[start..].strip_prefix("crate::") {
            (Vec::new(), a)
        } else if let Some(a) = code[start..].strip_prefix("super::") {
            (here[..here.len().saturating_sub(1)].to_vec(), a)
        } else {
            continue;
        };
        while let Some(a) = after.strip_prefix("super::") {
            base.pop();
            after = a;
        }
        let line = code[..start].matches('\n').count() + 1;
        for p in paths_after(after) {
            let mut full = base.clone();
            full.extend(p);
            out.push((line, full));
        }
        at = code.len() - after.len();
    }
    out
}

/// One import between two files of the same top-level module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FileImport {
    from: String,
    to: String,
    at: String,
}

/// `a::b` as the file it is read from, for messages: `src/a/b.rs` or `src/a/b/mod.rs`
/// (`root` is `src` or another crate's).
fn shown(root: &str, files: &BTreeMap<Vec<String>, PathBuf>, module: &[String]) -> String {
    files.get(module).map_or_else(
        || module.join("::"),
        |f| Path::new(root).join(f).display().to_string(),
    )
}

/// Every import between two files of one top-level module, neither an ancestor of the
/// other (see above), as file names.
fn file_imports(src: &Path, root: &str) -> Vec<FileImport> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    paths.sort();
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .filter_map(|f| Some((file_module(src, f)?, f.strip_prefix(src).ok()?.to_owned())))
        .filter(|(m, _)| !m.iter().any(|segment| segment == "tests"))
        .collect();
    let mut out = Vec::new();
    for (here, file) in &files {
        let code = std::fs::read_to_string(src.join(file)).expect("a source file is readable");
        for (line, path) in module_paths(here, &code_only(&code)) {
            // The deepest file module the path names.
            let Some(to) = (1..=path.len())
                .rev()
                .map(|n| &path[..n])
                .find(|p| files.contains_key(*p))
            else {
                continue;
            };
            let related = to.starts_with(here) || here.starts_with(to);
            if to[0] == here[0] && !related {
                out.push(FileImport {
                    from: shown(root, &files, here),
                    to: shown(root, &files, to),
                    at: format!("{root}/{}:{line}", file.display()),
                });
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.from == b.from && a.to == b.to);
    out
}

/// Every circle of imports between files, each as `a.rs → b.rs → a.rs` with the
/// imports that make it.
fn file_circles(imports: &[FileImport]) -> Vec<String> {
    let as_modules: Vec<Import> = imports
        .iter()
        .map(|i| Import {
            from: i.from.clone(),
            to: i.to.clone(),
            at: i.at.clone(),
        })
        .collect();
    let mut found = Vec::new();
    let mut left = as_modules;
    // One circle at a time: report it, drop one of its edges, look again.
    while let Some(c) = circle(&left) {
        let steps: Vec<&str> = c.split(" → ").collect();
        let used: Vec<String> = steps
            .windows(2)
            .filter_map(|w| left.iter().find(|i| i.from == w[0] && i.to == w[1]))
            .map(|i| format!("    {} imports {}", i.at, i.to))
            .collect();
        found.push(format!("{c}\n{}", used.join("\n")));
        left.retain(|i| !(i.from == steps[0] && i.to == steps[1]));
    }
    found
}

#[test]
fn files_inside_a_module_import_each_other_in_no_circle() {
    // The hub's `src/`, and the source of every workspace crate beside it that has one.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = file_imports(&dir.join("src"), "src");
    for entry in std::fs::read_dir(dir).expect("the package directory is readable") {
        let crate_src = entry.expect("a directory entry").path().join("src");
        if crate_src.is_dir()
            && crate_src
                .parent()
                .is_some_and(|p| p.join("Cargo.toml").exists())
        {
            let name = crate_src
                .parent()
                .and_then(Path::file_name)
                .expect("a name");
            let root = format!("{}/src", name.to_string_lossy());
            all.extend(file_imports(&crate_src, &root));
        }
    }
    assert!(
        all.len() > 50,
        "the check read too few imports between files: {}",
        all.len()
    );
    let circles = file_circles(&all);
    assert!(
        circles.is_empty(),
        "a circle of imports between files of one module (make the arrows point one way: \
         move the shared item into a file of its own, or into the file that is used):\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_file_check_resolves_super_and_crate_paths_and_catches_a_circle() {
    let here = ["storage".to_owned(), "commit".to_owned()];
    let code = code_only(
        "use super::batch::Batch;\n\
         use super::{db::{Db, X}, rollup::{self, Level}};\n\
         use crate::storage::alerts::Key; // super::not_this\n\
         pub(super) fn f() { crate::domain::Timestamp::now(); }\n\
         #[cfg(test)]\n\
         mod tests { use super::super::hidden; }\n",
    );
    let paths: Vec<String> = module_paths(&here, &code)
        .into_iter()
        .map(|(line, p)| format!("{line}:{}", p.join("::")))
        .collect();
    assert_eq!(
        paths,
        [
            "1:storage::batch::Batch",
            "2:storage::db::Db",
            "2:storage::db::X",
            "2:storage::rollup::self",
            "2:storage::rollup::Level",
            "3:storage::alerts::Key",
            "4:domain::Timestamp::now",
        ]
    );
    let fi = |from: &str, to: &str| FileImport {
        from: from.into(),
        to: to.into(),
        at: "x.rs:1".into(),
    };
    assert!(file_circles(&[fi("a/x.rs", "a/y.rs")]).is_empty());
    let circles = file_circles(&[
        fi("src/a/x.rs", "src/a/y.rs"),
        fi("src/a/y.rs", "src/a/z.rs"),
        fi("src/a/z.rs", "src/a/x.rs"),
    ]);
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert!(
        circles[0].starts_with("src/a/x.rs → src/a/y.rs → src/a/z.rs → src/a/x.rs\n"),
        "{circles:?}"
    );
    assert!(
        circles[0].contains("\n    x.rs:1 imports src/a/z.rs"),
        "{circles:?}"
    );
}
