//! Login lockout: OpenBao's user lockout for userpass and AppRole.
//!
//! A wrong password (or secret id) for a user (or role id) that exists counts as a failure;
//! `lockout_threshold` failures, each within `lockout_counter_reset` of the one before, lock the
//! user for `lockout_duration` from the last failure. A locked user is refused with `permission
//! denied` before its credential is even checked, so the right password does not get in
//! either. A successful login forgets the failures. Settings come from the server config's
//! `user_lockout "<type>"` stanzas and the mount's tune, as OpenBao's
//! `getUserLockoutConfiguration`.
//!
//! The state lives in storage behind the barrier, so every process on one store sees it:
//! `core/login/lockedUsers/<accessor>/<alias>` holds the last failure time of a locked user
//! (OpenBao's own record) and `core/login/failedLogins/<accessor>/<alias>` the failure count,
//! which OpenBao keeps in the memory of one node only.
//!
//! Concurrent guesses: the failure count is written only after a credential has been checked,
//! so without more a burst of parallel logins would all pass the lock check before the first
//! failure lands. [`InFlight`] closes that: a process lets at most `threshold - failures`
//! checks of one user run at once, and the rest wait for them to be counted. A burst of any size
//! therefore gets no more guesses than the threshold allows (across processes sharing one
//! store, at most that many per process).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, ErrorCode, Result};
use crate::request::{Operation, Request, Response};
use crate::router::{self, MountEntry};
use crate::storage::{Backend, Page, TxnOp};

/// OpenBao's defaults (`configutil.UserLockout*Default`).
pub(crate) const DEFAULT_THRESHOLD: u64 = 5;
pub(crate) const DEFAULT_DURATION: Duration = Duration::from_secs(15 * 60);
pub(crate) const DEFAULT_COUNTER_RESET: Duration = Duration::from_secs(15 * 60);

/// The auth types that support lockout (OpenBao's `GetSupportedUserLockoutsAuthMethods`).
const SUPPORTED: &[&str] = &["userpass", "approle", "ldap"];

const LOCKED_PREFIX: &str = "core/login/lockedUsers/";
const FAILED_PREFIX: &str = "core/login/failedLogins/";

/// One `user_lockout "<type>" { ... }` stanza of the server configuration. An unset field
/// takes the `"all"` stanza's value, then OpenBao's default.
///
/// ```
/// use std::time::Duration;
/// use strongroom::{Config, UserLockout};
/// let cfg = Config::memory().user_lockout(
///     "userpass",
///     UserLockout { lockout_threshold: Some(3), ..UserLockout::default() },
/// );
/// # let _ = (cfg, Duration::ZERO);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLockout {
    /// Failed logins that lock the user (default 5).
    pub lockout_threshold: Option<u64>,
    /// How long a locked user stays locked after the last failure (default 15 minutes).
    pub lockout_duration: Option<Duration>,
    /// A failure longer than this after the previous one starts counting again from one
    /// (default 15 minutes).
    pub lockout_counter_reset: Option<Duration>,
    /// Turn lockout off.
    pub disable_lockout: Option<bool>,
}

/// The configured stanzas by auth type (`all`, `userpass`, `approle`, `ldap`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfiguredLockouts(pub(crate) BTreeMap<String, UserLockout>);

/// A mount's `user_lockout_config` tune (zero = not set: the server config applies, as in
/// OpenBao, where `"system"` also resets a duration to zero).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct MountLockout {
    #[serde(default)]
    pub lockout_threshold: u64,
    /// Seconds.
    #[serde(default)]
    pub lockout_duration: u64,
    /// Seconds.
    #[serde(default)]
    pub lockout_counter_reset: u64,
    #[serde(default)]
    pub lockout_disable: bool,
}

impl MountLockout {
    /// The `user_lockout_*` fields OpenBao shows in a tune read and in `sys/auth`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "user_lockout_counter_reset_duration": self.lockout_counter_reset,
            "user_lockout_threshold": self.lockout_threshold,
            "user_lockout_duration": self.lockout_duration,
            "user_lockout_disable": self.lockout_disable,
        })
    }
}

/// The lockout settings in force for one mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub threshold: u64,
    pub duration: Duration,
    pub counter_reset: Duration,
}

