//! Templates in consul-template's language (Go `text/template` plus Vault functions), rendered
//! against secrets fetched from a Vault-compatible source: the engine behind `strongroom agent`
//! and the in-process renderer of [`crate::Client`] users.
//!
//! Rendering is consul-template's two-step: a render records which secrets the template asked
//! for (its [`Dependency`] list); a secret not yet in the [`Brain`] renders as nil and is
//! reported missing; the caller fetches the missing ones and renders again. The renderer itself
//! never does I/O on secrets, so it is synchronous, cheap, and the same for every source (HTTP
//! for the agent, the engine's own pipeline in-process).
//!
//! ```
//! use strongroom::template::{Brain, Dependency, Template, TemplateOptions, VaultSecret};
//! use serde_json::json;
//!
//! let t = Template::parse(
//!     "config",
//!     "{{ with secret \"secret/data/app\" }}KEY={{ .Data.data.key }}{{ end }}",
//!     &TemplateOptions::default(),
//! )?;
//! let mut brain = Brain::default();
//! let first = t.render(&brain, time::OffsetDateTime::UNIX_EPOCH)?;
//! assert_eq!(first.missing(), [Dependency::secret("secret/data/app")]);
//! brain.insert_secret(
//!     Dependency::secret("secret/data/app"),
//!     &VaultSecret::from_response(&json!({"data": {"data": {"key": "v"}}}))?,
//! );
//! let done = t.render(&brain, time::OffsetDateTime::UNIX_EPOCH)?;
//! assert_eq!(done.contents(), Some("KEY=v"));
//! # Ok::<(), strongroom::Error>(())
//! ```

mod budget;
mod check;
mod funcs;
mod gotime;
mod locate;
mod value;
mod watch;

pub use watch::{Fetched, FileTarget, SecretSource, WatchOptions, Watcher};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gotmpl::{MissingKey, TemplateError, Value};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::util::unpoison;

/// One thing a template reads from the secret store. `Debug` and `Display` name the function,
/// the path and the parameter names, never parameter values (a template may write a secret).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// `secret "PATH"` (a read) or `secret "PATH" "k=v"...` (a write with those parameters,
    /// for endpoints that issue something, such as `database/creds/x` or `pki/issue/web`).
    Secret {
        /// The API path without `/v1/` (a `?version=N` query is allowed).
        path: String,
        /// `k=v` parameters in template order; empty for a read.
        params: Vec<(String, String)>,
    },
    /// `secrets "PATH"`: the keys under a path (a LIST).
    Secrets {
        /// The API path without `/v1/`.
        path: String,
    },
    /// `pkiCert "PATH" "k=v"...`: a certificate issued by a write to a PKI `issue` path.
    PkiCert {
        /// The API path without `/v1/`.
        path: String,
        /// `k=v` parameters in template order.
        params: Vec<(String, String)>,
    },
}

impl Dependency {
    /// A plain `secret "PATH"` read.
    pub fn secret(path: impl Into<String>) -> Dependency {
        Dependency::Secret {
            path: path.into(),
            params: Vec::new(),
        }
    }

    /// The API path the dependency reads or writes.
    pub fn path(&self) -> &str {
        match self {
            Dependency::Secret { path, .. }
            | Dependency::Secrets { path }
            | Dependency::PkiCert { path, .. } => path,
        }
    }

    /// Whether fetching it is a write (parameters given, or a certificate issue).
    pub fn is_write(&self) -> bool {
        match self {
            Dependency::Secret { params, .. } => !params.is_empty(),
            Dependency::Secrets { .. } => false,
            Dependency::PkiCert { .. } => true,
        }
    }

    /// The write parameters (empty for reads and lists).
    pub fn params(&self) -> &[(String, String)] {
        match self {
            Dependency::Secret { params, .. } | Dependency::PkiCert { params, .. } => params,
            Dependency::Secrets { .. } => &[],
        }
    }
}

