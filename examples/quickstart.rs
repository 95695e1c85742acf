//! Strongroom quickstart: an embedded, encrypted secret store in `./strongroom-data`.
//!
//! First run: creates the SQLite store, initialises it with one unseal key kept in
//! `strongroom-data/unseal.key` (mode 0600), mounts `secret/` as KV v2. Later runs: unseal from
//! that key file. Every run writes a new version of `secret/app/db` and reads it back.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Keeping the unseal key next to the data (and the root token in a file) is for a demo only:
//! in production the key comes from a secret manager, a KMS or an env var, and the root token is
//! revoked once real policies and auth methods exist.

use std::error::Error;
use std::path::Path;

use serde_json::json;
use strongroom::{Config, Strongroom, data};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = Path::new("strongroom-data");
    std::fs::create_dir_all(dir)?;
    let key_file = dir.join("unseal.key");
    let token_file = dir.join("root.token");

    let config = Config::sqlite(dir.join("strongroom.db")).unseal_key_file(&key_file);
    let sr = Strongroom::open(config).await?;

    let token = if sr.is_initialized().await? {
        println!(
            "unsealed an existing store in {} (key from {})",
            dir.display(),
            key_file.display()
        );
        std::fs::read_to_string(&token_file)?.trim().to_string()
    } else {
        let root = sr.init_with_key_file(&key_file).await?;
        let token = secrecy::ExposeSecret::expose_secret(&root).to_string();
        write_private(&token_file, &token)?;
        sr.client(&token)
            .sys()
            .enable_mount("secret", "kv", &[("version", "2")])
            .await?;
        println!(
            "initialised a new store in {} (unseal key in {}, root token in {}, both mode 0600)",
            dir.display(),
            key_file.display(),
            token_file.display()
        );
        token
    };

    let kv = sr.client(&token).kv("secret");
    let written = kv
        .put(
            "app/db",
            &data(json!({"username": "app", "password": random_password()})),
        )
        .await?;
    println!(
        "wrote secret/app/db version {} at {}",
        written.version, written.created_time
    );

    let secret = kv.get("app/db").await?.ok_or("secret/app/db vanished")?;
    let password_len = secret.data.get_str("password").map_or(0, str::len);
    println!(
        "read secret/app/db version {}: username={}, password=<{} characters, not printed>",
        secret.metadata.version,
        secret.data.get_str("username").unwrap_or(""),
        password_len
    );
    let meta = kv.metadata("app/db").await?.ok_or("metadata vanished")?;
    println!(
        "secret/app/db keeps {} versions (current {})",
        meta.versions.len(),
        meta.current_version
    );
    Ok(())
}

fn random_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(contents.as_bytes())
}
