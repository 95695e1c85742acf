//! The `strongroom` command line: `server` (with Vault's single-dash flags), `version`, help.
//!
//! Flags follow Go's `flag` package as Vault's CLI does: `-name value`, `-name=value`,
//! `--name` works like `-name`, and boolean flags take only `-name` or `-name=false`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, ConfigError, DevSettings, FileConfig, ServerConfig};

/// `strongroom version`.
pub fn version() -> String {
    format!(
        "Strongroom v{} (OpenBao 2.7 HTTP API)",
        env!("CARGO_PKG_VERSION")
    )
}

const USAGE: &str = "Usage: strongroom <command> [args]

Strongroom: Vault's secrets-management core, embeddable, with a Vault-compatible HTTP API.

Commands:
    server     Start a Strongroom server (OpenBao/Vault HTTP API)
    agent      Render secrets into files and keep them fresh (Vault Agent)
    injector   Kubernetes admission webhook injecting the agent into pods
    version    Print the Strongroom version

Run `strongroom server -h` for the server's options.
";

/// `strongroom server -h`.
pub const SERVER_HELP: &str = r#"Usage: strongroom server [options]

  Start a Strongroom server that answers the OpenBao/Vault HTTP API on /v1/.
  Without -dev it starts sealed: initialise it with PUT /v1/sys/init and
  unseal it with PUT /v1/sys/unseal (or let a seal "file"/"env" stanza unseal
  it at start). SIGINT or SIGTERM stops it gracefully.

  Start a server with a configuration file:

      $ strongroom server -config=/etc/strongroom/server.hcl

  Run in "dev" mode (in memory, unsealed, root token printed):

      $ strongroom server -dev -dev-root-token-id="root"

Command Options:

  -config=<path>
      Path to an HCL configuration file, or a directory whose *.hcl files are
      read in name order. May be repeated. Combines with -dev.

  -log-level=<level>
      trace, debug, info, warn or error. Overrides the config's log_level and
      the BAO_LOG_LEVEL / VAULT_LOG_LEVEL environment variables. Default: info.

  -log-format=<format>
      standard or json (one JSON object per line). Overrides the config's
      log_format and BAO_LOG_FORMAT / VAULT_LOG_FORMAT. Default: standard.

Dev Options:

  -dev
      Dev mode: in-memory storage, initialised and unsealed with a single
      unseal key, secret/ mounted as KV v2; the unseal key and root token are
      printed. All data is lost on exit. Never use it in production.

  -dev-listen-address=<addr>
      Address of the dev listener (plain HTTP). Default: 127.0.0.1:8200; port
      0 picks a free port (the banner shows it). Also BAO_DEV_LISTEN_ADDRESS.

  -dev-root-token-id=<id>
      Root token id to create instead of a random one. Also
      BAO_DEV_ROOT_TOKEN_ID.

  -dev-kv-v1
      Mount secret/ as KV v1 instead of v2. Implies -dev.

Configuration file (Vault's HCL; unknown keys are logged and ignored):

  listener "tcp" {
    address          = "127.0.0.1:8200"
    tls_disable      = true        # else tls_cert_file and tls_key_file (PEM)
    max_request_size = 33554432    # bytes; 0 = default 32 MiB; < 0 = no limit
    max_request_duration = "90s"   # longer requests answer 500; < 0 = no limit
    max_concurrent_requests = 1024 # more in flight answer 503; 0 = no limit
    max_request_json_memory = 34078720  # estimated decoded bytes of a JSON body
    max_request_json_strings = 1000     # keys + string values (both: 400 above;
                                        #   0 = default, < 0 = no limit)
    http_read_header_timeout = "10s"  # headers not in by then: disconnected
    http_read_timeout = "30s"         # body not in by then: 500, disconnected
    http_write_timeout = "0"          # answer not taken by then: cut; 0 = none
    http_idle_timeout = "5m"          # idle keep-alive (capped by the header one)
    telemetry { unauthenticated_metrics_access = false }  # sys/metrics without a token
  }
  storage "sqlite"     { path = "/var/lib/strongroom/strongroom.db" }
  storage "postgresql" { connection_url = "postgres://user@host:5432/db" }
  storage "inmem"      {}
  seal "file" { path = "/etc/strongroom/unseal.key" }  # unseal at start with the
  seal "env"  { variable = "STRONGROOM_UNSEAL_KEY" }   # key of a one-share store
  api_addr  = "https://strongroom.example:8200"
  log_level = "info"
  log_format = "standard"          # or "json"
"#;

/// What `strongroom server` was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerArgs {
    /// `-dev`.
    pub dev: bool,
    /// `-dev-root-token-id`.
    pub dev_root_token_id: Option<String>,
    /// `-dev-listen-address`.
    pub dev_listen_address: Option<String>,
    /// `-dev-kv-v1`.
    pub dev_kv_v1: bool,
    /// `-config`, in order.
    pub configs: Vec<PathBuf>,
    /// `-log-level`.
    pub log_level: Option<String>,
    /// `-log-format` (`standard` or `json`).
    pub log_format: Option<String>,
}