impl fmt::Debug for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dependency({self})")
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (func, path, params) = match self {
            Dependency::Secret { path, params } => ("secret", path, params.as_slice()),
            Dependency::Secrets { path } => ("secrets", path, &[][..]),
            Dependency::PkiCert { path, params } => ("pkiCert", path, params.as_slice()),
        };
        write!(f, "{func} `{path}`")?;
        // Parameter names only: their values may be anything the template author wrote.
        for (k, _) in params {
            write!(f, " {k}=…")?;
        }
        Ok(())
    }
}

/// A Vault response as templates see it (`.Data`, `.LeaseID`, `.LeaseDuration`, `.Renewable`,
/// `.RequestID`, `.Warnings`, as consul-template's `Secret`). `Debug` shows no data.
#[derive(Clone, Default)]
pub struct VaultSecret {
    /// `request_id`.
    pub request_id: String,
    /// `lease_id` (empty when not leased).
    pub lease_id: String,
    /// `lease_duration` in seconds.
    pub lease_duration: u64,
    /// `renewable`.
    pub renewable: bool,
    /// `data` (for KV v2 that holds `data` and `metadata`).
    pub data: serde_json::Map<String, serde_json::Value>,
    /// `warnings`.
    pub warnings: Vec<String>,
}

impl fmt::Debug for VaultSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecret")
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field("data", &"[REDACTED]")
            .finish()
    }
}

