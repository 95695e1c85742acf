//! Fuzz target `router`: see `strongroom::bench_internals::fuzz::router` for what the bytes are.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strongroom::bench_internals::fuzz::router(data);
});
