//! The behaviour every [`Store`] backend must show, as one suite each backend's integration
//! tests run (`tests/conformance.rs`, `tests/postgres.rs`). Test code: it panics on failure.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_core::policies::meshtrafficpermission::MeshTrafficPermissionSpec;
use aerie_core::spec::{MeshSpec, SecretSpec};
use aerie_core::{Meta, Resource, ResourceType, Spec};
use aerie_store::{ChangeKind, Store, StoreError};

fn mesh(name: &str) -> Resource {
    Resource {
        meta: Meta {
            name: name.into(),
            ..Meta::default()
        },
        spec: Spec::Mesh(MeshSpec::default()),
    }
}

fn mtp(mesh: &str, name: &str) -> Resource {
    Resource {
        meta: Meta {
            name: name.into(),
            mesh: Some(mesh.into()),
            ..Meta::default()
        },
        spec: Spec::MeshTrafficPermission(MeshTrafficPermissionSpec::default()),
    }
}

fn secret(mesh: &str, name: &str) -> Resource {
    Resource {
        meta: Meta {
            name: name.into(),
            mesh: Some(mesh.into()),
            ..Meta::default()
        },
        spec: Spec::Secret(SecretSpec {
            data: "AA==".into(),
        }),
    }
}

/// Runs every check against an empty store; panics (test failure) on the first mismatch.
pub async fn run_all(store: &dyn Store) {
    create_get_list(store).await;
    optimistic_concurrency(store).await;
    delete_and_cascade(store).await;
    create_all_atomic(store).await;
    change_feed(store).await;
    sessions(store).await;
}

