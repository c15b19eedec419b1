//! The work dir holds the CA and token-signing keys (in the database) and the generated TLS
//! keys: through the real kuma-cp, it and everything in it are for its user only.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aerie_e2e::ControlPlane;

const MTLS: &str = r#"{"type":"Mesh","name":"default","mtls":{"enabledBackend":"ca-1","backends":[{"name":"ca-1","type":"builtin"}]}}"#;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every path under `dir`, itself included.
fn everything(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        if all[i].is_dir() {
            for e in std::fs::read_dir(&all[i]).expect("read_dir") {
                all.push(e.expect("entry").path());
            }
        }
        i += 1;
    }
    all
}

/// Directories 0700, files without any group or other permission.
fn assert_private(work: &Path) {
    let all = everything(work);
    let names: Vec<String> = all
        .iter()
        .map(|p| p.strip_prefix(work).unwrap().display().to_string())
        .collect();
    for want in [
        "aerie.db",
        "aerie.db-wal",
        "aerie.db-shm",
        "tls",
        "tls/api-server.key",
        "tls/dp-server.key",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for p in &all {
        let m = mode(p);
        if p.is_dir() {
            assert_eq!(m, 0o700, "{} is {m:o}", p.display());
        } else {
            assert_eq!(m & 0o077, 0, "{} is {m:o}", p.display());
        }
    }
}

#[test]
fn the_work_dir_and_everything_in_it_are_owner_only() {
    let mut cp = ControlPlane::start();
    // A builtin CA: its key lands in the database.
    cp.apply_json("/meshes/default", MTLS);
    assert_private(&cp.work_dir);

    // A work dir left open (by an older version, or by hand) is tightened at the next start.
    assert_eq!(cp.stop(), Some(0));
    for p in everything(&cp.work_dir) {
        let loose = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    cp.restart();
    assert_private(&cp.work_dir);
    assert!(
        cp.logs().contains("tightened"),
        "a warning should say the permissions were changed:\n{}",
        cp.logs()
    );
    assert_eq!(
        cp.get("/meshes/default").json()["mtls"]["enabledBackend"],
        "ca-1"
    );
}
