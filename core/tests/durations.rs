//! Extreme durations (issue #23, item 5) and mount lease limits (item 8) through the pipeline.
//!
//! OpenBao parses every duration with go-secure-stdlib's `ParseDurationSecond` and refuses
//! what Go's `time.Duration` (about 292 years) cannot hold; adding such a duration to a time
//! used to panic the request's task here. Time moves with a virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use strongroom::{
    Config, DevOptions, ErrorCode, Operation, Request, Response, Result, Strongroom, VirtualClock,
    data,
};

const ROOT: &str = "root";

struct Engine {
    sr: Strongroom,
    clock: VirtualClock,
    /// A renewable service token, for `auth/token/renew`.
    child: String,
    /// A lease of the `test-leases` engine, for `sys/leases/renew`.
    lease: String,
}

async fn call(sr: &Strongroom, op: Operation, path: &str, body: Value) -> Result<Response> {
    let mut req = Request::new(op, path).with_token(ROOT);
    if let Value::Object(m) = body {
        req = req.with_data(m);
    }
    sr.handle(req).await
}

async fn ok(sr: &Strongroom, path: &str, body: Value) -> Response {
    call(sr, Operation::Update, path, body)
        .await
        .unwrap_or_else(|e| panic!("setup {path}: {e}"))
}

async fn engine() -> Engine {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(
        Config::dev_with(DevOptions {
            root_token_id: Some(ROOT.into()),
            ..DevOptions::default()
        })
        .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    ok(&sr, "sys/auth/approle", json!({"type": "approle"})).await;
    ok(&sr, "auth/approle/role/r", json!({"policies": ["default"]})).await;
    ok(&sr, "sys/auth/kubernetes", json!({"type": "kubernetes"})).await;
    ok(
        &sr,
        "sys/mounts/kvv2",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    ok(&sr, "sys/mounts/transit", json!({"type": "transit"})).await;
    ok(&sr, "transit/keys/k", json!({})).await;
    ok(&sr, "sys/mounts/lt", json!({"type": "test-leases"})).await;
    ok(&sr, "sys/mounts/database", json!({"type": "database"})).await;
    ok(
        &sr,
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres",
            "username": "postgres",
            "verify_connection": false,
            "allowed_roles": ["*"],
        }),
    )
    .await;
    let child = ok(&sr, "auth/token/create", json!({"ttl": "1h"}))
        .await
        .auth
        .unwrap()
        .client_token;
    let lease = ok(&sr, "lt/issue/s", json!({"ttl": "1h"}))
        .await
        .lease_id
        .clone();
    assert!(!lease.is_empty());
    Engine {
        sr,
        clock,
        child: child.expose_secret().to_string(),
        lease,
    }
}

/// Every duration-bearing field a caller reaches: (path, field, extra body).
fn targets(e: &Engine) -> Vec<(String, &'static str, Value)> {
    let mut t = Vec::new();
    let mut add = |path: &str, fields: &[&'static str], extra: Value| {
        for f in fields {
            t.push((path.to_string(), *f, extra.clone()));
        }
    };
    add(
        "auth/token/create",
        &["ttl", "explicit_max_ttl", "period"],
        json!({}),
    );
    add(
        "auth/token/roles/tr",
        &[
            "token_ttl",
            "token_max_ttl",
            "token_explicit_max_ttl",
            "token_period",
        ],
        json!({}),
    );
    add("auth/token/create/tr", &["ttl"], json!({}));
    add(
        "auth/token/renew",
        &["increment"],
        json!({"token": e.child}),
    );
    add(
        "sys/policies/acl/p",
        &["ttl"],
        json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}),
    );
    add(
        "auth/approle/role/r",
        &[
            "secret_id_ttl",
            "token_ttl",
            "token_max_ttl",
            "token_period",
            "token_explicit_max_ttl",
        ],
        json!({}),
    );
    add("auth/approle/role/r/secret-id", &["ttl"], json!({}));
    add(
        "auth/approle/role/r/custom-secret-id",
        &["ttl"],
        json!({"secret_id": "s"}),
    );
    add(
        "auth/kubernetes/role/k",
        &["token_ttl", "token_max_ttl", "token_period"],
        json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["b"]}),
    );
    add(
        "sys/mounts/kvv2/tune",
        &["default_lease_ttl", "max_lease_ttl"],
        json!({}),
    );
    add(
        "sys/auth/approle/tune",
        &["default_lease_ttl", "max_lease_ttl"],
        json!({}),
    );
    add("kvv2/config", &["delete_version_after"], json!({}));
    add("kvv2/metadata/a", &["delete_version_after"], json!({}));
    add("transit/keys/k/config", &["auto_rotate_period"], json!({}));
    add("transit/keys/k2", &["auto_rotate_period"], json!({}));
    add(
        "database/roles/d",
        &["default_ttl", "max_ttl"],
        json!({"db_name": "pg", "creation_statements": ["SELECT 1"]}),
    );
    add("lt/issue/x", &["ttl", "max_ttl"], json!({}));
    add(
        "sys/leases/renew",
        &["increment"],
        json!({"lease_id": e.lease}),
    );
    t
}

