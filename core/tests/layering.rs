//! The module layering of `core/src` (see docs/architecture.md): the subsystems below the
//! request pipeline never call back up into the engine facade. They get narrow handles (the
//! lease manager its storage view, clock and a `LeaseHost` it revokes through; the token
//! endpoints a `TokenSite`; response wrapping a `Wrapping`; the lockout endpoints a `Site`), so
//! the import graph has no cycle through `strongroom.rs`.
//!
//! This test reads the sources: a file of a lower layer that names `Strongroom` (or imports
//! the facade modules `strongroom`, `pipeline`, `mounts`) fails it, and so does a new file
//! anywhere that reaches the facade without being listed as part of the top layer below.

use std::path::{Path, PathBuf};

/// The subsystems that must not reach the facade (files, or folders with every file in them).
const LOWER: &[&str] = &[
    "leases.rs",
    "leases",
    "auth.rs",
    "auth",
    "wrapping.rs",
    "token.rs",
    "token",
    "router.rs",
    "secrets.rs",
    "secrets",
    "storage.rs",
    "storage",
    "barrier.rs",
    "barrier",
    "policy.rs",
    "policy",
    "util.rs",
    "util",
    "ha.rs",
    "identity.rs",
];

/// The top layer: the facade and what serves it directly. `sys.rs` (the `sys/` endpoints:
/// mounts, seal, rotation, health), the policy, password-policy, identity and audit-device
/// endpoints act on several subsystems at once and still take the engine whole; they sit
/// beside the pipeline, not below it (no lower layer imports them).
const TOP: &[&str] = &[
    "lib.rs",
    "strongroom.rs",
    "pipeline.rs",
    "mounts.rs",
    "scheduler.rs",
    "metrics.rs",
    "sys.rs",
    "policies.rs",
    "password_policy.rs",
    "identity/endpoints.rs",
    "audit/table.rs",
    "client.rs",
    "client",
    "bench_internals.rs",
    "bench_internals",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(src())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn under(rel: &str, roots: &[&str]) -> bool {
    roots
        .iter()
        .any(|r| rel == *r || rel.starts_with(&format!("{r}/")))
}

/// The code lines of `text` that reach the facade (comments and doc comments aside). A
/// `#[cfg(test)]` module is left out: unit tests may open a whole engine to drive a
/// subsystem, and they are not part of the crate's import graph.
fn reaches_up(text: &str) -> Vec<(usize, String)> {
    let mut hits = Vec::new();
    // Brace depth inside a `#[cfg(test)] mod .. {` block, when in one.
    let mut test_depth: Option<i64> = None;
    let mut after_cfg_test = false;
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if let Some(depth) = test_depth.as_mut() {
            *depth += braces(code);
            if *depth <= 0 {
                test_depth = None;
            }
            continue;
        }
        if code.starts_with("#[cfg(test)]") {
            after_cfg_test = true;
            continue;
        }
        if after_cfg_test {
            after_cfg_test = false;
            let is_mod = code.starts_with("mod ") || code.starts_with("pub(crate) mod ");
            if is_mod && code.contains('{') {
                let depth = braces(code);
                if depth > 0 {
                    test_depth = Some(depth);
                }
                continue;
            }
        }
        let code = code.split(" //").next().unwrap_or(code);
        let names_facade = code.match_indices("Strongroom").any(|(i, _)| {
            let after = code.get(i + "Strongroom".len()..).unwrap_or("");
            let before = code.get(..i).unwrap_or("");
            !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
        });
        let imports_facade = ["crate::strongroom", "crate::pipeline", "crate::mounts"]
            .iter()
            .any(|m| code.contains(m));
        if names_facade || imports_facade {
            hits.push((n + 1, line.trim().to_string()));
        }
    }
    hits
}

/// Opening minus closing braces on a line of code.
fn braces(code: &str) -> i64 {
    let open = code.matches('{').count();
    let close = code.matches('}').count();
    open as i64 - close as i64
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    assert!(
        files.len() > 50,
        "expected the core sources under {}",
        src().display()
    );
    files
}

#[test]
fn lower_layers_do_not_reach_the_facade() {
    let mut bad = Vec::new();
    for f in all_files() {
        let r = rel(&f);
        if !under(&r, LOWER) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (line, code) in reaches_up(&text) {
            bad.push(format!("{r}:{line}: {code}"));
        }
    }
    assert!(
        bad.is_empty(),
        "these subsystems call back up into the engine facade (give them a narrow handle \
         instead, see docs/architecture.md):\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_the_top_layer_reaches_the_facade() {
    let mut bad = Vec::new();
    for f in all_files() {
        let r = rel(&f);
        if under(&r, TOP) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        if let Some((line, code)) = reaches_up(&text).into_iter().next() {
            bad.push(format!("{r}:{line}: {code}"));
        }
    }
    assert!(
        bad.is_empty(),
        "files outside the top layer reach the engine facade (a cycle through strongroom.rs); \
         give them a narrow handle, or, if they really are facade code, list them in TOP with \
         the reason:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_a_facade_use() {
    // The scanner itself must be able to fail.
    assert_eq!(reaches_up("use crate::strongroom::Strongroom;\n").len(), 1);
    assert_eq!(reaches_up("fn f(sr: &Strongroom) {}\n").len(), 1);
    assert_eq!(
        reaches_up("    let x = crate::pipeline::FastGate;\n").len(),
        1
    );
    assert!(reaches_up("/// see [`Strongroom::handle`]\n").is_empty());
    assert!(reaches_up("let s = StrongroomError;\n").is_empty());
    // A unit-test module may open an engine; code after it is checked again.
    let with_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    fn g() {\n        \
                      let sr = crate::Strongroom::open(c);\n    }\n}\n\
                      fn h(sr: &Strongroom) {}\n";
    let hits = reaches_up(with_tests);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits.first().map(|h| h.0), Some(8));
    // `#[cfg(test)]` on anything but a module does not hide the next lines.
    assert_eq!(
        reaches_up("#[cfg(test)]\nuse crate::strongroom::Strongroom;\n").len(),
        1
    );
}
