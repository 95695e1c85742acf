//! `bindings-ffi/include/strongroom.h` is what cbindgen generates from the crate's sources
//! (with `bindings-ffi/cbindgen.toml`); any difference fails. `STRONGROOM_BLESS=1` rewrites it.

use std::path::PathBuf;

#[test]
fn header_is_what_cbindgen_generates() {
    let ffi = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = cbindgen::Config::from_file(ffi.join("cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&ffi)
        .with_config(config)
        .generate()
        .expect("cbindgen could not read bindings-ffi")
        .write(&mut out);
    let want = String::from_utf8(out).unwrap();
    // Every status is in it with its number (src/result.rs is generated from the core's table).
    for code in [
        "SR_OK = 0",
        "SR_INVALID_INPUT = 1",
        "SR_SEALED = 4",
        "SR_QUOTA_EXCEEDED = 16",
    ] {
        assert!(
            want.contains(code),
            "{code} is missing from the generated header"
        );
    }
    let path = ffi.join("include/strongroom.h");
    if std::env::var_os("STRONGROOM_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: regenerate it with STRONGROOM_BLESS=1 cargo test --manifest-path \
         bindings-ffi/header-check/Cargo.toml, and commit it",
        path.display()
    );
}
