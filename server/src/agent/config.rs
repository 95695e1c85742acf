//! Vault Agent's configuration file (HCL): `vault`, `auto_auth` (methods `kubernetes`,
//! `approle`, `token_file`; `sink "file"`), `template_config`, `template`, `exit_after_auth`.
//! Unknown keys are collected as notes (logged), as the server's config does.

use std::path::PathBuf;
use std::time::Duration;

use hcl::{Block, Body, Expression};

use crate::config::ConfigError;

/// `vault { ... }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VaultStanza {
    /// `address`; else `VAULT_ADDR` / `BAO_ADDR`; else `https://127.0.0.1:8200`.
    pub address: Option<String>,
    /// `ca_cert`: PEM file of the CA that signed the server's certificate.
    pub ca_cert: Option<PathBuf>,
    /// `tls_skip_verify`.
    pub tls_skip_verify: bool,
    /// `retry { num_retries }`: attempts after the first failure (default 12; -1: none).
    pub num_retries: i64,
}

/// One `auto_auth { method ... }`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    /// `method "kubernetes"`: log in with the service-account token, re-read at every login.
    Kubernetes {
        /// `mount_path` (default `auth/kubernetes`).
        mount_path: String,
        /// `config.role`.
        role: String,
        /// `config.token_path`.
        token_path: PathBuf,
    },
    /// `method "approle"`: role id and secret id from files.
    AppRole {
        /// `mount_path` (default `auth/approle`).
        mount_path: String,
        /// `config.role_id_file_path`.
        role_id_file: PathBuf,
        /// `config.secret_id_file_path` (optional: a role without `bind_secret_id`).
        secret_id_file: Option<PathBuf>,
        /// `config.remove_secret_id_file_after_reading` (default true).
        remove_secret_id_file: bool,
    },
    /// `method "token_file"`: a token read from a file.
    TokenFile {
        /// `config.token_file_path`.
        path: PathBuf,
    },
}

/// `sink "file" { config = { path, mode } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSink {
    /// Where the token is written.
    pub path: PathBuf,
    /// File mode (default 0640).
    pub mode: u32,
}

/// One `template { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateStanza {
    /// `source`: a template file.
    pub source: Option<PathBuf>,
    /// `contents`: the template inline.
    pub contents: Option<String>,
    /// `destination`.
    pub destination: PathBuf,
    /// `perms` (default 0644).
    pub perms: u32,
    /// `command`: run (by `sh -c`) after the file changed.
    pub command: Option<String>,
    /// `command_timeout` (default 30 s).
    pub command_timeout: Duration,
    /// `error_on_missing_key`.
    pub error_on_missing_key: bool,
    /// `left_delimiter`.
    pub left_delimiter: String,
    /// `right_delimiter`.
    pub right_delimiter: String,
    /// `create_dest_dirs` (default true).
    pub create_dest_dirs: bool,
}

/// The whole agent configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentConfig {
    /// `vault`.
    pub vault: VaultStanza,
    /// `auto_auth { method }` (at most one).
    pub method: Option<AuthMethod>,
    /// `auto_auth { sink "file" }`.
    pub sinks: Vec<FileSink>,
    /// `template_config { static_secret_render_interval }` (default 5 min).
    pub static_secret_render_interval: Option<Duration>,
    /// `template_config { exit_on_retry_failure }`.
    pub exit_on_retry_failure: bool,
    /// `template` stanzas.
    pub templates: Vec<TemplateStanza>,
    /// `exit_after_auth`: authenticate, write sinks, render every template once, exit.
    pub exit_after_auth: bool,
    /// Keys and stanzas read but not acted on.
    pub notes: Vec<String>,
}

fn err(m: impl Into<String>) -> ConfigError {
    ConfigError::new(m)
}

/// A string value: a plain string, or a quoted/heredoc template taken literally (Vault Agent's
/// templates are consul-template text; HCL interpolation does not apply to them).
fn string(e: &Expression, key: &str) -> Result<String, ConfigError> {
    match e {
        Expression::String(s) => Ok(s.clone()),
        Expression::TemplateExpr(t) => Ok(t.to_string()),
        _ => Err(err(format!("`{key}` must be a string"))),
    }
}

