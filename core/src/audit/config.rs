//! Public configuration of audit devices ([`AuditDevice`], [`FailurePolicy`]) and the parsing of
//! their OpenBao options into [`Settings`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a call waits for a [`FailurePolicy::Required`] device before giving up on it.
pub const DEFAULT_AUDIT_DEADLINE: Duration = Duration::from_secs(2);
/// How many entries wait in a device's queue before new ones are refused.
pub const DEFAULT_AUDIT_QUEUE_CAPACITY: usize = 1024;

/// What an audit device's failure does to the call being audited.
///
/// OpenBao treats every device the same way: a call fails when no device logged it, and a
/// device that blocks makes every call hang. Strongroom lets each device say which kind it is.
///
/// ```
/// use strongroom::FailurePolicy;
/// assert_eq!("best_effort".parse::<FailurePolicy>().unwrap(), FailurePolicy::BestEffort);
/// assert_eq!(FailurePolicy::default(), FailurePolicy::Required);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailurePolicy {
    /// Fail closed (OpenBao's rule): a call fails with `internal error` when none of the
    /// required devices logged it within its deadline. The default.
    #[default]
    Required,
    /// Never slow the caller: entries go to a bounded queue drained in the background; when the
    /// queue is full the entry is dropped and counted in [`AuditDeviceStats::dropped`].
    ///
    /// [`AuditDeviceStats::dropped`]: crate::AuditDeviceStats::dropped
    BestEffort,
}

impl FailurePolicy {
    /// `required` or `best_effort`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Required => "required",
            FailurePolicy::BestEffort => "best_effort",
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailurePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<FailurePolicy> {
        match s {
            "required" => Ok(FailurePolicy::Required),
            "best_effort" | "best-effort" => Ok(FailurePolicy::BestEffort),
            other => Err(Error::invalid_input(format!(
                "unknown audit failure policy `{other}`: expected `required` or `best_effort`"
            ))),
        }
    }
}

/// The kind of audit device (OpenBao's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditKind {
    /// Appends JSON lines to a file (`file_path`), or to standard output (`stdout`), or
    /// nowhere (`discard`).
    File,
    /// Sends JSON lines to a TCP, UDP or Unix socket (`address`, `socket_type`).
    Socket,
}

impl AuditKind {
    /// `file` or `socket`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::File => "file",
            AuditKind::Socket => "socket",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport of a socket device (the `socket_type` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SocketType {
    /// A TCP stream (the default).
    #[default]
    Tcp,
    /// One UDP datagram per entry.
    Udp,
    /// A Unix domain stream socket (`address` is its path).
    Unix,
}

impl SocketType {
    /// `tcp`, `udp` or `unix`.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketType::Tcp => "tcp",
            SocketType::Udp => "udp",
            SocketType::Unix => "unix",
        }
    }
}

impl FromStr for SocketType {
    type Err = Error;

    fn from_str(s: &str) -> Result<SocketType> {
        match s {
            "tcp" => Ok(SocketType::Tcp),
            "udp" => Ok(SocketType::Udp),
            "unix" => Ok(SocketType::Unix),
            other => Err(Error::invalid_input(format!(
                "unknown socket_type `{other}`: expected `tcp`, `udp` or `unix`"
            ))),
        }
    }
}

