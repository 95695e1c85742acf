//! Response wrapping and the cubbyhole engine through the pipeline (OpenBao 2.7 behaviour):
//! wrapped reads, single-use unwrap, expiry by the virtual clock, lookup, rewrap, wrapping-TTL
//! policy rules, and cubbyholes private to each token and destroyed with it.
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
use strongroom::storage::{Backend, MemoryBackend, Page};
use strongroom::{Client, Config, ErrorCode, Operation, Request, Strongroom, VirtualClock, data};

const INVALID: &str = "wrapping token is not valid or does not exist";

async fn setup() -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    root.kv("secret")
        .put("app", &data(json!({"password": "s3cr3t"})))
        .await
        .unwrap();
    (sr, root, clock)
}

async fn token_with(root: &Client, policy: &str) -> String {
    root.write("sys/policies/acl/p", data(json!({ "policy": policy })))
        .await
        .unwrap();
    root.write("auth/token/create", data(json!({"policies": ["p"]})))
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token
        .expose_secret()
        .to_string()
}

fn wrapped_read(path: &str, secs: u64) -> Request {
    Request::read(path).with_wrap_ttl(Duration::from_secs(secs))
}

#[tokio::test]
async fn a_wrapped_kv_read_unwraps_once() {
    let (sr, root, _) = setup().await;
    let resp = root
        .handle(wrapped_read("secret/data/app", 90))
        .await
        .unwrap();
    assert!(resp.data.is_none() && resp.auth.is_none());
    let w = resp.wrap_info.unwrap();
    assert!(w.token.expose_secret().starts_with("s.") && w.token.expose_secret().len() == 26);
    assert_eq!(w.accessor.len(), 24);
    assert_eq!((w.ttl, w.creation_path.as_str()), (90, "secret/data/app"));
    assert!(w.wrapped_accessor.is_empty());

    // The wrapping token as OpenBao shapes it.
    let l = root
        .write(
            "auth/token/lookup",
            data(json!({"token": w.token.expose_secret()})),
        )
        .await
        .unwrap();
    assert_eq!(l.get("policies").unwrap(), &json!(["response-wrapping"]));
    assert_eq!(l.get("num_uses").unwrap(), 1);
    assert_eq!(l.get("ttl").unwrap(), 90);
    assert_eq!(l.get("explicit_max_ttl").unwrap(), 90);
    assert_eq!(l.get("orphan").unwrap(), true);
    assert_eq!(l.get("renewable").unwrap(), false);
    assert_eq!(l.get("path").unwrap(), "secret/data/app");

    // Unwrapped by the wrapping token itself: the original response, with its request id.
    let holder = sr.client(&w.token);
    let out = holder.sys().unwrap(w.token.expose_secret()).await.unwrap();
    assert_eq!(out.get("data").unwrap(), &json!({"password": "s3cr3t"}));
    assert_eq!(out.get("metadata").unwrap()["version"], 1);
    assert!(!out.request_id.is_empty());

    // Second use: OpenBao's text, 400.
    for c in [&holder, &root] {
        let e = c.sys().unwrap(w.token.expose_secret()).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, INVALID));
    }
    let e = root
        .sys()
        .wrap_lookup(w.token.expose_secret())
        .await
        .unwrap_err();
    assert_eq!(e.message(), INVALID);
}

#[tokio::test]
async fn a_third_party_unwrap_uses_up_the_token() {
    let (sr, root, _) = setup().await;
    let w = root
        .handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(60))
        .await
        .unwrap();
    let other = token_with(
        &root,
        r#"path "sys/wrapping/unwrap" { capabilities = ["update"] }"#,
    )
    .await;
    let other = sr.client(&other);
    let out = other.sys().unwrap(w.token.expose_secret()).await.unwrap();
    assert_eq!(out.get("data").unwrap()["password"], "s3cr3t");
    let e = other
        .sys()
        .unwrap(w.token.expose_secret())
        .await
        .unwrap_err();
    assert_eq!(e.message(), INVALID);
    // Gone from the token store too.
    let e = root
        .write(
            "auth/token/lookup",
            data(json!({"token": w.token.expose_secret()})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn an_expired_wrapping_token_cannot_be_unwrapped() {
    let (_, root, clock) = setup().await;
    let w = root
        .handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(60))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let e = root
        .sys()
        .unwrap(w.token.expose_secret())
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, INVALID));
    let e = root
        .sys()
        .wrap_lookup(w.token.expose_secret())
        .await
        .unwrap_err();
    assert_eq!(e.message(), INVALID);
}

