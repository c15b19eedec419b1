//! The store as the control plane uses it, timed: Kuma's `store{operation, resource_type}`
//! histogram for get, list, create, update and delete, and `store_conflicts` for updates
//! that lost a race. Everything else passes through.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use aerie_core::{Resource, ResourceType};
use aerie_store::{
    ChangeEvent, Coordination, ResourceStore, SessionHolder, SharedStore, StoreError,
};

use crate::metrics::Metrics;

/// Wraps `store` so its resource operations are timed into `metrics`.
pub fn instrument(store: SharedStore, metrics: Arc<Metrics>) -> SharedStore {
    Arc::new(Instrumented {
        inner: store,
        metrics,
    })
}

struct Instrumented {
    inner: SharedStore,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    fn done<T>(
        &self,
        operation: &str,
        rtype: ResourceType,
        start: Instant,
        res: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.metrics
            .store_op(operation, rtype.name(), start.elapsed().as_secs_f64());
        if let Err(StoreError::Conflict { .. }) = &res {
            self.metrics.store_conflict(rtype.name());
        }
        res
    }
}

#[async_trait::async_trait]
impl ResourceStore for Instrumented {
    async fn get(
        &self,
        rtype: ResourceType,
        mesh: &str,
        name: &str,
    ) -> Result<Option<Resource>, StoreError> {
        let start = Instant::now();
        let res = self.inner.get(rtype, mesh, name).await;
        self.done("get", rtype, start, res)
    }

    async fn list(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
    ) -> Result<Vec<Resource>, StoreError> {
        let start = Instant::now();
        let res = self.inner.list(rtype, mesh).await;
        self.done("list", rtype, start, res)
    }

    async fn create(&self, r: Resource, now: &str) -> Result<Resource, StoreError> {
        let rtype = r.resource_type();
        let start = Instant::now();
        let res = self.inner.create(r, now).await;
        self.done("create", rtype, start, res)
    }

    async fn create_all(&self, rs: Vec<Resource>, now: &str) -> Result<Vec<Resource>, StoreError> {
        let Some(rtype) = rs.first().map(Resource::resource_type) else {
            return self.inner.create_all(rs, now).await;
        };
        let start = Instant::now();
        let res = self.inner.create_all(rs, now).await;
        self.done("create", rtype, start, res)
    }

    async fn update(
        &self,
        r: Resource,
        expected_version: u64,
        now: &str,
    ) -> Result<Resource, StoreError> {
        let rtype = r.resource_type();
        let start = Instant::now();
        let res = self.inner.update(r, expected_version, now).await;
        self.done("update", rtype, start, res)
    }

    async fn delete(&self, rtype: ResourceType, mesh: &str, name: &str) -> Result<(), StoreError> {
        let start = Instant::now();
        let res = self.inner.delete(rtype, mesh, name).await;
        self.done("delete", rtype, start, res)
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeEvent> {
        self.inner.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}

#[async_trait::async_trait]
impl Coordination for Instrumented {
    async fn open_session(
        &self,
        mesh: &str,
        name: &str,
        replica: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.inner.open_session(mesh, name, replica, owner).await
    }

    async fn close_session(&self, mesh: &str, name: &str, replica: &str) -> Result<(), StoreError> {
        self.inner.close_session(mesh, name, replica).await
    }

    async fn online(&self, mesh: &str) -> Result<HashSet<String>, StoreError> {
        self.inner.online(mesh).await
    }

    async fn session_holder(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<Option<SessionHolder>, StoreError> {
        self.inner.session_holder(mesh, name).await
    }

    async fn heartbeat(&self, replica: &str) -> Result<(), StoreError> {
        self.inner.heartbeat(replica).await
    }

    async fn try_lead(&self) -> Result<bool, StoreError> {
        self.inner.try_lead().await
    }
}