async fn create_get_list(store: &dyn Store) {
    let created = store
        .create(mesh("m1"), "2026-01-01T00:00:00Z")
        .await
        .expect("create");
    assert_eq!(created.meta.version, 1);
    assert_eq!(
        created.meta.creation_time.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    let err = store
        .create(mesh("m1"), "2026-01-01T00:00:01Z")
        .await
        .expect_err("duplicate");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    let got = store
        .get(ResourceType::Mesh, "", "m1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, created);
    assert!(
        store
            .get(ResourceType::Mesh, "", "nope")
            .await
            .expect("get")
            .is_none()
    );

    store.create(mtp("m1", "b"), "t").await.expect("create b");
    store.create(mtp("m1", "a"), "t").await.expect("create a");
    let mut secret = mtp("m1", "a");
    secret.spec = Spec::Secret(SecretSpec {
        data: "AA==".into(),
    });
    store
        .create(secret, "t")
        .await
        .expect("same name, other type");
    let names: Vec<_> = store
        .list(ResourceType::MeshTrafficPermission, Some("m1"))
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.meta.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(
        store
            .list(ResourceType::MeshTrafficPermission, Some("other"))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .list(ResourceType::Secret, None)
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn optimistic_concurrency(store: &dyn Store) {
    let v1 = store.create(mesh("occ"), "t0").await.expect("create");
    let mut labelled = v1.clone();
    labelled.meta.labels.insert("team".into(), "blue".into());
    let v2 = store
        .update(labelled.clone(), 1, "t1")
        .await
        .expect("update");
    assert_eq!(v2.meta.version, 2);
    assert_eq!(v2.meta.creation_time.as_deref(), Some("t0"));
    assert_eq!(v2.meta.modification_time.as_deref(), Some("t1"));
    let err = store.update(labelled, 1, "t2").await.expect_err("stale");
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    let stored = store
        .get(ResourceType::Mesh, "", "occ")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored, v2, "a refused update changes nothing");
    let err = store
        .update(mesh("ghost"), 1, "t")
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

async fn delete_and_cascade(store: &dyn Store) {
    store.create(mesh("doomed"), "t").await.expect("create");
    store.create(mtp("doomed", "p"), "t").await.expect("create");
    store.create(mtp("kept", "p"), "t").await.expect("create");
    store
        .delete(ResourceType::Mesh, "", "doomed")
        .await
        .expect("delete");
    assert!(
        store
            .get(ResourceType::MeshTrafficPermission, "doomed", "p")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get(ResourceType::MeshTrafficPermission, "kept", "p")
            .await
            .expect("get")
            .is_some()
    );
    let err = store
        .delete(ResourceType::Mesh, "", "doomed")
        .await
        .expect_err("gone");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

/// `create_all`: all or none.
pub async fn create_all_atomic(store: &dyn Store) {
    store
        .create(secret("ca-mesh", "ca-key"), "t0")
        .await
        .expect("create the clashing secret");
    let err = store
        .create_all(
            vec![secret("ca-mesh", "ca-cert"), secret("ca-mesh", "ca-key")],
            "t1",
        )
        .await
        .expect_err("the second one exists");
    assert!(
        matches!(&err, StoreError::AlreadyExists { name, .. } if name == "ca-key"),
        "{err}"
    );
    assert!(
        store
            .get(ResourceType::Secret, "ca-mesh", "ca-cert")
            .await
            .expect("get")
            .is_none(),
        "a failed create_all leaves nothing behind"
    );
    let untouched = store
        .get(ResourceType::Secret, "ca-mesh", "ca-key")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(untouched.meta.version, 1);
    assert_eq!(untouched.meta.creation_time.as_deref(), Some("t0"));

    let err = store
        .create_all(
            vec![secret("ca-mesh", "twice"), secret("ca-mesh", "twice")],
            "t1",
        )
        .await
        .expect_err("one key twice");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    assert!(
        store
            .get(ResourceType::Secret, "ca-mesh", "twice")
            .await
            .expect("get")
            .is_none()
    );

    let created = store
        .create_all(
            vec![secret("ca-mesh2", "ca-cert"), secret("ca-mesh2", "ca-key")],
            "t2",
        )
        .await
        .expect("create_all");
    assert_eq!(created.len(), 2);
    for (r, name) in created.iter().zip(["ca-cert", "ca-key"]) {
        assert_eq!(r.meta.name, name);
        assert_eq!(r.meta.version, 1);
        assert_eq!(r.meta.creation_time.as_deref(), Some("t2"));
        assert_eq!(r.meta.modification_time.as_deref(), Some("t2"));
        let stored = store
            .get(ResourceType::Secret, "ca-mesh2", name)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(&stored, r);
    }
    assert!(
        store
            .create_all(Vec::new(), "t3")
            .await
            .expect("nothing to create")
            .is_empty()
    );
}

async fn change_feed(store: &dyn Store) {
    let mut rx = store.subscribe();
    store.create(mesh("fed"), "t").await.expect("create");
    store
        .delete(ResourceType::Mesh, "", "fed")
        .await
        .expect("delete");
    let a = rx.recv().await.expect("event");
    assert_eq!(
        (a.kind, a.rtype, a.name.as_str()),
        (ChangeKind::Upsert, ResourceType::Mesh, "fed")
    );
    let b = rx.recv().await.expect("event");
    assert_eq!(b.kind, ChangeKind::Delete);
}

/// Sessions: open, replace, close only by the holder.
pub async fn sessions(store: &dyn Store) {
    store.heartbeat("r1").await.expect("heartbeat");
    store.heartbeat("r2").await.expect("heartbeat");
    store.open_session("m", "a", "r1", "").await.expect("open");
    store.open_session("m", "b", "r1", "").await.expect("open");
    store
        .open_session("other", "c", "r1", "")
        .await
        .expect("open");
    let online = store.online("m").await.expect("online");
    assert!(online.contains("a") && online.contains("b") && !online.contains("c"));
    store
        .close_session("m", "a", "r2")
        .await
        .expect("close by another");
    assert!(
        store.online("m").await.expect("online").contains("a"),
        "only the holder closes"
    );
    let holder = |replica: &str, owner: &str| aerie_store::SessionHolder {
        replica: replica.into(),
        owner: owner.into(),
    };
    store
        .open_session("m", "a", "r2", "proxy-1")
        .await
        .expect("reconnect elsewhere");
    assert_eq!(
        store.session_holder("m", "a").await.expect("holder"),
        Some(holder("r2", "proxy-1"))
    );
    store
        .open_session("m", "a", "r2", "proxy-1-rotated")
        .await
        .expect("new owner");
    assert_eq!(
        store.session_holder("m", "a").await.expect("holder"),
        Some(holder("r2", "proxy-1-rotated"))
    );
    assert_eq!(store.session_holder("m", "zz").await.expect("holder"), None);
    store
        .close_session("m", "a", "r1")
        .await
        .expect("stale close");
    assert!(
        store.online("m").await.expect("online").contains("a"),
        "the new holder keeps it"
    );
    store.close_session("m", "a", "r2").await.expect("close");
    assert!(!store.online("m").await.expect("online").contains("a"));
    assert_eq!(store.session_holder("m", "a").await.expect("holder"), None);
}
