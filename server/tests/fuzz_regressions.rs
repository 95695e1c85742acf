//! The `server_config` fuzz target's inputs on the stable toolchain (docs/fuzzing.md): every
//! committed seed of `fuzz/corpus/server_config` and every input a fuzz run once crashed on is
//! parsed, merged and built as the target does, without panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::PathBuf;

use strongroom_server::config::{FileConfig, ServerConfig};

/// What the fuzz target does with its bytes; whether the text parsed.
fn config_target(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(file) = FileConfig::parse(text) else {
        return false;
    };
    let _ = file.clone().merge(file.clone());
    if let Ok(config) = ServerConfig::build(file, None) {
        let _ = config.engine_config();
    }
    true
}

#[test]
fn server_config_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/server_config");
    let mut parsed = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| config_target(&bytes));
        assert!(r.is_ok(), "{} panicked", path.display());
        parsed += usize::from(r.unwrap());
    }
    // The seeds are valid configs: they must parse, or the corpus no longer reaches the builder.
    assert!(parsed >= 5, "only {parsed} seeds parsed");
}
