//! The fuzz targets' inputs on the stable toolchain (docs/fuzzing.md): every committed seed of
//! `fuzz/corpus/<target>` and every input a fuzz run once crashed on goes through the target's
//! entry point (`strongroom::bench_internals::fuzz`), which must return without panicking.
//! The crashers are also checked for the answer they get now.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::PathBuf;

use strongroom::bench_internals::fuzz;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let r = std::panic::catch_unwind(|| run(&bytes));
        assert!(r.is_ok(), "{target}: {} panicked", path.display());
    }
}

#[test]
fn the_shared_engine_of_the_targets_builds() {
    assert!(fuzz::engine_ready());
}

#[test]
fn policy_seeds() {
    replay("policy", fuzz::policy);
}

#[test]
fn router_seeds() {
    replay("router", fuzz::router);
}

#[test]
fn transit_seeds() {
    replay("transit", fuzz::transit);
}

#[test]
fn barrier_seeds() {
    replay("barrier", fuzz::barrier);
}

#[test]
fn jwt_seeds() {
    replay("jwt", fuzz::jwt);
}

#[test]
fn pem_seeds() {
    replay("pem", fuzz::pem);
}

#[test]
fn template_seeds() {
    replay("template", fuzz::template);
}