/// The outcome of parsing `strongroom server`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCommand {
    /// `-h`: print the help.
    Help,
    /// Start the server.
    Run(ServerArgs),
}

/// Vault's dev flags Strongroom does not have.
const UNSUPPORTED_DEV_FLAGS: &[&str] = &[
    "dev-tls",
    "dev-tls-cert-dir",
    "dev-ha",
    "dev-transactional",
    "dev-three-node",
    "dev-four-cluster",
    "dev-auto-seal",
    "dev-skip-init",
    "dev-plugin-dir",
    "dev-plugin-init",
    "dev-no-store-token",
    "dev-cluster-json",
    "dev-consul",
    "dev-leased-kv",
];

impl ServerArgs {
    /// Parse the arguments after `server`.
    pub fn parse(args: &[String]) -> Result<ServerCommand, String> {
        let mut out = ServerArgs::default();
        let mut i = 0;
        while let Some(arg) = args.get(i) {
            i += 1;
            if arg == "--" {
                if i < args.len() {
                    return Err("too many arguments: the server takes only flags".into());
                }
                break;
            }
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(format!(
                    "unexpected argument `{arg}`: the server takes only flags"
                ));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                i += 1;
                Ok(v)
            };
            match name {
                "h" | "help" => return Ok(ServerCommand::Help),
                "dev" => out.dev = bool_flag(name, inline.as_deref())?,
                "dev-kv-v1" => out.dev_kv_v1 = bool_flag(name, inline.as_deref())?,
                "dev-root-token-id" => out.dev_root_token_id = Some(value(name)?),
                "dev-listen-address" => out.dev_listen_address = Some(value(name)?),
                "config" => out.configs.push(PathBuf::from(value(name)?)),
                "log-level" => out.log_level = Some(value(name)?),
                "log-format" => out.log_format = Some(value(name)?),
                n if UNSUPPORTED_DEV_FLAGS.contains(&n) => {
                    return Err(format!("-{n} is not supported by Strongroom"));
                }
                "" => return Err(format!("bad flag syntax: {arg}")),
                n => return Err(format!("flag provided but not defined: -{n}")),
            }
        }
        // As Vault: -dev-kv-v1 implies -dev.
        if out.dev_kv_v1 {
            out.dev = true;
        }
        Ok(ServerCommand::Run(out))
    }

    /// Read the config files and combine them with the flags (and Vault's environment
    /// variables for the dev flags and the log level).
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        if !self.dev && self.configs.is_empty() {
            return Err(ConfigError::new(
                "must specify at least one config path using -config, or use -dev",
            ));
        }
        let mut file = FileConfig::default();
        for path in &self.configs {
            for f in config_files(path)? {
                file = file.merge(FileConfig::load(&f)?)?;
            }
        }
        let env = |names: [&str; 2]| names.iter().find_map(|n| std::env::var(n).ok());
        let dev = if self.dev {
            Some(DevSettings {
                root_token_id: self
                    .dev_root_token_id
                    .or_else(|| env(["BAO_DEV_ROOT_TOKEN_ID", "VAULT_DEV_ROOT_TOKEN_ID"]))
                    .filter(|t| !t.is_empty()),
                listen_address: self
                    .dev_listen_address
                    .or_else(|| env(["BAO_DEV_LISTEN_ADDRESS", "VAULT_DEV_LISTEN_ADDRESS"]))
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| config::DEFAULT_ADDRESS.to_string()),
                kv_v1: self.dev_kv_v1,
            })
        } else {
            if self.dev_root_token_id.is_some() || self.dev_listen_address.is_some() {
                file.notes
                    .push("-dev-* flags have no effect without -dev".to_string());
            }
            None
        };
        let level = self
            .log_level
            .or_else(|| env(["BAO_LOG_LEVEL", "VAULT_LOG_LEVEL"]));
        if let Some(level) = level {
            file.log_level = Some(config::log_level(&level)?);
        }
        let format = self
            .log_format
            .or_else(|| env(["BAO_LOG_FORMAT", "VAULT_LOG_FORMAT"]));
        if let Some(format) = format {
            file.log_format = Some(config::LogFormat::parse(&format)?);
        }
        ServerConfig::build(file, dev)
    }
}

