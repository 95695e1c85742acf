//! `strongroom-agent`: `strongroom agent` alone, for the sidecar and init container the
//! injector adds to every pod. Same flags and behaviour as `strongroom agent`
//! (`strongroom-agent -config=agent.hcl`; a leading `agent` argument is accepted, so
//! `strongroom-agent agent -config=...` works as a drop-in for the `strongroom` command line).
//!
//! It is the same crate as `strongroom`, built into its own binary so that only the code the
//! agent reaches is linked: the engine, the storage backends, the database plugins and the
//! HTTP server are left out by the linker, and the pages of the binary the agent touches (half
//! its resident memory in the `strongroom` binary) shrink with it. It keeps the system
//! allocator: the agent runs on one thread, where mimalloc's per-thread segments (the
//! server's choice, for many threads under load) only add resident memory.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match args.split_first() {
        Some((first, rest)) if first == "agent" => rest,
        _ => args.as_slice(),
    };
    if let Some("version" | "-v" | "-version" | "--version") = args.first().map(String::as_str) {
        println!("{}", strongroom_server::cli::version());
        return ExitCode::SUCCESS;
    }
    strongroom_server::agent::main(args)
}
