//! The `strongroom` binary: `strongroom server -dev`, `strongroom server -config FILE`,
//! `strongroom version`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    strongroom_server::cli::main(&args)
}
