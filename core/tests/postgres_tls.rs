//! TLS to PostgreSQL with libpq's parameters in the `connection_url` (`sslmode`,
//! `sslrootcert`), against a cluster of the test's own that speaks TLS with a certificate made
//! here and refuses every TCP connection that does not (`hostnossl … reject`): the database
//! engine connects, checks the server as the mode says, and issues credentials over TLS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod private_pg;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Client, Config, ErrorCode, Strongroom, data};

/// A CA, and (when `leaf_name` is given) a server certificate it signs for that name.
fn new_ca() -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

async fn configure(root: &Client, url: String) -> strongroom::Result<Vec<String>> {
    root.database("database")
        .configure(
            "pg",
            data(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": url,
                "username": "postgres",
                "password": "unused",
                "allowed_roles": "*",
                "verify_connection": true,
            })),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_engine_speaks_tls_as_libpq_parameters_say() {
    let (ca_pem, ca) = new_ca();
    let (other_ca_pem, _) = new_ca();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["db.internal".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let pg = private_pg::PrivatePg::start_tls(&server.pem(), &server_key.serialize_pem());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, &other_ca_pem).unwrap();

    let sr = Strongroom::open(Config::dev()).await.unwrap();
    let root = sr.client(sr.dev_root_token().unwrap().expose_secret());
    root.sys()
        .enable_mount("database", "database", &[])
        .await
        .unwrap();
    let port = pg.port;
    // By name (db.internal, the certificate's), reached at 127.0.0.1.
    let named = |q: &str| {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@db.internal:{port}/postgres?hostaddr=127.0.0.1&{q}"
        )
    };
    // By address: the certificate does not name 127.0.0.1.
    let by_ip = |q: &str| {
        format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/postgres?{q}")
    };

    // The server refuses connections without TLS, so `disable` cannot connect.
    let e = configure(&root, named("sslmode=disable"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no encryption"), "{e}");
    // libpq's default (prefer) and `require` encrypt without checking the certificate.
    configure(&root, named("application_name=t")).await.unwrap();
    configure(&root, by_ip("sslmode=require")).await.unwrap();
    // verify-full: the chain and the name.
    let ca_q = format!("sslrootcert={}", ca_file.display());
    configure(&root, named(&format!("sslmode=verify-full&{ca_q}")))
        .await
        .unwrap();
    let e = configure(
        &root,
        named(&format!(
            "sslmode=verify-full&sslrootcert={}",
            other_ca_file.display()
        )),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = configure(&root, by_ip(&format!("sslmode=verify-full&{ca_q}")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    // verify-ca: the chain only; `require` with a root certificate is verify-ca, as in libpq.
    configure(&root, by_ip(&format!("sslmode=verify-ca&{ca_q}")))
        .await
        .unwrap();
    let e = configure(
        &root,
        by_ip(&format!(
            "sslmode=require&sslrootcert={}",
            other_ca_file.display()
        )),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    // Bad parameters are refused before any connection, and change nothing.
    let e = configure(&root, named("sslmode=verify-full"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.to_string().contains("needs sslrootcert"), "{e}");

    // Credentials are issued over the verified session: the creation statement records
    // whether its own session is encrypted.
    let local = pg.connect_local("postgres").await;
    local
        .batch_execute("CREATE TABLE seen (name text, ssl boolean)")
        .await
        .unwrap();
    configure(&root, named(&format!("sslmode=verify-full&{ca_q}")))
        .await
        .unwrap();
    let db = root.database("database");
    db.write_role(
        "app",
        data(json!({
            "db_name": "pg",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; INSERT INTO seen SELECT '{{name}}', ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
            "default_ttl": "1h",
        })),
    )
    .await
    .unwrap();
    let cred = db.creds("app").await.unwrap();
    let row = local
        .query_one(
            "SELECT ssl FROM seen WHERE name = $1",
            &[&cred.username.as_str()],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the credential was created over TLS");
    root.leases().revoke(&cred.lease_id).await.unwrap();
    drop(sr);

    // The storage backend (pool and change listener) takes the same parameters.
    let store = |q: &str| {
        format!("postgresql://postgres@db.internal:{port}/postgres?hostaddr=127.0.0.1&{q}")
    };
    let Err(e) = Strongroom::open(Config::postgres(store(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other_ca_file.display()
    ))))
    .await
    else {
        panic!("a server signed by another CA is refused");
    };
    assert!(e.to_string().contains("certificate"), "{e}");
    let sr = Strongroom::open(Config::postgres(store(&format!(
        "sslmode=verify-full&{ca_q}"
    ))))
    .await
    .unwrap();
    let init = sr.init(1, 1).await.unwrap();
    sr.unseal(init.keys[0].expose_secret()).await.unwrap();
    let root = sr.client(init.root_token.expose_secret());
    root.sys()
        .enable_mount("kv", "kv", &[("version", "2")])
        .await
        .unwrap();
    root.kv("kv")
        .put("a", &data(json!({"k": "v"})))
        .await
        .unwrap();
    let seen = local
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name LIKE 'strongroom%'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, clear): (i64, i64) = (seen.get(0), seen.get(1));
    assert!(
        encrypted >= 2,
        "the pool and the change listener: {encrypted}"
    );
    assert_eq!(clear, 0, "every store connection is encrypted");
}
