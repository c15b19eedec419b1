//! A store that keeps everything in memory: for tests and throwaway control planes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aerie_core::{Resource, ResourceType};
use tokio::sync::broadcast;

use crate::{
    ChangeEvent, ChangeKind, Coordination, FEED_CAPACITY, ResourceStore, StoreError, key_of,
    stamp_created,
};

type Key = (ResourceType, String, String);

/// In-memory [`Store`]. Lost on restart.
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Resource>>,
    feed: broadcast::Sender<ChangeEvent>,
    sessions: crate::LocalSessions,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            items: Mutex::new(BTreeMap::new()),
            feed: broadcast::channel(FEED_CAPACITY).0,
            sessions: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Resource>> {
        // A panic while holding the lock cannot leave a half-written map (every mutation is
        // a single insert/remove), so a poisoned lock is safe to reuse.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn announce(&self, kind: ChangeKind, key: Key) {
        let _ = self.feed.send(ChangeEvent {
            kind,
            rtype: key.0,
            mesh: key.1,
            name: key.2,
        });
    }
}

#[async_trait::async_trait]
impl ResourceStore for MemoryStore {
    async fn get(
        &self,
        rtype: ResourceType,
        mesh: &str,
        name: &str,
    ) -> Result<Option<Resource>, StoreError> {
        Ok(self
            .lock()
            .get(&(rtype, mesh.to_string(), name.to_string()))
            .cloned())
    }

    async fn list(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
    ) -> Result<Vec<Resource>, StoreError> {
        let items = self.lock();
        Ok(items
            .range((rtype, String::new(), String::new())..)
            .take_while(|((t, _, _), _)| *t == rtype)
            .filter(|((_, m, _), _)| mesh.is_none_or(|want| want == m))
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn create(&self, mut r: Resource, now: &str) -> Result<Resource, StoreError> {
        let key = key_of(&r);
        {
            let mut items = self.lock();
            if items.contains_key(&key) {
                return Err(StoreError::AlreadyExists {
                    rtype: key.0,
                    mesh: key.1,
                    name: key.2,
                });
            }
            stamp_created(&mut r, now);
            items.insert(key.clone(), r.clone());
        }
        self.announce(ChangeKind::Upsert, key);
        Ok(r)
    }

    async fn create_all(
        &self,
        mut rs: Vec<Resource>,
        now: &str,
    ) -> Result<Vec<Resource>, StoreError> {
        let keys: Vec<Key> = rs.iter().map(key_of).collect();
        {
            let mut items = self.lock();
            // Check everything before touching anything: all or none.
            for (i, key) in keys.iter().enumerate() {
                if items.contains_key(key) || keys[..i].contains(key) {
                    return Err(StoreError::AlreadyExists {
                        rtype: key.0,
                        mesh: key.1.clone(),
                        name: key.2.clone(),
                    });
                }
            }
            for (r, key) in rs.iter_mut().zip(&keys) {
                stamp_created(r, now);
                items.insert(key.clone(), r.clone());
            }
        }
        for key in keys {
            self.announce(ChangeKind::Upsert, key);
        }
        Ok(rs)
    }

    async fn update(
        &self,
        mut r: Resource,
        expected_version: u64,
        now: &str,
    ) -> Result<Resource, StoreError> {
        let key = key_of(&r);
        {
            let mut items = self.lock();
            let Some(current) = items.get(&key) else {
                return Err(StoreError::NotFound {
                    rtype: key.0,
                    mesh: key.1,
                    name: key.2,
                });
            };
            if current.meta.version != expected_version {
                return Err(StoreError::Conflict {
                    rtype: key.0,
                    name: key.2,
                    expected: expected_version,
                    found: current.meta.version,
                });
            }
            r.meta.version = expected_version + 1;
            r.meta.creation_time = current.meta.creation_time.clone();
            r.meta.modification_time = Some(now.to_string());
            items.insert(key.clone(), r.clone());
        }
        self.announce(ChangeKind::Upsert, key);
        Ok(r)
    }

    async fn delete(&self, rtype: ResourceType, mesh: &str, name: &str) -> Result<(), StoreError> {
        let key = (rtype, mesh.to_string(), name.to_string());
        let mut removed = Vec::new();
        {
            let mut items = self.lock();
            if items.remove(&key).is_none() {
                return Err(StoreError::NotFound {
                    rtype,
                    mesh: key.1,
                    name: key.2,
                });
            }
            removed.push(key);
            if rtype == ResourceType::Mesh {
                let inside: Vec<Key> = items
                    .keys()
                    .filter(|(_, m, _)| m == name)
                    .cloned()
                    .collect();
                for k in inside {
                    items.remove(&k);
                    removed.push(k);
                }
            }
        }
        for k in removed {
            self.announce(ChangeKind::Delete, k);
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.feed.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn close(&self) {}
}

#[async_trait::async_trait]
impl Coordination for MemoryStore {
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
