//! Behaviour tests for KV v2, driving [`KvV2::handle`] over an in-memory view and a virtual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use time::macros::datetime;

use super::KvV2;
use crate::clock::VirtualClock;
use crate::error::{ErrorCode, Result};
use crate::request::{Data, Operation, Request, Response};
use crate::secrets::{Engine, EngineContext};
use crate::storage::view::View;
use crate::storage::{Backend, MemoryBackend, Page, TxnOp};

const T0: &str = "2026-11-27T21:34:23.969306953Z";

struct Env {
    ctx: EngineContext,
    clock: VirtualClock,
    mem: Arc<MemoryBackend>,
}

fn env() -> Env {
    let mem = Arc::new(MemoryBackend::new());
    env_over(mem.clone(), mem)
}

fn env_over(backend: Arc<dyn Backend>, mem: Arc<MemoryBackend>) -> Env {
    let clock = VirtualClock::at(datetime!(2026-11-27 21:34:23.969306953 UTC));
    let ctx = EngineContext {
        storage: View::new(backend.clone(), "logical/test/"),
        password_policies: View::new(backend, crate::password_policy::PREFIX),
        clock: Arc::new(clock.clone()),
        default_lease_ttl: Duration::from_secs(768 * 3600),
        max_lease_ttl: Duration::from_secs(768 * 3600),
    };
    Env { ctx, clock, mem }
}

fn body(v: Value) -> Data {
    match v {
        Value::Object(m) => m,
        _ => Data::new(),
    }
}

