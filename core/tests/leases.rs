//! The lease manager through the pipeline (§3 of the reference): ids, lookup, renew with the
//! max counted from issue, revoke (sync and queued), revoke-prefix/force, expiry on a virtual
//! clock, revocation by token, retries with backoff, irrevocable leases, quotas, the leader lock
//! between two engines on one SQLite file, and the event stream.
//!
//! Leases come from `test-leases`, a small engine built for this (see
//! `core/src/secrets/leasetest.rs`): it stores each issued secret under `live/` and moves it to
//! `revoked/` when revoked, counting any second revocation under `duplicates/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::{
    Client, Config, ErrorCode, LeaseConfig, LeaseEvent, Request, Response, Strongroom,
    VirtualClock, data,
};

fn manual() -> LeaseConfig {
    LeaseConfig {
        background: false,
        max_attempts: 3,
        ..LeaseConfig::default()
    }
}

async fn setup_with(cfg: LeaseConfig) -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())).leases(cfg))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("tl", "test-leases", &[])
        .await
        .unwrap();
    (sr, root, clock)
}

async fn setup() -> (Strongroom, Client, VirtualClock) {
    setup_with(manual()).await
}

#[track_caller]
fn issue(c: &Client, name: &str, body: Value) -> impl std::future::Future<Output = Response> {
    let caller = std::panic::Location::caller();
    let (c, path) = (c.clone(), format!("tl/issue/{name}"));
    async move {
        match c.write(&path, data(body)).await {
            Ok(r) => r,
            Err(e) => panic!("issue {path} at {caller}: {e:?}"),
        }
    }
}

async fn listed(c: &Client, path: &str) -> Vec<String> {
    c.list(path).await.unwrap()
}

#[tokio::test]
async fn issue_lookup_renew_revoke_have_openbao_shapes() {
    let (_sr, root, clock) = setup().await;
    let r = issue(&root, "a", json!({"ttl": "1h", "max_ttl": "24h"})).await;
    let (prefix, suffix) = r.lease_id.rsplit_once('/').unwrap();
    assert_eq!(prefix, "tl/issue/a");
    assert_eq!(suffix.len(), 24);
    assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(r.lease_duration, 3600);
    assert!(r.renewable);

    let l = root
        .write("sys/leases/lookup", data(json!({"lease_id": r.lease_id})))
        .await
        .unwrap();
    assert_eq!(l.get("id").unwrap(), r.lease_id.as_str());
    assert_eq!(l.get("path").unwrap(), "tl/issue/a");
    assert_eq!(l.get("ttl").unwrap(), 3600);
    assert_eq!(l.get("renewable").unwrap(), true);
    assert_eq!(l.get("last_renewal").unwrap(), &Value::Null);

    // Renew after 6 seconds with 100h: capped at the 24h max counted from issue.
    clock.advance(Duration::from_secs(6));
    let renewed = root
        .write(
            "sys/leases/renew",
            data(json!({"lease_id": r.lease_id, "increment": "100h"})),
        )
        .await
        .unwrap();
    assert_eq!(renewed.lease_id, r.lease_id);
    assert_eq!(renewed.lease_duration, 86_394);
    assert_eq!(
        renewed.warnings,
        vec![
            "TTL of \"100h\" exceeded the effective max_ttl of \"23h59m54s\"; TTL value is capped accordingly"
        ]
    );
    assert!(renewed.data.is_none());
    let details = root.leases().lookup(&r.lease_id).await.unwrap();
    assert_eq!(details.ttl, 86_394);
    assert!(details.last_renewal.is_some());

    // Synchronous revoke: the secret is gone when the call returns.
    assert_eq!(listed(&root, "tl/live/").await, vec!["a"]);
    root.leases().revoke(&r.lease_id).await.unwrap();
    assert!(listed(&root, "tl/live/").await.is_empty());
    assert_eq!(listed(&root, "tl/revoked/").await, vec!["a"]);
    let e = root.leases().lookup(&r.lease_id).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(e.message(), "invalid lease");
    // Unknown ids revoke fine (204), renew says so.
    root.leases().revoke(&r.lease_id).await.unwrap();
    let e = root
        .leases()
        .renew(&r.lease_id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "lease not found");
    let e = root
        .write("sys/leases/lookup", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "lease_id must be specified");
}

