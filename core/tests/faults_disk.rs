//! A full disk under the SQLite store: a write that does not fit fails with a clear storage
//! error and leaves nothing half-written, reads keep working, and once there is room again the
//! store opens cleanly with every acknowledged write in it.
//!
//! The disk is a real filesystem: a small tmpfs the test mounts (as root, which CI is); a
//! machine where it cannot be mounted fails the test with the reason, it does not skip it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::json;
use strongroom::{Config, ErrorCode, Strongroom, data};

/// A tmpfs of a fixed size, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount(8) for the full-disk test: {e}"));
        assert!(
            out.status.success(),
            "the full-disk test mounts a {size} tmpfs and needs root (or CAP_SYS_ADMIN) for it: \
             mount said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { _dir: dir, path }
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn db(&self) -> PathBuf {
        self.path.join("strongroom.db")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn random_value(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

async fn open_unsealed(db: &Path, key: &str) -> Strongroom {
    let sr = Strongroom::open(Config::sqlite(db)).await.unwrap();
    sr.unseal(key).await.unwrap();
    sr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_cleanly_and_loses_nothing() {
    let disk = SmallDisk::mount("4m");
    let sr = Strongroom::open(Config::sqlite(disk.db())).await.unwrap();
    let init = sr.init(1, 1).await.unwrap();
    let key = init.keys[0].expose_secret().to_string();
    sr.unseal(&key).await.unwrap();
    let root = init.root_token.expose_secret().to_string();
    let c = sr.client(&root);
    c.sys()
        .enable_mount("secret", "kv", &[("version", "2")])
        .await
        .unwrap();
    let kv = c.kv("secret");

    // Fill the disk with incompressible values until a write is refused.
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut refusal = None;
    for i in 0..2_000 {
        let (path, value) = (format!("fill/{i}"), random_value(8 * 1024));
        match kv.put(&path, &data(json!({ "v": value }))).await {
            Ok(_) => acknowledged.push((path, value)),
            Err(e) => {
                refusal = Some((path, e));
                break;
            }
        }
    }
    let (refused_path, err) = refusal.expect("4 MiB filled up without a refused write");
    assert!(
        acknowledged.len() > 10,
        "only {} writes fit",
        acknowledged.len()
    );
    eprintln!("{} writes fit; refused with: {err}", acknowledged.len());
    assert_eq!(err.code(), ErrorCode::Storage, "{err}");
    let msg = err.message().to_lowercase();
    assert!(msg.contains("full"), "the error says why: {msg}");
    assert!(!msg.contains(&acknowledged[0].1), "no value in the error");

    // The refused write left nothing: no version, no metadata.
    let missing = kv.get(&refused_path).await;
    assert!(
        matches!(&missing, Ok(None))
            || matches!(&missing, Err(e) if e.code() == ErrorCode::NotFound),
        "{missing:?}"
    );
    // Reads keep working, through the cache and from the file.
    for (path, value) in acknowledged.iter().step_by(7) {
        let got = kv.get(path).await.unwrap().unwrap();
        assert_eq!(got.data.get_str("v"), Some(value.as_str()), "{path}");
    }
    // Another write still fails cleanly, and the engine still answers.
    let again = kv
        .put("fill/again", &data(json!({ "v": random_value(8 * 1024) })))
        .await;
    assert_eq!(again.unwrap_err().code(), ErrorCode::Storage);
    assert!(sr.seal_status().await.unwrap().initialized);

    // Room again: the store opens cleanly, holds every acknowledged write, and takes new ones.
    sr.shutdown().await.unwrap();
    drop(sr);
    disk.grow("64m");
    let sr = open_unsealed(&disk.db(), &key).await;
    let kv = sr.client(&root).kv("secret");
    for (path, value) in &acknowledged {
        let got = kv.get(path).await.unwrap().unwrap();
        assert_eq!(got.data.get_str("v"), Some(value.as_str()), "{path}");
    }
    assert!(
        kv.get(&refused_path)
            .await
            .map(|s| s.is_none())
            .unwrap_or(true)
    );
    kv.put("after", &data(json!({ "v": "fits" })))
        .await
        .unwrap();
    assert_eq!(
        kv.get("after").await.unwrap().unwrap().data.get_str("v"),
        Some("fits")
    );
}

/// A key file that cannot be written fails `init_with_key_file` before the store is
/// initialised, so the only unseal key is never lost: the store can be initialised again.
#[tokio::test]
async fn an_unwritable_key_file_leaves_the_store_uninitialised() {
    let dir = tempfile::tempdir().unwrap();
    let sr = Strongroom::open(Config::sqlite(dir.path().join("strongroom.db")))
        .await
        .unwrap();

    // A directory that does not exist.
    let e = sr
        .init_with_key_file(dir.path().join("missing/unseal.key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    assert!(!sr.is_initialized().await.unwrap());

    // A full disk: the key file's room cannot be taken.
    let disk = SmallDisk::mount("64k");
    let filler = disk.path.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 256 * 1024]);
    let key_path = disk.path.join("unseal.key");
    let e = sr.init_with_key_file(&key_path).await.unwrap_err();
    assert!(
        matches!(e.code(), ErrorCode::Storage | ErrorCode::InvalidInput),
        "{e}"
    );
    assert!(!key_path.exists(), "a half-made key file is removed");
    assert!(!sr.is_initialized().await.unwrap());

    // Room again: initialisation works and the key file unseals the store.
    std::fs::remove_file(&filler).unwrap();
    let root = sr.init_with_key_file(&key_path).await.unwrap();
    assert!(sr.is_initialized().await.unwrap());
    sr.shutdown().await.unwrap();
    drop(sr);
    let reopened = Strongroom::open(
        Config::sqlite(dir.path().join("strongroom.db")).unseal_key_file(&key_path),
    )
    .await
    .unwrap();
    assert!(!reopened.seal_status().await.unwrap().sealed);
    reopened
        .client(root.expose_secret())
        .sys()
        .enable_mount("kv", "kv", &[])
        .await
        .unwrap();
}