impl Env {
    async fn call(&self, op: Operation, path: &str, v: Value) -> Result<Option<Response>> {
        let req = Request::new(op, path).with_data(body(v));
        KvV2.handle(&self.ctx, &req).await
    }
    async fn ok(&self, op: Operation, path: &str, v: Value) -> Option<Response> {
        match self.call(op, path, v).await {
            Ok(r) => r,
            Err(e) => panic!("{op} {path} failed: {e}"),
        }
    }
    /// The error message of a call that must fail with `code`.
    async fn err(&self, op: Operation, path: &str, v: Value, code: ErrorCode) -> String {
        match self.call(op, path, v).await {
            Ok(r) => panic!("{op} {path} succeeded: {r:?}"),
            Err(e) => {
                assert_eq!(e.code(), code, "{op} {path}: {e}");
                e.message().to_string()
            }
        }
    }
    async fn put(&self, key: &str, data: Value) -> Data {
        let r = self
            .ok(
                Operation::Update,
                &format!("data/{key}"),
                json!({ "data": data }),
            )
            .await
            .expect("a write answers with the version metadata");
        r.data.expect("data")
    }
    async fn get(&self, path: &str, q: Value) -> Option<Response> {
        self.ok(Operation::Read, path, q).await
    }
    async fn data_of(&self, path: &str, q: Value) -> Value {
        let r = self.get(path, q).await.expect("found");
        assert_eq!(r.kind, crate::request::ResponseKind::Done);
        Value::Object(r.data.expect("data"))
    }
    /// Every raw storage key of the mount.
    async fn storage_keys(&self) -> Vec<String> {
        self.mem.scan("logical/test/", &Page::all()).await.unwrap()
    }
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

// ---------------------------------------------------------------- data

#[tokio::test]
async fn write_answers_version_metadata_in_openbao_order() {
    let e = env();
    let d = e.put("app/db", json!({"user": "a"})).await;
    assert_eq!(
        Value::Object(d),
        json!({"created_time": T0, "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": 1})
    );
    let d = e.put("app/db", json!({"user": "b"})).await;
    assert_eq!(d["version"], json!(2));
    assert_eq!(
        keys(&Value::Object(d)),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
}

#[tokio::test]
async fn read_returns_latest_data_and_metadata() {
    let e = env();
    e.put("app", json!({"user": "a"})).await;
    e.advance(1);
    e.put("app", json!({"zeta": 1, "alpha": {"b": 2, "a": 1}}))
        .await;
    let v = e.data_of("data/app", json!({})).await;
    assert_eq!(keys(&v), ["data", "metadata"]);
    // Keys come back sorted at every level, as Go prints maps.
    assert_eq!(v["data"].to_string(), r#"{"alpha":{"a":1,"b":2},"zeta":1}"#);
    assert_eq!(
        v["metadata"],
        json!({"created_time": "2026-11-27T21:34:24.969306953Z", "custom_metadata": null,
               "deletion_time": "", "destroyed": false, "version": 2})
    );
}

#[tokio::test]
async fn read_version_parameter_selects_a_version() {
    let e = env();
    e.put("k", json!({"v": 1})).await;
    e.put("k", json!({"v": 2})).await;
    // Query parameters arrive as strings.
    let v = e.data_of("data/k", json!({"version": "1"})).await;
    assert_eq!(v["data"], json!({"v": 1}));
    assert_eq!(v["metadata"]["version"], json!(1));
    let v = e.data_of("data/k", json!({"version": 0})).await;
    assert_eq!(v["data"], json!({"v": 2}));
    assert!(e.get("data/k", json!({"version": "3"})).await.is_none());
}

#[tokio::test]
async fn read_of_missing_key_is_none() {
    let e = env();
    assert!(e.get("data/nope", json!({})).await.is_none());
    assert!(e.get("data/", json!({})).await.is_none());
}

#[tokio::test]
async fn write_without_data_is_refused_and_changes_nothing() {
    let e = env();
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"options": {}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "no data provided");
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": null}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "no data provided");
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": "hunter2"}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        "Field validation failed: error converting input for field \"data\": '' expected a map, got 'string'"
    );
    assert!(!msg.contains("hunter2"));
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": [1]}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert!(msg.ends_with("got 'slice'"), "{msg}");
    let msg = e
        .err(
            Operation::Update,
            "data/",
            json!({"data": {}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "missing path");
    assert!(e.storage_keys().await.is_empty());
}

#[tokio::test]
async fn cas_zero_means_the_key_must_not_exist() {
    let e = env();
    let w = json!({"data": {"a": 1}, "options": {"cas": 0}});
    e.ok(Operation::Update, "data/k", w.clone()).await.unwrap();
    let msg = e
        .err(Operation::Update, "data/k", w, ErrorCode::Conflict)
        .await;
    assert_eq!(
        msg,
        "check-and-set parameter did not match the current version"
    );
}

#[tokio::test]
async fn cas_must_match_the_current_version() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": {"a": 2}, "options": {"cas": 2}}),
            ErrorCode::Conflict,
        )
        .await;
    assert_eq!(
        msg,
        "check-and-set parameter did not match the current version"
    );
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": {"a": 2}, "options": {"cas": -1}}),
            ErrorCode::Conflict,
        )
        .await;
    assert_eq!(
        msg,
        "check-and-set parameter did not match the current version"
    );
    // Strings are accepted, as Go's weak decoding does.
    let r = e
        .ok(
            Operation::Update,
            "data/k",
            json!({"data": {"a": 2}, "options": {"cas": "1"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.get("version"), Some(&json!(2)));
    assert_eq!(
        e.data_of("data/k", json!({})).await["data"],
        json!({"a": 2})
    );
}

#[tokio::test]
async fn cas_that_is_not_an_integer_is_a_parse_error() {
    let e = env();
    for bad in [json!("abc"), json!(1.5), json!([1]), json!({"x": 1})] {
        let msg = e
            .err(
                Operation::Update,
                "data/k",
                json!({"data": {"a": 1}, "options": {"cas": bad}}),
                ErrorCode::InvalidInput,
            )
            .await;
        assert_eq!(msg, "error parsing check-and-set parameter");
    }
    assert!(e.storage_keys().await.is_empty());
}

#[tokio::test]
async fn cas_required_by_mount_config() {
    let e = env();
    e.ok(Operation::Update, "config", json!({"cas_required": true}))
        .await;
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": {"a": 1}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "check-and-set parameter required for this call");
    e.ok(
        Operation::Update,
        "data/k",
        json!({"data": {"a": 1}, "options": {"cas": 0}}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn cas_required_by_key_metadata() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"cas_required": true}),
    )
    .await;
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": {"a": 2}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "check-and-set parameter required for this call");
    let msg = e
        .err(
            Operation::Patch,
            "data/k",
            json!({"data": {"a": 2}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "check-and-set parameter required for this call");
    e.ok(
        Operation::Update,
        "data/k",
        json!({"data": {"a": 2}, "options": {"cas": 1}}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn patch_merges_into_a_new_version() {
    let e = env();
    e.put(
        "k",
        json!({"user": "a", "pass": "p", "nested": {"x": 1, "y": 2}}),
    )
    .await;
    let r = e
        .ok(
            Operation::Patch,
            "data/k",
            json!({"data": {"pass": null, "nested": {"y": null, "z": 3}, "new": true}, "options": {}}),
        )
        .await
        .unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::Done);
    assert_eq!(r.get("version"), Some(&json!(2)));
    let v = e.data_of("data/k", json!({})).await;
    assert_eq!(
        v["data"],
        json!({"nested": {"x": 1, "z": 3}, "new": true, "user": "a"})
    );
    let v1 = e.data_of("data/k", json!({"version": 1})).await;
    assert_eq!(v1["data"]["pass"], json!("p"));
}

#[tokio::test]
async fn patch_honours_cas() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    let msg = e
        .err(
            Operation::Patch,
            "data/k",
            json!({"data": {"b": 2}, "options": {"cas": 5}}),
            ErrorCode::Conflict,
        )
        .await;
    assert_eq!(
        msg,
        "check-and-set parameter did not match the current version"
    );
    e.ok(
        Operation::Patch,
        "data/k",
        json!({"data": {"b": 2}, "options": {"cas": 1}}),
    )
    .await
    .unwrap();
    assert_eq!(
        e.data_of("data/k", json!({})).await["data"],
        json!({"a": 1, "b": 2})
    );
}

#[tokio::test]
async fn patch_of_missing_or_deleted_key_is_a_bare_404() {
    let e = env();
    let r = e
        .ok(Operation::Patch, "data/k", json!({"data": {"a": 1}}))
        .await
        .unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    assert!(r.data.is_none() && r.warnings.is_empty());
    e.put("k", json!({"a": 1})).await;
    e.ok(Operation::Delete, "data/k", json!({})).await;
    e.advance(1);
    let r = e
        .ok(Operation::Patch, "data/k", json!({"data": {"a": 2}}))
        .await
        .unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    assert!(r.data.is_none());
    let msg = e
        .err(
            Operation::Patch,
            "data/k",
            json!({}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "no data provided");
}

#[tokio::test]
async fn delete_soft_deletes_the_latest_version_with_a_404_envelope() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    e.put("k", json!({"a": 2})).await;
    assert!(e.ok(Operation::Delete, "data/k", json!({})).await.is_none());
    e.advance(1);
    let r = e.get("data/k", json!({})).await.unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    let v = Value::Object(r.data.unwrap());
    assert_eq!(
        v,
        json!({"data": null, "metadata": {"created_time": T0, "custom_metadata": null,
               "deletion_time": T0, "destroyed": false, "version": 2}})
    );
    // Older versions stay readable.
    assert_eq!(
        e.data_of("data/k", json!({"version": 1})).await["data"],
        json!({"a": 1})
    );
}

#[tokio::test]
async fn delete_versions_and_undelete() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    e.put("k", json!({"a": 2})).await;
    e.ok(Operation::Update, "delete/k", json!({"versions": ["1", 2]}))
        .await;
    e.advance(1);
    for n in [1, 2] {
        let r = e.get("data/k", json!({"version": n})).await.unwrap();
        assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    }
    e.ok(Operation::Update, "undelete/k", json!({"versions": [1]}))
        .await;
    assert_eq!(
        e.data_of("data/k", json!({"version": 1})).await["data"],
        json!({"a": 1})
    );
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(meta["versions"]["1"]["deletion_time"], json!(""));
    assert_ne!(meta["versions"]["2"]["deletion_time"], json!(""));
}

#[tokio::test]
async fn version_endpoints_need_version_numbers_with_openbao_texts() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    for path in ["delete/k", "undelete/k"] {
        let msg = e
            .err(Operation::Update, path, json!({}), ErrorCode::InvalidInput)
            .await;
        assert_eq!(msg, "No version number provided");
    }
    let msg = e
        .err(
            Operation::Update,
            "destroy/k",
            json!({"versions": []}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "no version number provided");
    let msg = e
        .err(
            Operation::Update,
            "destroy/k",
            json!({"versions": [-1]}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "invalid version number `-1`");
    // Unknown keys are a silent no-op (204).
    assert!(
        e.ok(Operation::Update, "delete/nope", json!({"versions": [1]}))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn destroy_removes_the_data_for_good() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    e.put("k", json!({"a": 2})).await;
    e.advance(5);
    e.ok(Operation::Update, "destroy/k", json!({"versions": "1"}))
        .await;
    let r = e.get("data/k", json!({"version": 1})).await.unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    let v = Value::Object(r.data.unwrap());
    assert_eq!(v["data"], Value::Null);
    assert_eq!(v["metadata"]["destroyed"], json!(true));
    assert_eq!(v["metadata"]["deletion_time"], json!(""));
    let keys = e.storage_keys().await;
    assert!(!keys.contains(&"versions/k/1".to_string()), "{keys:?}");
    assert!(keys.contains(&"versions/k/2".to_string()));
    // Undelete cannot bring it back.
    e.ok(Operation::Update, "undelete/k", json!({"versions": [1]}))
        .await;
    assert_eq!(
        e.get("data/k", json!({"version": 1})).await.unwrap().kind,
        crate::request::ResponseKind::NotFound
    );
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(
        meta["updated_time"],
        json!("2026-11-27T21:34:28.969306953Z")
    );
}

// ---------------------------------------------------------------- versions and time

#[tokio::test]
async fn default_max_versions_keeps_ten() {
    let e = env();
    for i in 1..=12 {
        e.put("k", json!({"i": i})).await;
    }
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(meta["current_version"], json!(12));
    assert_eq!(meta["oldest_version"], json!(3));
    assert_eq!(meta["versions"].as_object().unwrap().len(), 10);
    assert!(e.get("data/k", json!({"version": 2})).await.is_none());
    assert_eq!(
        e.data_of("data/k", json!({"version": 3})).await["data"],
        json!({"i": 3})
    );
    let stored = e.storage_keys().await;
    assert!(!stored.contains(&"versions/k/2".to_string()));
    assert_eq!(
        stored.iter().filter(|k| k.starts_with("versions/")).count(),
        10
    );
}

#[tokio::test]
async fn key_max_versions_prunes_on_write_only() {
    let e = env();
    for i in 1..=4 {
        e.put("k", json!({"i": i})).await;
    }
    e.ok(Operation::Update, "metadata/k", json!({"max_versions": 2}))
        .await;
    // A metadata update does not prune.
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(meta["versions"].as_object().unwrap().len(), 4);
    assert_eq!(meta["oldest_version"], json!(0));
    e.put("k", json!({"i": 5})).await;
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(keys(&meta["versions"]), ["4", "5"]);
    assert_eq!(meta["oldest_version"], json!(4));
    assert_eq!(meta["max_versions"], json!(2));
    let stored = e.storage_keys().await;
    let versions: Vec<&String> = stored
        .iter()
        .filter(|k| k.starts_with("versions/"))
        .collect();
    assert_eq!(versions, ["versions/k/4", "versions/k/5"]);
}

#[tokio::test]
async fn effective_max_versions_is_the_larger_of_mount_and_key() {
    // [E] mount 5, key 2: the 4th version prunes nothing.
    let e = env();
    e.ok(Operation::Update, "config", json!({"max_versions": 5}))
        .await;
    e.ok(Operation::Update, "metadata/k", json!({"max_versions": 2}))
        .await;
    for i in 1..=4 {
        e.put("k", json!({"i": i})).await;
    }
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(keys(&meta["versions"]), ["1", "2", "3", "4"]);
    for i in 5..=6 {
        e.put("k", json!({"i": i})).await;
    }
    let meta = e.data_of("metadata/k", json!({})).await;
    assert_eq!(keys(&meta["versions"]), ["2", "3", "4", "5", "6"]);
    assert_eq!(meta["oldest_version"], json!(2));
}

#[tokio::test]
async fn delete_version_after_from_mount_config() {
    let e = env();
    e.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    let d = e.put("k", json!({"a": 1})).await;
    assert_eq!(d["deletion_time"], json!("2026-11-27T22:34:23.969306953Z"));
    // A deletion time in the future is still readable.
    e.advance(3599);
    assert_eq!(
        e.data_of("data/k", json!({})).await["data"],
        json!({"a": 1})
    );
    e.advance(2);
    let r = e.get("data/k", json!({})).await.unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    assert_eq!(r.get("data"), Some(&Value::Null));
}

#[tokio::test]
async fn delete_version_after_is_the_smaller_nonzero_value() {
    let e = env();
    e.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"delete_version_after": "10m"}),
    )
    .await;
    let d = e.put("k", json!({"a": 1})).await;
    assert_eq!(d["deletion_time"], json!("2026-11-27T21:44:23.969306953Z"));
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"delete_version_after": "2h"}),
    )
    .await;
    let d = e.put("k", json!({"a": 1})).await;
    assert_eq!(d["deletion_time"], json!("2026-11-27T22:34:23.969306953Z"));
    // "0s" clears the mount value: the key's 2h applies.
    e.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": "0s"}),
    )
    .await;
    let d = e.put("k", json!({"a": 1})).await;
    assert_eq!(d["deletion_time"], json!("2026-11-27T23:34:23.969306953Z"));
    // A negative mount value disables it for every key.
    e.ok(
        Operation::Update,
        "config",
        json!({"delete_version_after": "-1s"}),
    )
    .await;
    let d = e.put("k", json!({"a": 1})).await;
    assert_eq!(d["deletion_time"], json!(""));
    let c = e.data_of("config", json!({})).await;
    assert_eq!(c["delete_version_after"], json!("-1s"));
}

