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
    ChangeEvent, ChangeKind, FEED_CAPACITY, Store, StoreError, StoredRow, decode, encode, key_of,
    stamp_created,
};

/// The channel the `resources` trigger notifies.
pub const CHANNEL: &str = "resource_events";

/// One embedded schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every schema migration this build knows, in order. Versions are 1, 2, …; never edit a
/// released one, append a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "resources table",
        sql: r#"
CREATE TABLE resources (
    type TEXT COLLATE "C" NOT NULL,
    mesh TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    spec JSONB NOT NULL,
    labels JSONB NOT NULL DEFAULT '{}'::jsonb,
    creation_time TEXT NOT NULL,
    modification_time TEXT NOT NULL,
    PRIMARY KEY (type, mesh, name)
);
CREATE INDEX resources_mesh_idx ON resources (mesh);
"#,
    },
    Migration {
        version: 2,
        description: "resource_events notifications",
        sql: r#"
CREATE FUNCTION notify_resource_event() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    PERFORM pg_notify('resource_events', json_build_object(
        'type', r.type,
        'mesh', r.mesh,
        'name', r.name,
        'op', TG_OP,
        'schema', TG_TABLE_SCHEMA,
        'origin', current_setting('aerie.origin', true)
    )::text);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER resources_notify
    AFTER INSERT OR UPDATE OR DELETE ON resources
    FOR EACH ROW EXECUTE FUNCTION notify_resource_event();
"#,
    },
    Migration {
        version: 3,
        description: "proxy sessions and control-plane replicas",
        sql: r#"
CREATE TABLE replicas (
    id TEXT COLLATE "C" PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE sessions (
    mesh TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    replica TEXT COLLATE "C" NOT NULL,
    connected_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (mesh, name)
);
CREATE INDEX sessions_replica_idx ON sessions (replica);
-- A session opening or closing changes which proxies are endpoints: announce it like a
-- Dataplane change, so every replica recomputes that mesh.
CREATE FUNCTION notify_session_event() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    PERFORM pg_notify('resource_events', json_build_object(
        'type', 'Dataplane',
        'mesh', r.mesh,
        'name', r.name,
        'op', TG_OP,
        'schema', TG_TABLE_SCHEMA,
        'origin', current_setting('aerie.origin', true)
    )::text);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER sessions_notify
    AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION notify_session_event();
"#,
    },
    Migration {
        version: 4,
        description: "which proxy process holds a session",
        sql: r#"
ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
"#,
    },
];

fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// `store.postgres.tls.mode` (`KUMA_STORE_POSTGRES_TLS_MODE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (Kuma's default).
    #[default]
    Disable,
    /// TLS without verifying the server certificate.
    VerifyNone,
    /// TLS; the server certificate must chain to `ca_path`.
    VerifyCa,
    /// TLS; as `VerifyCa`, and the certificate must also name `host`.
    VerifyFull,
}

impl TlsMode {
    /// Kuma's spelling: `disable`, `verifyNone`, `verifyCa`, `verifyFull`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::VerifyNone => "verifyNone",
            TlsMode::VerifyCa => "verifyCa",
            TlsMode::VerifyFull => "verifyFull",
        }
    }

    fn ssl_mode(self) -> PgSslMode {
        match self {
            TlsMode::Disable => PgSslMode::Disable,
            // sqlx accepts any certificate unless the mode is VerifyCa/VerifyFull.
            TlsMode::VerifyNone => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = String;

    /// Kuma's values (`disable`, `verifyNone`, `verifyCa`, `verifyFull`, any case), plus
    /// libpq's `sslmode` spellings (`disable`, `require`, `verify-ca`, `verify-full`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "disable" => Ok(TlsMode::Disable),
            "verifynone" | "require" => Ok(TlsMode::VerifyNone),
            "verifyca" | "verify-ca" => Ok(TlsMode::VerifyCa),
            "verifyfull" | "verify-full" => Ok(TlsMode::VerifyFull),
            _ => Err(format!(
                "unknown PostgreSQL TLS mode \"{s}\" (expected disable, verifyNone, verifyCa or verifyFull)"
            )),
        }
    }
}

