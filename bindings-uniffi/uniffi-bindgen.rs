//! `uniffi-bindgen` built from this workspace, so the generated Kotlin/Swift/Python match the
//! uniffi runtime the library was built with.
fn main() {
    uniffi::uniffi_bindgen_main()
}
