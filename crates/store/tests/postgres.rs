//! PostgresStore against a real server: `AERIE_TEST_POSTGRES_URL` (CI sets
//! `postgres://root@127.0.0.1:5432/test`). Without it each test reports itself skipped.
//! Every test works in a schema of its own (`aerie_test_<random>`), dropped at the end, so
//! tests and parallel runs do not see each other.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

mod common;

use aerie_core::{Resource, ResourceType};
use aerie_store::{
    ChangeEvent, ChangeKind, Coordination as _, PostgresConfig, PostgresStore, ResourceStore as _,
    StoreError, migrate_up, schema_status,
};
use common as conformance;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::broadcast;

const FEED_WAIT: Duration = Duration::from_secs(1);

/// A schema of the test database, dropped (with everything in it) when this goes away.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// `None` (after reporting the skip) when no test database is configured.
    async fn new(test: &str) -> Option<Self> {
        let url = match std::env::var("AERIE_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: AERIE_TEST_POSTGRES_URL not set"
                );
                return None;
            }
        };
        let name = format!("aerie_test_{}", random_hex());
        let mut conn = PgConnection::connect(&url)
            .await
            .expect("connect to AERIE_TEST_POSTGRES_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        conn.close().await.ok();
        Some(Self { url, name })
    }

    fn config(&self) -> PostgresConfig {
        let mut cfg = PostgresConfig::from_url(&self.url).expect("parse test URL");
        cfg.schema = Some(self.name.clone());
        cfg.max_open_connections = 8;
        cfg
    }

    /// A plain connection working in this schema.
    async fn sql(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        let full = format!("SET search_path TO {}; {sql}", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(full))
            .execute(&mut conn)
            .await
            .expect(sql);
        conn.close().await.ok();
    }

    async fn migrated_store(&self) -> PostgresStore {
        migrate_up(&self.config()).await.expect("migrate up");
        PostgresStore::connect(&self.config())
            .await
            .expect("connect")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let drop_sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop may run inside (or after) the test's runtime: use a thread of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_sql))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

fn resource(v: serde_json::Value) -> Resource {
    aerie_core::format::resource_from_value(&v).expect("resource")
}

fn mesh(name: &str) -> Resource {
    resource(serde_json::json!({"type": "Mesh", "name": name}))
}

fn secret(mesh: &str, name: &str) -> Resource {
    resource(serde_json::json!({"type": "Secret", "mesh": mesh, "name": name, "data": "AA=="}))
}

fn mtp(mesh: &str, name: &str) -> Resource {
    resource(serde_json::json!({"type": "MeshTrafficPermission", "mesh": mesh, "name": name}))
}

/// The next feed event, failing the test if none arrives within `FEED_WAIT`.
async fn next_event(rx: &mut broadcast::Receiver<ChangeEvent>) -> ChangeEvent {
    tokio::time::timeout(FEED_WAIT, rx.recv())
        .await
        .expect("an event within 1s")
        .expect("feed open")
}

/// Asserts that nothing (more) arrives for a while.
async fn assert_quiet(rx: &mut broadcast::Receiver<ChangeEvent>) {
    if let Ok(ev) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected event: {ev:?}");
    }
}

#[tokio::test]
async fn postgres_store_conforms() {
    let Some(db) = TestSchema::new("postgres_store_conforms").await else {
        return;
    };
    let store = db.migrated_store().await;
    store.ping().await.expect("ping");
    conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test]