/// How to reach the database: Kuma's `store.postgres.*` keys (`KUMA_STORE_POSTGRES_*`).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `host` (default `127.0.0.1`).
    pub host: String,
    /// `port` (default `15432`).
    pub port: u16,
    /// `user` (default `kuma`).
    pub user: String,
    /// `password` (default `kuma`).
    pub password: String,
    /// `dbName` (default `kuma`).
    pub db_name: String,
    /// `tls.mode` (default `disable`).
    pub tls_mode: TlsMode,
    /// `tls.caPath`: CA bundle the server certificate must chain to.
    pub ca_path: Option<PathBuf>,
    /// `tls.certPath`: client certificate (mutual TLS).
    pub cert_path: Option<PathBuf>,
    /// `tls.keyPath`: client key (mutual TLS).
    pub key_path: Option<PathBuf>,
    /// `maxOpenConnections` (default 50).
    pub max_open_connections: u32,
    /// `connectionTimeout` (default 5 s): how long to wait for a connection.
    pub connection_timeout: Duration,
    /// Aerie extension (not a Kuma key): the PostgreSQL schema holding the tables, set as
    /// the connections' `search_path`; `None` uses the server's default (`public`). Must be
    /// a plain lower-case identifier. Tests use one schema each.
    pub schema: Option<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 15432,
            user: "kuma".into(),
            password: "kuma".into(),
            db_name: "kuma".into(),
            tls_mode: TlsMode::Disable,
            ca_path: None,
            cert_path: None,
            key_path: None,
            max_open_connections: 50,
            connection_timeout: Duration::from_secs(5),
            schema: None,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("db_name", &self.db_name)
            .field("tls_mode", &self.tls_mode)
            .field("ca_path", &self.ca_path)
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("max_open_connections", &self.max_open_connections)
            .field("connection_timeout", &self.connection_timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresConfig {
    /// Builds a config from a URL such as `postgres://root@127.0.0.1:5432/test` (mostly for
    /// tests). Parts the URL leaves out keep [`PostgresConfig::default`]'s values, except the
    /// port, which defaults to PostgreSQL's 5432 as in any PostgreSQL URL. Understood query
    /// parameters: `sslmode` (see [`TlsMode::from_str`]), `sslrootcert`, `sslcert`,
    /// `sslkey`, `schema`, `max_connections`, `connect_timeout` (seconds).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Unavailable(format!("invalid PostgreSQL URL: {why}"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("must start with postgres:// or postgresql://"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut cfg = PostgresConfig {
            port: 5432,
            ..PostgresConfig::default()
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                cfg.user = percent_decode(user).ok_or_else(|| bad("bad user"))?;
            }
            if let Some(p) = password {
                cfg.password = percent_decode(p).ok_or_else(|| bad("bad password"))?;
            }
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            cfg.host = percent_decode(host).ok_or_else(|| bad("bad host"))?;
        }
        if let Some(p) = port {
            cfg.port = p.parse().map_err(|_| bad("bad port"))?;
        }
        if !path.is_empty() {
            cfg.db_name = percent_decode(path).ok_or_else(|| bad("bad database name"))?;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| bad("bad query parameter"))?;
            match k {
                "sslmode" => {
                    cfg.tls_mode = match v.as_str() {
                        // libpq's opportunistic modes: Aerie has no "maybe TLS".
                        "allow" | "prefer" => TlsMode::Disable,
                        other => other.parse().map_err(|e: String| bad(&e))?,
                    }
                }
                "sslrootcert" => cfg.ca_path = Some(v.into()),
                "sslcert" => cfg.cert_path = Some(v.into()),
                "sslkey" => cfg.key_path = Some(v.into()),
                "schema" => cfg.schema = Some(v),
                "max_connections" => {
                    cfg.max_open_connections = v.parse().map_err(|_| bad("bad max_connections"))?
                }
                "connect_timeout" => {
                    cfg.connection_timeout =
                        Duration::from_secs(v.parse().map_err(|_| bad("bad connect_timeout"))?)
                }
                _ => {}
            }
        }
        Ok(cfg)
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn schema_name(&self) -> Result<Option<&str>, StoreError> {
        match self.schema.as_deref() {
            None => Ok(None),
            Some(s)
                if !s.is_empty()
                    && s.len() <= 63
                    && !s.starts_with(|c: char| c.is_ascii_digit())
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                Ok(Some(s))
            }
            Some(s) => Err(StoreError::Unavailable(format!(
                "invalid PostgreSQL schema name \"{s}\": use lower-case letters, digits and _"
            ))),
        }
    }

    fn connect_options(
        &self,
        app: &str,
        origin: Option<&str>,
    ) -> Result<PgConnectOptions, StoreError> {
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.db_name)
            .ssl_mode(self.tls_mode.ssl_mode())
            .application_name(app);
        if let Some(ca) = &self.ca_path {
            o = o.ssl_root_cert(ca);
        }
        if let Some(cert) = &self.cert_path {
            o = o.ssl_client_cert(cert);
        }
        if let Some(key) = &self.key_path {
            o = o.ssl_client_key(key);
        }
        let mut settings = Vec::new();
        if let Some(origin) = origin {
            settings.push(("aerie.origin", origin.to_string()));
        }
        if let Some(schema) = self.schema_name()? {
            settings.push(("search_path", schema.to_string()));
        }
        Ok(o.options(settings))
    }

    /// One connection, with the timeout and the error message operators need.
    async fn connect_one(&self, app: &str) -> Result<PgConnection, StoreError> {
        let opts = self.connect_options(app, None)?;
        let fail = |reason: String| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {} as {}: {reason}",
                self.address(),
                self.user
            ))
        };
        match tokio::time::timeout(self.connection_timeout, PgConnection::connect_with(&opts)).await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail(format!(
                "no answer within {}",
                fmt_duration(self.connection_timeout)
            ))),
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where a database's schema stands relative to this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Highest applied migration version (0 for an empty database).
    pub current: u32,
    /// Highest version this build knows.
    pub latest: u32,
    /// Versions this build knows that the database lacks, ascending.
    pub pending: Vec<u32>,
}

