//! Modules import only downward: the order ARCHITECTURE.md gives is the
//! one this test enforces, by reading every `crate::module` path in the
//! code (comments left out) of each top-level module.

use std::collections::BTreeSet;
use std::path::Path;

/// Top to bottom. A module may use any module below it, none above.
const LAYERS: &[&str] = &[
    "cli",
    "server",
    "admin",
    "proxy",
    "purge",
    "cache",
    "storage",
    "shared",
    "generations",
    "identity",
    "key",
    "route",
    "tags",
    "settings",
    "workspaces",
    "access_log",
    "metrics",
    "config",
    "jwt_keys",
    "allocator",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut seen = BTreeSet::new();
    let mut upward = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(level) = LAYERS.iter().position(|m| *m == module) else {
            panic!("src/{module} is in no layer: add it to LAYERS and to ARCHITECTURE.md");
        };
        seen.insert(module.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for part in code.split("crate::").skip(1) {
                let used: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == module {
                    continue;
                }
                match LAYERS.iter().position(|m| *m == used) {
                    Some(l) if l > level => {}
                    Some(_) => upward.push(format!(
                        "{}:{}: {module} uses {used}, a layer above it",
                        rel.display(),
                        n + 1
                    )),
                    None => {}
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run upward:\n{}",
        upward.join("\n")
    );
    assert_eq!(seen.len(), LAYERS.len(), "a layer with no module: {seen:?}");
}

#[test]
fn architecture_md_states_the_same_order() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let order = LAYERS.join(" → ");
    assert!(text.contains(&order), "ARCHITECTURE.md must state: {order}");
}
