//! The embedded, persistent store: one SQLite database file under the control plane's work
//! dir, in WAL mode with `synchronous=FULL`, so a write the API acknowledged survives a
//! `kill -9` (and a power loss, as far as the disk honours fsync).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use aerie_core::{Resource, ResourceType};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

use crate::{
    ChangeEvent, ChangeKind, Coordination, FEED_CAPACITY, ResourceStore, StoreError, StoredRow,
    decode, encode, key_of, stamp_created,
};

/// Schema migrations, applied in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &["CREATE TABLE resources (
        type TEXT NOT NULL,
        mesh TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        labels TEXT NOT NULL,
        creation_time TEXT NOT NULL,
        modification_time TEXT NOT NULL,
        PRIMARY KEY (type, mesh, name)
    )"];

/// The database holds CA and token-signing keys: it is created 0600 before SQLite opens it
/// (SQLite gives its `-wal`, `-shm` and `-journal` files the database's mode), and an
/// existing one, or any of those files, readable by others is tightened with a warning.
fn private_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
    };
    if !path.exists() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        let Ok(meta) = std::fs::symlink_metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| {
                    StoreError::Unavailable(format!(
                        "cannot restrict the permissions of {}: {e}",
                        file.display()
                    ))
                },
            )?;
            tracing::warn!(
                path = %file.display(),
                was = format!("{mode:o}"),
                "tightened the database file's permissions to 600: it holds private keys"
            );
        }
    }
    Ok(())
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    feed: broadcast::Sender<ChangeEvent>,
    sessions: crate::LocalSessions,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// Refuses a database written by a newer Aerie (unknown schema version).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        private_files(path)?;
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let store = Self {
            pool,
            feed: broadcast::channel(FEED_CAPACITY).0,
            sessions: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let current: i64 = sqlx::query("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(unavailable)?;
        let latest = MIGRATIONS.len() as i64;
        if current > latest {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {current}, newer than this kuma-cp knows ({latest}): upgrade kuma-cp"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            let bump = format!("PRAGMA user_version = {}", i + 1);
            sqlx::query(sqlx::AssertSqlSafe(bump))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    fn announce(&self, kind: ChangeKind, rtype: ResourceType, mesh: &str, name: &str) {
        let _ = self.feed.send(ChangeEvent {
            kind,
            rtype,
            mesh: mesh.into(),
            name: name.into(),
        });
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn row_to_resource(rtype: ResourceType, row: &SqliteRow) -> Result<Resource, StoreError> {
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

const INSERT: &str = "INSERT INTO resources (type, mesh, name, version, spec, labels, creation_time, modification_time)
     VALUES (?, ?, ?, 1, ?, ?, ?, ?)";

/// Inserts one new resource; `AlreadyExists` if its key is taken.
async fn insert<'e, E>(exec: E, r: &Resource, now: &str) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let (rtype, mesh, name) = key_of(r);
    let (spec, labels) = encode(r)?;
    let res = sqlx::query(INSERT)
        .bind(rtype.name())
        .bind(&mesh)
        .bind(&name)
        .bind(spec)
        .bind(labels)
        .bind(now)
        .bind(now)
        .execute(exec)
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::AlreadyExists { rtype, mesh, name })
        }
        Err(e) => Err(unavailable(e)),
    }
}

#[async_trait::async_trait]
impl ResourceStore for SqliteStore {
    async fn get(
        &self,
        rtype: ResourceType,
        mesh: &str,
        name: &str,
    ) -> Result<Option<Resource>, StoreError> {
        let row = sqlx::query("SELECT * FROM resources WHERE type = ? AND mesh = ? AND name = ?")
            .bind(rtype.name())
            .bind(mesh)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| row_to_resource(rtype, &r)).transpose()
    }

    async fn list(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
    ) -> Result<Vec<Resource>, StoreError> {
        let rows = match mesh {
            Some(m) => {
                sqlx::query(
                    "SELECT * FROM resources WHERE type = ? AND mesh = ? ORDER BY mesh, name",
                )
                .bind(rtype.name())
                .bind(m)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query("SELECT * FROM resources WHERE type = ? ORDER BY mesh, name")
                    .bind(rtype.name())
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(unavailable)?;
        rows.iter().map(|r| row_to_resource(rtype, r)).collect()
    }

    async fn create(&self, mut r: Resource, now: &str) -> Result<Resource, StoreError> {
        insert(&self.pool, &r, now).await?;
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
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        for r in &rs {
            // An error drops `tx`, which rolls everything back.
            insert(&mut *tx, r, now).await?;
        }
        tx.commit().await.map_err(unavailable)?;
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
        // One statement: the version check and the write are atomic.
        let row = sqlx::query(
            "UPDATE resources SET version = version + 1, spec = ?, labels = ?, modification_time = ?
             WHERE type = ? AND mesh = ? AND name = ? AND version = ?
             RETURNING creation_time",
        )
        .bind(spec)
        .bind(labels)
        .bind(now)
        .bind(rtype.name())
        .bind(&mesh)
        .bind(&name)
        .bind(expected_version as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return match self.get(rtype, &mesh, &name).await? {
                None => Err(StoreError::NotFound { rtype, mesh, name }),
                Some(cur) => Err(StoreError::Conflict {
                    rtype,
                    name,
                    expected: expected_version,
                    found: cur.meta.version,
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
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let done = sqlx::query("DELETE FROM resources WHERE type = ? AND mesh = ? AND name = ?")
            .bind(rtype.name())
            .bind(mesh)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                rtype,
                mesh: mesh.into(),
                name: name.into(),
            });
        }
        let mut inside = Vec::new();
        if rtype == ResourceType::Mesh {
            let rows = sqlx::query("DELETE FROM resources WHERE mesh = ? RETURNING type, name")
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
            for row in rows {
                let t: String = row.try_get(0).map_err(unavailable)?;
                let n: String = row.try_get(1).map_err(unavailable)?;
                if let Some(t) = ResourceType::from_name(&t) {
                    inside.push((t, n));
                }
            }
        }
        tx.commit().await.map_err(unavailable)?;
        self.announce(ChangeKind::Delete, rtype, mesh, name);
        for (t, n) in inside {
            self.announce(ChangeKind::Delete, t, name, &n);
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.feed.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl Coordination for SqliteStore {
    async fn open_session(
        &self,
        mesh: &str,
        name: &str,
        replica: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.sessions.open(mesh, name, replica, owner);
        Ok(())
    }

    async fn close_session(&self, mesh: &str, name: &str, replica: &str) -> Result<(), StoreError> {
        self.sessions.close(mesh, name, replica);
        Ok(())
    }

    async fn online(&self, mesh: &str) -> Result<std::collections::HashSet<String>, StoreError> {
        Ok(self.sessions.online(mesh))
    }

    async fn session_holder(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<Option<crate::SessionHolder>, StoreError> {
        Ok(self.sessions.holder(mesh, name))
    }

    async fn heartbeat(&self, _replica: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn try_lead(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn database_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("aerie.db");
        let store = SqliteStore::open(&db).await.unwrap();
        store.ping().await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        // WAL mode: the -wal and -shm files exist while the database is open.
        assert!(files.len() >= 3, "{files:?}");
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        store.close().await;
        // A database left readable by an older version is tightened on open.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&db).await.unwrap();
        assert_eq!(mode(&db), 0o600);
        store.close().await;
    }
}