#[tokio::test]
async fn config_defaults_and_round_trip() {
    let e = env();
    let c = e.data_of("config", json!({})).await;
    assert_eq!(
        c,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0, "metadata_cas_required": false})
    );
    assert_eq!(
        keys(&c),
        [
            "cas_required",
            "delete_version_after",
            "max_versions",
            "metadata_cas_required"
        ]
    );
    e.ok(
        Operation::Update,
        "config",
        json!({"max_versions": "7", "cas_required": true, "delete_version_after": 3600, "metadata_cas_required": "true"}),
    )
    .await;
    let c = e.data_of("config", json!({})).await;
    assert_eq!(
        c,
        json!({"cas_required": true, "delete_version_after": "1h0m0s", "max_versions": 7, "metadata_cas_required": true})
    );
    let msg = e
        .err(
            Operation::Update,
            "config",
            json!({"delete_version_after": "abc"}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "time: invalid duration \"abc\"");
    let msg = e
        .err(
            Operation::Update,
            "config",
            json!({"max_versions": -1}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        "max_versions must be between 0 and 4294967295, got `-1`"
    );
    assert_eq!(
        e.data_of("config", json!({})).await["max_versions"],
        json!(7)
    );
}

// ---------------------------------------------------------------- metadata

#[tokio::test]
async fn metadata_read_has_openbao_shape() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    e.advance(1);
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"max_versions": 2, "delete_version_after": "1h", "custom_metadata": {"owner": "team"}}),
    )
    .await;
    let m = e.data_of("metadata/k", json!({})).await;
    assert_eq!(
        m,
        json!({"cas_required": false, "created_time": T0, "current_metadata_version": 1,
               "current_version": 1, "custom_metadata": {"owner": "team"},
               "delete_version_after": "1h0m0s", "max_versions": 2, "metadata_cas_required": false,
               "oldest_version": 0, "updated_time": "2026-11-27T21:34:24.969306953Z",
               "versions": {"1": {"created_time": T0, "deletion_time": "", "destroyed": false}}})
    );
    assert_eq!(
        keys(&m),
        [
            "cas_required",
            "created_time",
            "current_metadata_version",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "metadata_cas_required",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    // custom_metadata shows up in data reads and writes too.
    let d = e.put("k", json!({"a": 2})).await;
    assert_eq!(d["custom_metadata"], json!({"owner": "team"}));
    assert!(e.get("metadata/nope", json!({})).await.is_none());
}

#[tokio::test]
async fn metadata_versions_are_ordered_as_go_sorts_strings() {
    let e = env();
    for i in 1..=10 {
        e.put("k", json!({"i": i})).await;
    }
    e.ok(Operation::Update, "metadata/k", json!({"max_versions": 20}))
        .await;
    e.put("k", json!({"i": 11})).await;
    let m = e.data_of("metadata/k", json!({})).await;
    // The 10th write "pruned" version 0 only (oldest_version 1), so 1..=11 are all kept.
    assert_eq!(m["oldest_version"], json!(1));
    assert_eq!(
        keys(&m["versions"]),
        ["1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
}

#[tokio::test]
async fn metadata_write_without_settings_creates_nothing() {
    let e = env();
    assert!(
        e.ok(Operation::Update, "metadata/k", json!({}))
            .await
            .is_none()
    );
    assert!(
        e.ok(Operation::Update, "metadata/k", json!({"metadata_cas": 0}))
            .await
            .is_none()
    );
    assert!(e.get("metadata/k", json!({})).await.is_none());
    let msg = e
        .err(
            Operation::Update,
            "metadata/",
            json!({"max_versions": 1}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "missing path");
}

#[tokio::test]
async fn custom_metadata_values_are_coerced_to_strings() {
    let e = env();
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"custom_metadata": {"a": 1, "b": true, "c": "x", "d": 1.5}}),
    )
    .await;
    let m = e.data_of("metadata/k", json!({})).await;
    assert_eq!(
        m["custom_metadata"],
        json!({"a": "1", "b": "1", "c": "x", "d": "1.5"})
    );
    // Metadata created by a metadata write starts with no versions.
    assert_eq!(m["current_version"], json!(0));
    assert_eq!(m["versions"], json!({}));
}

#[tokio::test]
async fn custom_metadata_validation_texts() {
    let e = env();
    let many: Data = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"custom_metadata": many}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        "1 error occurred:\n\t* custom_metadata validation failed: payload must contain at most 64 keys, provided 65\n\n"
    );
    let long_key = "k".repeat(129);
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"custom_metadata": {long_key.clone(): "v"}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        format!(
            "1 error occurred:\n\t* custom_metadata validation failed: length of key \"{long_key}\" is 129 but must be 0 < len(key) <= 128\n\n"
        )
    );
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"custom_metadata": {"a": "", "b\u{1}": "x\ny"}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        "3 errors occurred:\n\t* custom_metadata validation failed: length of value for key \"a\" is 0 but must be 0 < len(value) <= 512\n\t* custom_metadata validation failed: key \"b\\x01\" (b\u{1}) contains unprintable characters\n\t* custom_metadata validation failed: value for key \"b\\x01\" contains unprintable characters\n\n"
    );
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"custom_metadata": {"a": "v".repeat(513)}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert!(msg.contains("length of value for key \"a\" is 513 but must be 0 < len(value) <= 512"));
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"custom_metadata": "x"}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        "Field validation failed: error converting input for field \"custom_metadata\": '' expected a map, got 'string'"
    );
    assert!(e.storage_keys().await.is_empty());
}