/// Values that used to overflow, or sit on Go's limits, as JSON numbers and strings.
fn extreme() -> impl Strategy<Value = Value> {
    let fixed: Vec<Value> = vec![
        json!(u64::MAX),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(9_223_372_036_u64),
        json!(9_223_372_037_u64),
        json!(-1),
        json!(1e308),
        json!(-1e308),
        json!(1.5),
        json!("18446744073709551615"),
        json!("9223372036"),
        json!("9223372037"),
        json!("999999999h"),
        json!("2562047h"),
        json!("2562048h"),
        json!("106751d"),
        json!("106752d"),
        json!("-9223372037"),
        json!("1e308s"),
        json!("-5s"),
        json!("9223372036854775807ns"),
        json!("9223372036854775808ns"),
        json!("0.000000001h"),
        json!(""),
    ];
    prop_oneof![
        proptest::sample::select(fixed),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n.to_string())),
        any::<f64>().prop_map(|f| json!(f)),
        (
            any::<u64>(),
            prop_oneof![Just("h"), Just("d"), Just("s"), Just("m"), Just("ms")]
        )
            .prop_map(|(n, u)| json!(format!("{n}{u}"))),
    ]
}

/// A caller's bad duration is a client error (or accepted), never an internal failure.
fn acceptable(r: &Result<Response>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => matches!(
            e.code(),
            ErrorCode::InvalidInput
                | ErrorCode::NotFound
                | ErrorCode::PermissionDenied
                | ErrorCode::Conflict
                | ErrorCode::UnsupportedOperation
                | ErrorCode::UnsupportedPath
        ),
    }
}

