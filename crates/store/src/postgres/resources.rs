//! The resources half of the store: reads, versioned writes, Mesh deletion cascading.

use super::*;

#[async_trait::async_trait]
impl ResourceStore for PostgresStore {
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