impl ConfiguredLockouts {
    /// The settings for a mount: its tune over the config stanza for its type over the `all`
    /// stanza over the defaults; `None` when lockout is off or the type does not support it.
    pub(crate) fn policy(&self, e: &MountEntry) -> Option<Policy> {
        if !SUPPORTED.contains(&e.kind.as_str()) {
            return None;
        }
        let (mut p, mut disabled) = self.configured(&e.kind);
        if let Some(t) = &e.config.user_lockout_config {
            if t.lockout_threshold != 0 {
                p.threshold = t.lockout_threshold;
            }
            if t.lockout_duration != 0 {
                p.duration = Duration::from_secs(t.lockout_duration);
            }
            if t.lockout_counter_reset != 0 {
                p.counter_reset = Duration::from_secs(t.lockout_counter_reset);
            }
            // The tune can turn lockout off but not back on over the config file (OpenBao's
            // `isUserLockoutDisabled`).
            disabled |= t.lockout_disable;
        }
        (!disabled).then_some(p)
    }

    /// The config file's settings for an auth type (its stanza over `all` over the defaults)
    /// and whether they turn lockout off.
    pub(crate) fn configured(&self, kind: &str) -> (Policy, bool) {
        let own = self.0.get(kind);
        let all = self.0.get("all");
        let disabled = own
            .and_then(|l| l.disable_lockout)
            .or_else(|| all.and_then(|l| l.disable_lockout))
            .unwrap_or(false);
        let threshold = own
            .and_then(|l| l.lockout_threshold)
            .or_else(|| all.and_then(|l| l.lockout_threshold));
        let pick =
            |f: fn(&UserLockout) -> Option<Duration>| own.and_then(f).or_else(|| all.and_then(f));
        let p = Policy {
            threshold: threshold.unwrap_or(DEFAULT_THRESHOLD),
            duration: pick(|l| l.lockout_duration).unwrap_or(DEFAULT_DURATION),
            counter_reset: pick(|l| l.lockout_counter_reset).unwrap_or(DEFAULT_COUNTER_RESET),
        };
        (p, disabled)
    }
}

/// Who a login is for: the mount and the method's alias name (the lowercased username, the
/// role id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LoginUser {
    pub accessor: String,
    pub alias: String,
}

/// A storage key segment: `/` and `%` escaped so that any alias (a role id may hold `/`) is
/// one segment.
fn segment(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

fn unsegment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let tail = rest.get(i..).unwrap_or("");
        if let Some(t) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("%25") {
            out.push('%');
            rest = t;
        } else {
            out.push('%');
            rest = tail.get(1..).unwrap_or("");
        }
    }
    out.push_str(rest);
    out
}

impl LoginUser {
    fn locked_key(&self) -> String {
        format!(
            "{LOCKED_PREFIX}{}/{}",
            segment(&self.accessor),
            segment(&self.alias)
        )
    }

    fn failed_key(&self) -> String {
        format!(
            "{FAILED_PREFIX}{}/{}",
            segment(&self.accessor),
            segment(&self.alias)
        )
    }
}

/// The failures counted so far.
#[derive(Debug, Serialize, Deserialize)]
struct Failures {
    count: u64,
    /// Unix seconds of the last failure.
    last_failed: i64,
}

fn decode<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|_| Error::storage("login lockout entry is corrupt"))
}

/// A stored lockout entry from its bytes (the fuzz target's view of [`decode`]).
#[cfg(feature = "bench-internals")]
pub(crate) fn decode_entry(raw: &[u8]) -> Result<()> {
    decode::<Failures>(raw).map(|_| ())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    crate::util::json::encode(v, || Error::internal("cannot encode lockout entry"))
}

/// Whether `last` (unix seconds) is less than `d` before `now`.
fn within(now: i64, last: i64, d: Duration) -> bool {
    let d = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    now.saturating_sub(last) < d
}

/// What the store holds for a user about to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No failure and no lock on record (a successful login has nothing to clear).
    Clean,
    /// Failures or a stale lock on record, not locked.
    Counted,
    Locked,
}