fn boolean(e: &Expression, key: &str) -> Result<bool, ConfigError> {
    match e {
        Expression::Bool(b) => Ok(*b),
        Expression::String(s) => s
            .parse()
            .map_err(|_| err(format!("`{key}` must be true or false"))),
        _ => Err(err(format!("`{key}` must be true or false"))),
    }
}

fn integer(e: &Expression, key: &str) -> Result<i64, ConfigError> {
    match e {
        Expression::Number(n) => n
            .as_i64()
            .ok_or_else(|| err(format!("`{key}` must be an integer"))),
        Expression::String(s) => s
            .parse()
            .map_err(|_| err(format!("`{key}` must be an integer"))),
        _ => Err(err(format!("`{key}` must be an integer"))),
    }
}

fn duration(e: &Expression, key: &str) -> Result<Duration, ConfigError> {
    match e {
        Expression::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| err(format!("`{key}` must be a duration"))),
        _ => {
            let text = string(e, key)?;
            crate::http::input::parse_duration(&text).map_err(|m| err(format!("`{key}`: {m}")))
        }
    }
}

/// A file mode: `"0640"` (octal text) or `0640` / `640` (the digits read as octal, as every
/// example writes them).
fn mode(e: &Expression, key: &str) -> Result<u32, ConfigError> {
    let text = match e {
        Expression::Number(n) => n.to_string(),
        _ => string(e, key)?,
    };
    let m = u32::from_str_radix(text.trim().trim_start_matches("0o"), 8).map_err(|_| {
        err(format!(
            "`{key}` must be an octal file mode such as \"0640\""
        ))
    })?;
    if m > 0o7777 {
        return Err(err(format!(
            "`{key}` must be an octal file mode such as \"0640\""
        )));
    }
    Ok(m)
}

/// `config = { k = v }` of a method or sink, as (key, expression) pairs.
fn config_object(body: &Body) -> Result<Vec<(String, Expression)>, ConfigError> {
    let mut out = Vec::new();
    for attr in body.attributes() {
        if attr.key() == "config" {
            match attr.expr() {
                Expression::Object(o) => {
                    for (k, v) in o {
                        let key = match k {
                            hcl::ObjectKey::Identifier(id) => id.to_string(),
                            hcl::ObjectKey::Expression(Expression::String(s)) => s.clone(),
                            _ => return Err(err("config keys must be names or strings")),
                        };
                        out.push((key, v.clone()));
                    }
                }
                _ => return Err(err("`config` must be an object")),
            }
        }
    }
    // `config { ... }` written as a block.
    for block in body.blocks().filter(|b| b.identifier() == "config") {
        for attr in block.body().attributes() {
            out.push((attr.key().to_string(), attr.expr().clone()));
        }
    }
    Ok(out)
}

fn label_or_type(block: &Block) -> Result<String, ConfigError> {
    if let Some(l) = block.labels().first() {
        return Ok(l.as_str().to_string());
    }
    block
        .body()
        .attributes()
        .find(|a| a.key() == "type")
        .map(|a| string(a.expr(), "type"))
        .transpose()?
        .ok_or_else(|| err(format!("`{}` needs a type", block.identifier())))
}