#[tokio::test]
async fn renew_refusals_and_url_forms() {
    let (_sr, root, clock) = setup().await;
    let fixed = issue(&root, "f", json!({"ttl": "1h", "renewable": false})).await;
    assert!(!fixed.renewable);
    let e = root
        .leases()
        .renew(&fixed.lease_id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "lease is not renewable");
    // The id may come in the URL (sys/leases/renew/<id>). OpenBao removed Vault's legacy
    // sys/renew, sys/revoke, sys/revoke-prefix and sys/revoke-force: 404 `unsupported path`.
    let r = issue(&root, "u", json!({"ttl": "1h"})).await;
    for legacy in [
        "sys/renew".to_string(),
        "sys/revoke".to_string(),
        format!("sys/renew/{}", r.lease_id),
        format!("sys/revoke/{}", r.lease_id),
        "sys/revoke-prefix/u".to_string(),
        "sys/revoke-force/u".to_string(),
    ] {
        let e = root.write(&legacy, data(json!({}))).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedPath, "{legacy}");
        assert_eq!(e.message(), "1 error occurred:\n\t* unsupported path\n\n");
    }
    let out = root
        .write(
            &format!("sys/leases/renew/{}", r.lease_id),
            data(json!({"increment": 60})),
        )
        .await
        .unwrap();
    assert_eq!(out.lease_duration, 60);
    clock.advance(Duration::from_secs(61));
    let e = root
        .leases()
        .renew(&r.lease_id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "lease expired");
}

#[tokio::test]
async fn expiry_revokes_on_the_virtual_clock_and_events_follow() {
    let (sr, root, clock) = setup().await;
    let mut events = root.leases().events();
    let short = issue(&root, "short", json!({"ttl": "30s"})).await;
    let long = issue(&root, "long", json!({"ttl": "1h"})).await;
    let report = sr.run_expiry().await.unwrap();
    assert!(report.leader);
    assert_eq!(report.revoked, 0);
    // Within the warning window (60s): "expiring soon" for the short one only.
    match events.try_recv().expect("an event") {
        LeaseEvent::ExpiringSoon { lease_id, .. } => assert_eq!(lease_id, short.lease_id),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(events.try_recv(), None);

    clock.advance(Duration::from_secs(31));
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 1);
    assert_eq!(listed(&root, "tl/live/").await, vec!["long"]);
    assert_eq!(
        events.try_recv().expect("an event"),
        LeaseEvent::Revoked {
            lease_id: short.lease_id.clone()
        }
    );
    assert!(root.leases().lookup(&short.lease_id).await.is_err());
    root.leases()
        .renew(&long.lease_id, Duration::from_secs(7200))
        .await
        .unwrap();
    assert!(matches!(
        events.try_recv().expect("an event"),
        LeaseEvent::Renewed { ttl, .. } if ttl == Duration::from_secs(7200)
    ));
    // The old expiry passes: the renewed lease is rescheduled, not revoked.
    clock.advance(Duration::from_secs(3600));
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 0);
    assert_eq!(listed(&root, "tl/live/").await, vec!["long"]);
    clock.advance(Duration::from_secs(3601));
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 1);
    assert!(listed(&root, "tl/live/").await.is_empty());
    assert!(listed(&root, "tl/duplicates/").await.is_empty());
}

