//! One behaviour suite for every storage backend: the same cases run against
//! `MemoryBackend` (the reference), `SqliteBackend` in a temporary directory and
//! `PostgresBackend` in a fresh database created for each test from
//! `STRONGROOM_TEST_POSTGRES_URL` (PostgreSQL not reachable = failure, never a skip).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod storage_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom::ErrorCode;
use strongroom::storage::{Backend, MemoryBackend, Page, PostgresBackend, SqliteBackend, TxnOp};
use tempfile::TempDir;

use storage_support::FreshDatabase;

/// A backend under test, plus what is needed to open a second handle on the same store.
struct Store {
    backend: Arc<dyn Backend>,
    place: Place,
    // Dropped last: the directory / database outlive every handle above.
    _dir: Option<TempDir>,
    _db: Option<FreshDatabase>,
}

enum Place {
    Memory,
    Sqlite(PathBuf),
    Postgres(String),
}

impl Store {
    fn b(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Another handle on the same store (own connections), or `None` for the memory backend.
    async fn second_handle(&self) -> Option<Arc<dyn Backend>> {
        match &self.place {
            Place::Memory => None,
            Place::Sqlite(path) => Some(Arc::new(SqliteBackend::open(path).unwrap())),
            Place::Postgres(url) => Some(Arc::new(PostgresBackend::connect(url).await.unwrap())),
        }
    }
}

async fn memory() -> Store {
    Store {
        backend: Arc::new(MemoryBackend::new()),
        place: Place::Memory,
        _dir: None,
        _db: None,
    }
}

async fn sqlite() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strongroom.db");
    Store {
        backend: Arc::new(SqliteBackend::open(&path).unwrap()),
        place: Place::Sqlite(path),
        _dir: Some(dir),
        _db: None,
    }
}

async fn postgres() -> Store {
    let db = FreshDatabase::create().await;
    let backend = PostgresBackend::connect(db.url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "could not open the PostgreSQL backend on {} ({}): {e}",
                storage_support::describe(db.url()),
                storage_support::POSTGRES_URL_VAR
            )
        });
    Store {
        backend: Arc::new(backend),
        place: Place::Postgres(db.url().to_string()),
        _dir: None,
        _db: Some(db),
    }
}

/// Run every case against every backend, one test each (`memory::put_get_overwrite_delete`,
/// `sqlite::...`, `postgres::...`).
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = super::memory().await;
                    super::within_limit(super::cases::$case(&store)).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = super::sqlite().await;
                    super::within_limit(super::cases::$case(&store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = super::postgres().await;
                    super::within_limit(super::cases::$case(&store)).await;
                }
            )*
        }
    };
}

conformance!(
    missing_key,
    put_get_overwrite_delete,
    delete_of_missing_key,
    binary_values,
    one_mebibyte_values,
    odd_keys,
    list_children_folders_and_order,
    list_pagination,
    list_on_empty_prefix_and_on_key,
    scan_all_depths_and_pagination,
    transaction_all_or_nothing,
    transaction_checks,
    unsynced_transaction_is_a_transaction,
    concurrent_compare_and_set_rounds,
    concurrent_increments,
    change_marker_follows_other_handles,
);

/// A hang is a failure, not a stuck CI run.
async fn within_limit(case: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), case)
        .await
        .expect("the case did not finish within 120 s");
}