fn method(block: &Block, notes: &mut Vec<String>) -> Result<AuthMethod, ConfigError> {
    let kind = label_or_type(block)?;
    let mount = block
        .body()
        .attributes()
        .find(|a| a.key() == "mount_path")
        .map(|a| string(a.expr(), "mount_path"))
        .transpose()?
        .map(|m| m.trim_matches('/').to_string());
    let cfg = config_object(block.body())?;
    let get = |k: &str| cfg.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let req = |k: &str| {
        get(k)
            .ok_or_else(|| err(format!("auto_auth method `{kind}` needs `config.{k}`")))
            .and_then(|e| string(e, k))
    };
    let m = match kind.as_str() {
        "kubernetes" => AuthMethod::Kubernetes {
            mount_path: mount.unwrap_or_else(|| "auth/kubernetes".into()),
            role: req("role")?,
            token_path: get("token_path")
                .map(|e| string(e, "token_path"))
                .transpose()?
                .unwrap_or_else(|| "/var/run/secrets/kubernetes.io/serviceaccount/token".into())
                .into(),
        },
        "approle" => AuthMethod::AppRole {
            mount_path: mount.unwrap_or_else(|| "auth/approle".into()),
            role_id_file: req("role_id_file_path")?.into(),
            secret_id_file: get("secret_id_file_path")
                .map(|e| string(e, "secret_id_file_path"))
                .transpose()?
                .map(PathBuf::from),
            remove_secret_id_file: get("remove_secret_id_file_after_reading")
                .map(|e| boolean(e, "remove_secret_id_file_after_reading"))
                .transpose()?
                .unwrap_or(true),
        },
        "token_file" => AuthMethod::TokenFile {
            path: req("token_file_path")?.into(),
        },
        other => {
            return Err(err(format!(
                "auto_auth method `{other}` is not supported (kubernetes, approle, token_file)"
            )));
        }
    };
    for (k, _) in &cfg {
        let known = [
            "role",
            "token_path",
            "role_id_file_path",
            "secret_id_file_path",
            "remove_secret_id_file_after_reading",
            "token_file_path",
        ];
        if !known.contains(&k.as_str()) {
            notes.push(format!("auto_auth method config key `{k}` is ignored"));
        }
    }
    Ok(m)
}

fn sink(block: &Block, notes: &mut Vec<String>) -> Result<Option<FileSink>, ConfigError> {
    let kind = label_or_type(block)?;
    if kind != "file" {
        notes.push(format!("sink `{kind}` is not supported and is ignored"));
        return Ok(None);
    }
    let cfg = config_object(block.body())?;
    let mut path = None;
    let mut m = 0o640;
    for (k, v) in &cfg {
        match k.as_str() {
            "path" => path = Some(PathBuf::from(string(v, "path")?)),
            "mode" => m = mode(v, "mode")?,
            other => notes.push(format!("sink config key `{other}` is ignored")),
        }
    }
    for attr in block.body().attributes() {
        if !["type", "config"].contains(&attr.key()) {
            notes.push(format!("sink key `{}` is ignored", attr.key()));
        }
    }
    let path = path.ok_or_else(|| err("sink \"file\" needs `config.path`"))?;
    Ok(Some(FileSink { path, mode: m }))
}

fn template(block: &Block, notes: &mut Vec<String>) -> Result<TemplateStanza, ConfigError> {
    let mut t = TemplateStanza {
        source: None,
        contents: None,
        destination: PathBuf::new(),
        perms: 0o644,
        command: None,
        command_timeout: Duration::from_secs(30),
        error_on_missing_key: false,
        left_delimiter: "{{".into(),
        right_delimiter: "}}".into(),
        create_dest_dirs: true,
    };
    let mut destination = None;
    for attr in block.body().attributes() {
        let (k, e) = (attr.key(), attr.expr());
        match k {
            "source" => t.source = Some(string(e, k)?.into()),
            "contents" => t.contents = Some(string(e, k)?),
            "destination" => destination = Some(PathBuf::from(string(e, k)?)),
            "perms" => t.perms = mode(e, k)?,
            "command" => {
                t.command = Some(match e {
                    // `command = ["sh", "-c", "..."]`: joined for `sh -c`, each part quoted.
                    Expression::Array(parts) => parts
                        .iter()
                        .map(|p| string(p, k).map(|s| shell_quote(&s)))
                        .collect::<Result<Vec<_>, _>>()?
                        .join(" "),
                    _ => string(e, k)?,
                })
            }
            "command_timeout" => t.command_timeout = duration(e, k)?,
            "error_on_missing_key" => t.error_on_missing_key = boolean(e, k)?,
            "left_delimiter" => t.left_delimiter = string(e, k)?,
            "right_delimiter" => t.right_delimiter = string(e, k)?,
            "create_dest_dirs" => t.create_dest_dirs = boolean(e, k)?,
            other => notes.push(format!("template key `{other}` is ignored")),
        }
    }
    match (&t.source, &t.contents) {
        (Some(_), Some(_)) => return Err(err("a template takes `source` or `contents`, not both")),
        (None, None) => return Err(err("a template needs `source` or `contents`")),
        _ => {}
    }
    t.destination = destination.ok_or_else(|| err("a template needs `destination`"))?;
    Ok(t)
}