#[tokio::test]
async fn revoking_or_expiring_a_token_revokes_its_leases() {
    let (sr, root, clock) = setup().await;
    root.sys()
        .write_policy(
            "tl",
            r#"path "tl/*" { capabilities = ["create", "update", "list"] }"#,
        )
        .await
        .unwrap();
    let child = root
        .write(
            "auth/token/create",
            data(json!({"policies": ["tl"], "ttl": "10m"})),
        )
        .await
        .unwrap();
    let child = sr.client(child.auth.unwrap().client_token);
    let a = issue(&child, "a", json!({"ttl": "1h"})).await;
    let b = issue(&child, "b", json!({"ttl": "1h"})).await;
    // The token's own lease is listed under its creation path.
    assert_eq!(
        listed(&root, "sys/leases/lookup/auth/token/create/")
            .await
            .len(),
        1
    );

    // Revoke one secret directly, then the token: the other goes with it.
    root.leases().revoke(&a.lease_id).await.unwrap();
    child
        .write("auth/token/revoke-self", data(json!({})))
        .await
        .unwrap();
    assert_eq!(listed(&root, "tl/live/").await, vec!["b"]);
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 1);
    assert!(listed(&root, "tl/live/").await.is_empty());
    assert!(root.leases().lookup(&b.lease_id).await.is_err());

    // A token that expires takes its leases along (token lease first, then its secrets).
    let t = root
        .write(
            "auth/token/create",
            data(json!({"policies": ["tl"], "ttl": "30s"})),
        )
        .await
        .unwrap();
    let t = sr.client(t.auth.unwrap().client_token);
    issue(&t, "c", json!({"ttl": "1h"})).await;
    clock.advance(Duration::from_secs(31));
    let mut revoked = 0;
    for _ in 0..3 {
        revoked += sr.run_expiry().await.unwrap().revoked;
    }
    assert_eq!(revoked, 2, "the token's lease and the secret's");
    assert!(listed(&root, "tl/live/").await.is_empty());
    assert!(
        listed(&root, "sys/leases/lookup/auth/token/create/")
            .await
            .is_empty()
    );
}

/// revoke-prefix over more token leases than one page of ids and one batch of deletions:
/// every token goes, a token with a child takes its tree with it, a token's own secret lease is
/// queued for the runner, and no lease record is left.
#[tokio::test]
async fn revoke_prefix_of_many_token_leases_takes_trees_and_queues_their_secrets() {
    let (sr, root, _clock) = setup().await;
    root.sys()
        .write_policy(
            "tl",
            r#"path "tl/*" { capabilities = ["create", "update", "list"] }
path "auth/token/create" { capabilities = ["create", "update"] }"#,
        )
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..600 {
        let r = root
            .write(
                "auth/token/create",
                data(json!({"policies": ["tl"], "ttl": "1h"})),
            )
            .await
            .unwrap();
        tokens.push(r.auth.unwrap().client_token);
    }
    let child = sr
        .client(&tokens[0])
        .write(
            "auth/token/create",
            data(json!({"policies": ["tl"], "ttl": "1h"})),
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    issue(&sr.client(&tokens[1]), "s", json!({"ttl": "1h"})).await;
    assert_eq!(
        listed(&root, "sys/leases/lookup/auth/token/create/")
            .await
            .len(),
        601
    );
    root.leases()
        .revoke_prefix("auth/token/create")
        .await
        .unwrap();
    assert!(
        listed(&root, "sys/leases/lookup/auth/token/create/")
            .await
            .is_empty()
    );
    for t in tokens.iter().chain([&child]) {
        let e = sr
            .client(t)
            .read("auth/token/lookup-self")
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
    }
    // The secret's token is gone: the runner revokes it now, whatever its TTL says.
    assert_eq!(listed(&root, "tl/live/").await, vec!["s"]);
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 1);
    assert!(listed(&root, "tl/live/").await.is_empty());
}