/// Whether `user` is locked now (OpenBao's `isUserLocked`: the failure count when there is
/// one, else the locked record), and how many failures still count (none once
/// `counter_reset` has passed since the last one: the next failure starts again at one).
pub(crate) async fn state(
    storage: &dyn Backend,
    user: &LoginUser,
    p: &Policy,
    now: i64,
) -> Result<(State, u64)> {
    let (locked, counted) = if let Some(raw) = storage.get(&user.failed_key()).await? {
        let f: Failures = decode(&raw)?;
        let reset = i64::try_from(p.counter_reset.as_secs()).unwrap_or(i64::MAX);
        let counted = if now > f.last_failed.saturating_add(reset) {
            0
        } else {
            f.count
        };
        (
            f.count >= p.threshold && within(now, f.last_failed, p.duration),
            counted,
        )
    } else {
        match storage.get(&user.locked_key()).await? {
            Some(raw) => (within(now, decode::<i64>(&raw)?, p.duration), 0),
            None => return Ok((State::Clean, 0)),
        }
    };
    let state = if locked {
        State::Locked
    } else {
        State::Counted
    };
    Ok((state, counted))
}

/// Credential checks running now in this process, per user (see the module docs). An entry
/// lives only while a check runs, so names an attacker makes up leave nothing behind.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    running: std::sync::Mutex<HashMap<LoginUser, u64>>,
    /// Woken whenever a check ends.
    ended: tokio::sync::Notify,
}

/// A permit to check one credential of `user`; dropping it (after the failure, if any, is
/// recorded) lets a waiting login go on.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    owner: &'a InFlight,
    user: LoginUser,
}

impl InFlight {
    /// A permit when fewer than `threshold` failures are counted or may be about to be.
    fn try_take(
        &self,
        user: &LoginUser,
        counted: u64,
        threshold: u64,
    ) -> Result<Option<Permit<'_>>> {
        let mut running = self.running.lock().or_else(crate::util::unpoison)?;
        let n = running.get(user).copied().unwrap_or(0);
        // A threshold of 0 locks on the first failure, like 1: one check at a time.
        if counted.saturating_add(n) >= threshold.max(1) && n > 0 {
            return Ok(None);
        }
        running.insert(user.clone(), n.saturating_add(1));
        Ok(Some(Permit {
            owner: self,
            user: user.clone(),
        }))
    }

    /// Wait for a permit to check `user`'s credential, refusing (as OpenBao does, before the
    /// credential is looked at) when the user is locked. `now` reads the clock (unix seconds).
    pub(crate) async fn admit(
        &self,
        storage: &dyn Backend,
        user: &LoginUser,
        p: &Policy,
        now: impl Fn() -> i64,
    ) -> Result<(State, Permit<'_>)> {
        loop {
            // Registered before the check, so an end between the check and the wait wakes us.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let (state, counted) = self::state(storage, user, p, now()).await?;
            if state == State::Locked {
                return Err(Error::permission_denied());
            }
            if let Some(permit) = self.try_take(user, counted, p.threshold)? {
                return Ok((state, permit));
            }
            ended.await;
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut running = match self.owner.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match running.get_mut(&self.user) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                running.remove(&self.user);
            }
        }
        drop(running);
        self.owner.ended.notify_waiters();
    }
}

/// Count one failure (OpenBao's `failedUserLoginProcess`): the count restarts at one when the
/// previous failure is more than `counter_reset` ago; reaching the threshold writes the locked
/// record. A compare-and-set, so that failures on several processes all count.
pub(crate) async fn record_failure(
    storage: &dyn Backend,
    user: &LoginUser,
    p: &Policy,
    now: i64,
) -> Result<()> {
    let key = user.failed_key();
    for _ in 0..16 {
        let raw = storage.get(&key).await?;
        let count = match raw.as_deref().map(decode::<Failures>).transpose()? {
            None => 1,
            Some(f) => {
                let reset = i64::try_from(p.counter_reset.as_secs()).unwrap_or(i64::MAX);
                if now > f.last_failed.saturating_add(reset) {
                    1
                } else {
                    f.count.saturating_add(1)
                }
            }
        };
        let mut ops = vec![
            TxnOp::Check {
                key: key.clone(),
                expected: raw,
            },
            TxnOp::Put {
                key: key.clone(),
                value: encode(&Failures {
                    count,
                    last_failed: now,
                })?,
            },
        ];
        if count >= p.threshold {
            ops.push(TxnOp::Put {
                key: user.locked_key(),
                value: encode(&now)?,
            });
        }
        match storage.transaction(ops).await {
            Err(e) if e.code() == ErrorCode::Conflict => continue,
            other => return other,
        }
    }
    Err(Error::unavailable(
        "login failures are being recorded concurrently, try again",
    ))
}