/// The engine still answers: tokens, policies, mounts, leases, wrapping.
async fn still_answers(e: &Engine) {
    call(&e.sr, Operation::Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap();
    call(&e.sr, Operation::Read, "sys/mounts", json!({}))
        .await
        .unwrap();
    call(
        &e.sr,
        Operation::Read,
        "sys/policies/acl/default",
        json!({}),
    )
    .await
    .unwrap();
    call(&e.sr, Operation::Read, "transit/keys/k", json!({}))
        .await
        .unwrap();
    let wrapped =
        e.sr.handle(
            Request::write("sys/wrapping/wrap", data(json!({"a": "b"})))
                .with_token(ROOT)
                .with_wrap_ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(wrapped.wrap_info.is_some());
    e.sr.run_expiry().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Every duration-bearing field of every endpoint, fed extreme values: no panic, a client
    /// error or success, and the engine still answers afterwards (also after time passes
    /// and the lease manager runs over whatever was accepted).
    #[test]
    fn extreme_durations_never_break_the_engine(pick in any::<prop::sample::Index>(), v in extreme()) {
        runtime().block_on(async {
            let e = shared().await;
            let all = targets(e);
            let (path, field, extra) = pick.get(&all).clone();
            let mut body = extra;
            body[field] = v.clone();
            let r = call(&e.sr, Operation::Update, &path, body).await;
            assert!(acceptable(&r), "{path} {field}={v}: {:?}", r.err());
            // A lease issued with whatever was accepted can be looked up and renewed.
            if let Ok(resp) = &r && !resp.lease_id.is_empty() {
                let id = json!({"lease_id": resp.lease_id});
                call(&e.sr, Operation::Update, "sys/leases/lookup", id.clone()).await.unwrap();
                let renewed = call(&e.sr, Operation::Update, "sys/leases/renew", id).await;
                assert!(acceptable(&renewed), "{:?}", renewed.err());
            }
            e.clock.advance(Duration::from_secs(3600));
            still_answers(e).await;
        });
    }
}

/// One runtime for every case: the shared engine's background tasks live on it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One engine for every case (built once: the property is about the inputs, not setup).
async fn shared() -> &'static Engine {
    static ENGINE: tokio::sync::OnceCell<Engine> = tokio::sync::OnceCell::const_new();
    ENGINE.get_or_init(engine).await
}

/// The wrap TTLs that used to panic `wrapping.rs`, through the embedding API (the HTTP
/// header is refused earlier, with OpenBao's text: see the server tests).
#[tokio::test]
async fn wrap_ttls_past_gos_limit_are_refused_before_the_request_runs() {
    let e = engine().await;
    for ttl in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(9_223_372_037),
    ] {
        let err =
            e.sr.handle(
                Request::write("kvv2/data/w", data(json!({"data": {"a": "b"}})))
                    .with_token(ROOT)
                    .with_wrap_ttl(ttl),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{ttl:?}");
        assert!(err.message().contains("out of range"), "{err}");
    }
    // Nothing was written.
    let read = call(&e.sr, Operation::Read, "kvv2/data/w", json!({})).await;
    match read {
        Ok(r) => assert!(r.data.is_none(), "{r:?}"),
        Err(e) => assert_eq!(e.code(), ErrorCode::NotFound),
    }
    // Go's longest duration is still a wrap TTL (as bao), and the token expires (in 2318:
    // saturated, never "no expiry").
    let w =
        e.sr.handle(
            Request::write("sys/wrapping/wrap", data(json!({"a": "b"})))
                .with_token(ROOT)
                .with_wrap_ttl(Duration::from_secs(9_223_372_036)),
        )
        .await
        .unwrap()
        .wrap_info
        .unwrap();
    assert_eq!(w.ttl, 9_223_372_036);
    let look = call(
        &e.sr,
        Operation::Update,
        "sys/wrapping/lookup",
        json!({"token": w.token.expose_secret()}),
    )
    .await
    .unwrap();
    assert_eq!(look.get("creation_ttl"), Some(&json!(9_223_372_036_u64)));
    still_answers(&e).await;
}

/// The fields the issue names, with OpenBao's answers (bao 2.7.2).
#[tokio::test]
async fn named_fields_answer_openbaos_texts() {
    let e = engine().await;
    let overflow = "multiplication of durations resulted in overflow, one operand may be too large";
    for (path, body, want) in [
        (
            "auth/token/create",
            json!({"ttl": "999999999h"}),
            "time: invalid duration \"999999999h\"",
        ),
        (
            "auth/token/create",
            json!({"explicit_max_ttl": 18_446_744_073_709_551_615_u64}),
            "time: invalid duration \"18446744073709551615\"",
        ),
        ("auth/token/create", json!({"ttl": "9223372037"}), overflow),
        (
            "sys/policies/acl/p",
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }", "ttl": "9223372037"}),
            overflow,
        ),
        (
            "auth/approle/role/r/secret-id",
            json!({"ttl": "106752d"}),
            overflow,
        ),
    ] {
        let err = call(&e.sr, Operation::Update, path, body.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{path} {body}");
        assert!(err.message().ends_with(want), "{path} {body}: {err}");
    }
    // token create parses its own durations and says so (bao 2.7.2).
    for (field, value, want) in [
        ("ttl", json!("-5"), "ttl must be positive"),
        ("lease", json!(-5), "ttl must be positive"),
        (
            "explicit_max_ttl",
            json!("-5s"),
            "explicit_max_ttl must be positive",
        ),
        ("period", json!(-1), "period must be positive"),
    ] {
        let err = call(
            &e.sr,
            Operation::Update,
            "auth/token/create",
            json!({field: value}),
        )
        .await
        .unwrap_err();
        assert_eq!((err.code(), err.message()), (ErrorCode::InvalidInput, want));
    }
    // A float is refused as Go refuses its text (`1e308` has unit "e"; serde_json prints it
    // `1e+308`, so only the quoted text differs from bao's).
    let err = call(
        &e.sr,
        Operation::Update,
        "auth/token/create",
        json!({"ttl": 1e308}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().starts_with("time: unknown unit \"e"), "{err}");
    // On the limit itself everything is accepted (and capped by the maxima), as in bao.
    let t = ok(
        &e.sr,
        "auth/token/create",
        json!({"ttl": "9223372036", "explicit_max_ttl": "2562047h"}),
    )
    .await;
    assert_eq!(t.auth.unwrap().lease_duration, 768 * 3600);
    ok(
        &e.sr,
        "sys/policies/acl/p",
        json!({"policy": "path \"x\" { capabilities = [\"read\"] }", "ttl": "9223372036"}),
    )
    .await;
    ok(
        &e.sr,
        "auth/approle/role/r/secret-id",
        json!({"ttl": "106751d"}),
    )
    .await;
    still_answers(&e).await;
}

/// Item 8: a mount maximum above the system's 768h (the PKI tutorial's `87600h`) is
/// accepted on enable and on tune, as OpenBao does; leases there default to 768h and may
/// reach the mount's own maximum.
#[tokio::test]
async fn a_mount_maximum_may_exceed_the_system_maximum() {
    let e = engine().await;
    ok(
        &e.sr,
        "sys/mounts/ten",
        json!({"type": "test-leases", "config": {"max_lease_ttl": "87600h"}}),
    )
    .await;
    let tune = call(&e.sr, Operation::Read, "sys/mounts/ten/tune", json!({}))
        .await
        .unwrap();
    assert_eq!(tune.get("max_lease_ttl"), Some(&json!(87600 * 3600)));
    assert_eq!(tune.get("default_lease_ttl"), Some(&json!(768 * 3600)));
    let year = ok(&e.sr, "ten/issue/a", json!({"ttl": "8760h"})).await;
    assert_eq!(year.lease_duration, 8760 * 3600);
    let plain = ok(&e.sr, "ten/issue/b", json!({})).await;
    assert_eq!(plain.lease_duration, 768 * 3600);
    let past = ok(&e.sr, "ten/issue/c", json!({"ttl": "100000h"})).await;
    assert_eq!(past.lease_duration, 87600 * 3600);
    // Tuning further up, as `bao secrets tune -max-lease-ttl=876000h`.
    ok(
        &e.sr,
        "sys/mounts/lt/tune",
        json!({"max_lease_ttl": "876000h"}),
    )
    .await;
    let lt = ok(&e.sr, "lt/issue/y", json!({"ttl": "8760h"})).await;
    assert_eq!(lt.lease_duration, 8760 * 3600);
    // What OpenBao still refuses, with its texts.
    for (path, body, want) in [
        (
            "sys/mounts/bad1",
            json!({"type": "kv", "config": {"default_lease_ttl": "10h", "max_lease_ttl": "5h"}}),
            "given default lease TTL greater than given max lease TTL",
        ),
        (
            "sys/mounts/bad2",
            json!({"type": "kv", "config": {"default_lease_ttl": "8760h"}}),
            "given default lease TTL greater than system max lease TTL of 2764800",
        ),
        (
            "sys/mounts/ten/tune",
            json!({"max_lease_ttl": "1h", "default_lease_ttl": "2h"}),
            "backend max lease TTL of 3600 would be less than backend default lease TTL of 7200",
        ),
    ] {
        let err = call(&e.sr, Operation::Update, path, body)
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.message()), (ErrorCode::InvalidInput, want));
    }
}

/// Item 7 (part): OpenBao's protected mount paths, `audit/` included, with its text.
#[tokio::test]
async fn protected_mount_paths_are_refused() {
    let e = engine().await;
    for path in [
        "audit",
        "audit/x",
        "auth",
        "auth/x",
        "sys",
        "sys/x",
        "cubbyhole",
        "cubbyhole/x",
        "identity",
        "identity/x",
    ] {
        let err = call(
            &e.sr,
            Operation::Update,
            &format!("sys/mounts/{path}"),
            json!({"type": "kv"}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert_eq!(err.message(), format!("cannot mount \"{path}/\""));
    }
    // Names that merely start like them are ordinary paths.
    ok(&e.sr, "sys/mounts/auditing", json!({"type": "kv"})).await;
}