/// One audit device, as the host application (or the server's `audit` stanza) configures it.
/// Devices are never created over the API.
///
/// Options are OpenBao's, by name and meaning: `file_path` (or `path`), `mode`, `format`,
/// `prefix`, `hmac_accessor`, `log_raw`, `elide_list_responses` for files; `address`,
/// `socket_type`, `write_timeout` and the format options for sockets. They are checked when the
/// engine opens (or by [`AuditDevice::validate`]).
///
/// ```
/// use std::time::Duration;
/// use strongroom::{AuditDevice, FailurePolicy, SocketType};
///
/// // Fail closed: a call fails if this file cannot be written within 500 ms.
/// let file = AuditDevice::file("audit/", "/var/log/strongroom/audit.log")
///     .required()
///     .with_deadline(Duration::from_millis(500))
///     .option("mode", "0640");
/// assert_eq!(file.path(), "audit/");
/// assert_eq!(file.options()["file_path"], "/var/log/strongroom/audit.log");
///
/// // Best effort: a slow collector never slows a call; overflow is dropped and counted.
/// let siem = AuditDevice::socket("siem", "127.0.0.1:9090", SocketType::Tcp)
///     .best_effort()
///     .option("hmac_accessor", "false");
/// assert_eq!(siem.path(), "siem/");
/// assert_eq!(siem.failure(), FailurePolicy::BestEffort);
/// siem.validate()?;
///
/// // The same device from a server config stanza: audit "file" "cfgfile" { options {...} }.
/// let from_config = AuditDevice::from_config("file", "cfgfile", [("file_path", "stdout")])?;
/// assert_eq!(from_config.options()["file_path"], "stdout");
/// # Ok::<(), strongroom::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDevice {
    path: String,
    kind: AuditKind,
    options: BTreeMap<String, String>,
    description: String,
    failure: FailurePolicy,
    deadline: Duration,
    queue_capacity: usize,
}

impl AuditDevice {
    fn new(path: &str, kind: AuditKind) -> AuditDevice {
        AuditDevice {
            path: normalize_path(path),
            kind,
            options: BTreeMap::new(),
            description: String::new(),
            failure: FailurePolicy::default(),
            deadline: DEFAULT_AUDIT_DEADLINE,
            queue_capacity: DEFAULT_AUDIT_QUEUE_CAPACITY,
        }
    }

    /// A file device at `path` (e.g. `audit/`) appending to `file_path`.
    pub fn file(path: impl AsRef<str>, file_path: impl Into<String>) -> AuditDevice {
        AuditDevice::new(path.as_ref(), AuditKind::File).option("file_path", file_path)
    }

    /// A device writing to standard output (a file device with `file_path = "stdout"`).
    pub fn stdout(path: impl AsRef<str>) -> AuditDevice {
        AuditDevice::file(path, "stdout")
    }

    /// A device that formats entries and throws them away (`file_path = "discard"`); handy to
    /// measure the cost of auditing.
    pub fn discard(path: impl AsRef<str>) -> AuditDevice {
        AuditDevice::file(path, "discard")
    }

    /// A socket device sending to `address` (`host:port`, or a path for [`SocketType::Unix`]).
    pub fn socket(
        path: impl AsRef<str>,
        address: impl Into<String>,
        socket_type: SocketType,
    ) -> AuditDevice {
        AuditDevice::new(path.as_ref(), AuditKind::Socket)
            .option("address", address)
            .option("socket_type", socket_type.as_str())
    }

    /// A device from OpenBao's configuration shape: `audit "<device_type>" "<path>" { options
    /// { ... } }`. Fails with OpenBao's texts (`file_path is required`, `address is required`,
    /// `unknown backend type: "syslog"`) and on any invalid option.
    pub fn from_config<K, V>(
        device_type: &str,
        path: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<AuditDevice>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let kind = match device_type {
            "file" => AuditKind::File,
            "socket" => AuditKind::Socket,
            other => {
                return Err(Error::invalid_input(format!(
                    "unknown backend type: \"{other}\""
                )));
            }
        };
        let mut device = AuditDevice::new(path, kind);
        device.options = options
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        device.validate()?;
        Ok(device)
    }

    /// Set an OpenBao option (`log_raw`, `hmac_accessor`, `prefix`, `mode`, ...).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> AuditDevice {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Fail closed: see [`FailurePolicy::Required`] (the default).
    pub fn required(self) -> AuditDevice {
        self.with_failure(FailurePolicy::Required)
    }

    /// Never slow the caller: see [`FailurePolicy::BestEffort`].
    pub fn best_effort(self) -> AuditDevice {
        self.with_failure(FailurePolicy::BestEffort)
    }

