//! Atomic file writes, once for every file the project writes (fault maps,
//! checkpoints, job files, plans, reports, plots).
//!
//! A process killed at any moment (SIGKILL, a board pulled, a Slurm
//! preemption) leaves either the old file or the new one, never a truncated
//! mix: the bytes go to a temporary file beside the target, are flushed to
//! disk, and the temporary file is renamed over the target (a rename within
//! one directory is atomic on POSIX file systems).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary name [`write_atomic`] uses for `path`: hidden, beside it,
/// with the writer's process id so that two processes writing the same file
/// never share a temporary. It ends in `.tmp`, so directory scans for
/// `*.json` (job files, fault maps) never take a temporary left by a kill
/// for a finished file.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Write `bytes` to `path` atomically (its directory is made if missing).
/// On error the temporary file is removed and the target is untouched; the
/// error is the failing step's and says which file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    let tmp = temp_path(path);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        // Flushed before the rename, so a crash of the machine (not only of
        // the process) cannot leave the new name on unwritten blocks.
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Move `tmp` (a file written completely by the caller, e.g. by a library
/// that only writes to a path) over `path` atomically.
pub fn commit(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Ok(f) = std::fs::File::open(tmp) {
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/x.json");
        write_atomic(&p, b"first, longer content").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
        // A target that cannot be replaced (a directory) leaves no temporary.
        let dir = d.path().join("adir");
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        assert!(write_atomic(&dir, b"x").is_err());
        assert!(!temp_path(&dir).exists());
    }
}