impl VaultSecret {
    /// Reads the JSON body of a Vault API response.
    pub fn from_response(body: &serde_json::Value) -> Result<VaultSecret> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::invalid_input("a secret response must be a JSON object"))?;
        let text = |k: &str| {
            obj.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let data = match obj.get("data") {
            Some(serde_json::Value::Object(m)) => m.clone(),
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(_) => {
                return Err(Error::invalid_input(
                    "a secret response's `data` must be an object",
                ));
            }
        };
        Ok(VaultSecret {
            request_id: text("request_id"),
            lease_id: text("lease_id"),
            lease_duration: obj
                .get("lease_duration")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            renewable: obj
                .get("renewable")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            data,
            warnings: obj
                .get("warnings")
                .and_then(serde_json::Value::as_array)
                .map(|w| {
                    w.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn to_value(&self) -> Value {
        let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
        m.insert(
            "RequestID".into(),
            Value::String(self.request_id.as_str().into()),
        );
        m.insert(
            "LeaseID".into(),
            Value::String(self.lease_id.as_str().into()),
        );
        m.insert(
            "LeaseDuration".into(),
            Value::Int(i64::try_from(self.lease_duration).unwrap_or(i64::MAX)),
        );
        m.insert("Renewable".into(), Value::Bool(self.renewable));
        m.insert(
            "Data".into(),
            value::from_json(&serde_json::Value::Object(self.data.clone())),
        );
        m.insert(
            "Warnings".into(),
            Value::List(
                self.warnings
                    .iter()
                    .map(|w| Value::String(w.as_str().into()))
                    .collect(),
            ),
        );
        Value::Map(Arc::new(m))
    }

    /// consul-template's `pkiCert` result: `.Cert`, `.Key`, `.CA`, `.CAChain` (and `.Data`).
    fn to_pki_value(&self) -> Value {
        let mut m = match self.to_value() {
            Value::Map(m) => Arc::unwrap_or_clone(m),
            _ => BTreeMap::new(),
        };
        let field = |k: &str| {
            value::from_json(
                self.data
                    .get(k)
                    .unwrap_or(&serde_json::Value::String(String::new())),
            )
        };
        m.insert("Cert".into(), field("certificate"));
        m.insert("Key".into(), field("private_key"));
        m.insert("CA".into(), field("issuing_ca"));
        m.insert(
            "CAChain".into(),
            self.data
                .get("ca_chain")
                .map(value::from_json)
                .unwrap_or_else(|| Value::List(Arc::from(Vec::new()))),
        );
        Value::Map(Arc::new(m))
    }
}

/// What the source answered for each dependency, ready for rendering. Cheap to clone
/// (copy-on-write): a render takes a snapshot.
#[derive(Clone, Default)]
pub struct Brain {
    values: Arc<HashMap<Dependency, Value>>,
}

impl fmt::Debug for Brain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Brain")
            .field("entries", &self.values.len())
            .finish()
    }
}

impl Brain {
    /// Stores the answer to a `secret` or `pkiCert` dependency (a `secrets` dependency takes
    /// [`Brain::insert_list`]).
    pub fn insert_secret(&mut self, dep: Dependency, secret: &VaultSecret) {
        let v = match dep {
            Dependency::PkiCert { .. } => secret.to_pki_value(),
            _ => secret.to_value(),
        };
        Arc::make_mut(&mut self.values).insert(dep, v);
    }

    /// Stores the keys a `secrets` dependency listed (sorted, as consul-template returns them).
    pub fn insert_list(&mut self, dep: Dependency, mut keys: Vec<String>) {
        keys.sort();
        let v = Value::List(keys.into_iter().map(|k| Value::String(k.into())).collect());
        Arc::make_mut(&mut self.values).insert(dep, v);
    }

    /// Forgets a dependency's answer (the next render reports it missing).
    pub fn remove(&mut self, dep: &Dependency) {
        if self.values.contains_key(dep) {
            Arc::make_mut(&mut self.values).remove(dep);
        }
    }

    /// Whether an answer for `dep` is stored.
    pub fn contains(&self, dep: &Dependency) -> bool {
        self.values.contains_key(dep)
    }

    /// How many answers are stored.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// How a template is read and executed (Vault Agent's `template` stanza options).
#[derive(Debug, Clone)]
pub struct TemplateOptions {
    /// Opening delimiter (`left_delimiter`), `{{` by default.
    pub left_delimiter: String,
    /// Closing delimiter (`right_delimiter`), `}}` by default.
    pub right_delimiter: String,
    /// `error_on_missing_key`: a missing map key is an error instead of `<no value>`.
    pub error_on_missing_key: bool,
}

impl Default for TemplateOptions {
    fn default() -> TemplateOptions {
        TemplateOptions {
            left_delimiter: "{{".to_string(),
            right_delimiter: "}}".to_string(),
            error_on_missing_key: false,
        }
    }
}

/// State the Vault functions read and write during one render.
#[derive(Default)]
struct Scope {
    brain: Brain,
    now: Option<OffsetDateTime>,
    used: Vec<Dependency>,
    missing: Vec<Dependency>,
    /// A function's own failure (bad parameters): reported even when dependencies are missing.
    failure: Option<String>,
}

/// The result of one render.
pub struct Rendered {
    contents: Option<SecretString>,
    dependencies: Vec<Dependency>,
    missing: Vec<Dependency>,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("complete", &self.contents.is_some())
            .field("dependencies", &self.dependencies)
            .field("missing", &self.missing)
            .finish()
    }
}

impl Rendered {
    /// The rendered text, once every dependency was in the brain (`None` otherwise).
    pub fn contents(&self) -> Option<&str> {
        self.contents.as_ref().map(|s| s.expose_secret())
    }

    /// Takes the rendered text out.
    pub fn into_contents(self) -> Option<SecretString> {
        self.contents
    }

    /// Every dependency this render asked for, in first-use order.
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// The dependencies the brain lacked: fetch them and render again.
    pub fn missing(&self) -> &[Dependency] {
        &self.missing
    }
}

/// A parsed template. Render it as often as needed; renders of one template are serialised.
pub struct Template {
    name: String,
    /// The source (configuration, never a secret): execution errors quote their action.
    source: String,
    right_delimiter: String,
    left_delimiter: String,
    missing_key_is_error: bool,
    /// The parsed template, as written (the trees checked at parse and replayed on failure).
    inner: gotmpl::Template,
    /// The same trees with every function metered and every template call charged
    /// ([`budget`]): what a render executes.
    run: gotmpl::Template,
    meter: budget::Meter,
    scope: Arc<Mutex<Scope>>,
    render_lock: Mutex<()>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .finish()
    }
}

fn params_of(name: &str, args: &[Value]) -> gotmpl::Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    for (i, a) in args.iter().enumerate().skip(1) {
        let text = funcs::string_arg(name, args, i).map_err(|_| {
            TemplateError::Exec(format!(
                "{name}: argument {} must be a \"key=value\" string, not {}",
                i + 1,
                a.type_name()
            ))
        })?;
        let (k, v) = text.split_once('=').ok_or_else(|| {
            TemplateError::Exec(format!(
                "{name}: argument {} must be \"key=value\" (no `=` in it)",
                i + 1
            ))
        })?;
        params.push((k.to_string(), v.to_string()));
    }
    Ok(params)
}

