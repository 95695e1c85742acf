//! Keeping rendered templates fresh: the rules of Vault Agent / consul-template, shared by
//! `strongroom agent` (secrets over HTTP) and in-process users (secrets from a [`Client`]).
//!
//! - a leased secret is renewed at about 2/3 of its lease; when renewal fails it is fetched anew;
//! - a certificate (`pkiCert`, or any answer carrying a `certificate`) is fetched anew at 3/4 of
//!   its validity: before it expires, never while more than half its life is left;
//! - a static secret (no lease: KV) is re-read every `static_secret_render_interval`;
//! - a destination file is rewritten only when its content changes, atomically (a temporary
//!   file in the same directory, synced, renamed over the old one): never a partial file;
//! - a failed fetch keeps the last good value and files, and is retried with a doubling backoff.
//!
//! Time comes from a [`Clock`](crate::Clock), so tests drive expiry with a virtual clock.
//!
//! [`Client`]: crate::Client

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use super::{Brain, Dependency, Template, VaultSecret};
use crate::clock::SharedClock;
use crate::error::{Error, ErrorCode, Result};

/// What a source answered for one dependency.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// A read or write answer (`secret`, `pkiCert`).
    Secret(VaultSecret),
    /// The keys a `secrets` LIST returned.
    List(Vec<String>),
}

/// Where secrets come from: a Vault-compatible server over HTTP, or the engine in-process.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// Reads, writes (with the dependency's parameters) or lists, as the dependency says.
    /// Nothing at the path is [`ErrorCode::NotFound`].
    async fn fetch(&self, dep: &Dependency) -> Result<Fetched>;
    /// Renews a lease; answers the new lease duration in seconds.
    async fn renew(&self, lease_id: &str) -> Result<u64>;
}

/// Where a template's output goes.
#[derive(Debug, Clone)]
pub struct FileTarget {
    /// The destination file.
    pub path: PathBuf,
    /// Unix permission bits of the file (`perms`, default 0644).
    pub perms: u32,
    /// Create missing parent directories (`create_dest_dirs`, default true).
    pub create_dirs: bool,
}

impl FileTarget {
    /// Writes `contents` atomically (temporary file beside the target, synced, renamed), with
    /// the target's permissions, creating parent directories when asked. The agent writes its
    /// token sinks the same way.
    pub fn write(&self, contents: &str) -> Result<()> {
        write_atomic(self, contents)
    }
}

/// Renewal state of one fetched dependency.
#[derive(Debug, Clone)]
struct DepState {
    lease_id: String,
    renewable: bool,
    /// When to renew or fetch anew.
    due: OffsetDateTime,
    /// Renew at `due` (else fetch anew).
    renew: bool,
    failures: u32,
}

struct Watched {
    template: Template,
    target: Option<FileTarget>,
    last: Option<SecretString>,
}

/// Options of a [`Watcher`] (the agent's `template_config` and `retry`).
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Re-read secrets without a lease this often (`static_secret_render_interval`, 5 min).
    pub static_secret_render_interval: Duration,
    /// First retry delay after a failed fetch (`retry { backoff }`, 250 ms); doubles.
    pub backoff: Duration,
    /// Longest retry delay (`retry { max_backoff }`, 1 min).
    pub max_backoff: Duration,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            static_secret_render_interval: Duration::from_secs(300),
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Renders a set of templates and keeps them fresh.
pub struct Watcher<S> {
    source: S,
    clock: SharedClock,
    options: WatchOptions,
    templates: Vec<Watched>,
    brain: Brain,
    states: HashMap<Dependency, DepState>,
}

impl<S> fmt::Debug for Watcher<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("templates", &self.templates.len())
            .field("dependencies", &self.states.len())
            .finish()
    }
}

fn after(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    now.checked_add(time::Duration::try_from(d).unwrap_or(time::Duration::DAY))
        .unwrap_or(now)
}

/// `(not_before, not_after)` of the first certificate in a PEM text.
fn cert_validity(pem_text: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    use x509_parser::prelude::FromDer;
    let block = pem::parse(pem_text).ok()?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(block.contents()).ok()?;
    let v = cert.validity();
    Some((
        OffsetDateTime::from_unix_timestamp(v.not_before.timestamp()).ok()?,
        OffsetDateTime::from_unix_timestamp(v.not_after.timestamp()).ok()?,
    ))
}

