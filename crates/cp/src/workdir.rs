//! The work dir holds the embedded database (CA keys, token-signing keys) and generated TLS
//! keys in plaintext: it and everything in it are for the control plane's user only
//! (directories 0700, files 0600). `kuma-cp run` also sets its umask to 077, so files
//! created later (SQLite's `-wal`, `-shm`, `-journal`) start private.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Group and other permission bits.
const SHARED_BITS: u32 = 0o077;

/// Creates `dir` (and missing parents) 0700, or tightens an existing one.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| {
                format!(
                    "cannot create {} (general.workDir / KUMA_GENERAL_WORK_DIR)",
                    dir.display()
                )
            })?;
    }
    tighten(dir, 0o700)
}

/// Tightens an existing work dir, its files and its `tls/` directory (a work dir made by an
/// older version, or by hand). Logs a warning for each change.
pub fn secure_existing(work_dir: &Path) -> anyhow::Result<()> {
    if !work_dir.is_dir() {
        return Ok(());
    }
    private_dir(work_dir)?;
    let tls = work_dir.join("tls");
    if tls.is_dir() {
        private_dir(&tls)?;
    }
    for dir in [work_dir, tls.as_path()] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // symlink_metadata: never follow a link out of the work dir.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                tighten(&path, 0o600)?;
            }
        }
    }
    Ok(())
}

/// Sets `mode` on `path` when it grants anything to group or others, with a warning. Leaves
/// alone what this user does not own and shared directories (sticky bit, like /tmp), with
/// a warning instead: changing those could break others.
fn tighten(path: &Path, mode: u32) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the permissions of {}", path.display()))?;
    let current = meta.permissions().mode() & 0o7777;
    if current & SHARED_BITS == 0 {
        return Ok(());
    }
    let euid = rustix::process::geteuid().as_raw();
    let shared = meta.is_dir() && current & 0o1000 != 0;
    if meta.uid() != euid || shared || is_home_or_root(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{current:o}"),
            "the work dir holds private keys but this path is readable by other users, and is not ours to change: use a private general.workDir (KUMA_GENERAL_WORK_DIR)"
        );
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{current:o}"),
        now = format!("{mode:o}"),
        "tightened permissions: the work dir holds private keys"
    );
    Ok(())
}

fn is_home_or_root(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    path.parent().is_none()
        || std::env::var_os("HOME")
            .and_then(|h| Path::new(&h).canonicalize().ok())
            .is_some_and(|h| h == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_and_tightens_loose() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("a/work");
        private_dir(&work).unwrap();
        assert_eq!(mode(&work), 0o700);
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(work.join("tls")).unwrap();
        std::fs::set_permissions(work.join("tls"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(work.join("aerie.db"), "x").unwrap();
        std::fs::set_permissions(
            work.join("aerie.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(work.join("tls/x.key"), "k").unwrap();
        std::fs::set_permissions(
            work.join("tls/x.key"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        secure_existing(&work).unwrap();
        assert_eq!(mode(&work), 0o700);
        assert_eq!(mode(&work.join("tls")), 0o700);
        assert_eq!(mode(&work.join("aerie.db")), 0o600);
        assert_eq!(mode(&work.join("tls/x.key")), 0o600);
    }

    #[test]
    fn leaves_sticky_shared_directories_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        private_dir(&shared).unwrap();
        assert_eq!(
            std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
    }
}
