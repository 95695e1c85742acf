//! Fuzz target `template`: see `strongroom::bench_internals::fuzz::template` for what the bytes are.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strongroom::bench_internals::fuzz::template(data);
});