async fn migrate_up_is_idempotent_and_required() {
    let Some(db) = TestSchema::new("migrate_up_is_idempotent_and_required").await else {
        return;
    };
    let cfg = db.config();
    let status = schema_status(&cfg).await.expect("status");
    assert_eq!(status.current, 0);
    assert!(!status.is_up_to_date());
    assert_eq!(status.pending.len(), status.latest as usize);

    let err = PostgresStore::connect(&cfg)
        .await
        .expect_err("an unmigrated database is refused");
    let msg = err.to_string();
    assert!(msg.contains("run \"kuma-cp migrate up\""), "{msg}");

    // Two replicas migrating at once: the advisory lock serializes them.
    let (a, b) = tokio::join!(migrate_up(&cfg), migrate_up(&cfg));
    let (a, b) = (a.expect("migrate a"), b.expect("migrate b"));
    let mut applied = [a.applied.clone(), b.applied.clone()].concat();
    applied.sort();
    assert_eq!(
        applied, status.pending,
        "each migration applied exactly once"
    );
    assert_eq!((a.current, b.current), (status.latest, status.latest));

    let again = migrate_up(&cfg).await.expect("migrate again");
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(again.current, status.latest);
    let status = schema_status(&cfg).await.expect("status");
    assert!(status.is_up_to_date(), "{status:?}");

    let store = PostgresStore::connect(&cfg).await.expect("connect");
    store.create(mesh("m"), "t").await.expect("create");
    store.close().await;
    // Migrating an up-to-date database leaves the data alone.
    migrate_up(&cfg).await.expect("migrate");
    let store = PostgresStore::connect(&cfg).await.expect("connect");
    assert!(
        store
            .get(ResourceType::Mesh, "", "m")
            .await
            .expect("get")
            .is_some()
    );
    store.close().await;
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let Some(db) = TestSchema::new("newer_schema_is_refused").await else {
        return;
    };
    let cfg = db.config();
    migrate_up(&cfg).await.expect("migrate");
    db.sql("INSERT INTO schema_migrations (version, description) VALUES (9999, 'from the future')")
        .await;
    let status = schema_status(&cfg).await.expect("status");
    assert!(status.is_newer_than_build(), "{status:?}");
    let msg = PostgresStore::connect(&cfg)
        .await
        .expect_err("a newer schema is refused")
        .to_string();
    assert!(msg.contains("upgrade kuma-cp"), "{msg}");
    let msg = migrate_up(&cfg)
        .await
        .expect_err("cannot migrate down")
        .to_string();
    assert!(msg.contains("upgrade kuma-cp"), "{msg}");
}

