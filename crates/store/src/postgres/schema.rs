//! The schema: embedded migrations, where a database stands, and `kuma-cp migrate up`.

use super::*;

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

pub(super) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
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
    pub(super) fn require_up_to_date(&self) -> Result<(), StoreError> {
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

pub(super) fn newer_schema(current: u32, latest: u32) -> StoreError {
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

pub(super) async fn read_status(conn: &mut PgConnection) -> Result<SchemaStatus, StoreError> {
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