/// Single-quotes a word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl AgentConfig {
    /// Reads and parses a config file.
    pub fn load(path: &std::path::Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read config file `{}`: {e}", path.display())))?;
        AgentConfig::parse(&text).map_err(|e| err(format!("config file `{}`: {e}", path.display())))
    }

    /// Parses HCL text.
    pub fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        let body: Body = hcl::parse(text).map_err(|e| err(format!("invalid HCL: {e}")))?;
        let mut cfg = AgentConfig {
            vault: VaultStanza {
                num_retries: 12,
                ..VaultStanza::default()
            },
            ..AgentConfig::default()
        };
        for attr in body.attributes() {
            match attr.key() {
                "exit_after_auth" => cfg.exit_after_auth = boolean(attr.expr(), "exit_after_auth")?,
                k => cfg.notes.push(format!("config key `{k}` is ignored")),
            }
        }
        for block in body.blocks() {
            match block.identifier() {
                "vault" => {
                    for attr in block.body().attributes() {
                        let (k, e) = (attr.key(), attr.expr());
                        match k {
                            "address" => cfg.vault.address = Some(string(e, k)?),
                            "ca_cert" => cfg.vault.ca_cert = Some(string(e, k)?.into()),
                            "tls_skip_verify" => cfg.vault.tls_skip_verify = boolean(e, k)?,
                            other => cfg.notes.push(format!("vault key `{other}` is ignored")),
                        }
                    }
                    for b in block.body().blocks() {
                        if b.identifier() == "retry" {
                            for attr in b.body().attributes() {
                                match attr.key() {
                                    "num_retries" => {
                                        cfg.vault.num_retries =
                                            integer(attr.expr(), "num_retries")?;
                                    }
                                    other => {
                                        cfg.notes.push(format!("retry key `{other}` is ignored"))
                                    }
                                }
                            }
                        } else {
                            cfg.notes
                                .push(format!("vault stanza `{}` is ignored", b.identifier()));
                        }
                    }
                }
                "auto_auth" => {
                    for b in block.body().blocks() {
                        match b.identifier() {
                            "method" => {
                                if cfg.method.is_some() {
                                    return Err(err("auto_auth takes one method"));
                                }
                                cfg.method = Some(method(b, &mut cfg.notes)?);
                            }
                            "sink" => {
                                if let Some(s) = sink(b, &mut cfg.notes)? {
                                    cfg.sinks.push(s);
                                }
                            }
                            other => cfg
                                .notes
                                .push(format!("auto_auth stanza `{other}` is ignored")),
                        }
                    }
                }
                "template_config" => {
                    for attr in block.body().attributes() {
                        let (k, e) = (attr.key(), attr.expr());
                        match k {
                            "static_secret_render_interval" => {
                                cfg.static_secret_render_interval = Some(duration(e, k)?);
                            }
                            "exit_on_retry_failure" => cfg.exit_on_retry_failure = boolean(e, k)?,
                            other => cfg
                                .notes
                                .push(format!("template_config key `{other}` is ignored")),
                        }
                    }
                }
                "template" => cfg.templates.push(template(block, &mut cfg.notes)?),
                other => cfg
                    .notes
                    .push(format!("stanza `{other}` is not supported and is ignored")),
            }
        }
        if cfg.method.is_none() && !cfg.templates.is_empty() {
            // Vault Agent falls back to VAULT_TOKEN; so do we (see `agent::initial_token`).
            cfg.notes
                .push("no auto_auth method: using VAULT_TOKEN / BAO_TOKEN".into());
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn reads_vault_agent_hcl() {
        let cfg = AgentConfig::parse(
            r#"
            exit_after_auth = true
            pid_file = "/home/vault/.pid"
            vault {
              address = "https://vault.vault.svc:8200"
              ca_cert = "/vault/tls/ca.crt"
              tls_skip_verify = false
              retry { num_retries = 5 }
            }
            auto_auth {
              method "kubernetes" {
                mount_path = "auth/kubernetes"
                config = {
                  role = "api-service"
                  token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"
                }
              }
              sink "file" {
                config = {
                  path = "/home/vault/.vault-token"
                  mode = 0600
                }
              }
            }
            template_config {
              static_secret_render_interval = "2m"
              exit_on_retry_failure = true
            }
            template {
              destination = "/vault/secrets/config"
              contents = <<EOT
            {{- with secret "secret/data/production/api-service" -}}
            DATABASE_URL={{ .Data.data.database_url }}
            {{- end -}}
            EOT
              perms = "0640"
              command = "kill -HUP 1"
              command_timeout = "10s"
              error_on_missing_key = true
              left_delimiter = "[["
              right_delimiter = "]]"
              create_dest_dirs = false
            }
            template {
              source = "/etc/t.ctmpl"
              destination = "/vault/secrets/other"
            }
            "#,
        )
        .unwrap();
        assert!(cfg.exit_after_auth && cfg.exit_on_retry_failure);
        assert_eq!(
            cfg.vault.address.as_deref(),
            Some("https://vault.vault.svc:8200")
        );
        assert_eq!(cfg.vault.ca_cert, Some(PathBuf::from("/vault/tls/ca.crt")));
        assert_eq!(cfg.vault.num_retries, 5);
        assert_eq!(
            cfg.method,
            Some(AuthMethod::Kubernetes {
                mount_path: "auth/kubernetes".into(),
                role: "api-service".into(),
                token_path: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            })
        );
        assert_eq!(
            cfg.sinks,
            [FileSink {
                path: "/home/vault/.vault-token".into(),
                mode: 0o600
            }]
        );
        assert_eq!(
            cfg.static_secret_render_interval,
            Some(Duration::from_secs(120))
        );
        let t = &cfg.templates[0];
        assert!(
            t.contents
                .as_deref()
                .unwrap()
                .contains("DATABASE_URL={{ .Data.data.database_url }}")
        );
        assert_eq!(t.perms, 0o640);
        assert_eq!(t.command.as_deref(), Some("kill -HUP 1"));
        assert_eq!(t.command_timeout, Duration::from_secs(10));
        assert!(t.error_on_missing_key && !t.create_dest_dirs);
        assert_eq!(
            (t.left_delimiter.as_str(), t.right_delimiter.as_str()),
            ("[[", "]]")
        );
        let o = &cfg.templates[1];
        assert_eq!(o.source, Some(PathBuf::from("/etc/t.ctmpl")));
        assert_eq!((o.perms, o.create_dest_dirs), (0o644, true));
        assert!(cfg.notes.iter().any(|n| n.contains("pid_file")));
    }

    #[test]
    fn other_methods_and_errors() {
        let cfg = AgentConfig::parse(
            r#"auto_auth {
                 method {
                   type = "approle"
                   config = { role_id_file_path = "/r", secret_id_file_path = "/s", remove_secret_id_file_after_reading = false }
                 }
               }"#,
        )
        .unwrap();
        assert_eq!(
            cfg.method,
            Some(AuthMethod::AppRole {
                mount_path: "auth/approle".into(),
                role_id_file: "/r".into(),
                secret_id_file: Some("/s".into()),
                remove_secret_id_file: false,
            })
        );
        let cfg = AgentConfig::parse(
            "auto_auth {\n method \"token_file\" {\n config = { token_file_path = \"/t\" }\n }\n}",
        )
        .unwrap();
        assert_eq!(
            cfg.method,
            Some(AuthMethod::TokenFile { path: "/t".into() })
        );
        for (bad, want) in [
            (
                "template { destination = \"/x\" }",
                "needs `source` or `contents`",
            ),
            ("template { contents = \"x\" }", "needs `destination`"),
            (
                "template {\ncontents = \"x\"\nsource = \"y\"\ndestination = \"/d\"\n}",
                "not both",
            ),
            (
                "template {\ncontents = \"x\"\ndestination = \"/d\"\nperms = \"rw\"\n}",
                "octal file mode",
            ),
            ("auto_auth {\nmethod \"ldap\" {}\n}", "not supported"),
            (
                "auto_auth {\nmethod \"kubernetes\" {\nconfig = {}\n}\n}",
                "needs `config.role`",
            ),
            ("vault { tls_skip_verify = \"maybe\" }", "true or false"),
            (
                "template_config { static_secret_render_interval = \"soon\" }",
                "static_secret_render_interval",
            ),
            ("vault {", "invalid HCL"),
        ] {
            let e = AgentConfig::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