    /// Set the failure policy.
    pub fn with_failure(mut self, failure: FailurePolicy) -> AuditDevice {
        self.failure = failure;
        self
    }

    /// How long a call waits for this device when it is [`FailurePolicy::Required`] (default
    /// [`DEFAULT_AUDIT_DEADLINE`]). A device still busy with an older entry past its deadline
    /// fails new calls at once instead of making each of them wait.
    pub fn with_deadline(mut self, deadline: Duration) -> AuditDevice {
        self.deadline = deadline;
        self
    }

    /// How many entries may wait for the device (default [`DEFAULT_AUDIT_QUEUE_CAPACITY`],
    /// at least 1).
    pub fn with_queue_capacity(mut self, capacity: usize) -> AuditDevice {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// A description, shown by `sys/audit`.
    pub fn with_description(mut self, description: impl Into<String>) -> AuditDevice {
        self.description = description.into();
        self
    }

    /// The device path, with one trailing `/` (`audit/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The kind of device.
    pub fn kind(&self) -> AuditKind {
        self.kind
    }

    /// The OpenBao options, as given.
    pub fn options(&self) -> &BTreeMap<String, String> {
        &self.options
    }

    /// The description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The failure policy.
    pub fn failure(&self) -> FailurePolicy {
        self.failure
    }

    /// How long a call waits for this device when it is required.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// How many entries may wait for the device.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// Check the path and every option without touching the file system or the network.
    pub fn validate(&self) -> Result<()> {
        Settings::parse(self).map(|_| ())
    }
}

/// `audit/`, `/audit`, `audit` → `audit/`; empty stays empty (and is refused by `validate`).
pub(crate) fn normalize_path(path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// How entries are rendered for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatOptions {
    /// Written before each JSON line.
    pub prefix: String,
    /// HMAC accessors too (default true).
    pub hmac_accessor: bool,
    /// Log everything in clear (default false).
    pub log_raw: bool,
    /// Replace LIST `keys` (and `key_info`) with their count (default false).
    pub elide_list_responses: bool,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            prefix: String::new(),
            hmac_accessor: true,
            log_raw: false,
            elide_list_responses: false,
        }
    }
}

/// The mode a file device gives its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileMode {
    /// chmod to these permission bits (exec bits already stripped).
    Set(u32),
    /// `mode = "0000"`: keep the mode of the existing file.
    Keep,
}

/// Where a device writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A regular file.
    File { path: PathBuf, mode: FileMode },
    /// `file_path = "stdout"`.
    Stdout,
    /// `file_path = "discard"`.
    Discard,
    /// A socket.
    Socket {
        address: String,
        socket_type: SocketType,
        write_timeout: Duration,
    },
}

/// A device's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub format: FormatOptions,
    pub target: Target,
}

/// Go's `os.ModeType` bits (dir, symlink, pipe, socket, device, char device, irregular): a
/// `mode` with any of them does not describe a regular file.
const GO_MODE_TYPE: u64 = (1 << 31) | (1 << 27) | (1 << 25) | (1 << 24) | (1 << 26) | (1 << 21);
const GO_MODE_IRREGULAR: u64 = 1 << 19;

impl Settings {
    pub(crate) fn parse(device: &AuditDevice) -> Result<Settings> {
        if device.path.is_empty() {
            return Err(Error::invalid_input("backend path must be specified"));
        }
        let opts = &device.options;
        let format = parse_format(opts)?;
        let target = match device.kind {
            AuditKind::File => parse_file_target(opts)?,
            AuditKind::Socket => parse_socket_target(opts)?,
        };
        Ok(Settings { format, target })
    }
}

fn parse_format(opts: &BTreeMap<String, String>) -> Result<FormatOptions> {
    match opts.get("format").map(String::as_str) {
        None | Some("json") => {}
        Some("jsonx") => {
            return Err(Error::invalid_input(
                "jsonx formatting has been removed, consider switching to json by omitting \"format\" or setting it to \"json\"",
            ));
        }
        Some(other) => {
            return Err(Error::invalid_input(format!(
                "unknown format type \"{other}\""
            )));
        }
    }
    Ok(FormatOptions {
        prefix: opts.get("prefix").cloned().unwrap_or_default(),
        hmac_accessor: parse_bool(opts, "hmac_accessor", true)?,
        log_raw: parse_bool(opts, "log_raw", false)?,
        elide_list_responses: parse_bool(opts, "elide_list_responses", false)?,
    })
}

