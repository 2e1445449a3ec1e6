//! Files and directories only their owner can use: every file vaultform writes is created
//! 0600 and every directory it creates 0700, whatever the umask (state and its backup, locks,
//! saved plans, snapshots, logs, server and proxy configurations, process records).

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const FILE: u32 = 0o600;
const DIR: u32 = 0o700;

/// Creates `path` and every missing parent, each 0700; existing directories are left as
/// they are.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path.ancestors().take_while(|p| !p.exists()).collect();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR)
        .create(path)?;
    // The umask may have removed bits the mode asked for.
    for dir in missing.into_iter().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::set_permissions(dir, Permissions::from_mode(DIR))?;
    }
    Ok(())
}

fn opened(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let f = options.mode(FILE).open(path)?;
    // An existing file keeps its mode through open; the umask may narrow a new one.
    f.set_permissions(Permissions::from_mode(FILE))?;
    Ok(f)
}

/// Creates or truncates `path` for writing, 0600.
pub fn create(path: &Path) -> io::Result<File> {
    opened(
        OpenOptions::new().write(true).create(true).truncate(true),
        path,
    )
}

/// Creates `path` only if it does not exist (O_EXCL), 0600.
pub fn create_new(path: &Path) -> io::Result<File> {
    opened(OpenOptions::new().write(true).create_new(true), path)
}

/// Opens `path` for appending, created if missing, 0600.
pub fn append(path: &Path) -> io::Result<File> {
    opened(OpenOptions::new().create(true).append(true), path)
}

/// Writes `bytes` to `path` (created or truncated), 0600.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = create(path)?;
    f.write_all(bytes)?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_and_directories_0700_even_over_wider_ones() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/c");
        create_dir_all(&dir).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&t.path().join(d)), 0o700, "{d}");
        }
        let f = dir.join("state.json");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        write(&f, b"new").unwrap();
        assert_eq!(mode(&f), 0o600);
        let log = dir.join("server.log");
        drop(append(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
        let lock = dir.join("state.lock");
        drop(create_new(&lock).unwrap());
        assert_eq!(mode(&lock), 0o600);
        assert!(create_new(&lock).is_err());
    }
}
