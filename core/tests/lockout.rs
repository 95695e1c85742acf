//! Login lockout (OpenBao's user lockout) for userpass and AppRole: the state machine on the
//! virtual clock, the mount tune, the server-config stanzas, `sys/locked-users` and its
//! unlock, the audit trail, and two engines sharing one store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom::{
    AuditDevice, Client, Config, ErrorCode, Request, Strongroom, UserLockout, VirtualClock, data,
};

async fn open(cfg: Config) -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(cfg.clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    (sr, root, clock)
}

/// A userpass mount `userpass/` with `bob` / `pw`; its accessor.
async fn with_bob(root: &Client) -> String {
    root.auth().enable("userpass", "userpass").await.unwrap();
    root.auth()
        .userpass("userpass")
        .write_user("bob", "pw", data(json!({})))
        .await
        .unwrap();
    accessor(root, "userpass/").await
}

async fn accessor(root: &Client, path: &str) -> String {
    root.auth().list().await.unwrap()[path]["accessor"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A login's outcome: `Ok` or the error's code and message.
async fn login(root: &Client, user: &str, pw: &str) -> Result<(), (ErrorCode, String)> {
    root.auth()
        .userpass("userpass")
        .login_auth(user, pw)
        .await
        .map(|_| ())
        .map_err(|e| (e.code(), e.message().to_string()))
}

fn wrong() -> Result<(), (ErrorCode, String)> {
    Err((
        ErrorCode::InvalidInput,
        "invalid username or password".into(),
    ))
}

fn locked() -> Result<(), (ErrorCode, String)> {
    Err((ErrorCode::PermissionDenied, "permission denied".into()))
}

async fn locked_users(root: &Client, accessor: Option<&str>) -> Value {
    let mut req = Request::read("sys/locked-users");
    if let Some(a) = accessor {
        req.data = data(json!({ "mount_accessor": a }));
    }
    Value::Object(root.handle(req).await.unwrap().data.unwrap())
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_user_for_fifteen_minutes() {
    let (_sr, root, clock) = open(Config::dev()).await;
    let acc = with_bob(&root).await;

    // Four failures, then the right password: in, and the count starts again.
    for _ in 0..4 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
    for _ in 0..4 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));

    // Five in a row lock bob: the right password is refused too, under any spelling of the name.
    for _ in 0..5 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, locked());
    assert_eq!(login(&root, "BOB", "pw").await, locked());
    assert_eq!(login(&root, "bob", "bad").await, locked());
    assert_eq!(
        locked_users(&root, None).await,
        json!({
            "by_namespace": [{
                "namespace_id": "root", "namespace_path": "", "counts": 1,
                "mount_accessors": [{"mount_accessor": acc, "counts": 1, "alias_identifiers": ["bob"]}],
            }],
            "total": 1,
        })
    );

    // Unknown users are never counted (OpenBao tracks existing users only).
    for _ in 0..8 {
        assert_eq!(login(&root, "ghost", "bad").await, wrong());
    }

    // Locked for 15 minutes from the last counted failure, on the engine's clock.
    clock.advance(Duration::from_secs(15 * 60 - 1));
    assert_eq!(login(&root, "bob", "pw").await, locked());
    clock.advance(Duration::from_secs(1));
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
    assert_eq!(locked_users(&root, None).await["total"], 0);
    assert_eq!(
        locked_users(&root, Some(&acc)).await["by_namespace"][0]["mount_accessors"],
        json!([{"mount_accessor": acc, "counts": 0, "alias_identifiers": null}])
    );

    // The counter resets after 15 minutes without a failure: 4, a pause, 4 more is no lock.
    for _ in 0..4 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    clock.advance(Duration::from_secs(15 * 60 + 1));
    for _ in 0..4 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
}