/// Go's `strconv.ParseBool` spellings.
fn parse_bool(opts: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match opts.get(key).map(String::as_str) {
        None => Ok(default),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(Error::invalid_input(format!(
            "invalid value `{other}` for `{key}`: expected a boolean"
        ))),
    }
}

fn parse_file_target(opts: &BTreeMap<String, String>) -> Result<Target> {
    let path = opts
        .get("file_path")
        .or_else(|| opts.get("path"))
        .ok_or_else(|| Error::invalid_input("file_path is required"))?;
    if path.eq_ignore_ascii_case("stdout") {
        return Ok(Target::Stdout);
    }
    if path.eq_ignore_ascii_case("discard") {
        return Ok(Target::Discard);
    }
    if path.is_empty() {
        return Err(Error::invalid_input("file_path is required"));
    }
    let mode = match opts.get("mode") {
        None => FileMode::Set(0o600),
        Some(raw) => {
            let m = u64::from_str_radix(raw, 8)
                .ok()
                .filter(|m| *m <= u64::from(u32::MAX))
                .ok_or_else(|| {
                    // Go's strconv text, as OpenBao returns it.
                    Error::invalid_input(format!(
                        "strconv.ParseUint: parsing \"{raw}\": invalid syntax"
                    ))
                })?;
            if m == 0 {
                FileMode::Keep
            } else if m & (GO_MODE_TYPE | GO_MODE_IRREGULAR) != 0 {
                return Err(Error::invalid_input(
                    "file mode does not represent a regular file",
                ));
            } else {
                // Permission bits only, exec bits stripped: part of HCSEC-2025-14 was making
                // the audit file executable.
                FileMode::Set(u32::try_from(m & 0o666).unwrap_or(0o600))
            }
        }
    };
    Ok(Target::File {
        path: PathBuf::from(path),
        mode,
    })
}