impl SchemaStatus {
    /// Every known migration is applied and nothing newer is.
    pub fn is_up_to_date(&self) -> bool {
        self.pending.is_empty() && self.current <= self.latest
    }

    /// The database was migrated by a newer build.
    pub fn is_newer_than_build(&self) -> bool {
        self.current > self.latest
    }

    /// `Err` with the operator-facing message unless the schema is up to date.
    fn require_up_to_date(&self) -> Result<(), StoreError> {
        if self.is_newer_than_build() {
            Err(newer_schema(self.current, self.latest))
        } else if !self.pending.is_empty() {
            Err(StoreError::Unavailable(format!(
                "the PostgreSQL schema is at version {} but this kuma-cp needs version {} \
                 (missing migrations {:?}): run \"kuma-cp migrate up\"",
                self.current, self.latest, self.pending
            )))
        } else {
            Ok(())
        }
    }
}

fn newer_schema(current: u32, latest: u32) -> StoreError {
    StoreError::Corrupt(format!(
        "the PostgreSQL schema is at version {current}, newer than this kuma-cp knows \
         ({latest}): upgrade kuma-cp"
    ))
}

/// What [`migrate_up`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, ascending (empty when already up to date).
    pub applied: Vec<u32>,
    /// The schema version afterwards.
    pub current: u32,
}

async fn read_status(conn: &mut PgConnection) -> Result<SchemaStatus, StoreError> {
    let err = |e: sqlx::Error| StoreError::Unavailable(format!("cannot read schema version: {e}"));
    let row = sqlx::query(
        "SELECT to_regclass('schema_migrations') IS NOT NULL,
                EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = to_regclass('schema_migrations')
                          AND attname = 'dirty' AND NOT attisdropped)",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    let (exists, go_migrate): (bool, bool) = (row.get(0), row.get(1));
    if go_migrate {
        return Err(StoreError::Corrupt(
            "this database's schema_migrations table was written by Kuma's Go control plane \
             (golang-migrate): give Aerie its own database (store.postgres.dbName)"
                .into(),
        ));
    }
    let applied: Vec<i64> = if exists {
        sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    let current = applied.iter().copied().max().unwrap_or(0);
    let latest = latest_version();
    Ok(SchemaStatus {
        current: u32::try_from(current).unwrap_or(u32::MAX),
        latest,
        pending: MIGRATIONS
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(&i64::from(*v)))
            .collect(),
    })
}