#[tokio::test]
async fn a_poison_lease_never_delays_the_others_and_ends_irrevocable() {
    let (sr, root, clock) = setup().await;
    let poison = issue(&root, "poison", json!({"ttl": "60s", "fail": "retry"})).await;
    // 2000 others due in the same second (the benchmark runs 10k).
    for i in 0..2000 {
        issue(&root, &format!("s{i}"), json!({"ttl": "60s"})).await;
    }
    clock.advance(Duration::from_secs(61));
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.revoked, 2000, "all revoked in one tick");
    assert_eq!(report.retried, 1);
    assert!(listed(&root, "tl/live/").await == vec!["poison"]);

    // Retries with backoff: not again before it is due.
    let report = sr.run_expiry().await.unwrap();
    assert_eq!(report.retried, 0);
    let mut attempts = 1;
    while attempts < 3 {
        clock.advance(Duration::from_secs(3600));
        let r = sr.run_expiry().await.unwrap();
        attempts += r.retried + r.irrevocable;
        if r.irrevocable == 1 {
            break;
        }
    }
    let d = root.leases().lookup(&poison.lease_id).await.unwrap();
    assert_eq!(
        d.revoke_error.as_deref(),
        Some("out of retries: test backend: connection refused")
    );
    assert!(!d.renewable);
    let list = root
        .handle(Request::read("sys/leases").with_data(data(json!({"type": "irrevocable"}))))
        .await
        .unwrap();
    assert_eq!(list.get("lease_count").unwrap(), 1);
    assert_eq!(
        list.get("leases").unwrap()[0]["lease_id"],
        poison.lease_id.as_str()
    );
    let count = root
        .handle(Request::read("sys/leases/count").with_data(data(json!({"type": "irrevocable"}))))
        .await
        .unwrap();
    assert_eq!(count.get("lease_count").unwrap(), 1);
    // The metrics figures: 2001 created and 2000 revoked here, one irrevocable, none in flight.
    let stats = sr.lease_stats().await.unwrap();
    let mount = sr.mount_label(&poison.lease_id);
    assert_eq!(mount, "tl/");
    assert_eq!(stats.irrevocable_by_mount, vec![(mount.clone(), 1)]);
    assert_eq!(stats.revocations_in_flight, 0);
    let tally = stats.by_mount.iter().find(|m| m.mount == mount).unwrap();
    assert_eq!((tally.created, tally.revoked), (2001, 2000));
    // Out of the retry cycle: tried again only once a day (and kept when that fails);
    // renew refuses; a normal revoke still fails.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        sr.run_expiry().await.unwrap(),
        strongroom::ExpiryReport {
            leader: true,
            ..Default::default()
        }
    );
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        sr.run_expiry().await.unwrap(),
        strongroom::ExpiryReport {
            leader: true,
            rescheduled: 1,
            ..Default::default()
        }
    );
    assert!(root.leases().lookup(&poison.lease_id).await.is_ok());
    let e = root
        .leases()
        .renew(&poison.lease_id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "lease is expired and has failed previous revocation attempts"
    );
    let e = root.leases().revoke(&poison.lease_id).await.unwrap_err();
    assert_eq!(
        e.message(),
        "failed to revoke entry: resp: (*logical.Response)(nil) err: test backend: connection refused"
    );
    // revoke-force drops it.
    root.leases().revoke_force("tl/issue/poison").await.unwrap();
    assert!(root.leases().lookup(&poison.lease_id).await.is_err());
    let count = root
        .handle(Request::read("sys/leases/count").with_data(data(json!({"type": "irrevocable"}))))
        .await
        .unwrap();
    assert_eq!(count.get("lease_count").unwrap(), 0);
}

#[tokio::test]
async fn unrecoverable_errors_are_irrevocable_at_once_and_outages_recover() {
    let (sr, root, clock) = setup().await;
    let fatal = issue(&root, "fatal", json!({"ttl": "10s", "fail": "fatal"})).await;
    issue(&root, "ok", json!({"ttl": "10s"})).await;
    root.write("tl/config", data(json!({"fail_all": true})))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    let r = sr.run_expiry().await.unwrap();
    assert_eq!((r.irrevocable, r.retried, r.revoked), (1, 1, 0));
    assert_eq!(
        root.leases()
            .lookup(&fatal.lease_id)
            .await
            .unwrap()
            .revoke_error
            .as_deref(),
        Some("test backend: role does not exist")
    );
    // The backend comes back: the retried lease is revoked on its next attempt.
    root.write("tl/config", data(json!({"fail_all": false})))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let r = sr.run_expiry().await.unwrap();
    assert_eq!(r.revoked, 1);
    assert_eq!(listed(&root, "tl/live/").await, vec!["fatal"]);
}