fn bool_flag(name: &str, inline: Option<&str>) -> Result<bool, String> {
    match inline {
        None => Ok(true),
        Some(v) => crate::http::input::parse_bool(v)
            .ok_or_else(|| format!("invalid boolean value `{v}` for -{name}")),
    }
}

/// A file, or a directory's `*.hcl` files in name order.
fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        ConfigError::new(format!(
            "cannot read config directory `{}`: {e}",
            path.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hcl") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The whole command line (without the program name). Returns the process exit code.
pub fn main(args: &[String]) -> ExitCode {
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(1);
    };
    let rest = args.get(1..).unwrap_or_default();
    match command.as_str() {
        "server" => match ServerArgs::parse(rest) {
            Ok(ServerCommand::Help) => {
                print!("{SERVER_HELP}");
                ExitCode::SUCCESS
            }
            Ok(ServerCommand::Run(server_args)) => match server_args.into_config() {
                Ok(cfg) => crate::run::run(cfg),
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::from(1)
                }
            },
            Err(e) => {
                eprintln!("{e}\n\n{SERVER_HELP}");
                ExitCode::from(1)
            }
        },
        "agent" => crate::agent::main(rest),
        "injector" => crate::injector::main(rest),
        "version" | "-v" | "-version" | "--version" => {
            println!("{}", version());
            ExitCode::SUCCESS
        }
        "-h" | "-help" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprint!("Unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerCommand, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        ServerArgs::parse(&v)
    }

    fn run_args(args: &[&str]) -> ServerArgs {
        match parse(args).unwrap() {
            ServerCommand::Run(a) => a,
            ServerCommand::Help => panic!("help"),
        }
    }

    #[test]
    fn go_style_flags() {
        let a = run_args(&[
            "-dev",
            "-dev-root-token-id=root",
            "--dev-listen-address",
            "127.0.0.1:0",
            "-config",
            "a.hcl",
            "-config=b.hcl",
        ]);
        assert!(a.dev);
        assert_eq!(a.dev_root_token_id.as_deref(), Some("root"));
        assert_eq!(a.dev_listen_address.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(a.configs, [PathBuf::from("a.hcl"), PathBuf::from("b.hcl")]);
        assert!(!run_args(&["-dev=false"]).dev);
        assert!(run_args(&["-dev-kv-v1"]).dev);
        assert_eq!(parse(&["-h"]).unwrap(), ServerCommand::Help);
        assert_eq!(parse(&["--help"]).unwrap(), ServerCommand::Help);
    }

    #[test]
    fn bad_flags_are_reported() {
        assert!(
            parse(&["-nope"])
                .unwrap_err()
                .contains("not defined: -nope")
        );
        assert!(
            parse(&["-config"])
                .unwrap_err()
                .contains("needs an argument")
        );
        assert!(
            parse(&["-dev=maybe"])
                .unwrap_err()
                .contains("invalid boolean")
        );
        assert!(parse(&["-dev-tls"]).unwrap_err().contains("not supported"));
        assert!(
            parse(&["extra"])
                .unwrap_err()
                .contains("unexpected argument")
        );
    }

    #[test]
    fn dev_or_config_is_required() {
        let e = ServerArgs::default().into_config().unwrap_err();
        assert!(e.to_string().contains("-config"));
        let cfg = run_args(&["-dev"]).into_config().unwrap();
        assert_eq!(cfg.listeners.len(), 1);
        assert!(cfg.dev.is_some());
    }
}
