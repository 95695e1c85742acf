//! The public surface the bindings wrap: secrets stay out of `Debug`, and handles carry no
//! runtime types.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{
    Config, ErrorCode, LeaseConfig, LeaseEvent, Strongroom, TokenRequest, VirtualClock, data,
};

async fn dev() -> Strongroom {
    Strongroom::open(Config::dev()).await.unwrap()
}

#[tokio::test]
async fn debug_output_shows_no_token_or_secret_value() {
    let sr = dev().await;
    let root_token = sr.dev_root_token().unwrap();
    let root_id = root_token.expose_secret().to_string();
    assert!(!format!("{root_token:?}").contains(&root_id));
    let unseal = sr.dev_unseal_key().unwrap();
    assert!(!format!("{unseal:?}").contains(unseal.expose_secret()));

    // The client takes the secret type, a reference to it, or a plain string.
    let root = sr.client(&root_token);
    assert!(!format!("{root:?}").contains(&root_id));
    let _ = sr.client(root_id.as_str());

    let auth = root.token().create(&TokenRequest::default()).await.unwrap();
    let id = auth.client_token.expose_secret().to_string();
    assert!(id.starts_with("s."));
    assert!(!format!("{auth:?}").contains(&id), "{auth:?}");
    // The token works through the secret type as it is.
    let child = sr.client(&auth.client_token);
    assert_eq!(
        child.token().lookup_self().await.unwrap().accessor,
        auth.accessor
    );

    let wrap = root
        .sys()
        .wrap(data(json!({"k": "v"})), Duration::from_secs(60))
        .await
        .unwrap();
    let wrap_id = wrap.token.expose_secret().to_string();
    assert!(!format!("{wrap:?}").contains(&wrap_id), "{wrap:?}");
    // The wire form still carries it, for the HTTP server.
    assert_eq!(wrap.to_json()["token"], wrap_id.as_str());

    // A response carrying an auth block: `Debug` of the whole response hides the token too.
    let resp = root
        .write("auth/token/create", data(json!({})))
        .await
        .unwrap();
    let token = resp
        .auth
        .as_ref()
        .unwrap()
        .client_token
        .expose_secret()
        .to_string();
    assert!(!format!("{resp:?}").contains(&token));
    assert_eq!(resp.envelope()["auth"]["client_token"], token.as_str());

    // Transit: plaintexts and data keys.
    root.sys()
        .enable_mount("transit", "transit", &[])
        .await
        .unwrap();
    let transit = root.transit("transit");
    transit
        .create_key("k", &strongroom::KeyConfig::default())
        .await
        .unwrap();
    let ct = transit.encrypt("k", b"the-plaintext").await.unwrap();
    let pt = transit.decrypt("k", &ct).await.unwrap();
    assert_eq!(pt.expose_secret(), b"the-plaintext");
    assert!(!format!("{pt:?}").contains("the-plaintext"));
    let dk = transit.datakey("k", 256).await.unwrap();
    let shown = format!("{dk:?}");
    assert!(!shown.contains(&format!("{:?}", dk.plaintext.expose())));

    // Dev options: a chosen root token id is not shown either.
    let opts = strongroom::DevOptions {
        root_token_id: Some("my-root-token".into()),
        ..Default::default()
    };
    assert!(!format!("{opts:?}").contains("my-root-token"));
}

/// An engine on a virtual clock with the `test-leases` engine at `tl/` and no background
/// runner (expiry runs when the test says so).
async fn leasing() -> (Strongroom, strongroom::Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(
        Config::dev()
            .clock(Arc::new(clock.clone()))
            .leases(LeaseConfig {
                background: false,
                ..LeaseConfig::default()
            }),
    )
    .await
    .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.sys()
        .enable_mount("tl", "test-leases", &[])
        .await
        .unwrap();
    (sr, root, clock)
}

async fn issue(root: &strongroom::Client, name: &str, ttl: &str) -> String {
    root.write(&format!("tl/issue/{name}"), data(json!({"ttl": ttl})))
        .await
        .unwrap()
        .lease_id
}

#[tokio::test]
async fn subscription_recv_delivers_lease_events() {
    let (sr, root, clock) = leasing().await;
    let mut events = root.leases().events();
    assert_eq!(events.try_recv(), None);
    let short = issue(&root, "short", "30s").await;
    clock.advance(Duration::from_secs(31));
    assert_eq!(sr.run_expiry().await.unwrap().revoked, 1);
    assert_eq!(
        events.recv().await,
        Some(LeaseEvent::Revoked {
            lease_id: short.clone()
        })
    );
    let long = issue(&root, "long", "1h").await;
    root.leases()
        .renew(&long, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        events.recv().await,
        Some(LeaseEvent::Renewed {
            lease_id: long,
            ttl: Duration::from_secs(600)
        })
    );
    // Every handle gone: the stream ends instead of waiting forever.
    drop((sr, root));
    assert_eq!(events.recv().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_recv_blocking_works_on_plain_threads_and_runtime_workers() {
    let (sr, root, clock) = leasing().await;
    let mut on_thread = root.leases().events();
    let mut on_worker = root.leases().events();
    // A plain thread (a binding's sync API) blocks until the event comes.
    let waiter = std::thread::spawn(move || on_thread.recv_blocking());
    let lease = issue(&root, "a", "30s").await;
    clock.advance(Duration::from_secs(31));
    sr.run_expiry().await.unwrap();
    let revoked = Some(LeaseEvent::Revoked { lease_id: lease });
    assert_eq!(waiter.join().unwrap().unwrap(), revoked);
    // On a multi-thread runtime's worker it does not panic: the worker is handed off.
    assert_eq!(on_worker.recv_blocking().unwrap(), revoked);
    // Nothing more: the timeout answers `None`.
    assert_eq!(
        on_worker
            .recv_blocking_timeout(Duration::from_millis(20))
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn subscription_recv_blocking_on_a_current_thread_runtime_is_an_error_not_a_panic() {
    let (_sr, root, _clock) = leasing().await;
    let mut events = root.leases().events();
    let e = events.recv_blocking().unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
}

#[tokio::test]
async fn a_slow_subscriber_is_told_how_many_events_it_missed() {
    let (_sr, root, _clock) = leasing().await;
    let mut events = root.leases().events();
    let lease = issue(&root, "a", "1h").await;
    for _ in 0..4100 {
        root.leases()
            .renew(&lease, Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert_eq!(events.try_recv(), Some(LeaseEvent::Missed { count: 4 }));
    assert!(matches!(
        events.try_recv(),
        Some(LeaseEvent::Renewed { .. })
    ));
}
