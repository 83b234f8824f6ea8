//! No two source files of a crate import each other: every crate's modules form layers
//! (rpc-core's are named in its module map and checked by `rpc-core/tests/layers.rs`).
//!
//! A file's references are read as text: `crate::a::b` names module `a::b` (or the
//! longest module of that path that exists), `super::x` names the sibling `x` or else
//! the parent, and a `mod.rs`/`lib.rs` that `use`s a child names it. Comments and
//! `#[cfg(test)]` code are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source roots, from the workspace root.
const CRATES: &[&str] = &[
    "src",
    "rpc-core/src",
    "transports/src",
    "rpc-macros/src",
    "bench/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `root` (`shm/conn.rs` → `shm::conn`, `lib.rs` → ``).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Identifiers in `s` following `prefix`, as paths (`crate::a::b` → `["a", "b"]`).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<String> = path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !segments.is_empty() {
            found.push(segments);
        }
    }
    found
}

#[test]
fn no_two_files_import_each_other() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut mutual = Vec::new();
    for krate in CRATES {
        let root = workspace.join(krate);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        let modules: BTreeMap<String, (PathBuf, Vec<String>)> = files
            .iter()
            .map(|f| {
                let m = module_of(&root, f);
                (m.join("::"), (f.clone(), m))
            })
            .collect();
        let known = |path: &[String]| -> String {
            (1..=path.len())
                .rev()
                .map(|k| path[..k].join("::"))
                .find(|p| modules.contains_key(p))
                .unwrap_or_default()
        };
        let mut deps: BTreeMap<&String, BTreeSet<String>> = BTreeMap::new();
        for (name, (file, parts)) in &modules {
            let source = std::fs::read_to_string(file).unwrap();
            let code: String = source
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            let is_dir_module = file
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
            let parent = &parts[..parts.len().saturating_sub(1)];
            let mut set = BTreeSet::new();
            for path in paths_after(&code, "crate::") {
                set.insert(known(&path));
            }
            for path in paths_after(&code, "super::") {
                let sibling: Vec<String> = parent.iter().cloned().chain(path).collect();
                set.insert(known(&sibling));
            }
            if is_dir_module {
                for path in paths_after(&code, "use ") {
                    let child: Vec<String> = parts.iter().cloned().chain(path).collect();
                    let k = known(&child);
                    if k.len() > name.len() {
                        set.insert(k);
                    }
                }
            }
            set.remove(name);
            deps.insert(name, set);
        }
        for (a, da) in &deps {
            for b in da {
                if a.as_str() < b.as_str() && deps.get(b).is_some_and(|db| db.contains(*a)) {
                    mutual.push(format!("{krate}: `{a}` <-> `{b}`"));
                }
            }
        }
    }
    assert!(
        mutual.is_empty(),
        "files that import each other:\n{}",
        mutual.join("\n")
    );
}
