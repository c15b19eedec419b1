//! Resource storage for Aerie.
//!
//! One [`Store`] trait with two backends today: [`SqliteStore`] (the default, an embedded
//! database file under the control plane's work dir, durable across `kill -9`) and
//! [`MemoryStore`] (nothing survives a restart). PostgreSQL joins behind the same trait.
//!
//! Every write is all-or-nothing and bumps the resource's `version`; updates carry the
//! version they read (optimistic concurrency), so two writers racing on one resource cannot
//! both win. Each committed write is announced on a broadcast [`ChangeEvent`] feed.

pub mod conformance;
mod memory;
mod sqlite;

use std::sync::Arc;

use aerie_core::{Resource, ResourceType};

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// What can go wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{rtype} \"{name}\" not found{}", mesh_suffix(mesh))]
    NotFound {
        rtype: ResourceType,
        mesh: String,
        name: String,
    },
    #[error("{rtype} \"{name}\" already exists{}", mesh_suffix(mesh))]
    AlreadyExists {
        rtype: ResourceType,
        mesh: String,
        name: String,
    },
    #[error(
        "{rtype} \"{name}\" was changed by another writer (expected version {expected}, found {found})"
    )]
    Conflict {
        rtype: ResourceType,
        name: String,
        expected: u64,
        found: u64,
    },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

fn mesh_suffix(mesh: &str) -> String {
    if mesh.is_empty() {
        String::new()
    } else {
        format!(" in mesh \"{mesh}\"")
    }
}

/// Kind of change announced on the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Upsert,
    Delete,
}

/// One committed change. Receivers re-read what they need: events carry keys, not bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub kind: ChangeKind,
    pub rtype: ResourceType,
    /// Empty for global types.
    pub mesh: String,
    pub name: String,
}

/// The resource store. `mesh` is `""` for global types everywhere in this trait.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(
        &self,
        rtype: ResourceType,
        mesh: &str,
        name: &str,
    ) -> Result<Option<Resource>, StoreError>;

    /// All resources of a type, in one mesh (`Some`) or everywhere (`None`), ordered by mesh
    /// then name.
    async fn list(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
    ) -> Result<Vec<Resource>, StoreError>;

    /// Stores a new resource with version 1 and both times set to `now`.
    async fn create(&self, r: Resource, now: &str) -> Result<Resource, StoreError>;

    /// Replaces a resource whose stored version is `expected_version`; keeps its creation
    /// time, sets modification time to `now`, bumps the version.
    async fn update(
        &self,
        r: Resource,
        expected_version: u64,
        now: &str,
    ) -> Result<Resource, StoreError>;

    /// Deletes a resource. Deleting a Mesh deletes every resource inside it in the same
    /// transaction.
    async fn delete(&self, rtype: ResourceType, mesh: &str, name: &str) -> Result<(), StoreError>;

    /// A live feed of committed changes. A slow receiver may see `Lagged` and must resync.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeEvent>;

    /// Whether the backend answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Flushes and releases the backend (graceful shutdown).
    async fn close(&self);
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// The key a resource is stored under.
pub(crate) fn key_of(r: &Resource) -> (ResourceType, String, String) {
    (
        r.resource_type(),
        r.mesh().to_string(),
        r.name().to_string(),
    )
}

/// The broadcast capacity of the change feed: large enough for bursts of applies.
pub(crate) const FEED_CAPACITY: usize = 4096;