#[tokio::test]
async fn metadata_patch_merges_custom_metadata_key_by_key() {
    let e = env();
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"max_versions": 3, "custom_metadata": {"a": "1", "b": "2"}}),
    )
    .await;
    e.ok(
        Operation::Patch,
        "metadata/k",
        json!({"custom_metadata": {"b": null, "c": 3}, "cas_required": true}),
    )
    .await;
    let m = e.data_of("metadata/k", json!({})).await;
    assert_eq!(m["custom_metadata"], json!({"a": "1", "c": "3"}));
    assert_eq!(m["max_versions"], json!(3));
    assert_eq!(m["cas_required"], json!(true));
    assert_eq!(m["current_metadata_version"], json!(2));
    // A patch of a missing key is a bare 404.
    let r = e
        .ok(
            Operation::Patch,
            "metadata/nope",
            json!({"max_versions": 1}),
        )
        .await
        .unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    assert!(r.data.is_none());
}

#[tokio::test]
async fn metadata_cas_is_enforced() {
    let e = env();
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"max_versions": 1, "metadata_cas": 3}),
            ErrorCode::Conflict,
        )
        .await;
    assert_eq!(msg, "metadata_cas must be 0 when creating new metadata");
    e.ok(
        Operation::Update,
        "metadata/k",
        json!({"metadata_cas_required": true, "metadata_cas": 0}),
    )
    .await;
    let msg = e
        .err(
            Operation::Update,
            "metadata/k",
            json!({"max_versions": 1}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(
        msg,
        "metadata check-and-set parameter required for this call"
    );
    let msg = e
        .err(
            Operation::Patch,
            "metadata/k",
            json!({"max_versions": 1, "metadata_cas": 2}),
            ErrorCode::Conflict,
        )
        .await;
    assert_eq!(
        msg,
        "metadata check-and-set parameter does not match the current version"
    );
    e.ok(
        Operation::Patch,
        "metadata/k",
        json!({"max_versions": 1, "metadata_cas": 1}),
    )
    .await;
    let m = e.data_of("metadata/k", json!({})).await;
    assert_eq!(m["current_metadata_version"], json!(2));
    assert_eq!(m["max_versions"], json!(1));
}

#[tokio::test]
async fn metadata_write_warns_when_the_mount_mandates_cas() {
    let e = env();
    e.ok(Operation::Update, "config", json!({"cas_required": true}))
        .await;
    let r = e
        .ok(
            Operation::Update,
            "metadata/k",
            json!({"cas_required": false}),
        )
        .await
        .unwrap();
    assert_eq!(
        r.warnings,
        [
            "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."
        ]
    );
    assert!(r.data.is_none());
}

#[tokio::test]
async fn metadata_delete_removes_every_version_and_the_metadata() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    e.put("k", json!({"a": 2})).await;
    e.put("other", json!({"a": 3})).await;
    assert!(
        e.ok(Operation::Delete, "metadata/k", json!({}))
            .await
            .is_none()
    );
    assert!(e.get("data/k", json!({"version": 1})).await.is_none());
    assert!(e.get("metadata/k", json!({})).await.is_none());
    assert_eq!(
        e.storage_keys().await,
        ["metadata/other", "versions/other/1"]
    );
    // Writing again starts at version 1.
    assert_eq!(e.put("k", json!({"a": 4})).await["version"], json!(1));
}

