//! The identity secrets engine (`identity/`): entities, aliases, groups, group aliases,
//! lookups and merge with OpenBao's answers; logins through userpass, AppRole and Kubernetes
//! creating or reusing entities; identity policies on tokens, applied at request time; and
//! ACL templating rendered per entity.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod k8s_standin;

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::{Client, Config, ErrorCode, Request, Response, Strongroom, VirtualClock, data};

async fn setup() -> (Strongroom, Client) {
    let sr = Strongroom::open(Config::dev().clock(Arc::new(VirtualClock::new())))
        .await
        .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    (sr, root)
}

async fn w(c: &Client, path: &str, body: Value) -> strongroom::Result<Response> {
    c.write(path, data(body)).await
}

/// The data of a write that must answer with data.
async fn wd(c: &Client, path: &str, body: Value) -> Value {
    let r = w(c, path, body).await.unwrap();
    Value::Object(r.data.expect("data").into_iter().collect())
}

async fn r(c: &Client, path: &str) -> Option<Value> {
    c.read(path)
        .await
        .unwrap()
        .and_then(|r| r.data)
        .map(|d| Value::Object(d.into_iter().collect()))
}

async fn list(c: &Client, path: &str) -> Value {
    let resp = c.handle(Request::list(path)).await.unwrap();
    Value::Object(resp.data.unwrap().into_iter().collect())
}

