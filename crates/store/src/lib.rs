//! Resource storage for Aerie.
//!
//! One [`Store`] (its [`ResourceStore`] half and its [`Coordination`] half) with three backends: [`SqliteStore`] (the default, an embedded
//! database file under the control plane's work dir, durable across `kill -9`),
//! [`MemoryStore`] (nothing survives a restart) and [`PostgresStore`] (a shared database,
//! so several control-plane replicas can run side by side; see [`postgres`]).
//!
//! Every write is all-or-nothing and bumps the resource's `version`; updates carry the
//! version they read (optimistic concurrency), so two writers racing on one resource cannot
//! both win. Each committed write is announced on a broadcast [`ChangeEvent`] feed.

#![forbid(unsafe_code)]

mod memory;
pub mod postgres;
mod sqlite;

use std::sync::Arc;

use aerie_core::{Resource, ResourceType};

pub use memory::MemoryStore;
pub use postgres::{
    MigrationReport, PostgresConfig, PostgresStore, SchemaStatus, TlsMode, migrate_up,
    schema_status,
};
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
    /// Changes may have been missed (the store lost and re-established its change
    /// notification channel): re-read everything, exactly as after
    /// `broadcast::error::RecvError::Lagged`. The event's `rtype`/`mesh`/`name` carry no
    /// meaning (see [`ChangeEvent::resync`]). Only [`PostgresStore`] emits it; the in-process
    /// stores never miss a change.
    Resync,
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

impl ChangeEvent {
    /// The "reconcile everything" event: kind [`ChangeKind::Resync`], rtype `Mesh`, empty
    /// mesh and name.
    pub fn resync() -> Self {
        Self {
            kind: ChangeKind::Resync,
            rtype: ResourceType::Mesh,
            mesh: String::new(),
            name: String::new(),
        }
    }

    /// Whether the receiver must re-read everything (treat like `RecvError::Lagged`).
    pub fn is_resync(&self) -> bool {
        self.kind == ChangeKind::Resync
    }
}

/// The resources: typed, versioned, announced on a change feed. `mesh` is `""` for global
/// types everywhere in this trait.
#[async_trait::async_trait]
pub trait ResourceStore: Send + Sync + 'static {
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

    /// Stores several new resources atomically: all of them (each with version 1 and both
    /// times set to `now`) or none. Fails with `AlreadyExists` (naming the first clash) if
    /// any of them exists, or if `rs` names one key twice. Used for pairs that only make
    /// sense together, such as a mesh CA's certificate and key secrets.
    async fn create_all(&self, rs: Vec<Resource>, now: &str) -> Result<Vec<Resource>, StoreError>;

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

    /// A live feed of committed changes. A slow receiver may see `Lagged` and must resync;
    /// an event of kind [`ChangeKind::Resync`] means the same.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeEvent>;

    /// Whether the backend answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Flushes and releases the backend (graceful shutdown).
    async fn close(&self);
}

/// Coordination between control-plane replicas sharing one backend: which replica holds
/// each proxy's session, which replicas are alive, and which one leads.
#[async_trait::async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Records that `replica` (a control plane) holds the session of proxy (mesh, name),
    /// replacing any other holder. `owner` names the proxy process holding it (a digest of its
    /// current CSR; empty when unknown), so that the same proxy moving to another replica is
    /// told apart from another proxy claiming its name. Calling it again updates the owner.
    async fn open_session(
        &self,
        mesh: &str,
        name: &str,
        replica: &str,
        owner: &str,
    ) -> Result<(), StoreError>;

    /// Ends a session if `replica` still holds it.
    async fn close_session(&self, mesh: &str, name: &str, replica: &str) -> Result<(), StoreError>;

    /// Names of the proxies of a mesh connected to any live replica: the endpoints.
    async fn online(&self, mesh: &str) -> Result<std::collections::HashSet<String>, StoreError>;

    /// The live replica holding the session of proxy (mesh, name), and the session's owner,
    /// if any.
    async fn session_holder(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<Option<SessionHolder>, StoreError>;

    /// Marks `replica` alive and ends the sessions of replicas silent for [`SESSION_TTL`].
    async fn heartbeat(&self, replica: &str) -> Result<(), StoreError>;

    /// Tries to become, or stay, the leader among the control planes sharing this store
    /// (the leader runs background work). A store only one control plane uses always leads.
    async fn try_lead(&self) -> Result<bool, StoreError>;
}