#[tokio::test]
async fn queued_revoke_prefix_and_sudo() {
    let (sr, root, _clock) = setup().await;
    let a = issue(&root, "a", json!({"ttl": "1h"})).await;
    for n in ["b", "c"] {
        issue(&root, n, json!({"ttl": "1h"})).await;
    }
    // sync:false answers 202 and queues the revocation.
    let r = root
        .write(
            "sys/leases/revoke",
            data(json!({"lease_id": a.lease_id, "sync": false})),
        )
        .await
        .unwrap();
    assert_eq!(r.kind, strongroom::ResponseKind::Accepted);
    assert_eq!(listed(&root, "tl/live/").await.len(), 3);
    assert_eq!(sr.run_expiry().await.unwrap().revoked, 1);
    assert_eq!(listed(&root, "tl/live/").await, vec!["b", "c"]);

    // revoke-prefix needs sudo.
    root.sys()
        .write_policy(
            "ops",
            r#"path "sys/leases/*" { capabilities = ["update", "list"] }"#,
        )
        .await
        .unwrap();
    let t = root
        .write("auth/token/create", data(json!({"policies": ["ops"]})))
        .await
        .unwrap();
    let ops = sr.client(t.auth.unwrap().client_token);
    let e = ops.leases().revoke_prefix("tl/issue/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = ops.list("sys/leases/lookup/tl/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(
        listed(&root, "sys/leases/lookup/tl/issue/").await,
        vec!["b/", "c/"]
    );
    root.leases().revoke_prefix("tl/issue/").await.unwrap();
    assert!(listed(&root, "tl/live/").await.is_empty());
    let tidy = root
        .write("sys/leases/tidy", data(json!({})))
        .await
        .unwrap();
    assert_eq!(tidy.kind, strongroom::ResponseKind::Accepted);
    assert_eq!(
        tidy.warnings,
        vec![
            "Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs."
        ]
    );
}

#[tokio::test]
async fn unmount_revokes_the_mounts_leases() {
    let (sr, root, _clock) = setup().await;
    issue(&root, "a", json!({"ttl": "1h"})).await;
    root.sys()
        .enable_mount("tl2", "test-leases", &[])
        .await
        .unwrap();
    let keep = root
        .write("tl2/issue/b", data(json!({"ttl": "1h"})))
        .await
        .unwrap();
    root.sys().disable_mount("tl").await.unwrap();
    assert!(root.list("sys/leases/lookup/tl/").await.unwrap().is_empty());
    root.leases().lookup(&keep.lease_id).await.unwrap();
    let _ = sr;
}

#[tokio::test]
async fn lease_count_quotas_per_mount_and_role() {
    let (_sr, root, _clock) = setup().await;
    let first = issue(&root, "a", json!({"ttl": "1h"})).await;
    root.write(
        "sys/quotas/lease-count/tl-max",
        data(json!({"path": "tl/", "max_leases": 2})),
    )
    .await
    .unwrap();
    let q = root
        .read("sys/quotas/lease-count/tl-max")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.get("counter").unwrap(), 1, "existing leases are counted");
    assert_eq!(q.get("type").unwrap(), "lease-count");
    issue(&root, "b", json!({"ttl": "1h"})).await;
    let e = root
        .write("tl/issue/c", data(json!({"ttl": "1h"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    assert_eq!(e.code().http_status(), 429);
    assert_eq!(
        listed(&root, "tl/live/").await,
        vec!["a", "b"],
        "nothing issued past the quota"
    );
    root.leases().revoke(&first.lease_id).await.unwrap();
    issue(&root, "c", json!({"ttl": "1h"})).await;

    // Per role: only leases issued for that role count.
    root.write(
        "sys/quotas/lease-count/tl-max",
        data(json!({"path": "tl/", "max_leases": 100})),
    )
    .await
    .unwrap();
    root.write(
        "sys/quotas/lease-count/web",
        data(json!({"path": "tl/", "role": "web", "max_leases": 1})),
    )
    .await
    .unwrap();
    issue(&root, "w1", json!({"ttl": "1h", "role": "web"})).await;
    issue(&root, "other", json!({"ttl": "1h", "role": "batch"})).await;
    let e = root
        .write("tl/issue/w2", data(json!({"ttl": "1h", "role": "web"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    assert!(
        !listed(&root, "tl/live/").await.contains(&"w2".to_string()),
        "the refused secret was revoked"
    );
    root.delete("sys/quotas/lease-count/web").await.unwrap();
    issue(&root, "w2", json!({"ttl": "1h", "role": "web"})).await;
    let e = root
        .write(
            "sys/quotas/lease-count/bad",
            data(json!({"path": "nope/", "max_leases": 1})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}

#[tokio::test]
async fn one_runner_among_engines_sharing_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::new();
    let db = dir.path().join("s.db");
    let key = dir.path().join("unseal.key");
    let cfg = || {
        Config::sqlite(&db)
            .clock(Arc::new(clock.clone()))
            .leases(LeaseConfig {
                leader_ttl: Duration::from_secs(15),
                ..manual()
            })
    };
    let a = Strongroom::open(cfg()).await.unwrap();
    let root = a.init_with_key_file(&key).await.unwrap();
    let a = {
        drop(a);
        Strongroom::open(cfg().unseal_key_file(&key)).await.unwrap()
    };
    let b = Strongroom::open(cfg().unseal_key_file(&key)).await.unwrap();
    let ca = a.client(root.expose_secret());
    ca.sys()
        .enable_mount("tl", "test-leases", &[])
        .await
        .unwrap();
    for i in 0..20 {
        ca.write(&format!("tl/issue/s{i}"), data(json!({"ttl": "10s"})))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(11));
    let ra = a.run_expiry().await.unwrap();
    assert!(ra.leader);
    assert_eq!(ra.revoked, 20);
    let rb = b.run_expiry().await.unwrap();
    assert!(!rb.leader, "a holds the lock");
    for i in 0..10 {
        ca.write(&format!("tl/issue/t{i}"), data(json!({"ttl": "10s"})))
            .await
            .unwrap();
    }
    // `a` dies without releasing; once its lock lapses, `b` takes over and finishes the job.
    drop(ca);
    drop(a);
    clock.advance(Duration::from_secs(11));
    assert!(!b.run_expiry().await.unwrap().leader, "lock not lapsed yet");
    clock.advance(Duration::from_secs(5));
    let rb = b.run_expiry().await.unwrap();
    assert!(rb.leader);
    assert_eq!(rb.revoked, 10);
    let cb = b.client(root.expose_secret());
    assert!(cb.list("tl/live/").await.unwrap().is_empty());
    assert!(cb.list("tl/duplicates/").await.unwrap().is_empty());
    // A clean seal hands the lock over at once.
    let c = Strongroom::open(cfg().unseal_key_file(&key)).await.unwrap();
    assert!(!c.run_expiry().await.unwrap().leader);
    b.seal().await.unwrap();
    assert!(c.run_expiry().await.unwrap().leader);
}

#[tokio::test]
async fn an_irrevocable_lease_is_revoked_once_its_backend_recovers() {
    let (sr, root, clock) = setup().await;
    let l = issue(&root, "x", json!({"ttl": "10s"})).await;
    root.write("tl/config", data(json!({"fail_all": true})))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    let mut irrevocable = 0;
    for _ in 0..10 {
        irrevocable += sr.run_expiry().await.unwrap().irrevocable;
        clock.advance(Duration::from_secs(7200));
    }
    assert_eq!(irrevocable, 1, "after max_attempts (3) it stops retrying");
    assert_eq!(
        root.leases()
            .lookup(&l.lease_id)
            .await
            .unwrap()
            .revoke_error
            .as_deref(),
        Some("out of retries: test backend: outage")
    );
    assert_eq!(
        listed(&root, "tl/live/").await,
        vec!["x"],
        "never dropped silently"
    );
    root.write("tl/config", data(json!({"fail_all": false})))
        .await
        .unwrap();
    root.leases().revoke(&l.lease_id).await.unwrap();
    assert!(listed(&root, "tl/live/").await.is_empty());
    let list = root
        .handle(Request::read("sys/leases").with_data(data(json!({"type": "irrevocable"}))))
        .await
        .unwrap();
    assert_eq!(list.get("lease_count").unwrap(), 0);
}