#[tokio::test]
async fn unreachable_database_is_reported() {
    // Needs no database: nothing listens on port 1.
    let cfg = PostgresConfig {
        port: 1,
        user: "someone".into(),
        connection_timeout: Duration::from_secs(2),
        ..PostgresConfig::default()
    };
    let msg = PostgresStore::connect(&cfg)
        .await
        .expect_err("nothing there")
        .to_string();
    assert!(
        msg.contains("cannot connect to PostgreSQL at 127.0.0.1:1 as someone: "),
        "{msg}"
    );
    let err = migrate_up(&cfg).await.expect_err("nothing there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn replicas_see_each_others_writes() {
    let Some(db) = TestSchema::new("replicas_see_each_others_writes").await else {
        return;
    };
    let a = db.migrated_store().await;
    let b = PostgresStore::connect(&db.config())
        .await
        .expect("connect b");
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());

    let created = a.create(mesh("shared"), "t0").await.expect("create");
    let ev = next_event(&mut rx_b).await;
    assert_eq!(
        (ev.kind, ev.rtype, ev.mesh.as_str(), ev.name.as_str()),
        (ChangeKind::Upsert, ResourceType::Mesh, "", "shared")
    );
    // The writer's own feed has it once: announced locally, its notification dropped.
    assert_eq!(next_event(&mut rx_a).await, ev);
    assert_quiet(&mut rx_a).await;

    b.create(mtp("shared", "p"), "t1").await.expect("create");
    let ev = next_event(&mut rx_a).await;
    assert_eq!(
        (ev.kind, ev.rtype, ev.mesh.as_str(), ev.name.as_str()),
        (
            ChangeKind::Upsert,
            ResourceType::MeshTrafficPermission,
            "shared",
            "p"
        )
    );
    assert_eq!(next_event(&mut rx_b).await, ev);

    let mut labelled = created.clone();
    labelled.meta.labels.insert("k".into(), "v".into());
    b.update(labelled, 1, "t2").await.expect("update");
    let ev = next_event(&mut rx_a).await;
    assert_eq!((ev.kind, ev.name.as_str()), (ChangeKind::Upsert, "shared"));
    let seen = a
        .get(ResourceType::Mesh, "", "shared")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(seen.meta.version, 2);
    assert_eq!(seen.meta.labels.get("k").map(String::as_str), Some("v"));

    // A cascading delete through b: a hears about the mesh and what was inside it.
    let _ = next_event(&mut rx_b).await;
    b.delete(ResourceType::Mesh, "", "shared")
        .await
        .expect("delete");
    let mut deleted = [next_event(&mut rx_a).await, next_event(&mut rx_a).await];
    deleted.sort_by(|x, y| x.name.cmp(&y.name));
    assert!(deleted.iter().all(|e| e.kind == ChangeKind::Delete));
    assert_eq!(
        deleted
            .iter()
            .map(|e| (e.rtype, e.name.as_str()))
            .collect::<Vec<_>>(),
        [
            (ResourceType::MeshTrafficPermission, "p"),
            (ResourceType::Mesh, "shared")
        ]
    );
    assert_quiet(&mut rx_a).await;

    // A write made outside any store (another tool, a Kuma replica) is heard too.
    let mut rx_b = b.subscribe();
    db.sql(
        "INSERT INTO resources (type, mesh, name, version, spec, labels, creation_time, modification_time)
         VALUES ('Mesh', '', 'external', 1, '{}', '{}', 't', 't')",
    )
    .await;
    let ev = next_event(&mut rx_b).await;
    assert_eq!(
        (ev.kind, ev.name.as_str()),
        (ChangeKind::Upsert, "external")
    );
    assert!(
        b.get(ResourceType::Mesh, "", "external")
            .await
            .expect("get")
            .is_some()
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn optimistic_concurrency_across_replicas() {
    let Some(db) = TestSchema::new("optimistic_concurrency_across_replicas").await else {
        return;
    };
    let a = db.migrated_store().await;
    let b = PostgresStore::connect(&db.config())
        .await
        .expect("connect b");
    for i in 0..20 {
        let name = format!("race-{i}");
        let v1 = a.create(mesh(&name), "t0").await.expect("create");
        let mut from_a = v1.clone();
        from_a.meta.labels.insert("by".into(), "a".into());
        let mut from_b = v1.clone();
        from_b.meta.labels.insert("by".into(), "b".into());
        let (ra, rb) = tokio::join!(a.update(from_a, 1, "ta"), b.update(from_b, 1, "tb"));
        let (winner, loser) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (ra, rb) => panic!("exactly one update must win: {ra:?} / {rb:?}"),
        };
        assert!(
            matches!(
                loser,
                StoreError::Conflict {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{loser}"
        );
        let stored = b
            .get(ResourceType::Mesh, "", &name)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(stored, winner);
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn concurrent_writers_lose_nothing() {
    let Some(db) = TestSchema::new("concurrent_writers_lose_nothing").await else {
        return;
    };
    const WRITERS: usize = 4;
    const OPS: usize = 250;
    const NAMES: usize = 25;
    let a = Arc::new(db.migrated_store().await);
    let b = Arc::new(
        PostgresStore::connect(&db.config())
            .await
            .expect("connect b"),
    );
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            // (name, version) -> the label this writer stored with that version.
            let mut wrote: Vec<(String, u64, String)> = Vec::new();
            for op in 0..OPS {
                let name = format!("r{:02}", (op * 7 + w) % NAMES);
                let tag = format!("w{w}-op{op}");
                loop {
                    let current = store
                        .get(ResourceType::MeshTrafficPermission, "load", &name)
                        .await
                        .expect("get");
                    let mut r = mtp("load", &name);
                    r.meta.labels.insert("last".into(), tag.clone());
                    let res = match current {
                        None => store.create(r, "t").await,
                        Some(cur) => store.update(r, cur.meta.version, "t").await,
                    };
                    match res {
                        Ok(stored) => {
                            wrote.push((name, stored.meta.version, tag));
                            break;
                        }
                        Err(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) => {
                            continue;
                        }
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
            }
            wrote
        }));
    }
    let mut writes: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for t in tasks {
        for (name, version, tag) in t.await.expect("writer") {
            let prev = writes.entry(name).or_default().insert(version, tag);
            assert!(prev.is_none(), "two writes got the same version");
        }
    }
    assert_eq!(
        writes.values().map(BTreeMap::len).sum::<usize>(),
        WRITERS * OPS
    );
    for store in [&a, &b] {
        let listed = store
            .list(ResourceType::MeshTrafficPermission, Some("load"))
            .await
            .expect("list");
        let names: Vec<_> = listed.iter().map(|r| r.meta.name.clone()).collect();
        assert_eq!(
            names,
            writes.keys().cloned().collect::<Vec<_>>(),
            "every resource once, in order"
        );
        assert_eq!(names.len(), NAMES);
        for r in &listed {
            let versions = &writes[&r.meta.name];
            // Versions 1..=n were each handed out exactly once; the stored one is the last.
            assert_eq!(
                versions.keys().copied().collect::<Vec<_>>(),
                (1..=versions.len() as u64).collect::<Vec<_>>()
            );
            let (last_version, last_tag) = versions.last_key_value().expect("written");
            assert_eq!(r.meta.version, *last_version, "{}", r.meta.name);
            assert_eq!(r.meta.labels.get("last"), Some(last_tag), "{}", r.meta.name);
        }
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn create_all_is_atomic_across_replicas() {
    let Some(db) = TestSchema::new("create_all_is_atomic_across_replicas").await else {
        return;
    };
    let a = db.migrated_store().await;
    let b = PostgresStore::connect(&db.config())
        .await
        .expect("connect b");
    let mut rx_a = a.subscribe();
    b.create(secret("m", "ca-key"), "t0").await.expect("create");
    assert_eq!(next_event(&mut rx_a).await.name, "ca-key");

    let err = a
        .create_all(vec![secret("m", "ca-cert"), secret("m", "ca-key")], "t1")
        .await
        .expect_err("the key exists");
    assert!(
        matches!(&err, StoreError::AlreadyExists { name, .. } if name == "ca-key"),
        "{err}"
    );
    assert!(
        b.get(ResourceType::Secret, "m", "ca-cert")
            .await
            .expect("get")
            .is_none(),
        "nothing of a failed create_all is stored"
    );
    assert_quiet(&mut rx_a).await;

    let mut rx_b = b.subscribe();
    let made = a
        .create_all(vec![secret("m2", "ca-cert"), secret("m2", "ca-key")], "t2")
        .await
        .expect("create_all");
    assert_eq!(made.len(), 2);
    let mut names = vec![
        next_event(&mut rx_b).await.name,
        next_event(&mut rx_b).await.name,
    ];
    names.sort();
    assert_eq!(names, ["ca-cert", "ca-key"]);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn listener_reconnect_sends_resync() {
    let Some(db) = TestSchema::new("listener_reconnect_sends_resync").await else {
        return;
    };
    let a = db.migrated_store().await;
    let b = PostgresStore::connect(&db.config())
        .await
        .expect("connect b");
    let mut rx_a = a.subscribe();
    // Kill a's listening connection from the server side.
    db.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'kuma-cp-listener {}'",
        a.instance_id()
    ))
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(10), rx_a.recv())
        .await
        .expect("a resync after the reconnect")
        .expect("feed open");
    assert!(ev.is_resync(), "{ev:?}");
    assert_eq!(ev.kind, ChangeKind::Resync);
    // Listening again: b's writes reach a.
    b.create(mesh("after"), "t").await.expect("create");
    let ev = next_event(&mut rx_a).await;
    assert_eq!((ev.kind, ev.name.as_str()), (ChangeKind::Upsert, "after"));
    a.close().await;
    b.close().await;
}

/// A TCP relay to the test database that can be cut and restored, to take the database
/// "away" from one store.
struct Relay {
    port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut relay = Self {
            port,
            target,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // Aborting this task drops `conns`, which aborts (and closes) every relayed
            // connection.
        }));
    }

    fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind");
        self.serve(listener);
    }
}

