//! Auth methods through the pipeline: `sys/auth` enable / tune / disable, userpass and AppRole
//! logins, and the tokens they create (TTLs, use counts, CIDR bindings). Time moves with a
//! virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use secrecy::ExposeSecret;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Request, Response, Strongroom, VirtualClock, data};

async fn setup() -> (Strongroom, Client, VirtualClock) {
    let clock = VirtualClock::new();
    let sr = Strongroom::open(Config::dev().clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    (sr, root, clock)
}

/// An unauthenticated request from `addr`.
async fn anon(
    sr: &Strongroom,
    path: &str,
    body: Value,
    addr: Option<&str>,
) -> strongroom::Result<Response> {
    let mut req = Request::write(path, data(body));
    req.remote_addr = addr.map(|a| a.parse::<IpAddr>().unwrap());
    sr.handle(req).await
}

fn lookup_self(_sr: &Strongroom, token: &str) -> Request {
    Request::read("auth/token/lookup-self").with_token(token)
}

#[tokio::test]
async fn sys_auth_enable_tune_disable() {
    let (_sr, root, _) = setup().await;
    root.auth().enable("userpass", "userpass").await.unwrap();
    let list = root.auth().list().await.unwrap();
    let up = &list["userpass/"];
    assert_eq!(up["type"], "userpass");
    assert!(
        up["accessor"]
            .as_str()
            .unwrap()
            .starts_with("auth_userpass_")
    );
    assert!(list.contains_key("token/"));
    let read = root.read("sys/auth/userpass").await.unwrap().unwrap();
    assert_eq!(read.get("type").unwrap(), "userpass");

    let e = root
        .auth()
        .enable("userpass", "userpass")
        .await
        .unwrap_err();
    assert_eq!(e.message(), "path is already in use at userpass/");
    let e = root.auth().enable("other", "nope").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(e.message(), "plugin not found in the catalog: nope");
    assert!(!root.auth().list().await.unwrap().contains_key("other/"));
    let e = root.auth().disable("token").await.unwrap_err();
    assert_eq!(e.message(), "token credential backend cannot be disabled");

    root.write(
        "sys/auth/userpass/tune",
        data(json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"})),
    )
    .await
    .unwrap();
    let tune = root.read("sys/auth/userpass/tune").await.unwrap().unwrap();
    assert_eq!(tune.get("default_lease_ttl").unwrap(), 3600);
    assert_eq!(tune.get("max_lease_ttl").unwrap(), 7200);

    root.auth().disable("userpass").await.unwrap();
    assert!(!root.auth().list().await.unwrap().contains_key("userpass/"));
    // Disabling an unknown path succeeds, as in OpenBao.
    root.auth().disable("userpass").await.unwrap();
    let e = root.read("auth/userpass/users/x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedPath);
}

#[tokio::test]
async fn userpass_login_end_to_end() {
    let (sr, root, clock) = setup().await;
    root.auth().enable("userpass", "userpass").await.unwrap();
    let up = root.auth().userpass("userpass");
    up.write_user(
        "Bob",
        "s3cret-pw",
        data(json!({"token_policies": "dev,Ops", "token_ttl": "1h", "token_max_ttl": "2h"})),
    )
    .await
    .unwrap();
    let user = up.read_user("bob").await.unwrap().unwrap();
    assert_eq!(user["token_policies"], json!(["dev", "ops"]));
    assert_eq!(user["token_ttl"], 3600);
    assert_eq!(user["token_type"], "default");
    assert!(!user.contains_key("password") && !user.contains_key("password_hash"));
    assert!(
        !serde_json::to_string(&user).unwrap().contains("s3cret-pw"),
        "the password is never returned"
    );
    assert_eq!(up.list_users().await.unwrap(), vec!["bob"]);

    let auth = up.login_auth("BOB", "s3cret-pw").await.unwrap();
    assert!(auth.client_token.expose_secret().starts_with("s."));
    assert_eq!(auth.policies, vec!["default", "dev", "ops"]);
    assert_eq!(auth.token_policies, auth.policies);
    assert_eq!(auth.metadata.get("username").unwrap(), "bob");
    assert_eq!(auth.lease_duration, 3600);
    assert!(auth.renewable && auth.orphan);
    assert_eq!(auth.token_type, "service");

    let me = sr
        .handle(lookup_self(&sr, auth.client_token.expose_secret()))
        .await
        .unwrap();
    assert_eq!(me.get("display_name").unwrap(), "userpass-bob");
    assert_eq!(me.get("path").unwrap(), "auth/userpass/login/BOB");
    assert_eq!(me.get("meta").unwrap(), &json!({"username": "bob"}));
    assert_eq!(me.get("orphan").unwrap(), true);

    // Wrong password and unknown user look the same.
    for (u, p) in [("bob", "wrong"), ("nobody", "s3cret-pw")] {
        let e = up.login(u, p).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert_eq!(e.message(), "invalid username or password");
    }
    let e = anon(&sr, "auth/userpass/login/bob", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "missing password");

    // Renewal is capped by token_max_ttl; the token expires by the virtual clock.
    let bob = sr.client(auth.client_token.clone());
    clock.advance(Duration::from_secs(1800));
    let renewed = bob
        .token()
        .renew_self(Duration::from_secs(3 * 3600))
        .await
        .unwrap();
    assert_eq!(
        renewed.lease_duration, 5400,
        "capped at token_max_ttl from issue"
    );
    clock.advance(Duration::from_secs(5401));
    let e = bob.token().lookup_self().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);

    // A new password replaces the old one.
    up.set_password("bob", "n3w-pw").await.unwrap();
    assert!(up.login("bob", "s3cret-pw").await.is_err());
    let c = sr
        .login_userpass("userpass", "bob", "n3w-pw")
        .await
        .unwrap();
    assert_eq!(
        c.token().lookup_self().await.unwrap().display_name,
        "userpass-bob"
    );

    // Admin paths need a token; a login token without policy on them is refused.
    let e = sr.client("").list("auth/userpass/users").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = c.list("auth/userpass/users").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);

    // Bad input changes nothing.
    let e = up
        .write_user("bob", "x", data(json!({"token_ttl": "5h"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "'token_ttl' cannot be greater than 'token_max_ttl'"
    );
    assert!(
        up.login("bob", "n3w-pw").await.is_ok(),
        "password unchanged"
    );
    let e = root
        .write(
            "auth/userpass/users/carol",
            data(json!({"token_policies": "a"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "must provide either password or password_hash");
    assert!(up.read_user("carol").await.unwrap().is_none());

    up.delete_user("bob").await.unwrap();
    assert!(up.login("bob", "n3w-pw").await.is_err());
    assert!(up.read_user("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn userpass_mount_ttls_num_uses_batch_and_cidrs() {
    let (sr, root, _) = setup().await;
    root.auth().enable("up", "userpass").await.unwrap();
    root.write(
        "sys/auth/up/tune",
        data(json!({"default_lease_ttl": "20m", "max_lease_ttl": "30m"})),
    )
    .await
    .unwrap();
    let up = root.auth().userpass("up");
    up.write_user("plain", "pw", data(json!({}))).await.unwrap();
    let a = up.login_auth("plain", "pw").await.unwrap();
    assert_eq!(a.lease_duration, 1200, "the mount's default TTL");
    assert_eq!(a.policies, vec!["default"]);
    up.write_user("long", "pw", data(json!({"token_ttl": "2h"})))
        .await
        .unwrap();
    let r = anon(&sr, "auth/up/login/long", json!({"password": "pw"}), None)
        .await
        .unwrap();
    assert_eq!(
        r.auth.unwrap().lease_duration,
        1800,
        "capped at the mount max"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("exceeded the effective max_ttl"))
    );

    up.write_user(
        "nodef",
        "pw",
        data(json!({"token_policies": "x", "token_no_default_policy": true})),
    )
    .await
    .unwrap();
    assert_eq!(
        up.login_auth("nodef", "pw").await.unwrap().policies,
        vec!["x"]
    );
    up.write_user("once", "pw", data(json!({"token_num_uses": 2})))
        .await
        .unwrap();
    let a = up.login_auth("once", "pw").await.unwrap();
    assert_eq!(a.num_uses, 2);
    let c = sr.client(a.client_token.clone());
    c.token().lookup_self().await.unwrap();
    c.token().lookup_self().await.unwrap();
    assert_eq!(
        c.token().lookup_self().await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );

    up.write_user("batchy", "pw", data(json!({"token_type": "batch"})))
        .await
        .unwrap();
    let a = up.login_auth("batchy", "pw").await.unwrap();
    assert!(a.client_token.expose_secret().starts_with("b."));
    assert!(!a.renewable);
    assert_eq!(a.accessor, "");
    assert_eq!(a.token_type, "batch");
    sr.client(a.client_token)
        .token()
        .lookup_self()
        .await
        .unwrap();

    up.write_user(
        "net",
        "pw",
        data(json!({"token_bound_cidrs": ["10.0.0.0/8"]})),
    )
    .await
    .unwrap();
    let e = anon(
        &sr,
        "auth/up/login/net",
        json!({"password": "pw"}),
        Some("127.0.0.1"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    let e = anon(&sr, "auth/up/login/net", json!({"password": "pw"}), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::PermissionDenied,
        "no address fails closed"
    );
    let r = anon(
        &sr,
        "auth/up/login/net",
        json!({"password": "pw"}),
        Some("10.2.3.4"),
    )
    .await
    .unwrap();
    let token = r.auth.unwrap().client_token;
    let mut req = lookup_self(&sr, token.expose_secret());
    req.remote_addr = Some("192.168.0.1".parse().unwrap());
    assert_eq!(
        sr.handle(req).await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    let mut req = lookup_self(&sr, token.expose_secret());
    req.remote_addr = Some("10.9.9.9".parse().unwrap());
    let me = sr.handle(req).await.unwrap();
    assert_eq!(me.get("bound_cidrs").unwrap(), &json!(["10.0.0.0/8"]));

    // Disabling the mount revokes what it issued.
    let a = up.login_auth("plain", "pw").await.unwrap();
    root.auth().disable("up").await.unwrap();
    assert_eq!(
        sr.client(a.client_token)
            .token()
            .lookup_self()
            .await
            .unwrap_err()
            .code(),
        ErrorCode::PermissionDenied
    );
    let e = anon(&sr, "auth/up/login/plain", json!({"password": "pw"}), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn userpass_renewal_rechecks_the_user() {
    let (sr, root, _) = setup().await;
    root.auth().enable("userpass", "userpass").await.unwrap();
    let up = root.auth().userpass("userpass");
    up.write_user(
        "ann",
        "pw",
        data(json!({"token_policies": "p1", "token_ttl": "10m"})),
    )
    .await
    .unwrap();
    let ann = sr.login_userpass("userpass", "ann", "pw").await.unwrap();
    let r = ann.token().renew_self(Duration::ZERO).await.unwrap();
    assert_eq!(r.lease_duration, 600);
    // New TTL terms apply at renewal.
    up.write_user("ann", "pw", data(json!({"token_ttl": "20m"})))
        .await
        .unwrap();
    assert_eq!(
        ann.token()
            .renew_self(Duration::ZERO)
            .await
            .unwrap()
            .lease_duration,
        1200
    );
    // Changed policies refuse the renewal; so does a deleted user.
    up.write_user("ann", "pw", data(json!({"token_policies": "p2"})))
        .await
        .unwrap();
    let e = ann.token().renew_self(Duration::ZERO).await.unwrap_err();
    assert_eq!(e.message(), "policies have changed, not renewing");
    up.write_user("ann", "pw", data(json!({"token_policies": "p1"})))
        .await
        .unwrap();
    ann.token().renew_self(Duration::ZERO).await.unwrap();
    up.delete_user("ann").await.unwrap();
    let e = ann.token().renew_self(Duration::ZERO).await.unwrap_err();
    assert_eq!(e.message(), "user no longer exists, not renewing");
}

#[tokio::test]
async fn approle_role_secret_id_login_and_tidy() {
    let (sr, root, clock) = setup().await;
    root.auth().enable("approle", "approle").await.unwrap();
    let ar = root.auth().approle("approle");
    ar.write_role(
        "Web",
        data(json!({"token_policies": "web", "token_ttl": "30m", "secret_id_num_uses": 2, "secret_id_ttl": "1h"})),
    )
    .await
    .unwrap();
    let role = ar.read_role("web").await.unwrap().unwrap();
    assert_eq!(role["bind_secret_id"], true);
    assert_eq!(role["secret_id_num_uses"], 2);
    assert_eq!(role["secret_id_ttl"], 3600);
    assert_eq!(role["token_policies"], json!(["web"]));
    assert_eq!(root.list("auth/approle/role").await.unwrap(), vec!["web"]);
    let role_id = ar.role_id("web").await.unwrap();
    assert_eq!(role_id.len(), 36);

    let sid = ar
        .generate_secret_id("web", data(json!({"metadata": "{\"team\":\"blue\"}"})))
        .await
        .unwrap();
    assert_eq!((sid.ttl, sid.num_uses), (3600, 2));
    assert!(!format!("{sid:?}").contains(secrecy::ExposeSecret::expose_secret(&sid.secret_id)));
    assert_eq!(
        ar.list_secret_ids("web").await.unwrap(),
        vec![sid.accessor.clone()]
    );
    let secret = secrecy::ExposeSecret::expose_secret(&sid.secret_id).to_string();
    let look = root
        .write(
            "auth/approle/role/web/secret-id/lookup",
            data(json!({"secret_id": secret})),
        )
        .await
        .unwrap();
    assert_eq!(
        look.get("secret_id_accessor").unwrap(),
        &json!(sid.accessor)
    );
    assert_eq!(look.get("metadata").unwrap(), &json!({"team": "blue"}));
    assert_eq!(look.get("secret_id_num_uses").unwrap(), 2);

    let auth = ar.login_auth(&role_id, &secret).await.unwrap();
    assert_eq!(auth.policies, vec!["default", "web"]);
    assert_eq!(auth.lease_duration, 1800);
    assert_eq!(
        auth.metadata,
        [
            ("role_name".to_string(), "web".to_string()),
            ("team".into(), "blue".into())
        ]
        .into()
    );
    let me = sr
        .client(auth.client_token.clone())
        .token()
        .lookup_self()
        .await
        .unwrap();
    assert_eq!(me.display_name, "approle");
    assert_eq!(me.path, "auth/approle/login");
    // Second use is the last; the third fails and the secret id is gone.
    sr.login_approle("approle", &role_id, &secret)
        .await
        .unwrap();
    let e = ar.login(&role_id, &secret).await.unwrap_err();
    assert_eq!(e.message(), "invalid role or secret ID");
    assert!(ar.list_secret_ids("web").await.unwrap().is_empty());

    // Wrong inputs.
    let sid2 = ar
        .generate_secret_id("web", data(json!({"num_uses": 1})))
        .await
        .unwrap();
    let s2 = secrecy::ExposeSecret::expose_secret(&sid2.secret_id).to_string();
    assert_eq!(
        ar.login("", &s2).await.unwrap_err().message(),
        "missing role_id"
    );
    assert_eq!(
        ar.login(&role_id, "").await.unwrap_err().message(),
        "missing secret_id"
    );
    assert_eq!(
        ar.login("nope", &s2).await.unwrap_err().message(),
        "invalid role or secret ID"
    );
    assert_eq!(
        ar.login(&role_id, "nope").await.unwrap_err().message(),
        "invalid role or secret ID"
    );
    let e = ar
        .generate_secret_id("web", data(json!({"num_uses": 5})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "num_uses cannot be higher than the role's secret_id_num_uses"
    );
    let e = ar
        .generate_secret_id("web", data(json!({"ttl": "2h"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "ttl cannot be longer than the role's secret_id_ttl"
    );
    assert_eq!(
        ar.list_secret_ids("web").await.unwrap(),
        vec![sid2.accessor.clone()]
    );

    // Destroy by accessor.
    ar.destroy_secret_id_accessor("web", &sid2.accessor)
        .await
        .unwrap();
    assert!(ar.login(&role_id, &s2).await.is_err());

    // Expiry by the virtual clock, then tidy removes the dead entry.
    let sid3 = ar
        .generate_secret_id("web", data(json!({"ttl": "10m"})))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(601));
    let r = root
        .write("auth/approle/tidy/secret-id", data(json!({})))
        .await
        .unwrap();
    assert_eq!(r.kind, strongroom::ResponseKind::Accepted);
    assert!(ar.list_secret_ids("web").await.unwrap().is_empty());
    let s3 = secrecy::ExposeSecret::expose_secret(&sid3.secret_id).to_string();
    assert!(ar.login(&role_id, &s3).await.is_err());

    // Renewal re-reads the role; a deleted role refuses it and takes its secret ids along.
    let sid4 = ar.generate_secret_id("web", data(json!({}))).await.unwrap();
    let s4 = secrecy::ExposeSecret::expose_secret(&sid4.secret_id).to_string();
    let c = ar.login(&role_id, &s4).await.unwrap();
    assert_eq!(
        c.token()
            .renew_self(Duration::ZERO)
            .await
            .unwrap()
            .lease_duration,
        1800
    );
    ar.delete_role("web").await.unwrap();
    let e = c.token().renew_self(Duration::ZERO).await.unwrap_err();
    assert_eq!(e.message(), "role \"web\" does not exist during renewal");
    assert!(ar.login(&role_id, &s4).await.is_err());
    assert!(ar.read_role("web").await.unwrap().is_none());
}

#[tokio::test]
async fn approle_custom_ids_cidrs_and_no_secret() {
    let (sr, root, _) = setup().await;
    root.auth().enable("approle", "approle").await.unwrap();
    let ar = root.auth().approle("approle");
    let e = ar
        .write_role("open", data(json!({"bind_secret_id": false})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "1 error occurred:\n\t* at least one constraint should be enabled on the role\n\n"
    );
    assert!(
        ar.read_role("open").await.unwrap().is_none(),
        "nothing written"
    );
    ar.write_role(
        "net",
        data(json!({"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8", "role_id": "my-role-id"})),
    )
    .await
    .unwrap();
    assert_eq!(ar.role_id("net").await.unwrap(), "my-role-id");
    let ok = anon(
        &sr,
        "auth/approle/login",
        json!({"role_id": "my-role-id"}),
        Some("10.1.1.1"),
    )
    .await
    .unwrap();
    assert!(
        ok.auth
            .unwrap()
            .client_token
            .expose_secret()
            .starts_with("s.")
    );
    let e = anon(
        &sr,
        "auth/approle/login",
        json!({"role_id": "my-role-id"}),
        Some("127.0.0.1"),
    )
    .await
    .unwrap_err();
    assert!(
        e.message()
            .contains("unauthorized by CIDR restrictions on the role"),
        "{}",
        e.message()
    );

    // A second role cannot take the same role id; a new role id replaces the old.
    let e = ar
        .write_role("other", data(json!({"role_id": "my-role-id"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "1 error occurred:\n\t* role_id already in use\n\n"
    );
    root.write(
        "auth/approle/role/net/role-id",
        data(json!({"role_id": "new-id"})),
    )
    .await
    .unwrap();
    assert!(
        anon(
            &sr,
            "auth/approle/login",
            json!({"role_id": "my-role-id"}),
            Some("10.1.1.1")
        )
        .await
        .is_err()
    );
    assert!(
        anon(
            &sr,
            "auth/approle/login",
            json!({"role_id": "new-id"}),
            Some("10.1.1.1")
        )
        .await
        .is_ok()
    );

    // A custom secret id bound to a CIDR.
    ar.write_role(
        "app",
        data(json!({"secret_id_bound_cidrs": ["192.168.0.0/16"]})),
    )
    .await
    .unwrap();
    let rid = ar.role_id("app").await.unwrap();
    root.write(
        "auth/approle/role/app/custom-secret-id",
        data(json!({"secret_id": "my-secret", "cidr_list": "192.168.1.0/24"})),
    )
    .await
    .unwrap();
    let e = root
        .write(
            "auth/approle/role/app/custom-secret-id",
            data(json!({"secret_id": "other", "cidr_list": "10.0.0.0/8"})),
        )
        .await
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("failed to verify the CIDR restrictions")
    );
    let e = anon(
        &sr,
        "auth/approle/login",
        json!({"role_id": rid, "secret_id": "my-secret"}),
        Some("192.168.2.1"),
    )
    .await
    .unwrap_err();
    assert!(
        e.message()
            .contains("unauthorized through CIDR restrictions on the secret ID")
    );
    anon(
        &sr,
        "auth/approle/login",
        json!({"role_id": rid, "secret_id": "my-secret"}),
        Some("192.168.1.7"),
    )
    .await
    .unwrap();
}

/// Texts and codes checked against a real `bao server -dev` (2.7.2).
#[tokio::test]
async fn error_texts_and_codes_match_openbao() {
    let (sr, root, _) = setup().await;
    root.auth().enable("userpass", "userpass").await.unwrap();
    root.auth().enable("approle", "approle").await.unwrap();
    let read = root.read("sys/auth/userpass").await.unwrap().unwrap();
    assert_eq!(read.get("deprecation_status").unwrap(), "supported");
    // userpass: a missing password at login is a plain (500) error; a bcrypt hash is accepted.
    let e = anon(&sr, "auth/userpass/login/x", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (ErrorCode::Internal, "missing password")
    );
    let h = "$2b$04$BUObzp3ZqhZvXAy6f3lUTeHDH6NDLd0TMZX7xXrU5H5MRPBxMoYFy";
    root.write(
        "auth/userpass/users/hashy",
        data(json!({"password_hash": h})),
    )
    .await
    .unwrap();
    let e = root
        .write(
            "auth/userpass/users/bad",
            data(json!({"password_hash": "nope"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    // AppRole.
    let e = anon(&sr, "auth/approle/login", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (ErrorCode::Internal, "missing role_id")
    );
    root.auth()
        .approle("approle")
        .write_role("web", data(json!({})))
        .await
        .unwrap();
    let r = root
        .write(
            "auth/approle/role/web/secret-id-accessor/lookup",
            data(json!({"secret_id_accessor": "nope"})),
        )
        .await
        .unwrap();
    assert_eq!(r.kind, strongroom::ResponseKind::NotFound);
    assert_eq!(
        r.get("error").unwrap(),
        "failed to find accessor entry for secret_id_accessor: \"nope\""
    );
    let role = root
        .auth()
        .approle("approle")
        .read_role("web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(role["secret_id_bound_cidrs"], Value::Null);
    // Kubernetes: no CA and no pod CA file refuses the config.
    root.auth()
        .enable("kubernetes", "kubernetes")
        .await
        .unwrap();
    let e = root
        .write(
            "auth/kubernetes/config",
            data(json!({"kubernetes_host": "https://127.0.0.1:1", "local_ca_path": "/nonexistent/ca.crt"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "open /nonexistent/ca.crt: no such file or directory"
    );
}
