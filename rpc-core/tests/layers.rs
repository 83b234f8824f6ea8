//! rpc-core's modules import one way only: each imports modules of lower layers (the
//! module map in `src/lib.rs`), never one of its own layer or above.

use std::collections::BTreeMap;
use std::path::Path;

/// The module map of `src/lib.rs`, bottom layer first.
const LAYERS: &[&[&str]] = &[
    &["error", "limits"],
    &["buf", "endpoint", "schema"],
    &["transport"],
    &["framing", "codec"],
    &["wire", "flow"],
    &["dispatch"],
    &["sink"],
    &["connection"],
    &["router"],
    &["client", "async_client"],
    &["server", "supervisor"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| {
            panic!(
                "module `{module}` is not in the map; add it to LAYERS and to the map in src/lib.rs"
            )
        })
}

/// The top-level `crate::` modules a source file refers to outside comments and tests.
fn references(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.push(name);
            }
        }
    }
    found
}

/// Every `.rs` file below `dir`, by module path (`transport/mem`, `endpoint/mod`).
fn read_modules(dir: &Path, prefix: &str, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            read_modules(&path, &format!("{prefix}{stem}/"), files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.insert(
                format!("{prefix}{stem}"),
                std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    read_modules(&src, "", &mut files);
    let mut wrong = Vec::new();
    for (file, source) in &files {
        // A submodule belongs to its parent's layer.
        let module = file.split('/').next().unwrap();
        if module == "lib" {
            continue;
        }
        for dep in references(source) {
            if dep != module && layer(&dep) >= layer(module) {
                wrong.push(format!(
                    "{file}.rs refers to crate::{dep} (layer {} ≥ {})",
                    layer(&dep),
                    layer(module)
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports against the module map:\n{}",
        wrong.join("\n")
    );
}