/// Forget `user`'s failures after a successful login (OpenBao clears its count). The locked
/// record goes too: a login got through, so it is stale, and a longer `lockout_duration`
/// tuned later must not revive it.
pub(crate) async fn clear(storage: &dyn Backend, user: &LoginUser) -> Result<()> {
    let (failed, locked) = (user.failed_key(), user.locked_key());
    let mut ops = Vec::new();
    for key in [failed, locked] {
        if storage.get(&key).await?.is_some() {
            ops.push(TxnOp::Delete { key });
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    storage.transaction(ops).await
}

/// `POST sys/locked-users/:mount_accessor/unlock/:alias_identifier`; unknown ones succeed, as
/// in OpenBao.
async fn unlock(storage: &dyn Backend, user: &LoginUser) -> Result<()> {
    storage
        .transaction(vec![
            TxnOp::Delete {
                key: user.locked_key(),
            },
            TxnOp::Delete {
                key: user.failed_key(),
            },
        ])
        .await
}

/// The aliases locked under one accessor now (stale records, whose lockout has run out, are
/// left out: OpenBao drops them in a background sweep every 15 minutes).
async fn locked_aliases(
    storage: &dyn Backend,
    accessor: &str,
    duration: Duration,
    now: i64,
) -> Result<Vec<String>> {
    let prefix = format!("{LOCKED_PREFIX}{}/", segment(accessor));
    let mut out = Vec::new();
    for k in storage.list(&prefix, &Page::all()).await? {
        if k.ends_with('/') {
            continue;
        }
        let Some(raw) = storage.get(&format!("{prefix}{k}")).await? else {
            continue;
        };
        if within(now, decode::<i64>(&raw)?, duration) {
            out.push(unsegment(&k));
        }
    }
    Ok(out)
}

/// `GET sys/locked-users[?mount_accessor=]`, in OpenBao's shape (one namespace, root).
async fn list(site: &Site<'_>, filter: Option<&str>) -> Result<Response> {
    let storage = site.storage;
    let table = router::load_auth_table(storage).await?;
    let lockouts = site.lockouts;
    let duration_of = |accessor: &str| match table.iter().find(|e| e.accessor == accessor) {
        Some(e) => lockouts.policy(e).map_or(DEFAULT_DURATION, |p| p.duration),
        // A mount that is gone has the `all` settings (OpenBao: an empty mount entry).
        None => lockouts.configured("").0.duration,
    };
    let now = site.clock.now().unix_timestamp();
    let accessors = match filter {
        Some(a) => vec![a.to_string()],
        None => storage
            .list(LOCKED_PREFIX, &Page::all())
            .await?
            .into_iter()
            .filter_map(|k| k.strip_suffix('/').map(unsegment))
            .collect(),
    };
    let mut by_accessor = Vec::new();
    for accessor in accessors {
        let aliases = locked_aliases(storage, &accessor, duration_of(&accessor), now).await?;
        if aliases.is_empty() && filter.is_none() {
            continue;
        }
        by_accessor.push((accessor, aliases));
    }
    by_accessor.sort_by_key(|(_, aliases)| std::cmp::Reverse(aliases.len()));
    let total: usize = by_accessor.iter().map(|(_, a)| a.len()).sum();
    let mount_accessors: Vec<Value> = by_accessor
        .into_iter()
        .map(|(accessor, aliases)| {
            json!({
                "mount_accessor": accessor,
                "counts": aliases.len(),
                // Go's nil slice: OpenBao answers null for an accessor with nobody locked.
                "alias_identifiers": if aliases.is_empty() { Value::Null } else { json!(aliases) },
            })
        })
        .collect();
    Ok(Response::with_data(crate::data(json!({
        "by_namespace": [{
            "namespace_id": "root",
            "namespace_path": "",
            "counts": total,
            "mount_accessors": mount_accessors,
        }],
        "total": total,
    }))))
}

/// What the `sys/locked-users` endpoints work on: the storage behind the barrier, the
/// configured lockouts and the clock.
pub(crate) struct Site<'a> {
    pub(crate) storage: &'a dyn Backend,
    pub(crate) lockouts: &'a ConfiguredLockouts,
    pub(crate) clock: &'a crate::clock::SharedClock,
}

/// The `sys/locked-users` endpoints (`path` is relative to `sys/`). Neither needs sudo in
/// OpenBao: they are not among its root paths.
pub(crate) async fn handle(site: &Site<'_>, req: &Request, path: &str) -> Result<Option<Response>> {
    if path == "locked-users" {
        if req.operation != Operation::Read {
            return Err(Error::unsupported_operation());
        }
        let filter = crate::util::params::string(&req.data, "mount_accessor")?;
        return list(site, filter.as_deref().filter(|a| !a.is_empty()))
            .await
            .map(Some);
    }
    let Some(rest) = path.strip_prefix("locked-users/") else {
        return Ok(None);
    };
    // OpenBao's pattern `locked-users/(?P<mount_accessor>.+?)/unlock/(?P<alias_identifier>.+)`.
    let Some((accessor, alias)) = rest.split_once("/unlock/") else {
        return Ok(None);
    };
    if accessor.is_empty() || alias.is_empty() {
        return Ok(None);
    }
    if !matches!(req.operation, Operation::Update | Operation::Create) {
        return Err(Error::unsupported_operation());
    }
    let user = LoginUser {
        accessor: accessor.to_string(),
        alias: alias.to_string(),
    };
    unlock(site.storage, &user).await?;
    Ok(Some(Response::default()))
}

/// Parse a tune's `user_lockout_config` over the mount's current one, as OpenBao's
/// `handleTuneWriteCommon`: every value is checked before anything changes.
pub(crate) fn parse_tune(
    raw: &Value,
    e: &MountEntry,
    current: Option<&MountLockout>,
) -> Result<Option<MountLockout>> {
    let map = match raw {
        Value::Object(m) => m,
        Value::Null => return Ok(current.cloned()),
        other => {
            return Err(Error::invalid_input(format!(
                "Field validation failed: error converting input for field \"user_lockout_config\": '' expected type 'map[string]interface {{}}', got unconvertible type '{}'",
                go_type(other)
            )));
        }
    };
    if map.is_empty() {
        return Ok(current.cloned());
    }
    let unconvertible =
        || Error::invalid_input("unable to convert given user lockout config information");
    // mapstructure into string fields takes strings and JSON numbers (json.Number), and a
    // bool only for the bool field.
    let text = |k: &str| -> Result<Option<String>> {
        match map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(unconvertible()),
        }
    };
    let threshold = text("lockout_threshold")?;
    let duration = text("lockout_duration")?;
    // OpenBao's field is `lockout_counter_reset_duration` (its docs say
    // `lockout_counter_reset`, which it ignores like any unknown key).
    let counter_reset = text("lockout_counter_reset_duration")?;
    let disable = match map.get("lockout_disable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(unconvertible()),
    };
    if !SUPPORTED.contains(&e.kind.to_lowercase().as_str()) {
        return Err(Error::invalid_input(format!(
            "tuning of user lockout configuration for auth type \"{}\" not allowed",
            e.kind
        )));
    }
    let mut out = current.cloned().unwrap_or_default();
    if let Some(t) = threshold.filter(|t| !t.is_empty()) {
        out.lockout_threshold = parse_uint(&t).map_err(|m| {
            Error::invalid_input(format!("unable to parse user lockout threshold: {m}"))
        })?;
    }
    if let Some(d) = duration.filter(|d| !d.is_empty()) {
        out.lockout_duration = tune_duration(&d)?;
    }
    if let Some(d) = counter_reset.filter(|d| !d.is_empty()) {
        out.lockout_counter_reset = tune_duration(&d)?;
    }
    if let Some(b) = disable {
        out.lockout_disable = b;
    }
    Ok(Some(out))
}

