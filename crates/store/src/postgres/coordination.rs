//! The coordination half: proxy sessions held by replicas, replica heartbeats, leadership.

use super::*;

#[async_trait::async_trait]
impl Coordination for PostgresStore {
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
}