/// Reports where the configured database's schema stands, changing nothing.
pub async fn schema_status(cfg: &PostgresConfig) -> Result<SchemaStatus, StoreError> {
    let mut conn = cfg.connect_one("kuma-cp-migrate").await?;
    let status = read_status(&mut conn).await;
    let _ = conn.close().await;
    status
}

/// Applies every missing migration (`kuma-cp migrate up`). Idempotent; all or nothing (one
/// transaction); serialized across processes by an advisory lock, so replicas may run it
/// concurrently. Creates the configured [`PostgresConfig::schema`] if needed. Refuses a
/// schema newer than this build.
pub async fn migrate_up(cfg: &PostgresConfig) -> Result<MigrationReport, StoreError> {
    let schema = cfg.schema_name()?.map(str::to_string);
    let mut conn = cfg.connect_one("kuma-cp-migrate").await?;
    let err = |e: sqlx::Error| StoreError::Unavailable(format!("migration failed: {e}"));
    let mut tx = conn.begin().await.map_err(err)?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('aerie-migrate:' || coalesce($1, current_schema(), '')))",
    )
    .bind(schema.as_deref())
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    if let Some(schema) = &schema {
        // `schema_name` admits plain identifiers only, so this needs no quoting.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    let before = read_status(&mut tx).await?;
    if before.is_newer_than_build() {
        return Err(newer_schema(before.current, before.latest));
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY,
             description TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let mut applied = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| before.pending.contains(&m.version))
    {
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "migration {} ({}) failed: {e}",
                m.version, m.description
            ))
        })?;
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)")
            .bind(i64::from(m.version))
            .bind(m.description)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        applied.push(m.version);
    }
    tx.commit().await.map_err(err)?;
    let _ = conn.close().await;
    Ok(MigrationReport {
        applied,
        current: before.current.max(latest_version()),
    })
}

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

/// Turns one notification into a feed event; `None` for this instance's own writes (already
/// announced), for other schemas' tables (channels are database-wide) and for anything
/// unreadable.
fn parse_notification(payload: &str, instance: &str, schema: &str) -> Option<ChangeEvent> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str());
    if field("origin") == Some(instance) || field("schema").is_some_and(|s| s != schema) {
        return None;
    }
    let kind = match field("op")? {
        "INSERT" | "UPDATE" => ChangeKind::Upsert,
        "DELETE" => ChangeKind::Delete,
        _ => return None,
    };
    Some(ChangeEvent {
        kind,
        rtype: ResourceType::from_name(field("type")?)?,
        mesh: field("mesh")?.to_string(),
        name: field("name")?.to_string(),
    })
}