impl<S: SecretSource> Watcher<S> {
    /// A watcher over `source`, on `clock`.
    pub fn new(source: S, clock: SharedClock, options: WatchOptions) -> Watcher<S> {
        Watcher {
            source,
            clock,
            options,
            templates: Vec::new(),
            brain: Brain::default(),
            states: HashMap::new(),
        }
    }

    /// Adds a template; with a target its output is written there. Answers its index.
    pub fn add(&mut self, template: Template, target: Option<FileTarget>) -> usize {
        self.templates.push(Watched {
            template,
            target,
            last: None,
        });
        self.templates.len() - 1
    }

    /// The last complete output of template `index`.
    pub fn contents(&self, index: usize) -> Option<&str> {
        self.templates
            .get(index)
            .and_then(|w| w.last.as_ref())
            .map(|s| s.expose_secret())
    }

    /// The source (to reach its token, for instance).
    pub fn source(&self) -> &S {
        &self.source
    }

    /// When the next renewal or re-read is due (`None`: nothing to refresh).
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        self.states.values().map(|s| s.due).min()
    }

    fn schedule(&self, dep: &Dependency, fetched: &Fetched, now: OffsetDateTime) -> DepState {
        let interval = self.options.static_secret_render_interval;
        let Fetched::Secret(secret) = fetched else {
            return DepState {
                lease_id: String::new(),
                renewable: false,
                due: after(now, interval),
                renew: false,
                failures: 0,
            };
        };
        let cert = secret
            .data
            .get("certificate")
            .and_then(serde_json::Value::as_str)
            .and_then(cert_validity);
        let issued = matches!(dep, Dependency::PkiCert { .. }) || dep.is_write();
        if let (Some((nb, na)), true) = (cert, issued) {
            // Fetch anew at 3/4 of the certificate's life.
            let life: time::Duration = na - nb;
            let due: OffsetDateTime = nb + life * 3 / 4;
            return DepState {
                lease_id: secret.lease_id.clone(),
                renewable: false,
                due: due.max(now),
                renew: false,
                failures: 0,
            };
        }
        if !secret.lease_id.is_empty() && secret.lease_duration > 0 {
            let lease = Duration::from_secs(secret.lease_duration);
            return DepState {
                lease_id: secret.lease_id.clone(),
                renewable: secret.renewable,
                due: after(now, lease * 2 / 3),
                renew: secret.renewable,
                failures: 0,
            };
        }
        DepState {
            lease_id: String::new(),
            renewable: false,
            due: after(now, interval),
            renew: false,
            failures: 0,
        }
    }

    /// consul-template's `pkiCert` rule at start: a certificate and key already in the
    /// destination file, with more than half their life left, are used instead of issuing a
    /// new one (a restarted agent does not mint a certificate each time). The values are read
    /// without a trailing newline, as OpenBao returns them; a template whose output then
    /// differs in whitespace rewrites the file once, with the same certificate.
    fn reuse_certificate(&mut self, dep: &Dependency, target: &FileTarget) -> bool {
        let Ok(text) = std::fs::read_to_string(&target.path) else {
            return false;
        };
        // The blocks as written (re-encoding could differ from what the template rendered).
        let blocks = pem_blocks(&text);
        let certs: Vec<&str> = blocks
            .iter()
            .filter(|(tag, _)| *tag == "CERTIFICATE")
            .map(|(_, b)| *b)
            .collect();
        let key = blocks
            .iter()
            .find(|(tag, _)| tag.ends_with("PRIVATE KEY"))
            .map(|(_, b)| *b);
        let (Some(cert), Some(key)) = (certs.first(), key) else {
            return false;
        };
        let Some((nb, na)) = cert_validity(cert) else {
            return false;
        };
        let now = self.clock.now();
        if now >= nb + (na - nb) / 2 {
            return false;
        }
        let mut data = serde_json::Map::new();
        data.insert("certificate".into(), (*cert).into());
        data.insert("private_key".into(), key.into());
        if let Some(ca) = certs.get(1) {
            data.insert("issuing_ca".into(), (*ca).into());
        }
        let chain: Vec<serde_json::Value> = certs.iter().skip(1).map(|c| (*c).into()).collect();
        data.insert("ca_chain".into(), chain.into());
        let fetched = Fetched::Secret(VaultSecret {
            data,
            ..VaultSecret::default()
        });
        let state = self.schedule(dep, &fetched, now);
        if let Fetched::Secret(s) = &fetched {
            self.brain.insert_secret(dep.clone(), s);
        }
        self.states.insert(dep.clone(), state);
        true
    }

    async fn fetch_into_brain(&mut self, dep: &Dependency) -> Result<()> {
        let fetched = self.source.fetch(dep).await?;
        let now = self.clock.now();
        let state = self.schedule(dep, &fetched, now);
        match &fetched {
            Fetched::Secret(s) => self.brain.insert_secret(dep.clone(), s),
            Fetched::List(keys) => self.brain.insert_list(dep.clone(), keys.clone()),
        }
        self.states.insert(dep.clone(), state);
        Ok(())
    }

    /// Renders every template, fetching what is missing (a template may need several passes
    /// when one secret's path comes from another), and writes the outputs that changed.
    /// Answers the indexes of the templates whose output changed. A fetch or render error
    /// stops here and changes no file.
    pub async fn render_all(&mut self) -> Result<Vec<usize>> {
        let mut changed = Vec::new();
        for index in 0..self.templates.len() {
            let mut passes = 0;
            let contents = loop {
                let Some(w) = self.templates.get(index) else {
                    break None;
                };
                let rendered = w.template.render(&self.brain, self.clock.now())?;
                if rendered.missing().is_empty() {
                    break rendered.into_contents();
                }
                passes += 1;
                if passes > 16 {
                    return Err(Error::invalid_input(format!(
                        "template `{}`: dependencies still missing after 16 passes",
                        w.template.name()
                    )));
                }
                let target = w.target.clone();
                for dep in rendered.missing().to_vec() {
                    if matches!(dep, Dependency::PkiCert { .. })
                        && let Some(t) = &target
                        && self.reuse_certificate(&dep, t)
                    {
                        continue;
                    }
                    self.fetch_into_brain(&dep).await?;
                }
            };
            let Some(contents) = contents else { continue };
            let Some(w) = self.templates.get_mut(index) else {
                continue;
            };
            let same = w
                .last
                .as_ref()
                .is_some_and(|l| l.expose_secret() == contents.expose_secret());
            if let Some(target) = &w.target {
                let on_disk_same = same
                    || std::fs::read(&target.path)
                        .is_ok_and(|b| b == contents.expose_secret().as_bytes());
                if !on_disk_same {
                    write_atomic(target, contents.expose_secret())?;
                    changed.push(index);
                } else if !same {
                    // First render matching a file from an earlier run: nothing to write.
                    set_perms(target)?;
                }
            } else if !same {
                changed.push(index);
            }
            w.last = Some(contents);
        }
        Ok(changed)
    }

    /// Renews or re-fetches what is due by the clock, then renders again. A dependency whose
    /// fetch fails keeps its last value and is retried with a doubling backoff; the first
    /// such error is answered after the others were tried (files stay as they were).
    pub async fn refresh(&mut self) -> Result<Vec<usize>> {
        let now = self.clock.now();
        // Forget what no template uses any more.
        let mut used: Vec<Dependency> = Vec::new();
        for w in &self.templates {
            if let Ok(r) = w.template.render(&self.brain, now) {
                used.extend(r.dependencies().iter().cloned());
            }
        }
        let unused: Vec<Dependency> = self
            .states
            .keys()
            .filter(|d| !used.contains(d))
            .cloned()
            .collect();
        for d in unused {
            self.states.remove(&d);
            self.brain.remove(&d);
        }
        let due: Vec<(Dependency, DepState)> = self
            .states
            .iter()
            .filter(|(_, s)| s.due <= now)
            .map(|(d, s)| (d.clone(), s.clone()))
            .collect();
        let mut first_error = None;
        for (dep, state) in due {
            if state.renew && state.renewable {
                match self.source.renew(&state.lease_id).await {
                    Ok(secs) if secs > 0 => {
                        if let Some(s) = self.states.get_mut(&dep) {
                            s.due = after(now, Duration::from_secs(secs) * 2 / 3);
                            s.failures = 0;
                        }
                        continue;
                    }
                    // Not renewable any more (or at its max TTL): fetch anew below.
                    _ => {}
                }
            }
            if let Err(e) = self.fetch_into_brain(&dep).await {
                if let Some(s) = self.states.get_mut(&dep) {
                    s.failures = s.failures.saturating_add(1);
                    let factor = 1u32 << s.failures.min(16).saturating_sub(1);
                    let delay = (self.options.backoff * factor).min(self.options.max_backoff);
                    s.due = after(now, delay);
                    s.renew = false;
                }
                first_error.get_or_insert(e);
            }
        }
        let changed = self.render_all().await?;
        match first_error {
            Some(e) if changed.is_empty() => Err(e),
            _ => Ok(changed),
        }
    }
}