/// Records `dep` as used and answers it from the brain (nil when missing).
fn lookup(scope: &Mutex<Scope>, dep: Dependency) -> gotmpl::Result<Value> {
    let mut s = scope
        .lock()
        .or_else(unpoison)
        .map_err(|_| TemplateError::Exec("internal state unavailable".to_string()))?;
    if !s.used.contains(&dep) {
        s.used.push(dep.clone());
    }
    match s.brain.values.get(&dep) {
        Some(v) => Ok(v.clone()),
        None => {
            if !s.missing.contains(&dep) {
                s.missing.push(dep);
            }
            Ok(Value::Nil)
        }
    }
}

fn fail(scope: &Mutex<Scope>, message: String) -> TemplateError {
    if let Ok(mut s) = scope.lock().or_else(unpoison) {
        s.failure.get_or_insert_with(|| message.clone());
    }
    TemplateError::Exec(message)
}

fn vault_funcs(scope: &Arc<Mutex<Scope>>) -> gotmpl::FuncMap {
    let mut m = funcs::helpers();
    let sc = Arc::clone(scope);
    m.insert(
        "secret".to_string(),
        Arc::new(move |args: &[Value]| {
            let path =
                funcs::string_arg("secret", args, 0).map_err(|e| fail(&sc, e.to_string()))?;
            let params = params_of("secret", args).map_err(|e| fail(&sc, e.to_string()))?;
            lookup(
                &sc,
                Dependency::Secret {
                    path: path.to_string(),
                    params,
                },
            )
        }),
    );
    let sc = Arc::clone(scope);
    m.insert(
        "secrets".to_string(),
        Arc::new(move |args: &[Value]| {
            if args.len() != 1 {
                return Err(fail(
                    &sc,
                    format!("secrets: takes one path, got {} arguments", args.len()),
                ));
            }
            let path =
                funcs::string_arg("secrets", args, 0).map_err(|e| fail(&sc, e.to_string()))?;
            lookup(
                &sc,
                Dependency::Secrets {
                    path: path.to_string(),
                },
            )
        }),
    );
    let sc = Arc::clone(scope);
    m.insert(
        "pkiCert".to_string(),
        Arc::new(move |args: &[Value]| {
            let path =
                funcs::string_arg("pkiCert", args, 0).map_err(|e| fail(&sc, e.to_string()))?;
            let params = params_of("pkiCert", args).map_err(|e| fail(&sc, e.to_string()))?;
            lookup(
                &sc,
                Dependency::PkiCert {
                    path: path.to_string(),
                    params,
                },
            )
        }),
    );
    let sc = Arc::clone(scope);
    m.insert(
        "timestamp".to_string(),
        Arc::new(move |args: &[Value]| {
            let layout = match args {
                [] => gotime::RFC3339,
                [Value::String(l)] => l,
                _ => {
                    return Err(fail(
                        &sc,
                        "timestamp: takes at most one layout string".to_string(),
                    ));
                }
            };
            let now = sc
                .lock()
                .or_else(unpoison)
                .ok()
                .and_then(|s| s.now)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            Ok(Value::String(gotime::format(&now, layout).into()))
        }),
    );
    m
}

