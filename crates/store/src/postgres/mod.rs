//! The shared store: one PostgreSQL database that every control-plane replica talks to.
//!
//! * **Schema.** Versioned migrations are embedded in the binary ([`MIGRATIONS`]) and are
//!   applied only by [`migrate_up`] (what `kuma-cp migrate up` runs), never implicitly:
//!   [`PostgresStore::connect`] refuses a database that is missing migrations (telling the
//!   operator to run `kuma-cp migrate up`) or that is newer than this build (telling them to
//!   upgrade kuma-cp). Applied versions are recorded in `schema_migrations(version,
//!   description, applied_at)`. `migrate_up` runs in one transaction under an advisory lock,
//!   so it is idempotent and two replicas running it at once are safe.
//! * **Writes** have the same semantics as the other backends: version 1 on create, a
//!   single conditional `UPDATE … WHERE version = $expected` for optimistic concurrency (under
//!   PostgreSQL's row locking, exactly one of two racing updates of one version wins), Mesh
//!   deletion cascading in one transaction, lists ordered by mesh then name (byte order:
//!   the key columns use the `"C"` collation).
//! * **Change feed.** A trigger on `resources` calls
//!   `pg_notify('resource_events', {"type","mesh","name","op","schema","origin"})` for every
//!   inserted, updated and deleted row. Channels are database-wide, so listeners drop
//!   notifications about another schema's `resources` table. Each store instance `LISTEN`s on `resource_events` from a
//!   background task and republishes what it hears on its broadcast feed, so a write made
//!   through any replica reaches every replica's subscribers. Writes made through *this*
//!   instance are announced directly after their commit (as in the other backends, so the
//!   event is on the feed when the call returns) and their notifications are recognised by
//!   `origin` (a per-instance id each pooled connection carries in the `aerie.origin`
//!   setting) and dropped: nothing is announced twice.
//! * **Resync.** Notifications sent while the listening connection is down are lost. When
//!   the listener has reconnected (and is listening again) the task publishes
//!   [`ChangeEvent::resync`] (kind [`ChangeKind::Resync`]): subscribers must re-read
//!   everything, exactly as on `RecvError::Lagged`.
//! * **Availability.** When the database cannot be reached, operations fail with
//!   [`StoreError::Unavailable`] naming the server, and [`Store::ping`] fails likewise.

mod config;
mod coordination;
mod feed;
mod resources;
mod schema;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use aerie_core::{Resource, ResourceType};
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow, PgSslMode,
};
use sqlx::{Connection, Row};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::{
    ChangeEvent, ChangeKind, Coordination, FEED_CAPACITY, ResourceStore, StoreError, StoredRow,
    decode, encode, key_of, stamp_created,
};

use config::*;
pub use config::{PostgresConfig, TlsMode};
use feed::*;
use schema::*;
pub use schema::{
    CHANNEL, MIGRATIONS, Migration, MigrationReport, SchemaStatus, migrate_up, schema_status,
};

/// A per-instance id, unique enough to tell this instance's writes apart from other
/// replicas' in notifications.
fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}{:08x}", h.finish(), std::process::id())
}

/// PostgreSQL-backed [`Store`], shared by every control-plane replica.
pub struct PostgresStore {
    pool: PgPool,
    listen_pool: PgPool,
    feed: broadcast::Sender<ChangeEvent>,
    address: String,
    timeout: Duration,
    instance: String,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The dedicated connection that holds (or keeps asking for) the leader lock.
    leader: tokio::sync::Mutex<LeaderSlot>,
}

/// Leadership through a session-level advisory lock: held as long as its connection lives,
/// so a replica that dies (even `kill -9`) gives it up as soon as PostgreSQL notices the
/// connection is gone.
struct LeaderSlot {
    opts: PgConnectOptions,
    conn: Option<PgConnection>,
    held: bool,
    timeout: Duration,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("address", &self.address)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

const ROW_COLUMNS: &str = "mesh, name, version, spec::text AS spec, labels::text AS labels, creation_time, modification_time";

fn row_to_resource(rtype: ResourceType, row: &PgRow) -> Result<Resource, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    decode(
        rtype,
        StoredRow {
            mesh: row.try_get("mesh").map_err(corrupt)?,
            name: row.try_get("name").map_err(corrupt)?,
            version: row.try_get("version").map_err(corrupt)?,
            spec: row.try_get("spec").map_err(corrupt)?,
            labels: row.try_get("labels").map_err(corrupt)?,
            creation_time: row.try_get("creation_time").map_err(corrupt)?,
            modification_time: row.try_get("modification_time").map_err(corrupt)?,
        },
    )
}

