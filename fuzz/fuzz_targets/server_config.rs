//! Fuzz target `server_config`: the server's HCL configuration file, parsed and, when it
//! parses, built into a server configuration and the engine's configuration (what
//! `strongroom server -config` does before it opens anything).
#![no_main]

use strongroom_server::config::{FileConfig, ServerConfig};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = FileConfig::parse(text) else {
        return;
    };
    // A config file merged onto itself (several `-config` files) must not panic either.
    let _ = file.clone().merge(file.clone());
    if let Ok(config) = ServerConfig::build(file, None) {
        let _ = config.engine_config();
    }
});