#[tokio::test]
async fn outage_is_unavailable_then_resyncs() {
    let Some(db) = TestSchema::new("outage_is_unavailable_then_resyncs").await else {
        return;
    };
    let direct = db.migrated_store().await;
    let cfg = db.config();
    let mut relay = Relay::start(cfg.address()).await;
    let relayed_cfg = PostgresConfig {
        host: "127.0.0.1".into(),
        port: relay.port,
        connection_timeout: Duration::from_secs(1),
        ..cfg
    };
    let store = PostgresStore::connect(&relayed_cfg).await.expect("connect");
    store.ping().await.expect("ping");
    let mut rx = store.subscribe();

    relay.cut();
    // Let the aborted relay close its connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = store.ping().await.expect_err("database away");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", relay.port)),
        "{err}"
    );
    let err = store
        .get(ResourceType::Mesh, "", "x")
        .await
        .expect_err("database away");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    // Missed while away: covered by the resync.
    direct.create(mesh("missed"), "t").await.expect("create");

    relay.restore().await;
    let ev = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match rx.recv().await {
                Ok(ev) if ev.is_resync() => return ev,
                Ok(_) => continue,
                Err(e) => panic!("feed: {e}"),
            }
        }
    })
    .await
    .expect("a resync once the database is back");
    assert_eq!(ev.kind, ChangeKind::Resync);
    store.ping().await.expect("ping after the outage");
    assert!(
        store
            .get(ResourceType::Mesh, "", "missed")
            .await
            .expect("get")
            .is_some()
    );
    direct.create(mesh("later"), "t").await.expect("create");
    let ev = next_event(&mut rx).await;
    assert_eq!(ev.name, "later");
    relay.cut();
    store.close().await;
    direct.close().await;
}