#[tokio::test]
async fn lookup_is_unauthenticated_and_does_not_use_the_token() {
    let (sr, root, _) = setup().await;
    let w = root
        .sys()
        .wrap(
            data(json!({"z": 1, "a": {"y": 2, "b": 3}})),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    assert_eq!(w.creation_path, "sys/wrapping/wrap");
    let anon = sr.client("");
    let info = anon
        .sys()
        .wrap_lookup(w.token.expose_secret())
        .await
        .unwrap();
    assert_eq!(info["creation_path"], "sys/wrapping/wrap");
    assert_eq!(info["creation_ttl"], 300);
    assert_eq!(info["creation_time"], w.creation_time.as_str());
    assert_eq!(
        info.keys().collect::<Vec<_>>(),
        ["creation_path", "creation_time", "creation_ttl"]
    );
    // As the client token, and via GET with the token as a query parameter.
    let holder = sr.client(&w.token);
    holder
        .sys()
        .wrap_lookup(w.token.expose_secret())
        .await
        .unwrap();
    let get = Request::read("sys/wrapping/lookup")
        .with_data(data(json!({"token": w.token.expose_secret()})));
    assert!(anon.handle(get).await.unwrap().data.is_some());
    // Lookups did not use the token: it still unwraps, to the data with Go's sorted keys.
    let out = holder.sys().unwrap(w.token.expose_secret()).await.unwrap();
    let d = out.data.unwrap();
    assert_eq!(
        Value::Object(d.clone()),
        json!({"a": {"b": 3, "y": 2}, "z": 1})
    );
    assert_eq!(d.keys().collect::<Vec<_>>(), ["a", "z"]);
}

#[tokio::test]
async fn validation_errors_have_openbao_texts() {
    let (sr, root, _) = setup().await;
    let anon = sr.client("");
    let look = |body: Value| Request::write("sys/wrapping/lookup", data(body));
    let e = anon.handle(look(json!({}))).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            ErrorCode::PermissionDenied,
            "error validating wrapping token: token is empty"
        )
    );
    let e = anon.handle(look(json!({"token": ""}))).await.unwrap_err();
    assert_eq!(
        e.message(),
        "error validating wrapping token: empty token in request body"
    );
    let e = anon.handle(look(json!({"token": 5}))).await.unwrap_err();
    assert_eq!(
        e.message(),
        "error validating wrapping token: could not decode token in request body"
    );
    // Not a wrapping token (the root token), or no token at all.
    let root_id = root.token_id().to_string();
    for body in [json!({"token": root_id}), json!({"token": "s.nope"})] {
        let e = anon.handle(look(body)).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::InvalidInput, INVALID));
    }
    let e = root
        .handle(Request::write("sys/wrapping/unwrap", data(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(e.message(), INVALID);
    // sys/wrapping/wrap needs a wrap TTL.
    let e = root
        .write("sys/wrapping/wrap", data(json!({"a": "b"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            ErrorCode::InvalidInput,
            "endpoint requires response wrapping to be used"
        )
    );
    // An empty answer (204) is not wrapped.
    let r = root
        .handle(
            Request::write("secret/data/other", data(json!({"data": {"a": "b"}})))
                .with_wrap_ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(
        r.wrap_info.is_some(),
        "a KV v2 write answers with metadata, so it is wrapped"
    );
    let r = root
        .handle(Request::delete("secret/data/other").with_wrap_ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(r.wrap_info.is_none() && r.is_empty());
}

#[tokio::test]
async fn rewrap_moves_the_response_to_a_new_token() {
    let (_, root, _) = setup().await;
    let w = root
        .handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(300))
        .await
        .unwrap();
    let n = root.sys().rewrap(w.token.expose_secret()).await.unwrap();
    assert_ne!(n.token.expose_secret(), w.token.expose_secret());
    assert_eq!((n.ttl, n.creation_path.as_str()), (300, "secret/data/app"));
    assert_eq!(
        root.sys()
            .wrap_lookup(w.token.expose_secret())
            .await
            .unwrap_err()
            .message(),
        INVALID
    );
    let out = root.sys().unwrap(n.token.expose_secret()).await.unwrap();
    assert_eq!(out.get("data").unwrap()["password"], "s3cr3t");
}

#[tokio::test]
async fn a_wrapped_token_create_names_the_wrapped_accessor() {
    let (sr, root, _) = setup().await;
    let req = Request::write(
        "auth/token/create",
        data(json!({"policies": ["default"], "ttl": "1h"})),
    );
    let w = root
        .handle_wrapped(req, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(w.creation_path, "auth/token/create");
    assert_eq!(w.wrapped_accessor.len(), 24);
    let out = sr
        .client(&w.token)
        .sys()
        .unwrap(w.token.expose_secret())
        .await
        .unwrap();
    let auth = out.auth.unwrap();
    assert_eq!(auth.accessor, w.wrapped_accessor);
    assert_eq!(auth.policies, vec!["default"]);
    assert_eq!(auth.lease_duration, 3600);
    // The unwrapped token works.
    let me = sr.client(&auth.client_token);
    assert!(me.read("auth/token/lookup-self").await.unwrap().is_some());
}

#[tokio::test]
async fn wrapping_ttl_policy_rules_are_enforced() {
    let (sr, root, _) = setup().await;
    let t = token_with(
        &root,
        r#"path "secret/data/*" { capabilities = ["read"] min_wrapping_ttl = "1m" max_wrapping_ttl = "1h" }"#,
    )
    .await;
    let c = sr.client(&t);
    for req in [
        Request::read("secret/data/app"),
        wrapped_read("secret/data/app", 30),
        wrapped_read("secret/data/app", 7200),
    ] {
        let e = c.handle(req).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
    }
    // The typed fast path refuses too: the path demands wrapping.
    assert_eq!(
        c.kv("secret").get("app").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    let r = c
        .handle(wrapped_read("secret/data/app", 300))
        .await
        .unwrap();
    assert_eq!(r.wrap_info.unwrap().ttl, 300);
}

#[tokio::test]
async fn the_response_wrapping_policy_is_built_in_and_immutable() {
    let (sr, root, _) = setup().await;
    let p = root
        .read("sys/policies/acl/response-wrapping")
        .await
        .unwrap()
        .unwrap();
    assert!(
        p.get("policy")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("sys/wrapping/unwrap")
    );
    let keys = root.list("sys/policies/acl").await.unwrap();
    assert_eq!(keys, vec!["default", "root"]);
    let e = root
        .write(
            "sys/policies/acl/response-wrapping",
            data(json!({"policy": "path \"a\" {capabilities=[\"read\"]}"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "cannot update \"response-wrapping\" policy");
    let e = root
        .delete("sys/policies/acl/response-wrapping")
        .await
        .unwrap_err();
    assert_eq!(e.message(), "cannot delete \"response-wrapping\" policy");
    let e = root
        .write(
            "auth/token/create",
            data(json!({"policies": ["response-wrapping"]})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "cannot assign policy \"response-wrapping\"");
    // A wrapping token may read its response directly (with OpenBao's deprecation warning),
    // which uses it up, and may do nothing else.
    let w = root
        .handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(60))
        .await
        .unwrap();
    let holder = sr.client(&w.token);
    let r = holder.read("cubbyhole/response").await.unwrap().unwrap();
    assert!(r.warnings[0].starts_with("Reading from 'cubbyhole/response' is deprecated"));
    let inner: Value = serde_json::from_str(r.get("response").unwrap().as_str().unwrap()).unwrap();
    assert_eq!(inner["data"]["data"]["password"], "s3cr3t");
    assert_eq!(
        holder
            .sys()
            .unwrap(w.token.expose_secret())
            .await
            .unwrap_err()
            .message(),
        INVALID
    );
}

#[tokio::test]
async fn cubbyholes_are_private_to_each_token() {
    let (sr, root, _) = setup().await;
    let a = token_with(
        &root,
        r#"path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    )
    .await;
    let b = root
        .write("auth/token/create", data(json!({"policies": ["p"]})))
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    let (a, b) = (sr.client(&a), sr.client(&b));
    a.write("cubbyhole/foo/bar", data(json!({"k": "v", "n": 2})))
        .await
        .unwrap();
    let r = a.read("cubbyhole/foo/bar").await.unwrap().unwrap();
    assert_eq!(r.data.unwrap(), data(json!({"k": "v", "n": 2})));
    assert_eq!(a.list("cubbyhole/").await.unwrap(), vec!["foo/"]);
    assert_eq!(a.list("cubbyhole/foo/").await.unwrap(), vec!["bar"]);
    // Another token, even root, sees nothing there.
    for c in [&b, &root] {
        assert!(c.read("cubbyhole/foo/bar").await.unwrap().is_none());
        assert!(c.list("cubbyhole/").await.unwrap().is_empty());
    }
    b.write("cubbyhole/foo/bar", data(json!({"k": "b's"})))
        .await
        .unwrap();
    assert_eq!(
        a.read("cubbyhole/foo/bar")
            .await
            .unwrap()
            .unwrap()
            .get("k")
            .unwrap(),
        "v"
    );
    // Bad input, with OpenBao's texts.
    let e = a
        .write("cubbyhole/empty", data(json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "1 error occurred:\n\t* missing data fields\n\n"
    );
    let e = a.read("cubbyhole/").await.unwrap_err();
    assert_eq!(e.message(), "1 error occurred:\n\t* missing path\n\n");
    let e = a
        .handle(
            Request::new(Operation::Patch, "cubbyhole/foo/bar").with_data(data(json!({"k": "x"}))),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "no patch capability");
    // Delete, idempotent.
    a.delete("cubbyhole/foo/bar").await.unwrap();
    a.delete("cubbyhole/foo/bar").await.unwrap();
    assert!(a.read("cubbyhole/foo/bar").await.unwrap().is_none());
    // Batch tokens have no cubbyhole.
    let bt = root
        .write(
            "auth/token/create",
            data(json!({"type": "batch", "policies": ["p"]})),
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    let e = sr.client(&bt).read("cubbyhole/x").await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            ErrorCode::InvalidInput,
            "cubbyhole operations are only supported by 'service' type tokens"
        )
    );
}

/// How many stored entries a mount holds (keys are in clear below the barrier).
async fn entries_under(store: &MemoryBackend, mount_uuid: &str) -> usize {
    store
        .scan(&format!("logical/{mount_uuid}/"), &Page::all())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_cubbyhole_is_destroyed_with_its_token() {
    let store = Arc::new(MemoryBackend::new());
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::backend(store.clone()).clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let init = sr.init(1, 1).await.unwrap();
    sr.unseal(init.keys[0].expose_secret()).await.unwrap();
    let root = sr.client(init.root_token.expose_secret());
    root.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    root.kv("secret")
        .put("app", &data(json!({"password": "s3cr3t"})))
        .await
        .unwrap();

    let mounts = root.sys().mounts().await.unwrap();
    let cubby = &mounts["cubbyhole/"];
    assert_eq!(cubby["type"], "cubbyhole");
    assert_eq!(cubby["local"], true);
    assert_eq!(cubby["description"], "per-token private secret storage");
    let uuid = cubby["uuid"].as_str().unwrap().to_string();

    let a = token_with(
        &root,
        r#"path "cubbyhole/*" { capabilities = ["create", "read", "list"] }"#,
    )
    .await;
    sr.client(&a)
        .write("cubbyhole/x", data(json!({"k": "v"})))
        .await
        .unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 1);
    // Keyed by the salted id: the raw token id appears in no key.
    let keys = store.scan("", &Page::all()).await.unwrap();
    assert!(keys.iter().all(|k| !k.contains(&a[2..])));
    root.write("auth/token/revoke", data(json!({"token": a})))
        .await
        .unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 0);

    // Expired (the lease runner revokes it): its cubbyhole goes too.
    let short = root
        .write(
            "auth/token/create",
            data(json!({"policies": ["p"], "ttl": "1m"})),
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    sr.client(&short)
        .write("cubbyhole/y", data(json!({"k": "v"})))
        .await
        .unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 1);
    clock.advance(Duration::from_secs(120));
    sr.run_expiry().await.unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 0);

    // A wrapping token's cubbyhole (response + wrapinfo) goes when it is unwrapped...
    let w = root
        .handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 2);
    root.sys().unwrap(w.token.expose_secret()).await.unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 0);
    // ... or when it expires unused.
    root.handle_wrapped(Request::read("secret/data/app"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 2);
    clock.advance(Duration::from_secs(61));
    sr.run_expiry().await.unwrap();
    assert_eq!(entries_under(&store, &uuid).await, 0);

    // The cubbyhole mount cannot be removed or mounted again.
    let e = root.sys().disable_mount("cubbyhole").await.unwrap_err();
    assert_eq!(e.message(), "cannot unmount \"cubbyhole/\"");
    let e = root
        .sys()
        .enable_mount("cub2", "cubbyhole", &[])
        .await
        .unwrap_err();
    assert_eq!(e.message(), "mount type of \"cubbyhole\" is not mountable");
}

#[tokio::test]
async fn a_login_can_be_wrapped() {
    let (sr, root, _) = setup().await;
    root.auth().enable("userpass", "userpass").await.unwrap();
    root.auth()
        .userpass("userpass")
        .write_user("bob", "s3cret-pw", data(json!({"token_ttl": "1h"})))
        .await
        .unwrap();
    let login = Request::write(
        "auth/userpass/login/bob",
        data(json!({"password": "s3cret-pw"})),
    )
    .with_wrap_ttl(Duration::from_secs(120));
    let resp = sr.handle(login).await.unwrap();
    assert!(resp.auth.is_none(), "only the wrapping token comes back");
    let w = resp.wrap_info.unwrap();
    assert_eq!(w.creation_path, "auth/userpass/login/bob");
    assert_eq!(w.wrapped_accessor.len(), 24);
    let out = sr
        .client(&w.token)
        .sys()
        .unwrap(w.token.expose_secret())
        .await
        .unwrap();
    let auth = out.auth.unwrap();
    assert_eq!(auth.accessor, w.wrapped_accessor);
    assert_eq!(auth.metadata.get("username").unwrap(), "bob");
    assert!(
        sr.client(&auth.client_token)
            .read("auth/token/lookup-self")
            .await
            .unwrap()
            .is_some()
    );
}
