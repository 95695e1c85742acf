//! The public surface the bindings wrap: secrets stay out of `Debug`, and handles carry no
//! runtime types.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Config, Strongroom, TokenRequest, data};

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
