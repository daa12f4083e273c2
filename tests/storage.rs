//! The storage backends: one suite of behaviour run against `file:` and against S3 (an
//! in-process s3s-fs server), then what is particular to each.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::s3::{Quirks, S3Server};
use hakeeper::storage::{
    self, FileStore, Location, ObjectMeta, ObjectStore, S3Options, S3Store, StorageError,
};

/// A store, an empty directory in it, and what keeps them alive.
struct Fixture {
    store: Arc<dyn ObjectStore>,
    dir: Location,
    _keep: Keep,
}

enum Keep {
    File(#[allow(dead_code)] tempfile::TempDir),
    S3(S3Server),
}

fn file_location(path: &std::path::Path) -> Location {
    Location::file(path).expect("file location")
}

async fn file_fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = file_location(tmp.path()).join("flink/ha");
    let store = storage::open(&dir, &S3Options::default())
        .await
        .expect("file store");
    assert_eq!(store.describe(), "file");
    Fixture {
        store,
        dir,
        _keep: Keep::File(tmp),
    }
}

/// Lists in pages of 7 so that paging is exercised by every listing of more objects.
async fn s3_fixture() -> Fixture {
    let server = S3Server::start().await;
    let store = S3Store::new(&server.options())
        .await
        .expect("S3 store")
        .with_page_size(7);
    Fixture {
        store: Arc::new(store),
        dir: server.storage_dir("flink/ha"),
        _keep: Keep::S3(server),
    }
}

/// Runs each behaviour (an `async fn(Arc<dyn ObjectStore>, Location)`) against both backends.
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {
        mod file_backend {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let fixture = super::file_fixture().await;
                    super::$behaviour(fixture.store.clone(), fixture.dir.clone()).await;
                }
            )*
        }
        mod s3_backend {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let fixture = super::s3_fixture().await;
                    super::$behaviour(fixture.store.clone(), fixture.dir.clone()).await;
                    if let super::Keep::S3(server) = fixture._keep {
                        server.shutdown().await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    put_get_size_list_delete,
    put_new_never_overwrites,
    get_refuses_above_the_limit,
    missing_objects,
    list_is_recursive_sorted_and_by_string_prefix,
    list_pages_through_many_objects,
    names_with_spaces_and_unicode,
    wrong_store_is_refused,
);

fn names(objects: &[ObjectMeta]) -> Vec<String> {
    objects.iter().map(|o| o.location.to_string()).collect()
}

async fn put_get_size_list_delete(store: Arc<dyn ObjectStore>, dir: Location) {
    let location = dir.join("default/submittedJobGraph307e2d6a5be8");
    let body = Bytes::from_static(b"a job graph");
    store.put_new(&location, body.clone()).await.unwrap();

    assert_eq!(store.get(&location, 1024).await.unwrap(), body);
    assert_eq!(
        store.size(&location).await.unwrap(),
        Some(body.len() as u64)
    );

    let listed = store.list(&dir).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].location, location);
    assert_eq!(listed[0].size, body.len() as u64);
    let modified = listed[0].last_modified.expect("a modification time");
    let age = std::time::SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(600), "{modified:?}");
    // Listed locations are full URLs that parse back to themselves.
    assert_eq!(
        Location::parse(&listed[0].location.to_string()).unwrap(),
        location
    );

    store.delete(&location).await.unwrap();
    assert!(matches!(
        store.get(&location, 1024).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(store.size(&location).await.unwrap(), None);
    assert!(store.list(&dir).await.unwrap().is_empty());

    // An empty payload is a payload.
    let empty = dir.join("empty");
    store.put_new(&empty, Bytes::new()).await.unwrap();
    assert_eq!(store.get(&empty, 0).await.unwrap(), Bytes::new());
    assert_eq!(store.size(&empty).await.unwrap(), Some(0));
}

async fn put_new_never_overwrites(store: Arc<dyn ObjectStore>, dir: Location) {
    let location = dir.join("completedCheckpoint0123456789ab");
    store
        .put_new(&location, Bytes::from_static(b"first"))
        .await
        .unwrap();
    match store
        .put_new(&location, Bytes::from_static(b"second"))
        .await
    {
        Err(StorageError::AlreadyExists { location: l }) => assert_eq!(l, location.to_string()),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get(&location, 100).await.unwrap(),
        Bytes::from_static(b"first")
    );
    // Nothing else was left behind (no temporary files either).
    assert_eq!(
        names(&store.list(&dir).await.unwrap()),
        [location.to_string()]
    );
}

async fn get_refuses_above_the_limit(store: Arc<dyn ObjectStore>, dir: Location) {
    let location = dir.join("big");
    store
        .put_new(&location, Bytes::from(vec![7u8; 100_000]))
        .await
        .unwrap();
    match store.get(&location, 99_999).await {
        Err(StorageError::TooLarge { size, limit, .. }) => {
            assert_eq!(size, 100_000);
            assert_eq!(limit, 99_999);
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|b| b.len())),
    }
    assert!(matches!(
        store.get(&location, 0).await,
        Err(StorageError::TooLarge { .. })
    ));
    assert_eq!(store.get(&location, 100_000).await.unwrap().len(), 100_000);
    // The store still works after a refused read (connections are not left half-read).
    assert_eq!(store.get(&location, u64::MAX).await.unwrap().len(), 100_000);
}