#[tokio::test]
async fn unlock_lets_the_user_back_in_and_unknown_unlocks_succeed() {
    let (_sr, root, _clock) = open(Config::dev()).await;
    let acc = with_bob(&root).await;
    for _ in 0..5 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, locked());
    root.write(
        &format!("sys/locked-users/{acc}/unlock/bob"),
        data(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
    assert_eq!(locked_users(&root, None).await["total"], 0);
    // Unknown accessor or alias: nothing to do, no error (as OpenBao).
    root.write("sys/locked-users/nope/unlock/a/b", data(json!({})))
        .await
        .unwrap();
    // Only read lists, only write unlocks.
    let e = root
        .write("sys/locked-users", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
    let e = root
        .read(&format!("sys/locked-users/{acc}/unlock/bob"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
}

#[tokio::test]
async fn approle_counts_wrong_secret_ids_of_a_valid_role_id() {
    let (_sr, root, clock) = open(Config::dev()).await;
    root.auth().enable("approle", "approle").await.unwrap();
    let ar = root.auth().approle("approle");
    ar.write_role("web", data(json!({}))).await.unwrap();
    let role_id = ar.role_id("web").await.unwrap();
    let sid = ar.generate_secret_id("web", data(json!({}))).await.unwrap();
    let secret = secrecy::ExposeSecret::expose_secret(&sid.secret_id).to_string();
    let acc = accessor(&root, "approle/").await;

    // A wrong role id is not a known role: never counted.
    for _ in 0..6 {
        let e = ar.login_auth("no-such-role", "x").await.unwrap_err();
        assert_eq!(e.message(), "invalid role or secret ID");
    }
    for _ in 0..5 {
        let e = ar.login_auth(&role_id, "bad").await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (ErrorCode::InvalidInput, "invalid role or secret ID")
        );
    }
    let e = ar.login_auth(&role_id, &secret).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (ErrorCode::PermissionDenied, "permission denied")
    );
    // The alias is the role id (OpenBao's alias lookahead trims it).
    let e = ar
        .login_auth(&format!(" {role_id} "), &secret)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(
        locked_users(&root, Some(&acc)).await["by_namespace"][0]["mount_accessors"][0]["alias_identifiers"],
        json!([role_id])
    );
    clock.advance(Duration::from_secs(15 * 60));
    ar.login_auth(&role_id, &secret).await.unwrap();
}

#[tokio::test]
async fn the_mount_tune_sets_threshold_duration_and_disable() {
    let (_sr, root, clock) = open(Config::dev()).await;
    with_bob(&root).await;
    // Not shown until tuned.
    let tune = root.read("sys/auth/userpass/tune").await.unwrap().unwrap();
    assert!(tune.get("user_lockout_threshold").is_none());

    root.write(
        "sys/auth/userpass/tune",
        data(json!({"user_lockout_config": {
            "lockout_threshold": "2", "lockout_duration": "1m",
            "lockout_counter_reset_duration": 120,
        }})),
    )
    .await
    .unwrap();
    let tune = root.read("sys/auth/userpass/tune").await.unwrap().unwrap();
    assert_eq!(tune.get("user_lockout_threshold").unwrap(), 2);
    assert_eq!(tune.get("user_lockout_duration").unwrap(), 60);
    assert_eq!(
        tune.get("user_lockout_counter_reset_duration").unwrap(),
        120
    );
    assert_eq!(tune.get("user_lockout_disable").unwrap(), false);
    assert_eq!(
        root.auth().list().await.unwrap()["userpass/"]["config"]["user_lockout_config"],
        json!({"user_lockout_threshold": 2, "user_lockout_duration": 60,
               "user_lockout_counter_reset_duration": 120, "user_lockout_disable": false})
    );

    // Bad values change nothing.
    for (bad, msg) in [
        (
            json!({"lockout_threshold": "x"}),
            "unable to parse user lockout threshold: strconv.ParseUint: parsing \"x\": invalid syntax",
        ),
        (
            json!({"lockout_duration": "soon"}),
            "time: invalid duration \"soon\"",
        ),
        (
            json!({"lockout_disable": "yes"}),
            "unable to convert given user lockout config information",
        ),
    ] {
        let e = root
            .write(
                "sys/auth/userpass/tune",
                data(json!({ "user_lockout_config": bad })),
            )
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, msg));
    }
    let e = root
        .write(
            "sys/auth/token/tune",
            data(json!({"user_lockout_config": {"lockout_threshold": "3"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "tuning of user lockout configuration for auth type \"token\" not allowed"
    );
    let tune = root.read("sys/auth/userpass/tune").await.unwrap().unwrap();
    assert_eq!(tune.get("user_lockout_threshold").unwrap(), 2);

    // Two failures lock for one minute.
    assert_eq!(login(&root, "bob", "bad").await, wrong());
    assert_eq!(login(&root, "bob", "bad").await, wrong());
    assert_eq!(login(&root, "bob", "pw").await, locked());
    clock.advance(Duration::from_secs(60));
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));

    // Disabled on the mount: a locked user gets in, failures are not counted.
    assert_eq!(login(&root, "bob", "bad").await, wrong());
    assert_eq!(login(&root, "bob", "bad").await, wrong());
    assert_eq!(login(&root, "bob", "pw").await, locked());
    root.write(
        "sys/auth/userpass/tune",
        data(json!({"user_lockout_config": {"lockout_disable": true}})),
    )
    .await
    .unwrap();
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
    for _ in 0..6 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
}

#[tokio::test]
async fn server_config_stanzas_apply_by_type_over_all() {
    let cfg = Config::dev()
        .user_lockout(
            "all",
            UserLockout {
                lockout_threshold: Some(9),
                lockout_duration: Some(Duration::from_secs(30)),
                ..UserLockout::default()
            },
        )
        .user_lockout(
            "userpass",
            UserLockout {
                lockout_threshold: Some(2),
                ..UserLockout::default()
            },
        );
    let (_sr, root, clock) = open(cfg).await;
    with_bob(&root).await;
    assert_eq!(login(&root, "bob", "bad").await, wrong());
    assert_eq!(login(&root, "bob", "bad").await, wrong());
    assert_eq!(login(&root, "bob", "pw").await, locked());
    // The duration comes from "all".
    clock.advance(Duration::from_secs(30));
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));

    let off = Config::dev().user_lockout(
        "all",
        UserLockout {
            disable_lockout: Some(true),
            ..UserLockout::default()
        },
    );
    let (_sr, root, _clock) = open(off).await;
    with_bob(&root).await;
    for _ in 0..10 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, Ok(()));
}

