//! Files the CLI writes (signing keys, recovery kits, licenses, audit exports): created 0600,
//! never over an existing file, never half-written, and never published before the caller's step
//! (such as recording the audit event) has succeeded.
//!
//! [`stage`] refuses an existing target, writes the content to a temporary file in the target's
//! directory (the parent of a bare name is `.`) and syncs it; the caller then runs its step;
//! [`Staged::publish`] renames the temporary file to the target without replacing anything and
//! syncs the directory. Dropping a [`Staged`] (the step failed) removes the temporary file, so
//! no file remains.
//!
//! INVARIANT: the target name appears only once its content is complete and synced, and only
//! after the caller's step succeeded.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Why a file was not written.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The target exists (a file, a directory or a link): it is never replaced.
    #[error("`{0}` already exists and is never replaced: choose another name or move it away")]
    Exists(String),
    /// A file-system operation failed.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path it was done to.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl SecretFileError {
    /// The exit code: 2 for an existing target (choose another name), 1 otherwise.
    pub fn exit(&self) -> crate::Exit {
        match self {
            Self::Exists(_) => crate::Exit::Config,
            Self::Io { .. } => crate::Exit::Failure,
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SecretFileError {
    let path = path.display().to_string();
    move |source| SecretFileError::Io {
        action,
        path,
        source,
    }
}

/// Refuses a target that exists, before any work is done (a dangling link counts).
///
/// # Errors
/// [`SecretFileError::Exists`], or `Io` when its existence cannot be checked.
pub fn refuse_existing(target: &Path) -> Result<(), SecretFileError> {
    match std::fs::symlink_metadata(target) {
        Ok(_) => Err(SecretFileError::Exists(target.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("check", target)(e)),
    }
}

/// The directory a target goes in: its parent, or `.` for a bare name.
fn directory_of(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Content written and synced under a temporary name beside the target, not yet published.
#[must_use = "a staged file is removed unless it is published"]
pub struct Staged {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

/// Writes `content` to a new 0600 temporary file in `target`'s directory and syncs it.
///
/// # Errors
/// The target exists, or the temporary file cannot be created, written or synced.
pub fn stage(target: &Path, content: &[u8]) -> Result<Staged, SecretFileError> {
    refuse_existing(target)?;
    let name = target.file_name().ok_or_else(|| {
        io("write", target)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = directory_of(target);
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io("create a temporary file in", dir))?;
    temp.write_all(content)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io("write", temp.path()))?;
    Ok(Staged {
        temp,
        target: target.to_owned(),
    })
}

impl Staged {
    /// Renames the file to its target, never replacing one that appeared meanwhile, and syncs
    /// the directory.
    ///
    /// # Errors
    /// The target appeared since [`stage`], or the rename or the directory sync failed.
    pub fn publish(self) -> Result<(), SecretFileError> {
        let Self { temp, target } = self;
        // `persist_noclobber`: `renameat2(RENAME_NOREPLACE)`, or link-then-unlink where the file
        // system lacks it; on failure the temporary file is removed with the returned error.
        temp.persist_noclobber(&target).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                SecretFileError::Exists(target.display().to_string())
            } else {
                io("create", &target)(e.error)
            }
        })?;
        let dir = directory_of(&target);
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the directory", dir))
    }
}

/// [`stage`] then [`Staged::publish`], for files with no step in between.
///
/// # Errors
/// As [`stage`] and [`Staged::publish`].
pub fn write_new(target: &Path, content: &[u8]) -> Result<(), SecretFileError> {
    stage(target, content)?.publish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_published_file_is_0600_and_nothing_else_remains() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("kit.json");
        write_new(&target, b"secret").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(names(dir.path()), ["kit.json"]);
    }

    #[test]
    fn a_failed_step_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("kit.json");
        let staged = stage(&target, b"secret").unwrap();
        assert!(!target.exists(), "not published before the step");
        assert_eq!(names(dir.path()).len(), 1, "only the temporary file");
        // The step (recording the audit event) failed: the caller drops the staged file.
        drop(staged);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn an_existing_target_is_refused_up_front_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("kit.json");
        std::fs::write(&target, "first").unwrap();
        let e = stage(&target, b"second").err().unwrap();
        assert!(matches!(e, SecretFileError::Exists(_)), "{e}");
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "first");
        assert_eq!(names(dir.path()), ["kit.json"]);
        // A dangling link is refused too (it is not followed).
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(matches!(
            write_new(&link, b"x"),
            Err(SecretFileError::Exists(_))
        ));
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn a_target_that_appears_while_staged_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("kit.json");
        let staged = stage(&target, b"second").unwrap();
        std::fs::write(&target, "first").unwrap();
        let e = staged.publish().err().unwrap();
        assert!(matches!(e, SecretFileError::Exists(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "first");
        assert_eq!(names(dir.path()), ["kit.json"]);
    }

    #[test]
    fn a_bare_name_goes_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("kit.json")), Path::new("."));
        assert_eq!(directory_of(Path::new("a/kit.json")), Path::new("a"));
        assert_eq!(directory_of(Path::new("/kit.json")), Path::new("/"));
    }
}