async fn missing_objects(store: Arc<dyn ObjectStore>, dir: Location) {
    let missing = dir.join("nothing/here");
    match store.get(&missing, 10).await {
        Err(StorageError::NotFound { location }) => assert_eq!(location, missing.to_string()),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.size(&missing).await.unwrap(), None);
    store.delete(&missing).await.unwrap();
    store.delete(&missing).await.unwrap();
    assert!(store.list(&missing).await.unwrap().is_empty());
    assert!(store.list(&dir).await.unwrap().is_empty());
}

async fn list_is_recursive_sorted_and_by_string_prefix(store: Arc<dyn ObjectStore>, dir: Location) {
    let relative = [
        "default/completedCheckpoint02",
        "default/completedCheckpoint00",
        "default/blob/job/a",
        "default/completedCheckpoint01",
        "default/submittedJobGraph1",
        "default-2/completedCheckpoint00",
        "default.x",
        "defaultz/y",
        "other/a",
    ];
    for (i, name) in relative.iter().enumerate() {
        store
            .put_new(&dir.join(name), Bytes::from(vec![b'x'; i]))
            .await
            .unwrap();
    }
    let default = dir.join("default");

    // A string prefix: `default` also matches `default-2/…`, `default.x`, `defaultz/…`.
    let mut expected: Vec<String> = relative[..8]
        .iter()
        .map(|n| dir.join(n).to_string())
        .collect();
    expected.sort();
    assert_eq!(names(&store.list(&default).await.unwrap()), expected);

    // `list_dir`: only what is inside the directory.
    let mut inside: Vec<String> = relative[..5]
        .iter()
        .map(|n| dir.join(n).to_string())
        .collect();
    inside.sort();
    assert_eq!(names(&store.list_dir(&default).await.unwrap()), inside);

    // A prefix that is part of a name.
    assert_eq!(
        names(
            &store
                .list(&default.join("completedCheckpoint"))
                .await
                .unwrap()
        ),
        [
            default.join("completedCheckpoint00").to_string(),
            default.join("completedCheckpoint01").to_string(),
            default.join("completedCheckpoint02").to_string(),
        ]
    );

    // Sizes come with the listing.
    let all = store.list(&dir).await.unwrap();
    assert_eq!(all.len(), relative.len());
    for (i, name) in relative.iter().enumerate() {
        let meta = all
            .iter()
            .find(|m| m.location == dir.join(name))
            .expect("listed");
        assert_eq!(meta.size, i as u64);
    }
    let sorted = {
        let mut v = all.clone();
        v.sort_by(|a, b| a.location.cmp(&b.location));
        v
    };
    assert_eq!(all, sorted);
}

async fn list_pages_through_many_objects(store: Arc<dyn ObjectStore>, dir: Location) {
    // 25 objects: 4 pages of 7 on S3.
    let puts = (0..25).map(|i| {
        let store = store.clone();
        let location = dir.join(&format!("many/object{i:03}"));
        async move { store.put_new(&location, Bytes::from(format!("{i}"))).await }
    });
    for result in futures::future::join_all(puts).await {
        result.unwrap();
    }
    let listed = store.list(&dir.join("many")).await.unwrap();
    let expected: Vec<String> = (0..25)
        .map(|i| dir.join(&format!("many/object{i:03}")).to_string())
        .collect();
    assert_eq!(names(&listed), expected);
}

