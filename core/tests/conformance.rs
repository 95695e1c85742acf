//! The conformance scenarios (`tests/conformance/*.json`, specified in
//! `tests/conformance/README.md`) replayed against the Rust API. Every binding replays the same
//! files through its own surface, so a scenario added there tests every language.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use strongroom::{Auth, Client, Config, Response, Strongroom, VirtualClock};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

/// Go-style duration (`90s`, `1h30m`) in whole seconds, as scenarios write them.
fn seconds(text: &str) -> u64 {
    let mut total = 0u64;
    let mut num = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .unwrap_or_else(|_| panic!("bad duration {text:?}"));
        num.clear();
        total += match c {
            'h' => n * 3600,
            'm' if chars.peek() == Some(&'s') => panic!("no sub-second durations: {text:?}"),
            'm' => n * 60,
            's' => n,
            _ => panic!("bad duration {text:?}"),
        };
    }
    if !num.is_empty() {
        total += num.parse::<u64>().unwrap();
    }
    total
}

struct Run {
    sr: Strongroom,
    clock: VirtualClock,
    root: String,
    vars: Map<String, Value>,
}

impl Run {
    /// A value from `name.a.b` in the saved results (or `env.NAME`).
    fn lookup(&self, expr: &str) -> Value {
        let mut parts = expr.split('.');
        let head = parts.next().unwrap();
        if head == "env" {
            let name = parts.next().unwrap();
            return Value::String(env_var(name));
        }
        if head == "root" {
            return Value::String(self.root.clone());
        }
        let mut v = self
            .vars
            .get(head)
            .unwrap_or_else(|| panic!("no saved result `{head}`"))
            .clone();
        for p in parts {
            v = match v {
                Value::Object(mut m) => m.remove(p).unwrap_or(Value::Null),
                Value::Array(mut a) => {
                    let i: usize = p.parse().unwrap();
                    a.swap_remove(i)
                }
                _ => Value::Null,
            };
        }
        v
    }

