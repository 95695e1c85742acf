//! Fuzz target `barrier`: see `strongroom::bench_internals::fuzz::barrier` for what the bytes are.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strongroom::bench_internals::fuzz::barrier(data);
});