async fn names_with_spaces_and_unicode(store: Arc<dyn ObjectStore>, dir: Location) {
    let weird = [
        "my dir/a file with spaces",
        "ключ/значение ü é ß 😀",
        "日本語/キー",
        "punctuation/a+b=c&d,e;f@g$h'i(j)!~*:[k]",
    ];
    for name in weird {
        let location = dir.join(name);
        store
            .put_new(&location, Bytes::from(name.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            store.get(&location, 1000).await.unwrap(),
            Bytes::from(name.to_string()),
            "{name}"
        );
        assert_eq!(
            store.size(&location).await.unwrap(),
            Some(name.len() as u64)
        );
        let parsed = Location::parse(&location.to_string()).unwrap();
        assert_eq!(parsed, location);
        assert_eq!(
            store.get(&parsed, 1000).await.unwrap(),
            Bytes::from(name.to_string())
        );
    }
    let mut expected: Vec<String> = weird.iter().map(|n| dir.join(n).to_string()).collect();
    expected.sort();
    assert_eq!(names(&store.list(&dir).await.unwrap()), expected);
    for name in weird {
        store.delete(&dir.join(name)).await.unwrap();
    }
    assert!(store.list(&dir).await.unwrap().is_empty());
}

async fn wrong_store_is_refused(store: Arc<dyn ObjectStore>, dir: Location) {
    let other = match &dir {
        Location::S3 { .. } => Location::parse("file:///var/ha/x").unwrap(),
        Location::File { .. } => Location::parse("s3://bucket/x").unwrap(),
    };
    assert!(matches!(
        store.get(&other, 10).await,
        Err(StorageError::WrongStore { .. })
    ));
    assert!(matches!(
        store.put_new(&other, Bytes::new()).await,
        Err(StorageError::WrongStore { .. })
    ));
    assert!(matches!(
        store.list(&other).await,
        Err(StorageError::WrongStore { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// file: only

#[tokio::test]
async fn file_writes_leave_no_temporary_files_and_create_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new();
    let dir = file_location(tmp.path());
    let location = dir.join("a/b/c/payload");
    store
        .put_new(&location, Bytes::from_static(b"x"))
        .await
        .unwrap();
    let _ = store.put_new(&location, Bytes::from_static(b"y")).await;
    let entries: Vec<_> = std::fs::read_dir(tmp.path().join("a/b/c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["payload"]);
    assert_eq!(
        std::fs::read(tmp.path().join("a/b/c/payload")).unwrap(),
        b"x"
    );
}

#[tokio::test]
async fn file_list_skips_temporary_files_of_interrupted_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new();
    let dir = file_location(tmp.path());
    std::fs::write(tmp.path().join(".payload.tmp-abcdef1234"), b"half").unwrap();
    std::fs::write(tmp.path().join("payload"), b"whole").unwrap();
    std::fs::write(tmp.path().join("with%percent"), b"?").unwrap();
    assert_eq!(
        names(&store.list(&dir).await.unwrap()),
        [dir.join("payload").to_string()]
    );
}

#[tokio::test]
async fn file_concurrent_put_new_has_one_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new());
    let location = file_location(tmp.path()).join("contested");
    let attempts = (0..16).map(|i| {
        let store = store.clone();
        let location = location.clone();
        async move {
            let result = store
                .put_new(&location, Bytes::from(format!("writer {i}")))
                .await;
            (i, result)
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, result) in &results {
        assert!(matches!(
            result,
            Ok(()) | Err(StorageError::AlreadyExists { .. })
        ));
    }
    assert_eq!(
        store.get(&location, 100).await.unwrap(),
        Bytes::from(format!("writer {}", winners[0]))
    );
}

#[tokio::test]
async fn file_directories_are_not_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new();
    let dir = file_location(tmp.path());
    store
        .put_new(&dir.join("d/x"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(store.size(&dir.join("d")).await.unwrap(), None);
    assert!(matches!(
        store.get(&dir.join("d"), 10).await,
        Err(StorageError::NotFound { .. })
    ));
    // Below a file.
    assert_eq!(store.size(&dir.join("d/x/y")).await.unwrap(), None);
    assert!(matches!(
        store.get(&dir.join("d/x/y"), 10).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.put_new(&dir.join("d"), Bytes::new()).await,
        Err(StorageError::AlreadyExists { .. })
    ));
}

#[tokio::test]
async fn file_name_too_long_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new();
    let location = file_location(tmp.path()).join(&"n".repeat(300));
    let result = store.put_new(&location, Bytes::new()).await;
    assert!(
        matches!(result, Err(StorageError::Rejected { .. })),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn file_accepts_flink_style_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new();
    let written = Location::parse(&format!("file://{}/x", tmp.path().display())).unwrap();
    store
        .put_new(&written, Bytes::from_static(b"x"))
        .await
        .unwrap();
    // Flink prints `file:/path`; that is how we print it too, and it reads the same file.
    let flink = format!("file:{}/x", tmp.path().display());
    assert_eq!(written.to_string(), flink);
    let parsed = Location::parse(&flink).unwrap();
    assert_eq!(
        store.get(&parsed, 10).await.unwrap(),
        Bytes::from_static(b"x")
    );
}

// ---------------------------------------------------------------------------------------
// S3 only

#[tokio::test]
async fn s3_open_and_other_schemes() {
    let server = S3Server::start().await;
    let dir = Location::parse(&format!("s3a://{}/ha", server.bucket)).unwrap();
    let store = storage::open(&dir, &server.options()).await.unwrap();
    assert!(
        store
            .describe()
            .starts_with(&format!("s3 (endpoint {}", server.endpoint)),
        "{}",
        store.describe()
    );
    let location = dir.join("x");
    store
        .put_new(&location, Bytes::from_static(b"1"))
        .await
        .unwrap();
    // The listing keeps the scheme it was asked with.
    assert_eq!(
        names(&store.list(&dir).await.unwrap()),
        [format!("s3a://{}/ha/x", server.bucket)]
    );
    // s3:// and s3p:// name the same object.
    for scheme in ["s3", "s3p"] {
        let same = Location::parse(&format!("{scheme}://{}/ha/x", server.bucket)).unwrap();
        assert_eq!(
            store.get(&same, 10).await.unwrap(),
            Bytes::from_static(b"1")
        );
    }
    // The object is where s3s-fs keeps it.
    assert!(server.root().join(&server.bucket).join("ha/x").is_file());
    server.shutdown().await;
}

#[tokio::test]
async fn s3_list_follows_continuation_tokens() {
    let server = S3Server::start().await;
    let store = S3Store::new(&server.options())
        .await
        .unwrap()
        .with_page_size(7);
    let dir = server.storage_dir("ha");
    for i in 0..25 {
        store
            .put_new(&dir.join(&format!("o{i:02}")), Bytes::new())
            .await
            .unwrap();
    }
    let before = server.list_requests();
    let listed = store.list(&dir).await.unwrap();
    assert_eq!(listed.len(), 25);
    assert_eq!(server.list_requests() - before, 4, "pages of 7, 7, 7 and 4");
    // With the default page size, one request.
    let store = S3Store::new(&server.options()).await.unwrap();
    let before = server.list_requests();
    assert_eq!(store.list(&dir).await.unwrap(), listed);
    assert_eq!(server.list_requests() - before, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn s3_dead_endpoint_is_unavailable_quickly() {
    // A port with nothing listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let options = S3Options {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        path_style: true,
        region: Some("us-east-1".into()),
        access_key: Some("a".into()),
        secret_key: Some("b".into()),
    };
    let store = S3Store::new(&options).await.unwrap();
    let location = Location::parse("s3://bucket/ha/x").unwrap();

    let started = Instant::now();
    let result = store.get(&location, 10).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(StorageError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    let started = Instant::now();
    let results = futures::join!(
        store.put_new(&location, Bytes::from_static(b"x")),
        store.list(&location),
        store.size(&location),
        store.delete(&location),
    );
    let elapsed = started.elapsed();
    assert!(matches!(results.0, Err(StorageError::Unavailable { .. })));
    assert!(matches!(results.1, Err(StorageError::Unavailable { .. })));
    assert!(matches!(results.2, Err(StorageError::Unavailable { .. })));
    assert!(matches!(results.3, Err(StorageError::Unavailable { .. })));
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn s3_wrong_credentials_are_rejected() {
    let server = S3Server::start().await;
    let dir = server.storage_dir("ha");
    let good = S3Store::new(&server.options()).await.unwrap();
    good.put_new(&dir.join("x"), Bytes::from_static(b"x"))
        .await
        .unwrap();

    for options in [
        S3Options {
            secret_key: Some("not-the-secret".into()),
            ..server.options()
        },
        S3Options {
            access_key: Some("nobody".into()),
            ..server.options()
        },
    ] {
        let store = S3Store::new(&options).await.unwrap();
        let started = Instant::now();
        let get = store.get(&dir.join("x"), 10).await;
        assert!(matches!(get, Err(StorageError::Rejected { .. })), "{get:?}");
        let put = store.put_new(&dir.join("y"), Bytes::new()).await;
        assert!(matches!(put, Err(StorageError::Rejected { .. })), "{put:?}");
        let list = store.list(&dir).await;
        assert!(
            matches!(list, Err(StorageError::Rejected { .. })),
            "{list:?}"
        );
        // Refusals are not retried.
        assert!(started.elapsed() < Duration::from_secs(3));
        // The message says what the server said, and never the secret.
        let message = get.unwrap_err().to_string();
        assert!(message.contains("403"), "{message}");
        assert!(!message.contains(&server.secret_key), "{message}");
    }
    assert!(good.size(&dir.join("y")).await.unwrap().is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn s3_missing_bucket_is_rejected() {
    let server = S3Server::start().await;
    let store = S3Store::new(&server.options()).await.unwrap();
    let dir = Location::parse("s3://no-such-bucket/ha").unwrap();
    let list = store.list(&dir).await;
    assert!(
        matches!(list, Err(StorageError::Rejected { .. })),
        "{list:?}"
    );
    // (s3s-fs creates a missing bucket on PutObject, so only listing is checked.)
    let get = store.get(&dir.join("x"), 10).await;
    assert!(
        matches!(
            get,
            Err(StorageError::Rejected { .. } | StorageError::NotFound { .. })
        ),
        "{get:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn s3_bucket_itself_is_not_an_object() {
    let server = S3Server::start().await;
    let store = S3Store::new(&server.options()).await.unwrap();
    let bucket = Location::parse(&format!("s3://{}", server.bucket)).unwrap();
    assert!(matches!(
        store.get(&bucket, 10).await,
        Err(StorageError::Rejected { .. })
    ));
    store
        .put_new(&bucket.join("k"), Bytes::from_static(b"k"))
        .await
        .unwrap();
    // Listing the whole bucket works.
    assert_eq!(
        names(&store.list(&bucket).await.unwrap()),
        [format!("s3://{}/k", server.bucket)]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn s3_without_conditional_writes_falls_back_to_head_then_put() {
    let server = S3Server::start_with(Quirks {
        no_conditional_writes: true,
    })
    .await;
    let store = S3Store::new(&server.options()).await.unwrap();
    let dir = server.storage_dir("ha");
    let location = dir.join("x");
    // The first write learns that the server answers 501, then writes without the header.
    store
        .put_new(&location, Bytes::from_static(b"first"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_new(&location, Bytes::from_static(b"second"))
            .await,
        Err(StorageError::AlreadyExists { .. })
    ));
    store
        .put_new(&dir.join("y"), Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&location, 100).await.unwrap(),
        Bytes::from_static(b"first")
    );
    assert_eq!(store.list(&dir).await.unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn s3_server_honours_if_none_match() {
    // Without the fallback (a conditional PUT straight to the server), an existing object
    // makes s3s-fs answer 412 Precondition Failed.
    let server = S3Server::start().await;
    let store = S3Store::new(&server.options()).await.unwrap();
    let client = store.client();
    let put = || {
        client
            .put_object()
            .bucket(&server.bucket)
            .key("k")
            .if_none_match("*")
            .body(Bytes::from_static(b"k").into())
            .send()
    };
    put().await.unwrap();
    let err = put().await.unwrap_err();
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(412), "{err:?}");
    server.shutdown().await;
}