/// The background task: republishes other replicas' changes, and a resync after every
/// reconnection of the listening connection.
async fn follow_changes(
    mut listener: PgListener,
    pool: PgPool,
    feed: broadcast::Sender<ChangeEvent>,
    instance: String,
    schema: String,
    address: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => return,
            n = listener.try_recv() => n,
        };
        match next {
            Ok(Some(n)) => {
                if let Some(ev) = parse_notification(n.payload(), &instance, &schema) {
                    let _ = feed.send(ev);
                }
            }
            Ok(None) => {
                // The connection dropped and the listener has already reconnected and
                // re-issued LISTEN: whatever happened in between is unknown.
                tracing::warn!(%address, "PostgreSQL change notifications reconnected; resyncing");
                let _ = feed.send(ChangeEvent::resync());
            }
            Err(e) => {
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(%address, error = %e, "lost PostgreSQL change notifications; reconnecting");
                drop(listener);
                let mut backoff = Duration::from_millis(100);
                listener = loop {
                    tokio::select! {
                        biased;
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    match new_listener(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(%address, error = %e, "cannot listen for PostgreSQL changes yet");
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                tracing::info!(%address, "PostgreSQL change notifications back; resyncing");
                let _ = feed.send(ChangeEvent::resync());
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn get(
        &self,
        rtype: ResourceType,
        mesh: &str,
        name: &str,
    ) -> Result<Option<Resource>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM resources WHERE type = $1 AND mesh = $2 AND name = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rtype.name())
            .bind(mesh)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| row_to_resource(rtype, &r)).transpose()
    }

    async fn list(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
    ) -> Result<Vec<Resource>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM resources
             WHERE type = $1 AND ($2::text IS NULL OR mesh = $2)
             ORDER BY mesh, name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rtype.name())
            .bind(mesh)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter().map(|r| row_to_resource(rtype, r)).collect()
    }

    async fn create(&self, mut r: Resource, now: &str) -> Result<Resource, StoreError> {
        self.insert(&self.pool, &r, now).await?;
        stamp_created(&mut r, now);
        let (rtype, mesh, name) = key_of(&r);
        self.announce(ChangeKind::Upsert, rtype, &mesh, &name);
        Ok(r)
    }

    async fn create_all(
        &self,
        mut rs: Vec<Resource>,
        now: &str,
    ) -> Result<Vec<Resource>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for r in &rs {
            // An error drops `tx`, which rolls everything back.
            self.insert(&mut *tx, r, now).await?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        for r in &mut rs {
            stamp_created(r, now);
            let (rtype, mesh, name) = key_of(r);
            self.announce(ChangeKind::Upsert, rtype, &mesh, &name);
        }
        Ok(rs)
    }

    async fn update(
        &self,
        mut r: Resource,
        expected_version: u64,
        now: &str,
    ) -> Result<Resource, StoreError> {
        let (rtype, mesh, name) = key_of(&r);
        let (spec, labels) = encode(&r)?;
        let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
        // One statement: the version check and the write are atomic (a racing update of
        // the same row waits for the first to commit, then re-checks the version).
        let row = sqlx::query(
            "UPDATE resources
             SET version = version + 1, spec = $1::jsonb, labels = $2::jsonb, modification_time = $3
             WHERE type = $4 AND mesh = $5 AND name = $6 AND version = $7
             RETURNING creation_time",
        )
        .bind(spec)
        .bind(labels)
        .bind(now)
        .bind(rtype.name())
        .bind(&mesh)
        .bind(&name)
        .bind(expected)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM resources WHERE type = $1 AND mesh = $2 AND name = $3",
            )
            .bind(rtype.name())
            .bind(&mesh)
            .bind(&name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
            return match found {
                None => Err(StoreError::NotFound { rtype, mesh, name }),
                Some(found) => Err(StoreError::Conflict {
                    rtype,
                    name,
                    expected: expected_version,
                    found: u64::try_from(found).unwrap_or(0),
                }),
            };
        };
        r.meta.creation_time = Some(
            row.try_get::<String, _>(0)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        r.meta.version = expected_version + 1;
        r.meta.modification_time = Some(now.into());
        self.announce(ChangeKind::Upsert, rtype, &mesh, &name);
        Ok(r)
    }

    async fn delete(&self, rtype: ResourceType, mesh: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let done = sqlx::query("DELETE FROM resources WHERE type = $1 AND mesh = $2 AND name = $3")
            .bind(rtype.name())
            .bind(mesh)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                rtype,
                mesh: mesh.into(),
                name: name.into(),
            });
        }
        let mut inside = Vec::new();
        if rtype == ResourceType::Mesh {
            let rows = sqlx::query("DELETE FROM resources WHERE mesh = $1 RETURNING type, name")
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            for row in rows {
                let t: String = row.try_get(0).map_err(|e| self.err(e))?;
                let n: String = row.try_get(1).map_err(|e| self.err(e))?;
                if let Some(t) = ResourceType::from_name(&t) {
                    inside.push((t, n));
                }
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        self.announce(ChangeKind::Delete, rtype, mesh, name);
        for (t, n) in inside {
            self.announce(ChangeKind::Delete, t, name, &n);
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.feed.subscribe()
    }

    async fn open_session(
        &self,
        mesh: &str,
        name: &str,
        replica: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (mesh, name, replica, connected_at, owner) VALUES ($1, $2, $3, now(), $4)
             ON CONFLICT (mesh, name) DO UPDATE SET replica = EXCLUDED.replica, connected_at = EXCLUDED.connected_at, owner = EXCLUDED.owner",
        )
        .bind(mesh)
        .bind(name)
        .bind(replica)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| self.err(e))
    }

    async fn close_session(&self, mesh: &str, name: &str, replica: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE mesh = $1 AND name = $2 AND replica = $3")
            .bind(mesh)
            .bind(name)
            .bind(replica)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn online(&self, mesh: &str) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.name FROM sessions s JOIN replicas r ON r.id = s.replica
             WHERE s.mesh = $1 AND r.heartbeat_at > now() - make_interval(secs => $2)",
        )
        .bind(mesh)
        .bind(crate::SESSION_TTL.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(|e| self.err(e)))
            .collect()
    }

    async fn session_holder(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<Option<crate::SessionHolder>, StoreError> {
        let row = sqlx::query(
            "SELECT s.replica, s.owner FROM sessions s JOIN replicas r ON r.id = s.replica
             WHERE s.mesh = $1 AND s.name = $2 AND r.heartbeat_at > now() - make_interval(secs => $3)",
        )
        .bind(mesh)
        .bind(name)
        .bind(crate::SESSION_TTL.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| {
            Ok(crate::SessionHolder {
                replica: r.try_get::<String, _>(0).map_err(|e| self.err(e))?,
                owner: r.try_get::<String, _>(1).map_err(|e| self.err(e))?,
            })
        })
        .transpose()
    }

    async fn heartbeat(&self, replica: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        sqlx::query(
            "INSERT INTO replicas (id, heartbeat_at) VALUES ($1, now())
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(replica)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        // Sessions of replicas that stopped beating are over: their proxies are offline (or
        // already reconnecting elsewhere). Deleting them notifies every replica.
        let ttl = crate::SESSION_TTL.as_secs_f64();
        let ended = sqlx::query(
            "DELETE FROM sessions WHERE replica IN
             (SELECT id FROM replicas WHERE heartbeat_at < now() - make_interval(secs => $1))
             RETURNING mesh, name",
        )
        .bind(ttl)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        sqlx::query("DELETE FROM replicas WHERE heartbeat_at < now() - make_interval(secs => $1)")
            .bind(ttl)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        // Other replicas hear of it through NOTIFY; this one announces it itself.
        for row in &ended {
            if let (Ok(mesh), Ok(name)) = (row.try_get::<String, _>(0), row.try_get::<String, _>(1))
            {
                self.announce(ChangeKind::Delete, ResourceType::Dataplane, &mesh, &name);
            }
        }
        Ok(())
    }

    async fn try_lead(&self) -> Result<bool, StoreError> {
        let mut slot = self.leader.lock().await;
        if slot.conn.is_none() {
            let connect = PgConnection::connect_with(&slot.opts);
            match tokio::time::timeout(slot.timeout, connect).await {
                Ok(Ok(c)) => slot.conn = Some(c),
                Ok(Err(e)) => return Err(self.err(e)),
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "PostgreSQL at {}: connection timed out",
                        self.address
                    )));
                }
            }
        }
        // One lock per schema, so separate Aerie deployments sharing a database do not
        // compete (and tests with their own schema each stay independent).
        let sql = if slot.held {
            "SELECT true"
        } else {
            "SELECT pg_try_advisory_lock(hashtext('kuma-cp-lock:' || current_schema()))"
        };
        let Some(conn) = slot.conn.as_mut() else {
            return Ok(false);
        };
        match sqlx::query(sql)
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get::<bool, _>(0))
        {
            Ok(got) => {
                slot.held = got;
                Ok(got)
            }
            Err(e) => {
                // The connection is gone, and the lock with it.
                slot.conn = None;
                slot.held = false;
                Err(self.err(e))
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn close(&self) {
        let _ = self.stop.send(true);
        if let Some(conn) = self.leader.lock().await.conn.take() {
            let _ = conn.close().await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.listen_pool.close().await;
        self.pool.close().await;
    }
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