impl PostgresStore {
    /// Connects to the database, checks that its schema is exactly what this build expects
    /// (see [`migrate_up`]) and starts following the change notifications. Needs a Tokio
    /// runtime.
    pub async fn connect(cfg: &PostgresConfig) -> Result<Self, StoreError> {
        // One direct connection first: it reports the real reason (refused, bad password,
        // TLS) where a pool would only time out.
        let mut conn = cfg.connect_one("kuma-cp").await?;
        let status = read_status(&mut conn).await;
        let schema = sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()")
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        status?.require_up_to_date()?;
        // The schema holding `resources` (up to date, so it exists).
        let schema = schema
            .map_err(|e| StoreError::Unavailable(format!("cannot read the current schema: {e}")))?
            .unwrap_or_default();

        let instance = new_instance_id();
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_open_connections.max(1))
            .acquire_timeout(cfg.connection_timeout)
            .connect_lazy_with(cfg.connect_options("kuma-cp", Some(&instance))?);
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(cfg.connection_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(
                cfg.connect_options(&format!("kuma-cp-listener {instance}"), Some(&instance))?,
            );
        let address = cfg.address();
        let listener = new_listener(&listen_pool).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot listen for changes on PostgreSQL at {address}: {e}"
            ))
        })?;
        let feed = broadcast::channel(FEED_CAPACITY).0;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow_changes(
            listener,
            listen_pool.clone(),
            feed.clone(),
            instance.clone(),
            schema,
            address.clone(),
            stop_rx,
        ));
        Ok(Self {
            pool,
            listen_pool,
            feed,
            address,
            timeout: cfg.connection_timeout,
            instance,
            stop,
            task: Mutex::new(Some(task)),
            leader: tokio::sync::Mutex::new(LeaderSlot {
                opts: cfg.connect_options("kuma-cp-leader", None)?,
                conn: None,
                held: false,
                timeout: cfg.connection_timeout,
            }),
        })
    }

    /// This instance's id: the `origin` of its notifications, and part of its listening
    /// connection's `application_name` (`kuma-cp-listener <id>`).
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        let addr = &self.address;
        StoreError::Unavailable(match e {
            sqlx::Error::PoolTimedOut => format!(
                "PostgreSQL at {addr} did not give a connection within {} (is it running?)",
                fmt_duration(self.timeout)
            ),
            sqlx::Error::PoolClosed => format!("the store for PostgreSQL at {addr} is closed"),
            sqlx::Error::Io(e) => format!("lost the connection to PostgreSQL at {addr}: {e}"),
            sqlx::Error::Tls(e) => format!("TLS failure talking to PostgreSQL at {addr}: {e}"),
            other => format!("PostgreSQL at {addr}: {other}"),
        })
    }

    fn announce(&self, kind: ChangeKind, rtype: ResourceType, mesh: &str, name: &str) {
        let _ = self.feed.send(ChangeEvent {
            kind,
            rtype,
            mesh: mesh.into(),
            name: name.into(),
        });
    }

    /// Inserts one new resource; `AlreadyExists` if its key is taken.
    async fn insert<'e, E>(&self, exec: E, r: &Resource, now: &str) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Postgres>,
    {
        let (rtype, mesh, name) = key_of(r);
        let (spec, labels) = encode(r)?;
        let done = sqlx::query(
            "INSERT INTO resources (type, mesh, name, version, spec, labels, creation_time, modification_time)
             VALUES ($1, $2, $3, 1, $4::jsonb, $5::jsonb, $6, $6)
             ON CONFLICT DO NOTHING",
        )
        .bind(rtype.name())
        .bind(&mesh)
        .bind(&name)
        .bind(spec)
        .bind(labels)
        .bind(now)
        .execute(exec)
        .await
        .map_err(|e| self.err(e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists { rtype, mesh, name });
        }
        Ok(())
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

async fn new_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kumas() {
        let c = PostgresConfig::default();
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.password.as_str()
            ),
            ("127.0.0.1", 15432, "kuma", "kuma")
        );
        assert_eq!(c.db_name, "kuma");
        assert_eq!(c.max_open_connections, 50);
        assert_eq!(c.tls_mode, TlsMode::Disable);
        assert!(!format!("{c:?}").contains("password: \"kuma\""));
    }

    #[test]
    fn parses_urls() {
        let c = PostgresConfig::from_url("postgres://root@127.0.0.1:5432/test").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.db_name.as_str()),
            ("127.0.0.1", 5432, "root", "test")
        );
        let c = PostgresConfig::from_url(
            "postgresql://u%40x:p%3Aw@[::1]/db?sslmode=verify-full&sslrootcert=/ca.pem&schema=s1",
        )
        .unwrap();
        assert_eq!(c.user, "u@x");
        assert_eq!(c.password, "p:w");
        assert_eq!(c.host, "::1");
        assert_eq!(c.port, 5432);
        assert_eq!(c.address(), "[::1]:5432");
        assert_eq!(c.tls_mode, TlsMode::VerifyFull);
        assert_eq!(c.ca_path, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.schema.as_deref(), Some("s1"));
        assert!(PostgresConfig::from_url("mysql://x").is_err());
    }

    #[test]
    fn tls_modes_use_kumas_names() {
        for m in [
            TlsMode::Disable,
            TlsMode::VerifyNone,
            TlsMode::VerifyCa,
            TlsMode::VerifyFull,
        ] {
            assert_eq!(m.as_str().parse::<TlsMode>(), Ok(m));
        }
        assert!("sometimes".parse::<TlsMode>().is_err());
    }

    #[test]
    fn rejects_odd_schema_names() {
        for bad in ["", "Upper", "a;b", "1a", "a b"] {
            let c = PostgresConfig {
                schema: Some(bad.into()),
                ..PostgresConfig::default()
            };
            assert!(c.schema_name().is_err(), "{bad}");
        }
    }

    #[test]
    fn notifications_skip_own_writes() {
        let p = |origin: &str, op: &str| {
            format!(
                r#"{{"type":"Mesh","mesh":"","name":"m","op":"{op}","schema":"s","origin":"{origin}"}}"#
            )
        };
        assert_eq!(parse_notification(&p("me", "INSERT"), "me", "s"), None);
        let ev = parse_notification(&p("other", "DELETE"), "me", "s").unwrap();
        assert_eq!(
            (ev.kind, ev.rtype, ev.name.as_str()),
            (ChangeKind::Delete, ResourceType::Mesh, "m")
        );
        let no_origin = r#"{"type":"Secret","mesh":"x","name":"s","op":"UPDATE","origin":null}"#;
        assert_eq!(
            parse_notification(no_origin, "me", "s").map(|e| e.kind),
            Some(ChangeKind::Upsert)
        );
        assert_eq!(
            parse_notification(&p("other", "DELETE"), "me", "elsewhere"),
            None
        );
        assert_eq!(parse_notification("garbage", "me", "s"), None);
    }
}