/// `(tag, block text from BEGIN to END inclusive)` of every PEM block in `text`.
fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from = rest.get(start..).unwrap_or("");
        let Some(tag_end) = from.get(11..).and_then(|t| t.find("-----")) else {
            break;
        };
        let tag = from.get(11..11 + tag_end).unwrap_or("");
        let end_marker = format!("-----END {tag}-----");
        let Some(end) = from.find(&end_marker) else {
            break;
        };
        let len = end + end_marker.len();
        out.push((tag, from.get(..len).unwrap_or("")));
        rest = from.get(len..).unwrap_or("");
    }
    out
}

fn set_perms(target: &FileTarget) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &target.path,
            std::fs::Permissions::from_mode(target.perms & 0o7777),
        )
        .map_err(|e| io_error("set the permissions of", target, e))?;
    }
    Ok(())
}

fn io_error(what: &str, target: &FileTarget, e: std::io::Error) -> Error {
    Error::new(
        ErrorCode::Unavailable,
        format!("cannot {what} `{}`: {e}", target.path.display()),
    )
}

/// Writes `contents` to a temporary file beside the target (mode set before any byte is
/// written), syncs it and renames it over the target: readers see the old or the new file.
fn write_atomic(target: &FileTarget, contents: &str) -> Result<()> {
    use std::io::Write as _;
    let dir = match target.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if target.create_dirs {
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_error("create the directory of", target, e))?;
    }
    let name = target
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(target.perms & 0o7777);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("write", target, e));
    }
    #[cfg(unix)]
    {
        // The umask may have narrowed the mode given at creation.
        use std::os::unix::fs::PermissionsExt;
        let _ =
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(target.perms & 0o7777));
    }
    std::fs::rename(&tmp, &target.path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("replace", target, e)
    })
}

