//! `strongroom-server`: the Vault/OpenBao-compatible HTTP server over the Strongroom engine
//! (binary `strongroom`).
//!
//! The server stays thin: [`http`] maps HTTP to [`strongroom::Request`] and the engine's
//! [`strongroom::Response`] or [`strongroom::Error`] back to OpenBao's JSON and status codes;
//! [`config`] reads Vault's HCL server config; [`listener`] binds plain or TLS listeners;
//! [`cli`] and [`run`] are the command line and the process around them.
//!
//! Serving the API in-process (what the integration tests do):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use strongroom_server::config::ListenerConfig;
//! use strongroom_server::listener::Listeners;
//!
//! let sr = strongroom::Strongroom::open(strongroom::Config::dev()).await?;
//! let listeners = Listeners::start(&sr, &[ListenerConfig::plain("127.0.0.1:0")]).await?;
//! println!("serving on {}", listeners.bound()[0].url());
//! listeners.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod config;
pub mod http;
pub mod injector;
pub mod listener;
pub mod metrics;
pub mod run;