#[tokio::test]
async fn list_metadata_shows_keys_and_folders_with_pagination() {
    let e = env();
    for k in ["app", "dir/x", "dir/y/z", "b"] {
        e.put(k, json!({"a": 1})).await;
    }
    let r = e.ok(Operation::List, "metadata/", json!({})).await.unwrap();
    assert_eq!(
        Value::Object(r.data.unwrap()),
        json!({"keys": ["app", "b", "dir/"]})
    );
    let r = e
        .ok(Operation::List, "metadata/dir/", json!({}))
        .await
        .unwrap();
    assert_eq!(r.get("keys"), Some(&json!(["x", "y/"])));
    let r = e
        .ok(
            Operation::List,
            "metadata/",
            json!({"after": "app", "limit": "1"}),
        )
        .await
        .unwrap();
    assert_eq!(r.get("keys"), Some(&json!(["b"])));
    assert!(
        e.ok(Operation::List, "metadata/nothing/", json!({}))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn detailed_metadata_lists_key_info() {
    let e = env();
    e.put("app", json!({"a": 1})).await;
    e.put("dir/x", json!({"a": 1})).await;
    let r = e
        .ok(Operation::List, "detailed-metadata/", json!({}))
        .await
        .unwrap();
    let v = Value::Object(r.data.unwrap());
    assert_eq!(keys(&v), ["key_info", "keys"]);
    assert_eq!(v["keys"], json!(["app", "dir/"]));
    assert_eq!(v["key_info"]["app"]["current_version"], json!(1));
    assert_eq!(
        v["key_info"]["app"]["versions"]["1"]["created_time"],
        json!(T0)
    );
    assert_eq!(v["key_info"]["dir/"], json!({}));
}

#[tokio::test]
async fn list_on_data_is_unsupported() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    let msg = e
        .err(
            Operation::List,
            "data/",
            json!({}),
            ErrorCode::UnsupportedOperation,
        )
        .await;
    assert_eq!(msg, "1 error occurred:\n\t* unsupported operation\n\n");
    e.err(
        Operation::Delete,
        "config",
        json!({}),
        ErrorCode::UnsupportedOperation,
    )
    .await;
    e.err(
        Operation::Read,
        "destroy/k",
        json!({}),
        ErrorCode::UnsupportedOperation,
    )
    .await;
}

// ---------------------------------------------------------------- subkeys

#[tokio::test]
async fn subkeys_replace_leaves_with_null() {
    let e = env();
    e.put(
        "k",
        json!({"user": "u", "pass": "p", "nested": {"x": {"deep": 1}, "e": {}}}),
    )
    .await;
    let v = e.data_of("subkeys/k", json!({})).await;
    assert_eq!(keys(&v), ["metadata", "subkeys"]);
    assert_eq!(
        v["subkeys"],
        json!({"nested": {"e": null, "x": {"deep": null}}, "pass": null, "user": null})
    );
    assert_eq!(v["metadata"]["version"], json!(1));
    let v = e.data_of("subkeys/k", json!({"depth": "1"})).await;
    assert_eq!(
        v["subkeys"],
        json!({"nested": null, "pass": null, "user": null})
    );
    let v = e.data_of("subkeys/k", json!({"depth": 2})).await;
    assert_eq!(v["subkeys"]["nested"], json!({"e": null, "x": null}));
    let v = e.data_of("subkeys/k", json!({"depth": 0})).await;
    assert_eq!(v["subkeys"]["nested"]["x"], json!({"deep": null}));
    assert!(!v.to_string().contains("\"p\""));
    e.ok(Operation::Delete, "data/k", json!({})).await;
    e.advance(1);
    let r = e.get("subkeys/k", json!({})).await.unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    assert_eq!(r.get("subkeys"), Some(&Value::Null));
}

// ---------------------------------------------------------------- paths

#[tokio::test]
async fn non_kv2_path_answers_404_with_the_openbao_warning() {
    let e = env();
    for (op, sub) in [
        (Operation::Read, "get"),
        (Operation::Update, "put"),
        (Operation::Patch, "patch"),
        (Operation::Delete, "delete"),
        (Operation::List, "list"),
    ] {
        let r = e.ok(op, "foo", json!({})).await.unwrap();
        assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
        assert!(r.data.is_none());
        assert_eq!(
            r.warnings,
            [format!(
                "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv {sub}' for this operation."
            )]
        );
    }
    let r = e.ok(Operation::Read, "metadata", json!({})).await.unwrap();
    assert_eq!(r.kind, crate::request::ResponseKind::NotFound);
    assert_eq!(
        r.warnings,
        ["Non-listing operations on the root of a K/V v2 mount are not supported."]
    );
}

#[tokio::test]
async fn exists_reports_the_key_for_data_and_metadata_only() {
    let e = env();
    let ask = |path: &str| Request::new(Operation::Update, path);
    assert_eq!(
        KvV2.exists(&e.ctx, &ask("data/k")).await.unwrap(),
        Some(false)
    );
    e.put("k", json!({"a": 1})).await;
    assert_eq!(
        KvV2.exists(&e.ctx, &ask("data/k")).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        KvV2.exists(&e.ctx, &ask("metadata/k")).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        KvV2.exists(&e.ctx, &ask("metadata/other")).await.unwrap(),
        Some(false)
    );
    assert_eq!(KvV2.exists(&e.ctx, &ask("config")).await.unwrap(), None);
    assert_eq!(KvV2.exists(&e.ctx, &ask("destroy/k")).await.unwrap(), None);
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_changes_nothing() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    let before = e.storage_keys().await;
    let msg = e
        .err(
            Operation::Update,
            "data/a/../k",
            json!({"data": {"a": 2}}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "invalid path `a/../k`");
    e.err(
        Operation::Read,
        "data/..",
        json!({}),
        ErrorCode::InvalidInput,
    )
    .await;
    e.err(
        Operation::List,
        "metadata/../",
        json!({}),
        ErrorCode::InvalidInput,
    )
    .await;
    let msg = e
        .err(
            Operation::Read,
            "data/k",
            json!({"version": -1}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "invalid version number `-1`");
    e.err(
        Operation::Read,
        "data/k",
        json!({"version": "x"}),
        ErrorCode::InvalidInput,
    )
    .await;
    e.err(
        Operation::Read,
        "subkeys/k",
        json!({"depth": -1}),
        ErrorCode::InvalidInput,
    )
    .await;
    e.err(
        Operation::Update,
        "metadata/k",
        json!({"max_versions": "x"}),
        ErrorCode::InvalidInput,
    )
    .await;
    e.err(
        Operation::Update,
        "metadata/k",
        json!({"cas_required": "maybe"}),
        ErrorCode::InvalidInput,
    )
    .await;
    e.err(
        Operation::Update,
        "data/k",
        json!({"data": {}, "options": 5}),
        ErrorCode::InvalidInput,
    )
    .await;
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "d": deep });
    }
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": deep}),
            ErrorCode::InvalidInput,
        )
        .await;
    assert_eq!(msg, "data is nested too deeply");
    assert_eq!(e.storage_keys().await, before);
    assert_eq!(
        e.data_of("data/k", json!({})).await["data"],
        json!({"a": 1})
    );
}