/// The token's `entity_id`, from `auth/token/lookup-self`.
async fn entity_of(c: &Client) -> String {
    c.read("auth/token/lookup-self")
        .await
        .unwrap()
        .unwrap()
        .get("entity_id")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

async fn userpass(root: &Client) -> String {
    root.auth().enable("userpass", "userpass").await.unwrap();
    root.read("sys/auth")
        .await
        .unwrap()
        .unwrap()
        .get("userpass/")
        .unwrap()["accessor"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn identity_is_always_mounted_and_cannot_be_unmounted() {
    let (_sr, root) = setup().await;
    let mounts = root.read("sys/mounts").await.unwrap().unwrap();
    let m = mounts.get("identity/").expect("identity/ listed");
    assert_eq!(m["type"], "identity");
    assert_eq!(m["description"], "identity store");
    assert!(m["accessor"].as_str().unwrap().starts_with("identity_"));
    assert_eq!(
        m["config"]["passthrough_request_headers"],
        json!(["Authorization"])
    );
    let e = root.delete("sys/mounts/identity").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(e.message(), "cannot unmount \"identity/\"");
    let e = w(&root, "sys/mounts/identity/x", json!({"type": "kv"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    // Unknown identity paths are the framework's 404.
    let e = root.read("identity/nothing").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedPath);
}

#[tokio::test]
async fn entities_by_id_and_name() {
    let (_sr, root) = setup().await;
    let created = wd(
        &root,
        "identity/entity",
        json!({"name": "alice", "metadata": {"team": "red"}, "policies": ["p1"]}),
    )
    .await;
    assert_eq!(created["name"], "alice");
    assert_eq!(created["aliases"], Value::Null);
    let id = created["id"].as_str().unwrap().to_string();

    let e = r(&root, "identity/entity/name/alice").await.unwrap();
    assert_eq!(e["id"], json!(id));
    assert_eq!(e["metadata"], json!({"team": "red"}));
    assert_eq!(e["policies"], json!(["p1"]));
    assert_eq!(e["aliases"], json!([]));
    assert_eq!(e["namespace_id"], "root");
    assert_eq!(e["merged_entity_ids"], Value::Null);
    assert_eq!(e["disabled"], false);
    // Names are case-insensitive.
    assert_eq!(
        r(&root, "identity/entity/name/ALICE").await.unwrap()["id"],
        json!(id)
    );

    // Writing an existing name updates it: no data (204), policies kept.
    let upd = w(
        &root,
        "identity/entity",
        json!({"name": "alice", "metadata": {"team": "blue"}}),
    )
    .await
    .unwrap();
    assert!(upd.data.is_none());
    let e = r(&root, &format!("identity/entity/id/{id}")).await.unwrap();
    assert_eq!(e["metadata"], json!({"team": "blue"}));
    assert_eq!(e["policies"], json!(["p1"]));

    // entity/name/:name creates, then updates; comma-separated policies are split.
    let bob = wd(
        &root,
        "identity/entity/name/bob",
        json!({"policies": "a,b"}),
    )
    .await;
    assert_eq!(bob["name"], "bob");
    assert!(
        w(&root, "identity/entity/name/bob", json!({"policies": "c"}))
            .await
            .unwrap()
            .data
            .is_none()
    );
    assert_eq!(
        r(&root, "identity/entity/name/bob").await.unwrap()["policies"],
        json!(["c"])
    );

    // A nameless entity gets OpenBao's generated name.
    let anon = wd(&root, "identity/entity", json!({})).await;
    let name = anon["name"].as_str().unwrap();
    assert!(
        name.starts_with("entity_") && name.ends_with(".root"),
        "{name}"
    );

    // Errors change nothing.
    let e = w(&root, "identity/entity/id/nope", json!({"name": "q"}))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "entity not found from id");
    let e = w(
        &root,
        &format!("identity/entity/id/{id}"),
        json!({"name": "bob"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "entity name is already in use");
    assert_eq!(
        r(&root, &format!("identity/entity/id/{id}")).await.unwrap()["name"],
        "alice"
    );

    let ids = list(&root, "identity/entity/id").await;
    assert_eq!(ids["keys"].as_array().unwrap().len(), 3);
    assert_eq!(ids["key_info"][&id], json!({"name": "alice"}));
    let names = list(&root, "identity/entity/name").await;
    assert!(names["keys"].as_array().unwrap().contains(&json!("bob")));

    // Delete by name, by id; deleting what is not there succeeds.
    root.delete("identity/entity/name/bob").await.unwrap();
    assert!(r(&root, "identity/entity/name/bob").await.is_none());
    root.delete(&format!("identity/entity/id/{id}"))
        .await
        .unwrap();
    root.delete("identity/entity/id/nope").await.unwrap();
    assert!(
        r(&root, &format!("identity/entity/id/{id}"))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn aliases_groups_lookups_and_merge() {
    let (_sr, root) = setup().await;
    let acc = userpass(&root).await;
    let carol = wd(&root, "identity/entity", json!({"name": "carol"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Entity aliases: the accessor and canonical id are checked.
    let e = w(
        &root,
        "identity/entity-alias",
        json!({"name": "carl", "canonical_id": carol, "mount_accessor": "bad"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "invalid mount accessor \"bad\"");
    let e = w(
        &root,
        "identity/entity-alias",
        json!({"name": "carl", "canonical_id": "nope", "mount_accessor": acc}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "invalid canonical ID");
    let e = w(
        &root,
        "identity/entity-alias",
        json!({"canonical_id": carol, "mount_accessor": acc}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message(),
        "'id' or 'mount_accessor' and 'name' must be provided"
    );
    let a = wd(
        &root,
        "identity/entity-alias",
        json!({"name": "carl", "canonical_id": carol, "mount_accessor": acc,
               "custom_metadata": {"x": "y"}}),
    )
    .await;
    assert_eq!(a["canonical_id"], json!(carol));
    let alias_id = a["id"].as_str().unwrap().to_string();
    let read = r(&root, &format!("identity/entity-alias/id/{alias_id}"))
        .await
        .unwrap();
    assert_eq!(read["mount_path"], "auth/userpass/");
    assert_eq!(read["mount_type"], "userpass");
    assert_eq!(read["custom_metadata"], json!({"x": "y"}));
    assert_eq!(read["namespace_id"], "root");
    // One alias per mount per entity.
    let e = w(
        &root,
        "identity/entity-alias",
        json!({"name": "other", "canonical_id": carol, "mount_accessor": acc}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message(),
        "Alias already exists for requested entity and mount accessor"
    );
    // An alias without canonical id gets a new entity.
    let solo = wd(
        &root,
        "identity/entity-alias",
        json!({"name": "solo", "mount_accessor": acc}),
    )
    .await;
    assert_ne!(solo["canonical_id"], json!(carol));
    let aliases = list(&root, "identity/entity-alias/id").await;
    assert_eq!(aliases["keys"].as_array().unwrap().len(), 2);
    assert_eq!(aliases["key_info"][&alias_id]["name"], "carl");
    assert!(
        w(
            &root,
            "identity/entity-alias/id/nope",
            json!({"custom_metadata": {}})
        )
        .await
        .unwrap_err()
        .message()
            == "invalid alias ID provided"
    );

    // Groups: internal with members, nested; external without members.
    let devs = wd(
        &root,
        "identity/group",
        json!({"name": "devs", "policies": ["gp"], "member_entity_ids": [carol],
               "metadata": {"m": "1"}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let outer = wd(
        &root,
        "identity/group",
        json!({"name": "outer", "member_group_ids": [devs]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = r(&root, "identity/group/name/devs").await.unwrap();
    assert_eq!(g["type"], "internal");
    assert_eq!(g["alias"], json!({}));
    // Becoming a member of `outer` is a change of `devs` (OpenBao keeps parent ids on it).
    assert_eq!(g["modify_index"], 2);
    assert_eq!(g["parent_group_ids"], json!([outer]));
    assert_eq!(g["member_group_ids"], Value::Null);
    let e = r(&root, &format!("identity/entity/id/{carol}"))
        .await
        .unwrap();
    assert_eq!(e["direct_group_ids"], json!([devs]));
    assert_eq!(e["inherited_group_ids"], json!([outer]));
    assert_eq!(e["group_ids"], json!([devs, outer]));
    let e = w(
        &root,
        "identity/group",
        json!({"name": "x", "type": "external", "member_entity_ids": [carol]}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message(),
        "member entities can't be set manually for external groups"
    );
    let e = w(
        &root,
        "identity/group",
        json!({"name": "x", "type": "weird"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "invalid group type \"weird\"");
    let e = w(
        &root,
        "identity/group",
        json!({"name": "x", "member_entity_ids": ["nope"]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal);
    assert_eq!(
        e.message(),
        "1 error occurred:\n\t* invalid entity ID \"nope\"\n\n"
    );
    assert!(r(&root, "identity/group/name/x").await.is_none());
    // Update by name answers 204.
    assert!(
        w(
            &root,
            "identity/group/name/devs",
            json!({"policies": ["gp", "gp2"]})
        )
        .await
        .unwrap()
        .data
        .is_none()
    );
    assert_eq!(
        r(&root, "identity/group/name/devs").await.unwrap()["modify_index"],
        3
    );
    let groups = list(&root, "identity/group/id").await;
    assert_eq!(
        groups["key_info"][&devs],
        json!({"name": "devs", "num_member_entities": 1, "num_parent_groups": 1})
    );

    // Group aliases: without a canonical id an external group is made for it.
    let ga = wd(
        &root,
        "identity/group-alias",
        json!({"name": "gh-team", "mount_accessor": acc}),
    )
    .await;
    let ext = ga["canonical_id"].as_str().unwrap().to_string();
    let g = r(&root, &format!("identity/group/id/{ext}")).await.unwrap();
    assert_eq!(g["type"], "external");
    assert_eq!(g["alias"]["name"], "gh-team");
    assert_eq!(g["alias"]["mount_path"], "auth/userpass/");
    let e = w(
        &root,
        "identity/group-alias",
        json!({"name": "g2", "mount_accessor": acc, "canonical_id": devs}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);

    // Lookups: exactly one criterion; not found is an empty answer.
    let found = wd(&root, "identity/lookup/entity", json!({"name": "carol"})).await;
    assert_eq!(found["id"], json!(carol));
    let found = wd(
        &root,
        "identity/lookup/entity",
        json!({"alias_name": "carl", "alias_mount_accessor": acc}),
    )
    .await;
    assert_eq!(found["id"], json!(carol));
    let found = wd(
        &root,
        "identity/lookup/entity",
        json!({"alias_id": alias_id}),
    )
    .await;
    assert_eq!(found["id"], json!(carol));
    assert!(
        w(&root, "identity/lookup/entity", json!({"name": "nobody"}))
            .await
            .unwrap()
            .data
            .is_none()
    );
    assert_eq!(
        w(&root, "identity/lookup/entity", json!({}))
            .await
            .unwrap_err()
            .message(),
        "query parameter not supplied"
    );
    assert_eq!(
        w(
            &root,
            "identity/lookup/entity",
            json!({"name": "carol", "id": carol})
        )
        .await
        .unwrap_err()
        .message(),
        "query parameter conflict; please supply distinct set of query parameters"
    );
    let g = wd(
        &root,
        "identity/lookup/group",
        json!({"alias_name": "gh-team", "alias_mount_accessor": acc}),
    )
    .await;
    assert_eq!(g["id"], json!(ext));
    let g = wd(&root, "identity/lookup/group", json!({"name": "devs"})).await;
    assert_eq!(g["id"], json!(devs));

    // Merge: aliases and group memberships move to the target; the source is gone.
    let dave = wd(&root, "identity/entity", json!({"name": "dave"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = w(
        &root,
        "identity/entity/merge",
        json!({"from_entity_ids": ["nope"], "to_entity_id": dave}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "entity id to merge from is invalid");
    let e = w(
        &root,
        "identity/entity/merge",
        json!({"from_entity_ids": [carol], "to_entity_id": "nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "entity id to merge to is invalid");
    let e = w(
        &root,
        "identity/entity/merge",
        json!({"to_entity_id": dave}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message(), "missing entity ids to merge from");
    w(
        &root,
        "identity/entity/merge",
        json!({"from_entity_ids": [carol], "to_entity_id": dave}),
    )
    .await
    .unwrap();
    assert!(
        r(&root, &format!("identity/entity/id/{carol}"))
            .await
            .is_none()
    );
    let d = r(&root, &format!("identity/entity/id/{dave}"))
        .await
        .unwrap();
    assert_eq!(d["merged_entity_ids"], json!([carol]));
    assert_eq!(d["aliases"][0]["name"], "carl");
    assert_eq!(d["aliases"][0]["canonical_id"], json!(dave));
    assert_eq!(d["aliases"][0]["merged_from_canonical_ids"], json!([carol]));
    assert_eq!(d["direct_group_ids"], json!([devs]));
}

#[tokio::test]
async fn logins_create_and_reuse_entities_and_identity_policies_apply_at_request_time() {
    let (sr, root) = setup().await;
    let acc = userpass(&root).await;
    root.auth()
        .userpass("userpass")
        .write_user("carl", "pw", data(json!({"token_policies": "tp"})))
        .await
        .unwrap();
    root.sys()
        .write_policy(
            "tp",
            r#"path "secret/data/own/*" { capabilities = ["read"] }"#,
        )
        .await
        .unwrap();
    root.sys()
        .write_policy(
            "ep",
            r#"path "secret/data/ent/*" { capabilities = ["read"] }"#,
        )
        .await
        .unwrap();
    root.sys()
        .write_policy(
            "gp",
            r#"path "secret/data/grp/*" { capabilities = ["read"] }"#,
        )
        .await
        .unwrap();
    for p in ["own/x", "ent/x", "grp/x"] {
        root.kv("secret")
            .put(p, &data(json!({"v": 1})))
            .await
            .unwrap();
    }

    // First login: a new entity with the alias (mount accessor, user name).
    let auth = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    assert!(!auth.entity_id.is_empty());
    assert!(auth.identity_policies.is_empty());
    let entity = wd(
        &root,
        "identity/lookup/entity",
        json!({"alias_name": "carl", "alias_mount_accessor": acc}),
    )
    .await;
    assert_eq!(entity["id"], json!(auth.entity_id));
    assert!(entity["name"].as_str().unwrap().starts_with("entity_"));
    assert_eq!(entity["aliases"][0]["metadata"], Value::Null);
    assert_eq!(entity["aliases"][0]["custom_metadata"], Value::Null);
    let token = auth.client_token.expose_secret().to_string();
    let c = sr.client(token.as_str());
    assert_eq!(entity_of(&c).await, auth.entity_id);
    // Its own policy only, so far.
    assert!(c.kv("secret").get("own/x").await.unwrap().is_some());
    assert_eq!(
        c.kv("secret").get("ent/x").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );

    // The entity's and a group's policies apply to the existing token at once.
    let eid = auth.entity_id.clone();
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"policies": ["ep"]}),
    )
    .await
    .unwrap();
    assert!(c.kv("secret").get("ent/x").await.unwrap().is_some());
    let g = wd(
        &root,
        "identity/group",
        json!({"name": "devs", "policies": ["gp"], "member_entity_ids": [eid]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(c.kv("secret").get("grp/x").await.unwrap().is_some());
    let look = c.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert_eq!(look.get("identity_policies").unwrap(), &json!(["ep", "gp"]));
    assert_eq!(look.get("external_namespace_policies").unwrap(), &json!({}));
    assert_eq!(look.get("policies").unwrap(), &json!(["default", "tp"]));

    // Second login reuses the entity and reports the identity policies.
    let again = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    assert_eq!(again.entity_id, eid);
    assert_eq!(again.identity_policies, vec!["ep", "gp"]);
    assert_eq!(again.policies, vec!["default", "ep", "gp", "tp"]);
    assert_eq!(again.token_policies, vec!["default", "tp"]);
    assert_eq!(
        list(&root, "identity/entity/id").await["keys"],
        json!([eid])
    );

    // Child tokens carry the entity.
    root.sys()
        .write_policy(
            "tp",
            r#"path "secret/data/own/*" { capabilities = ["read"] }
path "auth/token/create" { capabilities = ["update"] }"#,
        )
        .await
        .unwrap();
    let child = c
        .handle(Request::write("auth/token/create", data(json!({}))))
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(child.entity_id, eid);
    assert_eq!(child.identity_policies, vec!["ep", "gp"]);

    // Leaving the group, or the entity being disabled, takes effect at once too.
    w(
        &root,
        &format!("identity/group/id/{g}"),
        json!({"member_entity_ids": []}),
    )
    .await
    .unwrap();
    assert_eq!(
        c.kv("secret").get("grp/x").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"disabled": true}),
    )
    .await
    .unwrap();
    // A disabled entity's tokens are refused as invalid ones, and it cannot log in.
    let e = c.kv("secret").get("own/x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    assert_eq!(e.wire_message(), "permission denied");
    let e = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied);
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"disabled": false}),
    )
    .await
    .unwrap();
    assert!(c.kv("secret").get("own/x").await.unwrap().is_some());

    // Identity survives a seal: the indexes are rebuilt from storage on unseal.
    let key = sr.dev_unseal_key().unwrap();
    sr.seal().await.unwrap();
    sr.unseal(key.expose_secret()).await.unwrap();
    assert!(c.kv("secret").get("ent/x").await.unwrap().is_some());
    let after = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    assert_eq!(after.entity_id, eid);

    // Deleting the entity invalidates its tokens; the next login makes a new one.
    root.delete(&format!("identity/entity/id/{eid}"))
        .await
        .unwrap();
    assert_eq!(
        c.kv("secret")
            .get("own/x")
            .await
            .unwrap_err()
            .wire_message(),
        "permission denied"
    );
    let fresh = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    assert!(!fresh.entity_id.is_empty());
    assert_ne!(fresh.entity_id, eid);
}

/// Two engines on one SQLite file (as two processes): an entity made by a login on one, and
/// group changes made on either, hold for the other's decisions without a restart.
#[tokio::test]
async fn identity_changes_reach_another_engine_on_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Strongroom::open(Config::sqlite(&path)).await.unwrap();
    let init = a.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    let root_token = init.root_token.expose_secret().to_string();
    a.unseal_with_key(&key).await.unwrap();
    let b = Strongroom::open(Config::sqlite(&path)).await.unwrap();
    b.unseal_with_key(&key).await.unwrap();
    let (ra, rb) = (a.client(root_token.as_str()), b.client(root_token.as_str()));
    ra.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    ra.kv("secret")
        .put("grp/x", &data(json!({"v": 1})))
        .await
        .unwrap();
    ra.sys()
        .write_policy(
            "gp",
            r#"path "secret/data/grp/*" { capabilities = ["read"] }"#,
        )
        .await
        .unwrap();
    ra.auth().enable("userpass", "userpass").await.unwrap();
    ra.auth()
        .userpass("userpass")
        .write_user("carl", "pw", data(json!({})))
        .await
        .unwrap();
    let auth = ra
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    let on_b = b.client(auth.client_token.expose_secret());
    // B sees the entity A created (its token is valid there) ...
    assert_eq!(entity_of(&on_b).await, auth.entity_id);
    assert_eq!(
        on_b.kv("secret").get("grp/x").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        r(&rb, &format!("identity/entity/id/{}", auth.entity_id))
            .await
            .unwrap()["id"],
        json!(auth.entity_id)
    );
    // ... and a group A adds it to.
    w(
        &ra,
        "identity/group",
        json!({"name": "devs", "policies": ["gp"], "member_entity_ids": [auth.entity_id]}),
    )
    .await
    .unwrap();
    assert!(on_b.kv("secret").get("grp/x").await.unwrap().is_some());
    // A change made on B counts on A.
    w(&rb, "identity/group/name/devs", json!({"policies": []}))
        .await
        .unwrap();
    let on_a = a.client(auth.client_token.expose_secret());
    assert_eq!(
        on_a.kv("secret").get("grp/x").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
}

#[tokio::test]
async fn approle_alias_is_the_role_id() {
    let (sr, root) = setup().await;
    root.auth().enable("approle", "approle").await.unwrap();
    let acc = root
        .read("sys/auth")
        .await
        .unwrap()
        .unwrap()
        .get("approle/")
        .unwrap()["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let ar = root.auth().approle("approle");
    ar.write_role("ci", data(json!({"token_policies": "deploy"})))
        .await
        .unwrap();
    let role_id = ar.role_id("ci").await.unwrap();
    let sid = ar.generate_secret_id("ci", data(json!({}))).await.unwrap();
    let c = sr
        .login_approle("approle", &role_id, sid.secret_id.expose_secret())
        .await
        .unwrap();
    let me = entity_of(&c).await;
    assert!(!me.is_empty());
    let e = wd(
        &root,
        "identity/lookup/entity",
        json!({"alias_name": role_id, "alias_mount_accessor": acc}),
    )
    .await;
    assert_eq!(e["id"], json!(me));
    assert_eq!(e["aliases"][0]["metadata"], json!({"role_name": "ci"}));
    assert_eq!(e["aliases"][0]["mount_type"], "approle");
}

#[tokio::test]
async fn kubernetes_alias_follows_alias_name_source() {
    use k8s_standin::{Alg, StandIn};
    const AUD: &str = "https://kubernetes.default.svc";
    let (sr, root) = setup().await;
    root.auth()
        .enable("kubernetes", "kubernetes")
        .await
        .unwrap();
    let k8s = StandIn::start("reviewer-jwt").await;
    let k = root.auth().kubernetes("kubernetes");
    k.configure(data(json!({
        "kubernetes_host": k8s.url(),
        "kubernetes_ca_cert": k8s.ca_pem,
        "token_reviewer_jwt": "reviewer-jwt",
    })))
    .await
    .unwrap();
    let acc = root
        .read("sys/auth")
        .await
        .unwrap()
        .unwrap()
        .get("kubernetes/")
        .unwrap()["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    for (role, source) in [
        ("by-uid", "serviceaccount_uid"),
        ("by-name", "serviceaccount_name"),
    ] {
        k.write_role(
            role,
            data(json!({
                "bound_service_account_names": "api-sa",
                "bound_service_account_namespaces": "prod",
                "policies": "api",
                "alias_name_source": source,
            })),
        )
        .await
        .unwrap();
    }
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let jwt = k8s.projected(Alg::Rs256, "prod", "api-sa", "uid-7", &[AUD], exp);
    let by_uid = sr
        .login_kubernetes("kubernetes", "by-uid", &jwt)
        .await
        .unwrap();
    let by_name = sr
        .login_kubernetes("kubernetes", "by-name", &jwt)
        .await
        .unwrap();
    let uid_entity = entity_of(&by_uid).await;
    let name_entity = entity_of(&by_name).await;
    // Two aliases of one mount, so two entities.
    assert_ne!(uid_entity, name_entity);
    let e = wd(
        &root,
        "identity/lookup/entity",
        json!({"alias_name": "uid-7", "alias_mount_accessor": acc}),
    )
    .await;
    assert_eq!(e["id"], json!(uid_entity));
    assert_eq!(
        e["aliases"][0]["metadata"],
        json!({"service_account_name": "api-sa", "service_account_namespace": "prod",
               "service_account_secret_name": "", "service_account_uid": "uid-7"})
    );
    let e = wd(
        &root,
        "identity/lookup/entity",
        json!({"alias_name": "prod/api-sa", "alias_mount_accessor": acc}),
    )
    .await;
    assert_eq!(e["id"], json!(name_entity));
    k8s.stop().await;
}

#[tokio::test]
async fn templated_policies_render_per_entity_and_drop_unresolvable_rules() {
    let (sr, root) = setup().await;
    let acc = userpass(&root).await;
    root.auth()
        .userpass("userpass")
        .write_user("carl", "pw", data(json!({"token_policies": "tmpl"})))
        .await
        .unwrap();
    let auth = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    let eid = auth.entity_id.clone();
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"name": "carlos", "metadata": {"team": "red"}}),
    )
    .await
    .unwrap();
    let gid = wd(
        &root,
        "identity/group",
        json!({"name": "devs", "member_entity_ids": [eid]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = format!(
        r#"
path "secret/data/id/{{{{identity.entity.id}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/name/{{{{identity.entity.name}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/team/{{{{identity.entity.metadata.team}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/alias/{{{{identity.entity.aliases.{acc}.name}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/gname/{{{{identity.groups.ids.{gid}.name}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/gid/{{{{identity.groups.names.devs.id}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/missing/{{{{identity.entity.metadata.nope}}}}/*" {{ capabilities = ["read"] }}
path "secret/data/missing/*" {{ capabilities = ["deny"] }}
"#
    );
    root.sys().write_policy("tmpl", &policy).await.unwrap();
    let kv = root.kv("secret");
    let inside = [
        format!("id/{eid}/x"),
        "name/carlos/x".to_string(),
        "team/red/x".to_string(),
        "alias/carl/x".to_string(),
        "gname/devs/x".to_string(),
        format!("gid/{gid}/x"),
    ];
    let outside = [
        "id/other/x".to_string(),
        "name/carl/x".to_string(),
        "team/blue/x".to_string(),
        "alias/other/x".to_string(),
        "gname/other/x".to_string(),
        "gid/other/x".to_string(),
        "missing/x".to_string(),
        "missing//x".to_string(),
    ];
    for p in inside.iter().chain(outside.iter()) {
        kv.put(p, &data(json!({"v": 1}))).await.unwrap();
    }
    let c = sr.client(auth.client_token.expose_secret());
    for p in &inside {
        assert!(c.kv("secret").get(p).await.unwrap().is_some(), "{p}");
    }
    for p in &outside {
        assert_eq!(
            c.kv("secret").get(p).await.unwrap_err().code(),
            ErrorCode::PermissionDenied,
            "{p}"
        );
    }
    // Renaming the entity moves the templated prefix for the token already issued.
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"name": "carla"}),
    )
    .await
    .unwrap();
    kv.put("name/carla/x", &data(json!({"v": 1})))
        .await
        .unwrap();
    assert!(c.kv("secret").get("name/carla/x").await.unwrap().is_some());
    assert_eq!(
        c.kv("secret")
            .get("name/carlos/x")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::PermissionDenied
    );
    // capabilities-self sees the same rendered ACL.
    let caps = w(
        &c,
        "sys/capabilities-self",
        json!({"paths": ["secret/data/team/red/x", "secret/data/team/blue/x"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        caps.get("secret/data/team/red/x").unwrap(),
        &json!(["read"])
    );
    assert_eq!(
        caps.get("secret/data/team/blue/x").unwrap(),
        &json!(["deny"])
    );

    // A substituted `/` (or wildcard) fails the token's requests, as OpenBao (400
    // `Forbidden`), even those its other rules allow; a clean name restores them.
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"name": "car/la"}),
    )
    .await
    .unwrap();
    let e = c.kv("secret").get("team/red/x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(e.wire_message(), "Forbidden");
    w(
        &root,
        &format!("identity/entity/id/{eid}"),
        json!({"name": "carla"}),
    )
    .await
    .unwrap();
    assert!(c.kv("secret").get("team/red/x").await.unwrap().is_some());

    // A token without an entity gets none of the templated rules; the default policy's
    // own-entity rules work for entity tokens.
    let plain = root
        .handle(Request::write(
            "auth/token/create",
            data(json!({"policies": ["tmpl"]})),
        ))
        .await
        .unwrap()
        .auth
        .unwrap();
    let p = sr.client(plain.client_token.expose_secret());
    assert_eq!(
        p.kv("secret").get("team/red/x").await.unwrap_err().code(),
        ErrorCode::PermissionDenied
    );
    assert!(r(&c, &format!("identity/entity/id/{eid}")).await.is_some());
    assert!(r(&c, "identity/entity/name/carla").await.is_some());
    assert_eq!(
        c.read("identity/entity/name/someone-else")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::PermissionDenied
    );
}

/// The audit entry of an entity token's request names the entity and its identity
/// policies; `policies` is the sorted union, as OpenBao's auth block.
#[tokio::test]
async fn audit_entries_carry_the_entity_and_identity_policies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let sr = Strongroom::open(
        Config::dev().audit(strongroom::AuditDevice::file("file", log.to_str().unwrap())),
    )
    .await
    .unwrap();
    let root = sr.client(sr.dev_root_token().unwrap());
    userpass(&root).await;
    root.auth()
        .userpass("userpass")
        .write_user("carl", "pw", data(json!({"token_policies": "tp"})))
        .await
        .unwrap();
    let auth = root
        .auth()
        .userpass("userpass")
        .login_auth("carl", "pw")
        .await
        .unwrap();
    w(
        &root,
        &format!("identity/entity/id/{}", auth.entity_id),
        json!({"policies": ["zz", "ep"]}),
    )
    .await
    .unwrap();
    let c = sr.client(auth.client_token.expose_secret());
    c.read("auth/token/lookup-self").await.unwrap().unwrap();
    assert!(sr.flush_audit(std::time::Duration::from_secs(5)).await);
    let text = std::fs::read_to_string(&log).unwrap();
    let entry: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|e| e["type"] == "response" && e["request"]["path"] == "auth/token/lookup-self")
        .unwrap();
    assert_eq!(entry["auth"]["entity_id"], json!(auth.entity_id));
    // Stored sorted, as OpenBao stores an entity's policies.
    assert_eq!(entry["auth"]["identity_policies"], json!(["ep", "zz"]));
    assert_eq!(entry["auth"]["token_policies"], json!(["default", "tp"]));
    assert_eq!(
        entry["auth"]["policies"],
        json!(["default", "ep", "tp", "zz"])
    );
}

/// Names in `identity/entity/name/:name` and `identity/group/name/:name` are matched
/// case-insensitively, so the ACL judges them lowercased: a rule denying `.../name/admin`
/// also covers `.../name/ADMIN`, which acts on the same entity. (OpenBao judges the path as
/// sent, so there the uppercase form gets past the deny.)
#[tokio::test]
async fn a_name_denied_in_lowercase_is_denied_in_any_case() {
    let (sr, root) = setup().await;
    w(
        &root,
        "identity/entity",
        json!({"name": "admin", "policies": ["root-ish"]}),
    )
    .await
    .unwrap();
    w(&root, "identity/group", json!({"name": "ops"}))
        .await
        .unwrap();
    root.sys()
        .write_policy(
            "limited",
            r#"path "identity/entity/name/*" { capabilities = ["create", "read", "update"] }
path "identity/entity/name/admin" { capabilities = ["deny"] }
path "identity/group/name/*" { capabilities = ["create", "read", "update"] }
path "identity/group/name/ops" { capabilities = ["deny"] }"#,
        )
        .await
        .unwrap();
    let auth = root
        .handle(Request::write(
            "auth/token/create",
            data(json!({"policies": ["limited"]})),
        ))
        .await
        .unwrap()
        .auth
        .unwrap();
    let t = sr.client(auth.client_token.expose_secret());
    for path in [
        "identity/entity/name/ADMIN",
        "identity/entity/name/Admin",
        "identity/group/name/OPS",
    ] {
        let read = t.read(path).await.unwrap_err();
        assert_eq!(read.code(), ErrorCode::PermissionDenied, "read {path}");
        let write = w(&t, path, json!({"policies": ["mine"]}))
            .await
            .unwrap_err();
        assert_eq!(write.code(), ErrorCode::PermissionDenied, "write {path}");
    }
    // Nothing changed, and the allowed names still work in any case.
    let admin = r(&root, "identity/entity/name/admin").await.unwrap();
    assert_eq!(admin["policies"], json!(["root-ish"]));
    w(&t, "identity/entity/name/Carol", json!({"policies": ["p"]}))
        .await
        .unwrap();
    let carol = r(&t, "identity/entity/name/CAROL").await.unwrap();
    assert_eq!(carol["name"], "carol");
}