/// Go's `strconv.ParseUint(s, 10, 64)` with its error text.
fn parse_uint(s: &str) -> std::result::Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<u64>().map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )
    })
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A tune duration: `"system"` is zero (the server config applies), else OpenBao's
/// `ParseDurationSecond`. A negative duration is refused (OpenBao stores it and then never
/// locks anyone: a silent way to switch lockout off).
fn tune_duration(s: &str) -> Result<u64> {
    if s == "system" {
        return Ok(0);
    }
    Ok(crate::util::duration::parse(s)?.as_secs())
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "json.Number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Null => "<nil>",
    }
}

/// The lockout a login is subject to: the user it is for and the settings in force. `None`
/// when the method has no alias for the request or lockout is off for the mount.
pub(crate) fn for_login(
    lockouts: &ConfiguredLockouts,
    entry: &MountEntry,
    alias: Option<String>,
) -> Option<(LoginUser, Policy)> {
    let policy = lockouts.policy(entry)?;
    let alias = alias.filter(|a| !a.is_empty())?;
    Some((
        LoginUser {
            accessor: entry.accessor.clone(),
            alias,
        },
        policy,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn alias_segments_round_trip() {
        for s in ["bob", "a/b", "50%", "%2F", "a%/b/%25"] {
            let seg = segment(s);
            assert!(!seg.contains('/'));
            assert_eq!(unsegment(&seg), s);
        }
    }

    #[test]
    fn settings_layer_tune_over_type_over_all_over_defaults() {
        let mut cfg = ConfiguredLockouts::default();
        let mut e = MountEntry::new("userpass/", "userpass");
        assert_eq!(
            cfg.policy(&e),
            Some(Policy {
                threshold: 5,
                duration: DEFAULT_DURATION,
                counter_reset: DEFAULT_COUNTER_RESET
            })
        );
        cfg.0.insert(
            "all".into(),
            UserLockout {
                lockout_threshold: Some(7),
                lockout_duration: Some(Duration::from_secs(60)),
                ..UserLockout::default()
            },
        );
        cfg.0.insert(
            "userpass".into(),
            UserLockout {
                lockout_threshold: Some(3),
                ..UserLockout::default()
            },
        );
        let p = cfg.policy(&e).unwrap();
        assert_eq!((p.threshold, p.duration.as_secs()), (3, 60));
        e.config.user_lockout_config = Some(MountLockout {
            lockout_duration: 120,
            ..MountLockout::default()
        });
        let p = cfg.policy(&e).unwrap();
        assert_eq!((p.threshold, p.duration.as_secs()), (3, 120));
        e.config.user_lockout_config = Some(MountLockout {
            lockout_disable: true,
            ..MountLockout::default()
        });
        assert_eq!(cfg.policy(&e), None);
        assert_eq!(cfg.policy(&MountEntry::new("k8s/", "kubernetes")), None);
    }

    #[test]
    fn tune_values_are_checked_as_openbao() {
        let e = MountEntry::new("userpass/", "userpass");
        let t = parse_tune(
            &json!({"lockout_threshold": 3, "lockout_duration": "10m",
                    "lockout_counter_reset_duration": "7m", "lockout_counter_reset": "1s"}),
            &e,
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                t.lockout_threshold,
                t.lockout_duration,
                t.lockout_counter_reset
            ),
            (3, 600, 420)
        );
        let err = |v: Value| parse_tune(&v, &e, None).unwrap_err().to_string();
        assert_eq!(
            err(json!({"lockout_threshold": "-1"})),
            "unable to parse user lockout threshold: strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            err(json!({"lockout_disable": "true"})),
            "unable to convert given user lockout config information"
        );
        assert_eq!(
            err(json!({"lockout_duration": "x"})),
            "time: invalid duration \"x\""
        );
        let token = MountEntry::new("token/", "token");
        assert_eq!(
            parse_tune(&json!({"lockout_threshold": "3"}), &token, None)
                .unwrap_err()
                .to_string(),
            "tuning of user lockout configuration for auth type \"token\" not allowed"
        );
    }
}