/// The engine in-process as a source: the same pipeline (token, policy, audit, leases) as
/// every other call, no HTTP.
#[async_trait]
impl SecretSource for crate::Client {
    async fn fetch(&self, dep: &Dependency) -> Result<Fetched> {
        let path = dep.path();
        let response = match dep {
            Dependency::Secrets { .. } => return Ok(Fetched::List(self.list(path).await?)),
            _ if dep.is_write() => {
                let data = dep
                    .params()
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                self.write(path, data).await?
            }
            _ => self
                .read(path)
                .await?
                .ok_or_else(|| Error::not_found(format!("no secret exists at `{path}`")))?,
        };
        Ok(Fetched::Secret(VaultSecret {
            request_id: response.request_id,
            lease_id: response.lease_id,
            lease_duration: response.lease_duration,
            renewable: response.renewable,
            data: response.data.unwrap_or_default(),
            warnings: response.warnings,
        }))
    }

    async fn renew(&self, lease_id: &str) -> Result<u64> {
        Ok(self
            .leases()
            .renew(lease_id, Duration::ZERO)
            .await?
            .ttl
            .as_secs())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::template::TemplateOptions;
    use crate::{Client, Clock, Config, Strongroom, VirtualClock, data};

    const SEED: &str = "{{- with secret \"secret/data/production/api-service\" -}}\nDATABASE_URL={{ .Data.data.database_url }}\nAPI_KEY={{ .Data.data.api_key }}\n{{- end -}}\n";

    async fn engine() -> (Strongroom, Client, VirtualClock) {
        let clock = VirtualClock::new();
        let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())))
            .await
            .unwrap();
        let root = sr.client(sr.dev_root_token().unwrap());
        (sr, root, clock)
    }

    fn target(dir: &std::path::Path, perms: u32) -> FileTarget {
        FileTarget {
            path: dir.join("vault/secrets/config"),
            perms,
            create_dirs: true,
        }
    }

    #[tokio::test]
    async fn kv_secret_rendered_atomically_and_reread_every_interval() {
        use std::os::unix::fs::PermissionsExt;
        let (_sr, root, clock) = engine().await;
        root.kv("secret")
            .put(
                "production/api-service",
                &data(json!({"database_url": "postgresql://user:pass@db:5432/app", "api_key": "sk_live_xxxxx"})),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path(), 0o640);
        let opts = WatchOptions {
            static_secret_render_interval: Duration::from_secs(30),
            ..WatchOptions::default()
        };
        let mut w = Watcher::new(root.clone(), Arc::new(clock.clone()), opts);
        let i = w.add(
            Template::parse("config", SEED, &TemplateOptions::default()).unwrap(),
            Some(t.clone()),
        );
        // A watcher over a Client can live in a spawned task (its futures are Send).
        let (mut w, changed) = tokio::spawn(async move {
            let changed = w.render_all().await.unwrap();
            (w, changed)
        })
        .await
        .unwrap();
        assert_eq!(changed, vec![i]);
        let text = std::fs::read_to_string(&t.path).unwrap();
        assert_eq!(
            text,
            "DATABASE_URL=postgresql://user:pass@db:5432/app\nAPI_KEY=sk_live_xxxxx"
        );
        let mode = std::fs::metadata(&t.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(w.contents(i), Some(text.as_str()));
        // Nothing changed: no write (the inode stays), nothing due before the interval.
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&t.path).unwrap());
        assert!(w.render_all().await.unwrap().is_empty());
        root.kv("secret")
            .put(
                "production/api-service",
                &data(json!({"database_url": "postgresql://u2@db/app", "api_key": "sk_2"})),
            )
            .await
            .unwrap();
        clock.advance(Duration::from_secs(29));
        assert!(w.refresh().await.unwrap().is_empty());
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&t.path).unwrap()),
            ino
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(w.refresh().await.unwrap(), vec![i]);
        assert_eq!(
            std::fs::read_to_string(&t.path).unwrap(),
            "DATABASE_URL=postgresql://u2@db/app\nAPI_KEY=sk_2"
        );
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(t.path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config"]);
        // The secret gone: the error says so, the last good file stays.
        root.kv("secret")
            .delete_metadata("production/api-service")
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        let err = w.refresh().await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        assert!(!err.message().contains("sk_2"));
        assert_eq!(
            std::fs::read_to_string(&t.path).unwrap(),
            "DATABASE_URL=postgresql://u2@db/app\nAPI_KEY=sk_2"
        );
        // Retried after the backoff, not before.
        let due = w.next_due().unwrap();
        assert_eq!(due, clock.now() + time::Duration::milliseconds(250));
    }

    #[tokio::test]
    async fn leases_renewed_at_two_thirds_and_fetched_anew_when_renewal_fails() {
        let (_sr, root, clock) = engine().await;
        root.sys()
            .enable_mount("tl", "test-leases", &[])
            .await
            .unwrap();
        let mut w = Watcher::new(
            root.clone(),
            Arc::new(clock.clone()),
            WatchOptions::default(),
        );
        let src = r#"{{ with secret "tl/issue/db" "ttl=60s" "max_ttl=1h" }}{{ .LeaseID }} {{ .LeaseDuration }}{{ end }}"#;
        let i = w.add(
            Template::parse("db", src, &TemplateOptions::default()).unwrap(),
            None,
        );
        assert_eq!(w.render_all().await.unwrap(), vec![i]);
        let first = w.contents(i).unwrap().to_string();
        let lease = first.split(' ').next().unwrap().to_string();
        assert!(lease.starts_with("tl/issue/db/"), "{first}");
        assert_eq!(
            w.next_due(),
            Some(clock.now() + time::Duration::seconds(40))
        );
        // Before 2/3 of the lease: no request at all.
        clock.advance(Duration::from_secs(39));
        assert!(w.refresh().await.unwrap().is_empty());
        // At 2/3: renewed, the same lease, the file unchanged.
        clock.advance(Duration::from_secs(1));
        assert!(w.refresh().await.unwrap().is_empty());
        assert_eq!(w.contents(i).unwrap(), first);
        let details = root.leases().lookup(&lease).await.unwrap();
        assert!(
            details.last_renewal.is_some() && details.ttl >= 59,
            "{details:?}"
        );
        // Revoked behind the agent's back: renewal fails, so it is fetched anew.
        root.leases().revoke(&lease).await.unwrap();
        clock.advance(Duration::from_secs(40));
        assert_eq!(w.refresh().await.unwrap(), vec![i]);
        assert_ne!(w.contents(i).unwrap().split(' ').next().unwrap(), lease);
    }

    #[tokio::test]
    async fn certificates_are_issued_anew_at_three_quarters_of_their_life() {
        let (_sr, root, clock) = engine().await;
        root.sys()
            .enable_mount("pki", "pki", &[("max_lease_ttl", "87600h")])
            .await
            .unwrap();
        root.write(
            "pki/root/generate/internal",
            data(json!({"common_name": "example.com", "ttl": "87600h"})),
        )
        .await
        .unwrap();
        root.write("pki/roles/web", data(json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"})))
            .await
            .unwrap();
        let mut w = Watcher::new(
            root.clone(),
            Arc::new(clock.clone()),
            WatchOptions::default(),
        );
        let src = r#"{{ with pkiCert "pki/issue/web" "common_name=a.example.com" "ttl=4h" }}{{ .Cert }}{{ .Key }}{{ end }}"#;
        let i = w.add(
            Template::parse("cert", src, &TemplateOptions::default()).unwrap(),
            None,
        );
        assert_eq!(w.render_all().await.unwrap(), vec![i]);
        let first = w.contents(i).unwrap().to_string();
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----") && first.contains("PRIVATE KEY"));
        let (nb, na) = cert_validity(&first).unwrap();
        let due = w.next_due().unwrap();
        assert_eq!(due, nb + (na - nb) * 3 / 4);
        // More than half its life left at the start; due well before it expires.
        assert!(due - clock.now() > time::Duration::hours(2) && due < na);
        clock.advance(Duration::from_secs(2 * 3600 + 60));
        assert!(
            w.refresh().await.unwrap().is_empty(),
            "not while more than a quarter is left"
        );
        clock.advance(Duration::try_from(due - clock.now()).unwrap());
        assert_eq!(w.refresh().await.unwrap(), vec![i]);
        let second = w.contents(i).unwrap();
        assert_ne!(second, first);
        let (nb2, _) = cert_validity(second).unwrap();
        assert!(nb2 > nb);
    }

    #[tokio::test]
    async fn a_certificate_in_the_destination_file_is_reused_while_more_than_half_is_left() {
        let (_sr, root, clock) = engine().await;
        root.sys()
            .enable_mount("pki", "pki", &[("max_lease_ttl", "87600h")])
            .await
            .unwrap();
        root.write(
            "pki/root/generate/internal",
            data(json!({"common_name": "example.com", "ttl": "87600h"})),
        )
        .await
        .unwrap();
        root.write("pki/roles/web", data(json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"})))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = FileTarget {
            path: dir.path().join("web.pem"),
            perms: 0o600,
            create_dirs: true,
        };
        let src = "{{ with pkiCert \"pki/issue/web\" \"common_name=a.example.com\" \"ttl=4h\" }}{{ .Cert }}\n{{ .CA }}\n{{ .Key }}\n{{ end }}";
        let agent = |clock: &VirtualClock| {
            let mut w = Watcher::new(
                root.clone(),
                Arc::new(clock.clone()),
                WatchOptions::default(),
            );
            w.add(
                Template::parse("web", src, &TemplateOptions::default()).unwrap(),
                Some(target.clone()),
            );
            w
        };
        let mut first = agent(&clock);
        assert_eq!(first.render_all().await.unwrap(), vec![0]);
        let issued = std::fs::read_to_string(&target.path).unwrap();
        // A restarted agent an hour later: the file's certificate is kept, nothing rewritten.
        clock.advance(Duration::from_secs(3600));
        let mut second = agent(&clock);
        second.render_all().await.unwrap();
        let cert_of = |text: &str| {
            pem_blocks(text)
                .first()
                .map(|(_, b)| b.to_string())
                .unwrap()
        };
        assert_eq!(
            cert_of(&std::fs::read_to_string(&target.path).unwrap()),
            cert_of(&issued),
            "not issued anew"
        );
        let (nb, na) = cert_validity(&issued).unwrap();
        assert_eq!(second.next_due(), Some(nb + (na - nb) * 3 / 4));
        // Restarted past half its life: a new one.
        clock.advance(Duration::from_secs(3600 + 60));
        let mut third = agent(&clock);
        assert_eq!(third.render_all().await.unwrap(), vec![0]);
        assert_ne!(
            cert_of(&std::fs::read_to_string(&target.path).unwrap()),
            cert_of(&issued)
        );
    }
}