/// A backend: its resources and the coordination of the replicas that share it. Code that
/// needs both takes `Arc<dyn Store>`; the two halves are separate traits so each can be read
/// (and faked) on its own.
pub trait Store: ResourceStore + Coordination {}

impl<T: ResourceStore + Coordination> Store for T {}

/// Who holds a proxy's session: the replica, and the proxy process (see
/// [`Coordination::open_session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHolder {
    pub replica: String,
    pub owner: String,
}

/// How long a replica may stay silent before its proxies' sessions are considered over.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Sessions for the stores a single control plane owns (memory, SQLite): in this process.
#[derive(Default)]
pub(crate) struct LocalSessions(
    std::sync::Mutex<std::collections::HashMap<(String, String), SessionHolder>>,
);

impl LocalSessions {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), SessionHolder>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self, mesh: &str, name: &str, replica: &str, owner: &str) {
        let holder = SessionHolder {
            replica: replica.into(),
            owner: owner.into(),
        };
        self.lock().insert((mesh.into(), name.into()), holder);
    }

    pub fn close(&self, mesh: &str, name: &str, replica: &str) {
        let mut m = self.lock();
        let key = (mesh.to_string(), name.to_string());
        if m.get(&key).is_some_and(|h| h.replica == replica) {
            m.remove(&key);
        }
    }

    pub fn holder(&self, mesh: &str, name: &str) -> Option<SessionHolder> {
        self.lock().get(&(mesh.into(), name.into())).cloned()
    }

    pub fn online(&self, mesh: &str) -> std::collections::HashSet<String> {
        self.lock()
            .keys()
            .filter(|(m, _)| m == mesh)
            .map(|(_, n)| n.clone())
            .collect()
    }
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

/// Stamps a resource as freshly created.
pub(crate) fn stamp_created(r: &mut Resource, now: &str) {
    r.meta.version = 1;
    r.meta.creation_time = Some(now.to_string());
    r.meta.modification_time = Some(now.to_string());
}

/// The JSON texts stored for a resource: its spec and its labels.
pub(crate) fn encode(r: &Resource) -> Result<(String, String), StoreError> {
    let spec = serde_json::to_string(&aerie_core::format::spec_to_value(&r.spec))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let labels =
        serde_json::to_string(&r.meta.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((spec, labels))
}

/// One stored row, as text, before decoding.
pub(crate) struct StoredRow {
    pub mesh: String,
    pub name: String,
    pub version: i64,
    pub spec: String,
    pub labels: String,
    pub creation_time: String,
    pub modification_time: String,
}

/// Rebuilds a resource from its stored columns.
pub(crate) fn decode(rtype: ResourceType, row: StoredRow) -> Result<Resource, StoreError> {
    let name = row.name;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("{rtype} \"{name}\": {what}: {e}"))
    };
    let spec_json: serde_json::Value =
        serde_json::from_str(&row.spec).map_err(|e| corrupt("spec", &e))?;
    let spec =
        aerie_core::format::spec_from_value(rtype, spec_json).map_err(|e| corrupt("spec", &e))?;
    let labels = serde_json::from_str(&row.labels).map_err(|e| corrupt("labels", &e))?;
    let version = u64::try_from(row.version).map_err(|e| corrupt("version", &e))?;
    Ok(Resource {
        meta: aerie_core::Meta {
            name,
            mesh: (!row.mesh.is_empty()).then_some(row.mesh),
            labels,
            version,
            creation_time: Some(row.creation_time),
            modification_time: Some(row.modification_time),
        },
        spec,
    })
}