#[tokio::test]
async fn a_refused_locked_login_is_audited_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (_sr, root, _clock) =
        open(Config::dev().audit(AuditDevice::file("file", log.to_str().unwrap()))).await;
    with_bob(&root).await;
    for _ in 0..5 {
        assert_eq!(login(&root, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&root, "bob", "pw").await, locked());
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "response")
        .unwrap();
    assert_eq!(last["request"]["path"], "auth/userpass/login/bob");
    assert_eq!(
        last["error"],
        "1 error occurred:\n\t* permission denied\n\n"
    );
    // No password in the log.
    assert!(!std::fs::read_to_string(&log).unwrap().contains("\"pw\""));
}

#[tokio::test]
async fn two_engines_on_one_sqlite_file_share_the_lockout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let clock = VirtualClock::new();
    let a = Strongroom::open(Config::sqlite(&path).clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let init = a.init(1, 1).await.unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&init.keys[0]).to_string();
    let token = secrecy::ExposeSecret::expose_secret(&init.root_token).to_string();
    a.unseal_with_key(&key).await.unwrap();
    let b = Strongroom::open(Config::sqlite(&path).clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    b.unseal_with_key(&key).await.unwrap();
    let (ra, rb) = (a.client(&token), b.client(&token));
    let acc = with_bob(&ra).await;

    // Failures on both processes add up to one lock that both enforce.
    for _ in 0..3 {
        assert_eq!(login(&ra, "bob", "bad").await, wrong());
    }
    for _ in 0..2 {
        assert_eq!(login(&rb, "bob", "bad").await, wrong());
    }
    assert_eq!(login(&ra, "bob", "pw").await, locked());
    assert_eq!(login(&rb, "bob", "pw").await, locked());
    assert_eq!(locked_users(&ra, None).await["total"], 1);
    // One unlocks, the other lets bob in.
    rb.write(
        &format!("sys/locked-users/{acc}/unlock/bob"),
        data(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(login(&ra, "bob", "pw").await, Ok(()));
}

/// A burst of parallel guesses gets no more than the threshold: the checks beyond it wait for
/// the failures before them to be counted, then find the user locked. Without that, every
/// login of the burst passes the lock check before the first failure is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_parallel_guesses_gets_only_the_threshold() {
    let (_sr, root, _clock) = open(Config::dev()).await;
    with_bob(&root).await;
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let root = root.clone();
            tokio::spawn(async move { login(&root, "bob", &format!("guess-{i}")).await })
        })
        .collect();
    let (mut wrong_n, mut locked_n) = (0, 0);
    for g in guesses {
        let outcome = g.await.unwrap();
        if outcome == wrong() {
            wrong_n += 1;
        } else if outcome == locked() {
            locked_n += 1;
        } else {
            panic!("unexpected outcome {outcome:?}");
        }
    }
    assert_eq!((wrong_n, locked_n), (5, 25));
    assert_eq!(login(&root, "bob", "pw").await, locked());
}

/// Right passwords in parallel are not slowed into refusals: with no failure on record, every
/// one of them gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_right_passwords_all_get_in() {
    let (_sr, root, _clock) = open(Config::dev()).await;
    with_bob(&root).await;
    let logins: Vec<_> = (0..12)
        .map(|_| {
            let root = root.clone();
            tokio::spawn(async move { login(&root, "bob", "pw").await })
        })
        .collect();
    for l in logins {
        assert_eq!(l.await.unwrap(), Ok(()));
    }
}