#[tokio::test]
async fn sessions_are_shared_and_expire_with_their_replica() {
    let Some(schema) = TestSchema::new("sessions_are_shared_and_expire_with_their_replica").await
    else {
        return;
    };
    let a = schema.migrated_store().await;
    let b = PostgresStore::connect(&schema.config())
        .await
        .expect("connect b");
    let mut b_feed = b.subscribe();
    a.heartbeat("replica-a").await.expect("heartbeat a");
    b.heartbeat("replica-b").await.expect("heartbeat b");
    a.open_session("default", "web-1", "replica-a", "")
        .await
        .expect("open");
    // B hears of it (a Dataplane change in mesh default) and counts web-1 online.
    let ev = next_event(&mut b_feed).await;
    assert_eq!(
        (ev.rtype, ev.mesh.as_str(), ev.name.as_str()),
        (ResourceType::Dataplane, "default", "web-1")
    );
    assert!(b.online("default").await.expect("online").contains("web-1"));
    // Only the holder closes a session.
    b.close_session("default", "web-1", "replica-b")
        .await
        .expect("close");
    assert!(a.online("default").await.expect("online").contains("web-1"));
    // Replica A falls silent: B's heartbeat ends its sessions.
    schema
        .sql(
            "UPDATE replicas SET heartbeat_at = now() - interval '1 minute' WHERE id = 'replica-a'",
        )
        .await;
    assert!(
        !b.online("default").await.expect("online").contains("web-1"),
        "a silent replica's proxies are offline"
    );
    b.heartbeat("replica-b").await.expect("heartbeat b");
    let ev = next_event(&mut b_feed).await;
    assert_eq!((ev.kind, ev.name.as_str()), (ChangeKind::Delete, "web-1"));
}

#[tokio::test]
async fn one_leader_at_a_time() {
    let Some(schema) = TestSchema::new("one_leader_at_a_time").await else {
        return;
    };
    let a = schema.migrated_store().await;
    let b = PostgresStore::connect(&schema.config())
        .await
        .expect("connect b");
    assert!(a.try_lead().await.expect("a"), "the first to ask leads");
    assert!(!b.try_lead().await.expect("b"), "only one leader");
    assert!(
        a.try_lead().await.expect("a again"),
        "the leader stays leader"
    );
    // The leader goes away (its connection closes): the other takes over.
    a.close().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if b.try_lead().await.unwrap_or(false) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leadership did not move"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