    /// Replace `${...}` references in every string of `v`.
    fn interpolate(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                if let Some(expr) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                    if !expr.contains("${") {
                        return self.lookup(expr);
                    }
                }
                let mut out = String::new();
                let mut rest = s.as_str();
                while let Some(i) = rest.find("${") {
                    out.push_str(&rest[..i]);
                    let end = rest[i..].find('}').expect("unclosed ${") + i;
                    match self.lookup(&rest[i + 2..end]) {
                        Value::String(x) => out.push_str(&x),
                        other => out.push_str(&other.to_string()),
                    }
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Value::String(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.interpolate(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.interpolate(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn env_var(name: &str) -> String {
    match name {
        "POSTGRES_URL" => std::env::var("STRONGROOM_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        other => std::env::var(other).unwrap_or_else(|_| panic!("env {other} not set")),
    }
}

fn auth_json(a: &Auth) -> Value {
    a.to_json()
}

fn response_json(r: &Response) -> Value {
    json!({
        "data": r.data,
        "auth": r.auth.as_ref().map(auth_json),
        "lease_id": r.lease_id,
        "lease_duration": r.lease_duration,
        "renewable": r.renewable,
        "warnings": r.warnings,
    })
}

fn s<'a>(args: &'a Value, key: &str) -> &'a str {
    args.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("argument `{key}` (a string) is required: {args}"))
}

fn data_arg(args: &Value, key: &str) -> strongroom::Data {
    match args.get(key) {
        None | Some(Value::Null) => strongroom::Data::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => panic!("argument `{key}` must be an object: {other}"),
    }
}

fn secs_arg(args: &Value, key: &str) -> Duration {
    match args.get(key) {
        None | Some(Value::Null) => Duration::ZERO,
        Some(Value::Number(n)) => Duration::from_secs(n.as_u64().unwrap()),
        Some(Value::String(t)) => Duration::from_secs(seconds(t)),
        Some(other) => panic!("argument `{key}` must be a duration: {other}"),
    }
}

/// One call through the typed Rust surface; the result as the README specifies it.
async fn call(
    client: &Client,
    sr: &Strongroom,
    name: &str,
    a: &Value,
) -> strongroom::Result<Value> {
    Ok(match name {
        "request" => {
            let path = s(a, "path");
            let data = data_arg(a, "data");
            match s(a, "op") {
                "read" => client
                    .read(path)
                    .await?
                    .map_or(Value::Null, |r| response_json(&r)),
                "write" => response_json(&client.write(path, data).await?),
                "list" => json!({ "keys": client.list(path).await? }),
                "delete" => {
                    client.delete(path).await?;
                    Value::Null
                }
                other => panic!("unknown op {other}"),
            }
        }
        "kv.put" => {
            let v = client
                .kv(s(a, "mount"))
                .put(s(a, "key"), &data_arg(a, "data"))
                .await?;
            json!({ "version": v.version })
        }
        "kv.patch" => {
            let v = client
                .kv(s(a, "mount"))
                .patch(s(a, "key"), &data_arg(a, "data"))
                .await?;
            json!({ "version": v.version })
        }
        "kv.get" => {
            let kv = client.kv(s(a, "mount"));
            let got = match a.get("version").and_then(Value::as_u64) {
                Some(v) => kv.get_version(s(a, "key"), v).await?,
                None => kv.get(s(a, "key")).await?,
            };
            got.map_or(
                Value::Null,
                |g| json!({ "data": g.data.expose(), "version": g.metadata.version }),
            )
        }
        "kv.delete" => {
            client.kv(s(a, "mount")).delete(s(a, "key")).await?;
            Value::Null
        }
        "kv.list" => json!({ "keys": client.kv(s(a, "mount")).list(s(a, "prefix")).await? }),
        "kv.metadata" => client
            .kv(s(a, "mount"))
            .metadata(s(a, "key"))
            .await?
            .map_or(Value::Null, |m| {
                json!({
                    "current_version": m.current_version,
                    "oldest_version": m.oldest_version,
                    "max_versions": m.max_versions,
                    "versions": m.versions.keys().collect::<Vec<_>>(),
                })
            }),
        "transit.encrypt" => {
            let c = client
                .transit(s(a, "mount"))
                .encrypt(s(a, "key"), s(a, "plaintext").as_bytes())
                .await?;
            json!({ "ciphertext": c.as_str(), "key_version": c.key_version() })
        }
        "transit.decrypt" => {
            let p = client
                .transit(s(a, "mount"))
                .decrypt(
                    s(a, "key"),
                    &strongroom::Ciphertext::new(s(a, "ciphertext")),
                )
                .await?;
            json!({ "plaintext": String::from_utf8_lossy(p.expose()) })
        }
        "transit.rotate" => {
            let v = client.transit(s(a, "mount")).rotate(s(a, "key")).await?;
            json!({ "latest_version": v })
        }
        "transit.hmac" => json!({
            "hmac": client
                .transit(s(a, "mount"))
                .hmac(s(a, "key"), s(a, "input").as_bytes())
                .await?
        }),
        "transit.sign" => json!({
            "signature": client
                .transit(s(a, "mount"))
                .sign(s(a, "key"), s(a, "input").as_bytes())
                .await?
        }),
        "transit.verify" => json!({
            "valid": client
                .transit(s(a, "mount"))
                .verify(s(a, "key"), s(a, "input").as_bytes(), s(a, "signature"))
                .await?
        }),
        "token.create" => {
            let mut req = strongroom::TokenRequest::default();
            if let Some(p) = a.get("policies").and_then(Value::as_array) {
                req.policies = p.iter().map(|x| x.as_str().unwrap().to_string()).collect();
            }
            req.ttl = secs_arg(a, "ttl");
            req.num_uses = a.get("num_uses").and_then(Value::as_u64).unwrap_or(0);
            req.token_type = a.get("type").and_then(Value::as_str).map(str::to_string);
            auth_json(&client.token().create(&req).await?)
        }
        "token.lookup_self" => {
            let t = client.token().lookup_self().await?;
            json!({
                "policies": t.policies,
                "ttl": t.ttl,
                "num_uses": t.num_uses,
                "orphan": t.orphan,
                "renewable": t.renewable,
                "type": t.token_type,
                "path": t.path,
            })
        }
        "token.revoke_self" => {
            client.token().revoke_self().await?;
            Value::Null
        }
        "auth.userpass.login" => auth_json(
            &client
                .auth()
                .userpass(s(a, "mount"))
                .login_auth(s(a, "username"), s(a, "password"))
                .await?,
        ),
        "auth.approle.role_id" => json!({
            "role_id": client.auth().approle(s(a, "mount")).role_id(s(a, "role")).await?
        }),
        "auth.approle.secret_id" => {
            let id = client
                .auth()
                .approle(s(a, "mount"))
                .generate_secret_id(s(a, "role"), strongroom::Data::new())
                .await?;
            json!({
                "secret_id": secrecy::ExposeSecret::expose_secret(&id.secret_id),
                "accessor": id.accessor,
            })
        }
        "auth.approle.login" => auth_json(
            &client
                .auth()
                .approle(s(a, "mount"))
                .login_auth(s(a, "role_id"), s(a, "secret_id"))
                .await?,
        ),
        "leases.lookup" => {
            let l = client.leases().lookup(s(a, "lease_id")).await?;
            json!({ "id": l.id, "ttl": l.ttl, "renewable": l.renewable, "path": l.path })
        }
        "leases.renew" => {
            let r = client
                .leases()
                .renew(s(a, "lease_id"), secs_arg(a, "increment"))
                .await?;
            json!({ "lease_id": r.lease_id, "ttl": r.ttl.as_secs() })
        }
        "leases.revoke" => {
            client.leases().revoke(s(a, "lease_id")).await?;
            Value::Null
        }
        "leases.revoke_prefix" => {
            client.leases().revoke_prefix(s(a, "prefix")).await?;
            Value::Null
        }
        "database.creds" => {
            let c = client.database(s(a, "mount")).creds(s(a, "role")).await?;
            json!({
                "username": c.username,
                "has_password": !secrecy::ExposeSecret::expose_secret(&c.password).is_empty(),
                "lease_id": c.lease_id,
                "lease_duration": c.lease_duration.as_secs(),
                "renewable": c.renewable,
            })
        }
        "sys.seal" => {
            sr.seal().await?;
            Value::Null
        }
        other => panic!("unknown call `{other}`"),
    })
}

/// `want` holds for `got`: objects by the keys `want` names, arrays and scalars exactly, and
/// the matchers `$any` (present and not null), `$absent` (missing or null), `$nonempty`,
/// `$prefix:<text>`, `$contains:<text>`.
fn matches(want: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (want, got) {
        (Value::String(w), g) if w.starts_with('$') => {
            let ok = match w.as_str() {
                "$any" => !g.is_null(),
                "$absent" => g.is_null(),
                "$nonempty" => match g {
                    Value::String(x) => !x.is_empty(),
                    Value::Array(x) => !x.is_empty(),
                    Value::Object(x) => !x.is_empty(),
                    _ => false,
                },
                m if m.starts_with("$prefix:") => g
                    .as_str()
                    .is_some_and(|x| x.starts_with(&m["$prefix:".len()..])),
                m if m.starts_with("$contains:") => g
                    .as_str()
                    .is_some_and(|x| x.contains(&m["$contains:".len()..])),
                m => return Err(format!("{at}: unknown matcher {m}")),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("{at}: {w} does not hold for {g}"))
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                matches(wv, g.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                matches(wv, gv, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (w, g) if w == g => Ok(()),
        (w, g) => Err(format!("{at}: wanted {w}, got {g}")),
    }
}

async fn replay(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let scenario: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let open = &scenario["open"];
    assert_eq!(
        open["config"], "dev",
        "only the dev config is specified yet"
    );
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.dev_root_token().unwrap().expose_secret().to_string();
    let mut run = Run {
        sr,
        clock,
        root,
        vars: Map::new(),
    };
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    let steps = scenario["steps"].as_array().expect("steps");
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{} step {i}", path.display());
        if let Some(by) = step.get("advance") {
            run.clock
                .advance(Duration::from_secs(seconds(by.as_str().unwrap())));
            run.sr.run_expiry().await.unwrap();
            continue;
        }
        let name = step["call"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no call"));
        let args = run.interpolate(step.get("args").unwrap_or(&Value::Null));
        let token = match step.get("token") {
            Some(t) => run
                .interpolate(t)
                .as_str()
                .unwrap_or_else(|| panic!("{at}: token is not a string"))
                .to_string(),
            None => run.root.clone(),
        };
        let client = clients
            .entry(token.clone())
            .or_insert_with(|| run.sr.client(token.clone()))
            .clone();
        let got = call(&client, &run.sr, name, &args).await;
        match (got, step.get("expect_error")) {
            (Ok(v), None) => {
                if let Some(want) = step.get("expect") {
                    let want = run.interpolate(want);
                    if let Err(e) = matches(&want, &v, "result") {
                        panic!("{at} ({name}): {e}\nresult: {v}");
                    }
                }
                if let Some(var) = step.get("save").and_then(Value::as_str) {
                    run.vars.insert(var.to_string(), v);
                }
            }
            (Err(e), Some(code)) => {
                assert_eq!(
                    e.code().name(),
                    code.as_str().unwrap(),
                    "{at} ({name}): {e:?}"
                );
                if let Some(text) = step.get("error_contains").and_then(Value::as_str) {
                    assert!(e.message().contains(text), "{at}: {e:?}");
                }
            }
            (Ok(v), Some(code)) => panic!("{at} ({name}): wanted error {code}, got {v}"),
            (Err(e), None) => panic!("{at} ({name}): {e:?}"),
        }
    }
    steps.len()
}

#[tokio::test]
async fn every_scenario_replays() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "scenarios missing: {files:?}");
    for f in &files {
        let steps = replay(f).await;
        assert!(steps > 0, "{}: no steps", f.display());
    }
}

#[test]
fn matchers() {
    let got = json!({"a": 1, "b": "s.abc", "c": [1, 2], "d": null});
    assert!(matches(&json!({"a": 1}), &got, "r").is_ok());
    assert!(matches(&json!({"a": 2}), &got, "r").is_err());
    assert!(matches(&json!({"b": "$prefix:s."}), &got, "r").is_ok());
    assert!(matches(&json!({"b": "$prefix:b."}), &got, "r").is_err());
    assert!(matches(&json!({"d": "$absent", "e": "$absent"}), &got, "r").is_ok());
    assert!(matches(&json!({"a": "$absent"}), &got, "r").is_err());
    assert!(matches(&json!({"c": [1]}), &got, "r").is_err());
    assert!(matches(&json!({"c": "$nonempty", "a": "$any"}), &got, "r").is_ok());
    assert_eq!(seconds("1h30m"), 5400);
    assert_eq!(seconds("90s"), 90);
    assert_eq!(seconds("45"), 45);
}