/// Every string (and number) in a value, to keep secret values out of error messages.
fn strings_in(v: &Value, out: &mut Vec<Arc<str>>) {
    match v {
        Value::String(s) => out.push(Arc::clone(s)),
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => out.push(Arc::from(v.to_string())),
        Value::List(l) => l.iter().for_each(|x| strings_in(x, out)),
        Value::Map(m) => m.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

/// The most `range` iterations one render may run, all loops together.
const MAX_RANGE_ITERS: u64 = 1_000_000;

/// An empty template with the execution options every render uses.
fn executable(name: &str, missing_key_is_error: bool) -> gotmpl::Template {
    gotmpl::Template::new(name)
        .missing_key(if missing_key_is_error {
            MissingKey::Error
        } else {
            MissingKey::default()
        })
        .max_range_iters(MAX_RANGE_ITERS)
}

impl Template {
    /// Parses `source`; `name` (the destination, or `contents`) names it in errors. A syntax
    /// error names the line and column: ``template: config:2:14: unexpected "}" in operand``.
    pub fn parse(name: &str, source: &str, options: &TemplateOptions) -> Result<Template> {
        if options.left_delimiter.is_empty() || options.right_delimiter.is_empty() {
            return Err(Error::invalid_input(
                "template delimiters must not be empty",
            ));
        }
        let scope = Arc::new(Mutex::new(Scope::default()));
        let funcs = vault_funcs(&scope);
        let mut known: std::collections::BTreeSet<&str> = check::BUILTINS.into_iter().collect();
        known.extend(funcs.keys().map(String::as_str));
        let inner = gotmpl::Template::new(name)
            .delims(&options.left_delimiter, &options.right_delimiter)
            .missing_key(if options.error_on_missing_key {
                MissingKey::Error
            } else {
                MissingKey::default()
            })
            // Range budget: a template is configuration, but a runaway one must not spin.
            .max_range_iters(MAX_RANGE_ITERS)
            .funcs(funcs.clone())
            .parse(source)
            .map_err(|e| Error::invalid_input(e.to_string()))?;
        check::block_structure(source, &options.left_delimiter, &options.right_delimiter).map_err(
            |(message, offset)| {
                let (line, col) = check::line_col(source, offset);
                Error::invalid_input(format!("template: {name}:{line}:{col}: {message}"))
            },
        )?;
        for tree in inner.templates().iter().filter_map(|t| inner.lookup(t)) {
            if let Some((func, pos)) = check::undefined_function(tree, &known) {
                let (line, col) = check::line_col(source, pos.offset);
                return Err(Error::invalid_input(format!(
                    "template: {name}:{line}:{col}: function \"{func}\" not defined"
                )));
            }
        }
        let meter = budget::Meter::new();
        let mut run = executable(name, options.error_on_missing_key)
            .delims(&options.left_delimiter, &options.right_delimiter)
            .funcs(budget::meter_funcs(funcs, &meter));
        for tree_name in inner.templates() {
            if let Some(tree) = inner.lookup(tree_name) {
                run = run.add_parse_tree(tree_name, budget::tick_calls(tree));
            }
        }
        Ok(Template {
            name: name.to_string(),
            source: source.to_string(),
            left_delimiter: options.left_delimiter.clone(),
            right_delimiter: options.right_delimiter.clone(),
            missing_key_is_error: options.error_on_missing_key,
            inner,
            run,
            meter,
            scope,
            render_lock: Mutex::new(()),
        })
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders against `brain`; `now` feeds `timestamp`. When a dependency is missing the
    /// result has no contents and lists what to fetch; an execution error is reported only
    /// once nothing is missing (a first pass over nil secrets may trip over them).
    pub fn render(&self, brain: &Brain, now: OffsetDateTime) -> Result<Rendered> {
        let _serial = self.render_lock.lock().or_else(unpoison)?;
        {
            let mut s = self.scope.lock().or_else(unpoison)?;
            *s = Scope {
                brain: brain.clone(),
                now: Some(now),
                ..Scope::default()
            };
        }
        self.meter.reset();
        let mut out = budget::Output::default();
        let result = self
            .run
            .execute_template_fmt(&mut out, &self.name, &Value::Nil);
        if out.overflowed {
            return Err(Error::invalid_input(budget::output_too_large(&self.name)));
        }
        let result = result.map(|()| out.text);
        let scope = std::mem::take(&mut *self.scope.lock().or_else(unpoison)?);
        if let Some(failure) = scope.failure {
            return Err(self.execution_error(&scope.brain, now, &failure));
        }
        if !scope.missing.is_empty() {
            return Ok(Rendered {
                contents: None,
                dependencies: scope.used,
                missing: scope.missing,
            });
        }
        match result {
            Ok(text) => Ok(Rendered {
                contents: Some(SecretString::from(text)),
                dependencies: scope.used,
                missing: Vec::new(),
            }),
            Err(e) => {
                let mut message = match &e {
                    // Go's (and so consul-template's) wording.
                    TemplateError::MissingKey { key } => {
                        format!("map has no entry for key \"{key}\"")
                    }
                    other => other.to_string(),
                };
                // An execution error may quote a value (Go's do, e.g. "can't use VALUE to
                // iterate"): blank out every secret string the render saw.
                let mut seen = Vec::new();
                for dep in &scope.used {
                    if let Some(v) = scope.brain.values.get(dep) {
                        strings_in(v, &mut seen);
                    }
                }
                seen.sort_by_key(|s| std::cmp::Reverse(s.len()));
                for s in seen.iter().filter(|s| s.len() >= 3) {
                    message = message.replace(&**s, "<redacted>");
                }
                Err(self.execution_error(&scope.brain, now, &message))
            }
        }
    }

    /// An execution error as Go words it, with the failing action's line and column:
    /// `template: NAME:LINE:COL: executing "NAME" at <ACTION>: MESSAGE`. gotmpl reports no
    /// position at execution, so the (deterministic) render is replayed once over a copy of
    /// the tree with a marker before every action; the last marker reached is the failing one.
    /// Only failures pay for this.
    fn execution_error(&self, brain: &Brain, now: OffsetDateTime, message: &str) -> Error {
        match self.failing_action(brain, now) {
            Some((offset, tree)) => {
                let (line, col) = check::line_col(&self.source, offset);
                let action = self
                    .source
                    .get(offset..)
                    .and_then(|rest| rest.split(self.right_delimiter.as_str()).next())
                    .unwrap_or("")
                    .trim()
                    .trim_end_matches('-')
                    .trim_end();
                let name = &self.name;
                Error::invalid_input(format!(
                    "template: {name}:{line}:{col}: executing \"{tree}\" at <{action}>: {message}"
                ))
            }
            None => Error::invalid_input(format!("template: {}: {message}", self.name)),
        }
    }

    /// The byte offset of the action whose execution fails and the name of the template
    /// (the file's, or a `define`) it is in, replaying the render.
    fn failing_action(&self, brain: &Brain, now: OffsetDateTime) -> Option<(usize, String)> {
        let scope = Arc::new(Mutex::new(Scope {
            brain: brain.clone(),
            now: Some(now),
            ..Scope::default()
        }));
        let mut funcs = budget::meter_funcs(vault_funcs(&scope), &budget::Meter::new());
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Arc::clone(&last);
        funcs.insert(
            locate::MARKER.to_string(),
            Arc::new(move |args: &[Value]| {
                if let [Value::Int(offset), Value::Int(tree)] = args {
                    // Offset and tree index in one word: one store, never half of each.
                    let packed = (u64::try_from(*offset).unwrap_or(u64::from(u32::MAX)) << 32)
                        | u64::try_from(*tree).unwrap_or(0);
                    seen.store(packed, Ordering::Relaxed);
                }
                Ok(Value::String("".into()))
            }),
        );
        let mut replay = executable(&self.name, self.missing_key_is_error)
            .delims(&self.left_delimiter, &self.right_delimiter)
            .funcs(funcs);
        let names = self.inner.templates();
        for (i, name) in names.iter().enumerate() {
            if let Some(tree) = self.inner.lookup(name) {
                replay =
                    replay.add_parse_tree(name, locate::instrument(&budget::tick_calls(tree), i));
            }
        }
        let failed = replay
            .execute_template_fmt(&mut budget::Output::default(), &self.name, &Value::Nil)
            .is_err()
            || scope.lock().ok().is_some_and(|s| s.failure.is_some());
        let packed = last.load(Ordering::Relaxed);
        if !failed || packed == u64::MAX {
            return None;
        }
        let offset = usize::try_from(packed >> 32).ok()?;
        let tree = names.get(usize::try_from(packed & 0xffff_ffff).ok()?)?;
        Some((offset, (*tree).to_string()))
    }
}

#[cfg(test)]
mod tests;