fn page(after: Option<&str>, limit: Option<usize>) -> Page {
    Page {
        after: after.map(str::to_string),
        limit,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn put_all(b: &dyn Backend, keys: &[&str]) {
    for key in keys {
        b.put(key, key.as_bytes()).await.unwrap();
    }
}

/// Keys chosen so that the skip-scan has to land exactly: `app!` and `app-x` sort before the
/// folder `app/`, `app0` right after everything under it.
const TREE: &[&str] = &[
    "app!",
    "app-x",
    "app/config",
    "app/db/primary",
    "app/db/replica",
    "app/z",
    "app0",
    "apple",
    "b",
    "b/x",
    "c/d/e/f",
    "c0",
];

mod cases {
    use super::*;

    pub async fn missing_key(s: &Store) {
        let b = s.b();
        assert_eq!(b.get("nope").await.unwrap(), None);
        assert_eq!(b.get("a/b/c").await.unwrap(), None);
        assert_eq!(b.get("").await.unwrap(), None);
        assert!(b.list("", &Page::all()).await.unwrap().is_empty());
        assert!(b.scan("", &Page::all()).await.unwrap().is_empty());
        assert!(!b.kind().is_empty());
    }

    pub async fn put_get_overwrite_delete(s: &Store) {
        let b = s.b();
        b.put("k", b"one").await.unwrap();
        assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"one"[..]));
        b.put("k", b"two-longer").await.unwrap();
        assert_eq!(
            b.get("k").await.unwrap().as_deref(),
            Some(&b"two-longer"[..])
        );
        b.put("k", b"3").await.unwrap();
        assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(b.scan("", &Page::all()).await.unwrap(), strings(&["k"]));
        b.delete("k").await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        assert!(b.list("", &Page::all()).await.unwrap().is_empty());
        // A deleted key can be written again.
        b.put("k", b"again").await.unwrap();
        assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"again"[..]));
    }

    pub async fn delete_of_missing_key(s: &Store) {
        let b = s.b();
        b.delete("never-written").await.unwrap();
        b.put("there", b"x").await.unwrap();
        b.delete("there").await.unwrap();
        b.delete("there").await.unwrap();
        b.delete("dir/").await.unwrap();
        assert!(b.scan("", &Page::all()).await.unwrap().is_empty());
    }

    pub async fn binary_values(s: &Store) {
        let b = s.b();
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let values: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("zero", vec![0]),
            ("zeros", vec![0, 0, 0, 0]),
            ("inner-zero", b"ab\0cd".to_vec()),
            ("not-utf8", vec![0xff, 0xfe, 0x00, 0xc3, 0x28]),
            ("all-bytes", all_bytes),
        ];
        for (key, value) in &values {
            b.put(key, value).await.unwrap();
        }
        for (key, value) in &values {
            assert_eq!(b.get(key).await.unwrap().as_ref(), Some(value), "{key}");
        }
        // An empty value is a value, not a missing key.
        assert_eq!(b.get("empty").await.unwrap(), Some(vec![]));
    }

    pub async fn one_mebibyte_values(s: &Store) {
        let b = s.b();
        let big: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        b.put("big", &big).await.unwrap();
        assert_eq!(b.get("big").await.unwrap().as_ref(), Some(&big));
        let other: Vec<u8> = big.iter().rev().copied().collect();
        b.transaction(vec![TxnOp::Put {
            key: "big".into(),
            value: other.clone(),
        }])
        .await
        .unwrap();
        assert_eq!(b.get("big").await.unwrap().as_ref(), Some(&other));
    }

    pub async fn odd_keys(s: &Store) {
        let b = s.b();
        let long = "x".repeat(1000);
        let keys: Vec<&str> = vec![
            "plain",
            "with space",
            "ümlaut/ß",
            "emoji/🔑",
            "\u{10ffff}",
            "tab\tkey",
            "new\nline",
            "quote'\"`",
            "percent%_under",
            "star*q?br[ack]et",
            "back\\slash",
            "semi;colon -- drop",
            "a//double",
            "trailing/",
            "Upper",
            &long,
        ];
        for key in &keys {
            b.put(key, key.as_bytes()).await.unwrap();
        }
        for key in &keys {
            assert_eq!(
                b.get(key).await.unwrap().as_deref(),
                Some(key.as_bytes()),
                "{key:?}"
            );
        }
        // Scan returns them in byte order (Rust sorts `String`s by bytes).
        let mut expected = strings(&keys);
        expected.sort();
        assert_eq!(b.scan("", &Page::all()).await.unwrap(), expected);
        // LIKE/GLOB metacharacters in a prefix are plain characters.
        assert_eq!(
            b.scan("percent%", &Page::all()).await.unwrap(),
            strings(&["_under"])
        );
        assert!(b.scan("percent%x", &Page::all()).await.unwrap().is_empty());
        assert!(b.scan("star?", &Page::all()).await.unwrap().is_empty());
        assert_eq!(
            b.list("emoji/", &Page::all()).await.unwrap(),
            strings(&["🔑"])
        );
        assert_eq!(b.list("a/", &Page::all()).await.unwrap(), strings(&["/"]));
        assert_eq!(
            b.list("trailing/", &Page::all()).await.unwrap(),
            strings(&[""])
        );
    }

    pub async fn list_children_folders_and_order(s: &Store) {
        let b = s.b();
        put_all(b, TREE).await;
        let root = b.list("", &Page::all()).await.unwrap();
        assert_eq!(
            root,
            strings(&[
                "app!", "app-x", "app/", "app0", "apple", "b", "b/", "c/", "c0"
            ])
        );
        let mut sorted = root.clone();
        sorted.sort();
        assert_eq!(root, sorted, "list output is in byte order");
        assert_eq!(
            b.list("app/", &Page::all()).await.unwrap(),
            strings(&["config", "db/", "z"])
        );
        assert_eq!(
            b.list("app/db/", &Page::all()).await.unwrap(),
            strings(&["primary", "replica"])
        );
        assert_eq!(b.list("c/", &Page::all()).await.unwrap(), strings(&["d/"]));
        assert_eq!(
            b.list("c/d/", &Page::all()).await.unwrap(),
            strings(&["e/"])
        );
        assert!(b.list("nothing/", &Page::all()).await.unwrap().is_empty());
        assert!(
            b.list("app/config/", &Page::all())
                .await
                .unwrap()
                .is_empty()
        );
        // A prefix is a plain string prefix, as in Vault's physical backends.
        assert_eq!(
            b.list("app", &Page::all()).await.unwrap(),
            strings(&["!", "-x", "/", "0", "le"])
        );
    }

    pub async fn list_pagination(s: &Store) {
        let b = s.b();
        put_all(b, TREE).await;
        let all = b.list("", &Page::all()).await.unwrap();
        assert_eq!(
            b.list("", &page(None, Some(2))).await.unwrap(),
            strings(&["app!", "app-x"])
        );
        assert!(b.list("", &page(None, Some(0))).await.unwrap().is_empty());
        // After a folder: nothing under it comes back.
        assert_eq!(
            b.list("", &page(Some("app/"), Some(2))).await.unwrap(),
            strings(&["app0", "apple"])
        );
        assert_eq!(
            b.list("", &page(Some("b/"), None)).await.unwrap(),
            strings(&["c/", "c0"])
        );
        // After a key.
        assert_eq!(
            b.list("", &page(Some("app!"), Some(2))).await.unwrap(),
            strings(&["app-x", "app/"])
        );
        assert_eq!(
            b.list("", &page(Some("b"), None)).await.unwrap(),
            strings(&["b/", "c/", "c0"])
        );
        // After an entry that does not exist.
        assert_eq!(
            b.list("", &page(Some("apq"), None)).await.unwrap(),
            strings(&["b", "b/", "c/", "c0"])
        );
        assert!(
            b.list("", &page(Some("c0"), None))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            b.list("", &page(Some("zzz"), None))
                .await
                .unwrap()
                .is_empty()
        );
        // Inside a prefix.
        assert_eq!(
            b.list("app/", &page(Some("db/"), None)).await.unwrap(),
            strings(&["z"])
        );
        assert_eq!(
            b.list("app/", &page(Some("config"), Some(1)))
                .await
                .unwrap(),
            strings(&["db/"])
        );
        // Walking page by page gives the whole list, for every page size.
        for size in 1..=4 {
            let mut walked: Vec<String> = Vec::new();
            loop {
                let got = b
                    .list("", &page(walked.last().map(String::as_str), Some(size)))
                    .await
                    .unwrap();
                assert!(got.len() <= size);
                if got.is_empty() {
                    break;
                }
                walked.extend(got);
            }
            assert_eq!(walked, all, "page size {size}");
        }
    }

    pub async fn list_on_empty_prefix_and_on_key(s: &Store) {
        let b = s.b();
        assert!(b.list("", &Page::all()).await.unwrap().is_empty());
        assert!(
            b.list("", &page(Some("a"), Some(3)))
                .await
                .unwrap()
                .is_empty()
        );
        b.put("k/leaf", b"v").await.unwrap();
        assert_eq!(b.list("", &Page::all()).await.unwrap(), strings(&["k/"]));
        assert_eq!(
            b.list("k/", &Page::all()).await.unwrap(),
            strings(&["leaf"])
        );
        // Listing under a key (not a folder) finds nothing.
        assert!(b.list("k/leaf/", &Page::all()).await.unwrap().is_empty());
        // The key itself, listed as a bare prefix, is its own (empty) child; a partial segment
        // lists the rest of the name.
        assert_eq!(
            b.list("k/leaf", &Page::all()).await.unwrap(),
            strings(&[""])
        );
        assert_eq!(
            b.list("k/le", &Page::all()).await.unwrap(),
            strings(&["af"])
        );
        // A key that is also a folder appears both ways.
        b.put("k", b"v").await.unwrap();
        assert_eq!(
            b.list("", &Page::all()).await.unwrap(),
            strings(&["k", "k/"])
        );
    }

    pub async fn scan_all_depths_and_pagination(s: &Store) {
        let b = s.b();
        put_all(b, TREE).await;
        assert_eq!(b.scan("", &Page::all()).await.unwrap(), strings(TREE));
        assert_eq!(
            b.scan("app/", &Page::all()).await.unwrap(),
            strings(&["config", "db/primary", "db/replica", "z"])
        );
        assert_eq!(
            b.scan("app/", &page(Some("config"), Some(2)))
                .await
                .unwrap(),
            strings(&["db/primary", "db/replica"])
        );
        assert_eq!(
            b.scan("app/", &page(Some("db/replica"), None))
                .await
                .unwrap(),
            strings(&["z"])
        );
        assert!(
            b.scan("app/", &page(Some("z"), None))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            b.scan("c/", &Page::all()).await.unwrap(),
            strings(&["d/e/f"])
        );
        assert!(b.scan("nothing/", &Page::all()).await.unwrap().is_empty());
        assert!(b.scan("", &page(None, Some(0))).await.unwrap().is_empty());
        assert_eq!(
            b.scan("app", &page(None, Some(3))).await.unwrap(),
            strings(&["!", "-x", "/config"])
        );
        for size in 1..=5 {
            let mut walked: Vec<String> = Vec::new();
            loop {
                let got = b
                    .scan("", &page(walked.last().map(String::as_str), Some(size)))
                    .await
                    .unwrap();
                assert!(got.len() <= size);
                if got.is_empty() {
                    break;
                }
                walked.extend(got);
            }
            assert_eq!(walked, strings(TREE), "page size {size}");
        }
    }

    pub async fn transaction_all_or_nothing(s: &Store) {
        let b = s.b();
        b.put("c", b"old").await.unwrap();
        b.transaction(vec![
            TxnOp::Put {
                key: "a".into(),
                value: b"1".to_vec(),
            },
            TxnOp::Put {
                key: "b/deep".into(),
                value: b"2".to_vec(),
            },
            TxnOp::Delete { key: "c".into() },
            TxnOp::Delete {
                key: "missing".into(),
            },
        ])
        .await
        .unwrap();
        assert_eq!(b.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(b.get("b/deep").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(b.get("c").await.unwrap(), None);

        // A failing check anywhere in the list writes nothing at all.
        let err = b
            .transaction(vec![
                TxnOp::Put {
                    key: "x".into(),
                    value: b"x".to_vec(),
                },
                TxnOp::Delete { key: "a".into() },
                TxnOp::Check {
                    key: "b/deep".into(),
                    expected: Some(b"wrong".to_vec()),
                },
                TxnOp::Put {
                    key: "z".into(),
                    value: b"z".to_vec(),
                },
            ])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert!(err.message().contains("b/deep"), "{}", err.message());
        assert!(!err.message().contains("wrong"), "no values in errors");
        assert_eq!(b.get("x").await.unwrap(), None);
        assert_eq!(b.get("z").await.unwrap(), None);
        assert_eq!(b.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            b.scan("", &Page::all()).await.unwrap(),
            strings(&["a", "b/deep"])
        );

        // Operations apply in order.
        b.transaction(vec![
            TxnOp::Delete { key: "k1".into() },
            TxnOp::Put {
                key: "k1".into(),
                value: b"kept".to_vec(),
            },
            TxnOp::Put {
                key: "k2".into(),
                value: b"gone".to_vec(),
            },
            TxnOp::Delete { key: "k2".into() },
            TxnOp::Put {
                key: "k3".into(),
                value: b"first".to_vec(),
            },
            TxnOp::Put {
                key: "k3".into(),
                value: b"last".to_vec(),
            },
        ])
        .await
        .unwrap();
        assert_eq!(b.get("k1").await.unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(b.get("k2").await.unwrap(), None);
        assert_eq!(b.get("k3").await.unwrap().as_deref(), Some(&b"last"[..]));

        // An empty transaction is fine.
        b.transaction(Vec::new()).await.unwrap();
    }

    /// `transaction_unsynced` skips only the wait for the disk: it is as atomic as a
    /// transaction, honours checks, is read back at once, is seen by another handle, and keeps
    /// its place in the order of writes.
    pub async fn unsynced_transaction_is_a_transaction(s: &Store) {
        let b = s.b();
        b.put("gone", b"x").await.unwrap();
        b.transaction_unsynced(vec![
            TxnOp::Put {
                key: "intent/u1".into(),
                value: b"i".to_vec(),
            },
            TxnOp::Put {
                key: "issued/u1".into(),
                value: b"j".to_vec(),
            },
            TxnOp::Delete { key: "gone".into() },
        ])
        .await
        .unwrap();
        assert_eq!(
            b.get("intent/u1").await.unwrap().as_deref(),
            Some(&b"i"[..])
        );
        assert_eq!(
            b.get("issued/u1").await.unwrap().as_deref(),
            Some(&b"j"[..])
        );
        assert_eq!(b.get("gone").await.unwrap(), None);

        // A failing check writes nothing.
        let err = b
            .transaction_unsynced(vec![
                TxnOp::Put {
                    key: "intent/u2".into(),
                    value: b"i".to_vec(),
                },
                TxnOp::Check {
                    key: "issued/u1".into(),
                    expected: Some(b"wrong".to_vec()),
                },
            ])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert_eq!(b.get("intent/u2").await.unwrap(), None);

        // A synced transaction after it sees it (and, on disk, makes it durable with itself).
        b.transaction(vec![
            TxnOp::Check {
                key: "intent/u1".into(),
                expected: Some(b"i".to_vec()),
            },
            TxnOp::Delete {
                key: "intent/u1".into(),
            },
            TxnOp::Put {
                key: "lease/u1".into(),
                value: b"l".to_vec(),
            },
        ])
        .await
        .unwrap();
        assert_eq!(b.get("intent/u1").await.unwrap(), None);

        // Interleaved unsynced and synced writes from many callers all land, in their order.
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..32u32 {
            let b = s.backend.clone();
            jobs.spawn(async move {
                let key = format!("mixed/{i:02}");
                let op = vec![TxnOp::Put {
                    key: key.clone(),
                    value: i.to_be_bytes().to_vec(),
                }];
                if i % 2 == 0 {
                    b.transaction_unsynced(op).await.unwrap();
                } else {
                    b.transaction(op).await.unwrap();
                }
                assert_eq!(b.get(&key).await.unwrap(), Some(i.to_be_bytes().to_vec()));
                b.transaction_unsynced(vec![TxnOp::Delete { key }])
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = jobs.join_next().await {
            done.unwrap();
        }
        assert!(b.scan("mixed/", &Page::all()).await.unwrap().is_empty());

        if let Some(other) = s.second_handle().await {
            assert_eq!(
                other.get("issued/u1").await.unwrap().as_deref(),
                Some(&b"j"[..])
            );
            assert_eq!(
                other.get("lease/u1").await.unwrap().as_deref(),
                Some(&b"l"[..])
            );
        }
    }

    pub async fn transaction_checks(s: &Store) {
        let b = s.b();
        let check = |key: &str, expected: Option<&[u8]>| TxnOp::Check {
            key: key.into(),
            expected: expected.map(<[u8]>::to_vec),
        };
        let put = |key: &str, value: &[u8]| TxnOp::Put {
            key: key.into(),
            value: value.to_vec(),
        };
        // `None` = must not exist.
        b.transaction(vec![check("lock", None), put("lock", b"me")])
            .await
            .unwrap();
        let err = b
            .transaction(vec![check("lock", None), put("lock", b"you")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert_eq!(b.get("lock").await.unwrap().as_deref(), Some(&b"me"[..]));
        // Exact value match.
        b.transaction(vec![check("lock", Some(b"me")), put("lock", b"me2")])
            .await
            .unwrap();
        let err = b
            .transaction(vec![check("lock", Some(b"me")), put("lock", b"me3")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        // A prefix of the value is not the value.
        let err = b
            .transaction(vec![check("lock", Some(b"me")), put("other", b"x")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert_eq!(b.get("other").await.unwrap(), None);
        // An empty value is not a missing key, and the other way round.
        b.put("empty", b"").await.unwrap();
        let err = b.transaction(vec![check("empty", None)]).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        b.transaction(vec![check("empty", Some(b""))])
            .await
            .unwrap();
        let err = b
            .transaction(vec![check("absent", Some(b""))])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        // Checks see the state before the transaction, wherever they stand in the list.
        b.transaction(vec![put("lock", b"new"), check("lock", Some(b"me2"))])
            .await
            .unwrap();
        assert_eq!(b.get("lock").await.unwrap().as_deref(), Some(&b"new"[..]));
        let err = b
            .transaction(vec![put("fresh", b"v"), check("fresh", Some(b"v"))])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert_eq!(b.get("fresh").await.unwrap(), None);
        // Several checks must all hold.
        let err = b
            .transaction(vec![
                check("lock", Some(b"new")),
                check("empty", Some(b"not empty")),
                put("both", b"x"),
            ])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert_eq!(b.get("both").await.unwrap(), None);
        b.transaction(vec![
            check("lock", Some(b"new")),
            check("empty", Some(b"")),
            check("absent", None),
            put("both", b"x"),
        ])
        .await
        .unwrap();
        assert_eq!(b.get("both").await.unwrap().as_deref(), Some(&b"x"[..]));
    }

    /// Many tasks race for the same compare-and-set each round: exactly one wins.
    pub async fn concurrent_compare_and_set_rounds(s: &Store) {
        const TASKS: usize = 8;
        const ROUNDS: u64 = 15;
        let b = s.backend.clone();
        b.put("counter", &0u64.to_be_bytes()).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let b = b.clone();
            let barrier = barrier.clone();
            handles.push(tokio::spawn(async move {
                let mut wins = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait().await;
                    let outcome = b
                        .transaction(vec![
                            TxnOp::Check {
                                key: "counter".into(),
                                expected: Some(round.to_be_bytes().to_vec()),
                            },
                            TxnOp::Put {
                                key: "counter".into(),
                                value: (round + 1).to_be_bytes().to_vec(),
                            },
                            TxnOp::Put {
                                key: format!("winner/{round}"),
                                value: task.to_string().into_bytes(),
                            },
                        ])
                        .await;
                    match outcome {
                        Ok(()) => wins.push(round),
                        Err(e) => assert_eq!(e.code(), ErrorCode::Conflict, "{e}"),
                    }
                    // Everyone finishes the round before the next one starts.
                    barrier.wait().await;
                }
                (task, wins)
            }));
        }
        let mut winners_per_round = vec![Vec::new(); ROUNDS as usize];
        for handle in handles {
            let (task, wins) = handle.await.unwrap();
            for round in wins {
                winners_per_round[round as usize].push(task);
            }
        }
        for (round, winners) in winners_per_round.iter().enumerate() {
            assert_eq!(winners.len(), 1, "round {round} winners: {winners:?}");
            let recorded = b.get(&format!("winner/{round}")).await.unwrap().unwrap();
            assert_eq!(recorded, winners[0].to_string().into_bytes());
        }
        assert_eq!(
            b.get("counter").await.unwrap(),
            Some(ROUNDS.to_be_bytes().to_vec())
        );
    }

    /// Free-running read-modify-write increments from many tasks (and, for the persistent
    /// backends, several handles): no increment is lost.
    pub async fn concurrent_increments(s: &Store) {
        const TASKS: usize = 6;
        const EACH: u64 = 15;
        let mut handles_on_store: Vec<Arc<dyn Backend>> = vec![s.backend.clone()];
        if let Some(other) = s.second_handle().await {
            handles_on_store.push(other);
        }
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let b = handles_on_store[task % handles_on_store.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0u64;
                let mut done = 0;
                while done < EACH {
                    let current = b.get("n").await.unwrap();
                    let n = current
                        .as_deref()
                        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    match b
                        .transaction(vec![
                            TxnOp::Check {
                                key: "n".into(),
                                expected: current,
                            },
                            TxnOp::Put {
                                key: "n".into(),
                                value: (n + 1).to_be_bytes().to_vec(),
                            },
                        ])
                        .await
                    {
                        Ok(()) => done += 1,
                        Err(e) if e.code() == ErrorCode::Conflict => conflicts += 1,
                        Err(e) => panic!("increment failed: {e}"),
                    }
                }
                conflicts
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            s.b().get("n").await.unwrap(),
            Some((TASKS as u64 * EACH).to_be_bytes().to_vec())
        );
    }

    pub async fn change_marker_follows_other_handles(s: &Store) {
        let b = s.b();
        let start = b.change_marker().await.unwrap();
        let Some(other) = s.second_handle().await else {
            // Only this handle ever changes the memory backend.
            assert_eq!(start, None);
            return;
        };
        let start = start.expect("a shared backend has a change marker");
        assert_eq!(
            b.change_marker().await.unwrap(),
            Some(start),
            "stable when idle"
        );

        // Our own writes move it at once.
        b.put("mine", b"1").await.unwrap();
        let after_own = b.change_marker().await.unwrap().unwrap();
        assert_ne!(after_own, start);

        // Another handle's write: visible at once, and the marker moves (PostgreSQL's
        // notification takes a moment to arrive).
        let before = wait_until_stable(b).await;
        other.put("theirs", b"2").await.unwrap();
        assert_eq!(b.get("theirs").await.unwrap().as_deref(), Some(&b"2"[..]));
        wait_for_change(b, before).await;

        let before = wait_until_stable(b).await;
        other.delete("theirs").await.unwrap();
        assert_eq!(b.get("theirs").await.unwrap(), None);
        wait_for_change(b, before).await;

        let before = wait_until_stable(b).await;
        other
            .transaction(vec![TxnOp::Put {
                key: "txn".into(),
                value: b"3".to_vec(),
            }])
            .await
            .unwrap();
        wait_for_change(b, before).await;
        assert_eq!(
            b.list("", &Page::all()).await.unwrap(),
            strings(&["mine", "txn"])
        );
    }
}

/// The marker once nothing is in flight any more (our own notifications settle).
async fn wait_until_stable(b: &dyn Backend) -> u64 {
    let mut last = b.change_marker().await.unwrap().unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = b.change_marker().await.unwrap().unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn wait_for_change(b: &dyn Backend, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.change_marker().await.unwrap() == Some(before) {
        assert!(
            Instant::now() < deadline,
            "change marker did not move within 10 s after another handle wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Backend-specific behaviour.

#[tokio::test]
async fn sqlite_data_survives_reopen_and_busy_lock_is_unavailable() {
    use strongroom::storage::sqlite::SqliteOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let b = SqliteBackend::open(&path).unwrap();
        b.put("k", b"v").await.unwrap();
        assert_eq!(b.kind(), "sqlite");
        assert_eq!(b.path(), path.as_path());
    }
    let b = SqliteBackend::open_with(
        &path,
        SqliteOptions::new().busy_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    // Another process holds the write lock past the busy timeout: Unavailable, not Storage,
    // and reads still work (WAL).
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = b.put("k", b"secret-value").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert!(err.message().contains("locked"), "{err}");
    assert!(!format!("{err} {err:?}").contains("secret-value"));
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    blocker.execute_batch("COMMIT").unwrap();
    b.put("k", b"w").await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"w"[..]));
}

async fn external(b: &SqliteBackend) -> u64 {
    b.external_change_marker().await.unwrap().unwrap()
}

#[tokio::test]
async fn sqlite_external_marker_ignores_own_commits_and_never_misses_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let b = SqliteBackend::open(&path).unwrap();
    let other = SqliteBackend::open(&path).unwrap();
    b.put("warm", b"0").await.unwrap();
    let start = external(&b).await;
    assert_eq!(external(&b).await, start, "stable when idle");

    // Own writes of every kind: the full marker moves, the external one does not.
    let full = b.change_marker().await.unwrap();
    b.put("a", b"1").await.unwrap();
    b.delete("a").await.unwrap();
    b.transaction(vec![TxnOp::Put {
        key: "t".into(),
        value: b"2".to_vec(),
    }])
    .await
    .unwrap();
    assert_ne!(b.change_marker().await.unwrap(), full);
    assert_eq!(
        external(&b).await,
        start,
        "own commits leave the external marker"
    );

    // Another handle's commit moves it.
    other.put("x", b"3").await.unwrap();
    let after_other = external(&b).await;
    assert_ne!(after_other, start);

    // Another handle's commit hidden behind a newer own commit (nobody looked in between)
    // still moves it.
    other.put("y", b"4").await.unwrap();
    b.put("z", b"5").await.unwrap();
    let hidden = external(&b).await;
    assert_ne!(
        hidden, after_other,
        "an unseen foreign commit was attributed to us"
    );

    // A raw connection (another process's view) writing moves it too.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO strongroom_kv (key, value) VALUES ('r', x'00')",
        [],
    )
    .unwrap();
    assert_ne!(external(&b).await, hidden);
}

#[tokio::test]
async fn sqlite_open_failure_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("s.db");
    let err = SqliteBackend::open(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(err.message().contains("no-such-dir"), "{err}");
}

#[tokio::test]
async fn sqlite_table_is_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let b = SqliteBackend::open(&path).unwrap();
    b.put("k", b"v").await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sql: String = raw
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'strongroom_kv'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    let value: Vec<u8> = raw
        .query_row("SELECT value FROM strongroom_kv WHERE key = 'k'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(value, b"v");
}

#[tokio::test]
async fn postgres_unreachable_is_unavailable_and_hides_the_password() {
    let err = PostgresBackend::connect("postgres://someone:hunter2-secret@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert!(err.message().contains("127.0.0.1:1"), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let err = PostgresBackend::connect("postgres://a:b@[not a url")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert!(!format!("{err} {err:?}").contains("not a url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_first_opens_create_the_schema_once() {
    let db = FreshDatabase::create().await;
    let mut opens = Vec::new();
    for _ in 0..6 {
        let url = db.url().to_string();
        opens.push(tokio::spawn(
            async move { PostgresBackend::connect(&url).await },
        ));
    }
    let mut backends = Vec::new();
    for open in opens {
        backends.push(open.await.unwrap().unwrap());
    }
    backends[0].put("k", b"v").await.unwrap();
    for b in &backends {
        assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT collation_name FROM information_schema.columns \
             WHERE table_name = 'strongroom_kv' AND column_name = 'key'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("C"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_loss_moves_the_marker_and_recovers() {
    let db = FreshDatabase::create().await;
    let b = PostgresBackend::connect(db.url()).await.unwrap();
    let other = PostgresBackend::connect(db.url()).await.unwrap();
    let before = wait_until_stable(&b).await;
    let client = db.client().await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'strongroom-listener'",
            &[&db.name()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2, "both handles' listeners");
    // Losing the listener alone moves the marker (changes may have been missed).
    wait_for_change(&b, before).await;
    // Once it is back, another handle's writes move it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = wait_until_stable(&b).await;
        other.put("after", b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        if b.change_marker().await.unwrap() != Some(before) {
            break;
        }
        assert!(Instant::now() < deadline, "listener did not come back");
    }
    // The pool survived the killed listener.
    assert_eq!(b.get("after").await.unwrap().as_deref(), Some(&b"x"[..]));
}

#[tokio::test]
async fn postgres_refuses_nul_in_keys() {
    let db = FreshDatabase::create().await;
    let b = PostgresBackend::connect(db.url()).await.unwrap();
    let err = b.put("a\0b", b"v").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let err = b.get("a\0b").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}