#[tokio::test]
async fn odd_bodies_never_panic() {
    let e = env();
    e.put("k", json!({"a": 1})).await;
    let odd = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("1,x"),
        json!([]),
        json!([null, {"x": 1}]),
        json!({"nested": [1, 2]}),
        json!(u64::MAX),
        json!(true),
    ];
    let fields = [
        "data",
        "options",
        "version",
        "versions",
        "depth",
        "after",
        "limit",
        "max_versions",
        "cas_required",
        "delete_version_after",
        "custom_metadata",
        "metadata_cas",
    ];
    let paths = [
        "config",
        "data/k",
        "metadata/k",
        "metadata/",
        "detailed-metadata/",
        "delete/k",
        "undelete/k",
        "destroy/k",
        "subkeys/k",
        "x",
    ];
    let ops = [
        Operation::Read,
        Operation::List,
        Operation::Update,
        Operation::Patch,
        Operation::Delete,
    ];
    for field in fields {
        for v in &odd {
            for path in paths {
                for op in ops {
                    if op == Operation::Delete {
                        continue;
                    }
                    let mut b = Data::new();
                    b.insert(field.to_string(), v.clone());
                    let req = Request::new(op, path).with_data(b);
                    if let Err(err) = KvV2.handle(&e.ctx, &req).await {
                        assert!(
                            matches!(
                                err.code(),
                                ErrorCode::InvalidInput
                                    | ErrorCode::Conflict
                                    | ErrorCode::UnsupportedOperation
                            ),
                            "{op} {path} {field}={v}: {err}"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- concurrency

/// A backend that lets another writer commit right before the first transaction it sees, as a
/// second process would between our read and our commit.
struct Racing {
    inner: Arc<MemoryBackend>,
    raced: AtomicBool,
    rival: EngineContext,
    rival_body: Value,
}

#[async_trait]
impl Backend for Racing {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.list(prefix, page).await
    }
    async fn scan(&self, prefix: &str, page: &Page) -> Result<Vec<String>> {
        self.inner.scan(prefix, page).await
    }
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let req =
                Request::new(Operation::Update, "data/k").with_data(body(self.rival_body.clone()));
            KvV2.handle(&self.rival, &req).await?;
        }
        self.inner.transaction(ops).await
    }
    fn kind(&self) -> &'static str {
        "racing"
    }
}

fn racing_env(rival_body: Value) -> Env {
    let mem = Arc::new(MemoryBackend::new());
    let direct = env_over(mem.clone(), mem.clone());
    let racing = Arc::new(Racing {
        inner: mem.clone(),
        raced: AtomicBool::new(false),
        rival: direct.ctx.clone(),
        rival_body,
    });
    env_over(racing, mem)
}

#[tokio::test]
async fn a_write_that_loses_a_race_retries_on_fresh_metadata() {
    let e = racing_env(json!({"data": {"who": "rival"}}));
    let d = e.put("k", json!({"who": "us"})).await;
    assert_eq!(d["version"], json!(2));
    let v1 = e.data_of("data/k", json!({"version": 1})).await;
    assert_eq!(v1["data"], json!({"who": "rival"}));
    let v2 = e.data_of("data/k", json!({"version": 2})).await;
    assert_eq!(v2["data"], json!({"who": "us"}));
}

#[tokio::test]
async fn a_cas_write_that_loses_a_race_reports_the_mismatch() {
    let e = racing_env(json!({"data": {"who": "rival"}}));
    let msg = e
        .err(
            Operation::Update,
            "data/k",
            json!({"data": {"who": "us"}, "options": {"cas": 0}}),
            ErrorCode::Conflict,
        )
        .await;
    assert_eq!(
        msg,
        "check-and-set parameter did not match the current version"
    );
    let m = e.data_of("metadata/k", json!({})).await;
    assert_eq!(m["current_version"], json!(1));
    assert_eq!(
        e.data_of("data/k", json!({})).await["data"],
        json!({"who": "rival"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_share_a_version() {
    let e = env();
    e.ok(Operation::Update, "config", json!({"max_versions": 1000}))
        .await;
    let mut tasks = Vec::new();
    for w in 0..2 {
        let ctx = e.ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..25 {
                let req = Request::new(Operation::Update, "data/k")
                    .with_data(body(json!({"data": {"w": w, "i": i}})));
                let r = KvV2.handle(&ctx, &req).await.unwrap().unwrap();
                got.push(r.get("version").and_then(Value::as_u64).unwrap());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=50).collect::<Vec<u64>>());
    let stored = e.storage_keys().await;
    assert_eq!(
        stored
            .iter()
            .filter(|k| k.starts_with("versions/k/"))
            .count(),
        50
    );
}

#[test]
fn times_print_as_go_rfc3339_nano() {
    use super::layout::format_time;
    assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_time(1_500_000_000), "1970-01-01T00:00:01.5Z");
    assert_eq!(format_time(1_000_000_001), "1970-01-01T00:00:01.000000001Z");
}
