//! Fuzz target `pem`: see `strongroom::bench_internals::fuzz::pem` for what the bytes are.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strongroom::bench_internals::fuzz::pem(data);
});