fn parse_socket_target(opts: &BTreeMap<String, String>) -> Result<Target> {
    let address = opts
        .get("address")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::invalid_input("address is required"))?;
    let socket_type = match opts.get("socket_type") {
        None => SocketType::Tcp,
        Some(s) => s.parse()?,
    };
    let write_timeout = match opts.get("write_timeout") {
        None => Duration::from_secs(2),
        Some(s) => crate::util::duration::parse(s)?,
    };
    Ok(Target::Socket {
        address: address.clone(),
        socket_type,
        write_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(d: &AuditDevice) -> Settings {
        Settings::parse(d).unwrap()
    }

    fn err(d: &AuditDevice) -> String {
        d.validate().unwrap_err().to_string()
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(AuditDevice::stdout("/audit").path(), "audit/");
        assert_eq!(AuditDevice::stdout("a/b//").path(), "a/b/");
        assert_eq!(
            err(&AuditDevice::stdout("/")),
            "backend path must be specified"
        );
    }

    #[test]
    fn file_defaults() {
        let s = settings(&AuditDevice::file("f", "/tmp/x.log"));
        assert_eq!(s.format, FormatOptions::default());
        assert_eq!(
            s.target,
            Target::File {
                path: "/tmp/x.log".into(),
                mode: FileMode::Set(0o600)
            }
        );
    }

    #[test]
    fn file_path_alias_and_special_paths() {
        let d = AuditDevice::from_config("file", "f", [("path", "/tmp/y.log")]).unwrap();
        assert!(matches!(settings(&d).target, Target::File { .. }));
        let d = AuditDevice::from_config("file", "f", [("file_path", "STDOUT")]).unwrap();
        assert_eq!(settings(&d).target, Target::Stdout);
        let d = AuditDevice::from_config("file", "f", [("file_path", "Discard")]).unwrap();
        assert_eq!(settings(&d).target, Target::Discard);
    }

    #[test]
    fn config_errors_use_openbao_texts() {
        let e = AuditDevice::from_config("file", "f", [("mode", "0600")]).unwrap_err();
        assert_eq!(e.to_string(), "file_path is required");
        let e = AuditDevice::from_config("socket", "s", [("socket_type", "tcp")]).unwrap_err();
        assert_eq!(e.to_string(), "address is required");
        let e = AuditDevice::from_config::<&str, &str>("syslog", "s", []).unwrap_err();
        assert_eq!(e.to_string(), "unknown backend type: \"syslog\"");
        assert_eq!(
            err(&AuditDevice::stdout("f").option("format", "jsonx")),
            "jsonx formatting has been removed, consider switching to json by omitting \"format\" or setting it to \"json\""
        );
        assert_eq!(
            err(&AuditDevice::stdout("f").option("format", "xml")),
            "unknown format type \"xml\""
        );
        assert_eq!(
            err(&AuditDevice::stdout("f").option("log_raw", "yes")),
            "invalid value `yes` for `log_raw`: expected a boolean"
        );
        assert_eq!(
            err(&AuditDevice::file("f", "/x").option("mode", "rw")),
            "strconv.ParseUint: parsing \"rw\": invalid syntax"
        );
        assert_eq!(
            err(&AuditDevice::file("f", "/x").option("mode", "20000000644")),
            "file mode does not represent a regular file"
        );
        assert_eq!(
            err(&AuditDevice::socket("s", "h:1", SocketType::Tcp).option("socket_type", "sctp")),
            "unknown socket_type `sctp`: expected `tcp`, `udp` or `unix`"
        );
    }

    #[test]
    fn mode_strips_exec_bits_and_zero_keeps() {
        let mode = |m: &str| match settings(&AuditDevice::file("f", "/x").option("mode", m)).target
        {
            Target::File { mode, .. } => mode,
            other => panic!("{other:?}"),
        };
        assert_eq!(mode("0755"), FileMode::Set(0o644));
        assert_eq!(mode("0640"), FileMode::Set(0o640));
        assert_eq!(mode("4777"), FileMode::Set(0o666));
        assert_eq!(mode("0000"), FileMode::Keep);
    }

    #[test]
    fn format_options_parse_go_booleans() {
        let s = settings(
            &AuditDevice::stdout("f")
                .option("hmac_accessor", "F")
                .option("log_raw", "1")
                .option("elide_list_responses", "True")
                .option("prefix", "@cee: "),
        );
        assert_eq!(
            s.format,
            FormatOptions {
                prefix: "@cee: ".into(),
                hmac_accessor: false,
                log_raw: true,
                elide_list_responses: true
            }
        );
    }

    #[test]
    fn socket_options() {
        let d = AuditDevice::from_config(
            "socket",
            "s",
            [
                ("address", "/run/a.sock"),
                ("socket_type", "unix"),
                ("write_timeout", "150ms"),
            ],
        )
        .unwrap();
        assert_eq!(
            settings(&d).target,
            Target::Socket {
                address: "/run/a.sock".into(),
                socket_type: SocketType::Unix,
                write_timeout: Duration::from_millis(150)
            }
        );
        let d = AuditDevice::from_config("socket", "s", [("address", "h:1")]).unwrap();
        assert!(matches!(
            settings(&d).target,
            Target::Socket { socket_type: SocketType::Tcp, write_timeout, .. } if write_timeout == Duration::from_secs(2)
        ));
    }

    #[test]
    fn failure_policy_builders() {
        let d = AuditDevice::stdout("a");
        assert_eq!(d.failure(), FailurePolicy::Required);
        assert_eq!(d.clone().best_effort().failure(), FailurePolicy::BestEffort);
        assert_eq!(d.with_queue_capacity(0).queue_capacity(), 1);
        assert!("sometimes".parse::<FailurePolicy>().is_err());
    }
}
