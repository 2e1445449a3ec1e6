//! The local state backend: one JSON file, written atomically (temporary file, fsync,
//! rename), the previous version kept as `<file>.backup`, locked by `<file>.lock`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::lock::{LockGuard, LockInfo};
use super::model::{FORMAT_VERSION, State};
use super::{Backend, StateError};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    path: PathBuf,
}

impl LocalBackend {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LocalBackend { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    pub fn lock_path(&self) -> PathBuf {
        self.sibling(".lock")
    }

    pub fn backup_path(&self) -> PathBuf {
        self.sibling(".backup")
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn write_err(&self, source: std::io::Error) -> StateError {
        StateError::Write {
            path: self.shown(),
            source,
        }
    }

    fn read_lock(&self) -> Option<LockInfo> {
        let text = std::fs::read_to_string(self.lock_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Creates the lock file only if none exists (O_EXCL).
    fn try_create_lock(&self, info: &LockInfo) -> std::io::Result<()> {
        let mut f = crate::private::create_new(&self.lock_path())?;
        f.write_all(
            serde_json::to_string_pretty(info)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        f.sync_all()
    }
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn describe(&self) -> String {
        self.shown()
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.shown(),
                    source,
                });
            }
        };
        let state: State = serde_json::from_str(&text).map_err(|source| StateError::Corrupt {
            path: self.shown(),
            source,
        })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Version {
                path: self.shown(),
                found: state.version,
                expected: FORMAT_VERSION,
            });
        }
        Ok(Some(state))
    }

    async fn save(&self, state: &State) -> Result<(), StateError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::create_dir_all(dir).map_err(|e| self.write_err(e))?;
        }
        let tmp = self.sibling(&format!(".tmp.{}", std::process::id()));
        let text = serde_json::to_string_pretty(state).map_err(|e| self.write_err(e.into()))?;
        {
            let mut f = crate::private::create(&tmp).map_err(|e| self.write_err(e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| self.write_err(e))?;
            f.write_all(b"\n").map_err(|e| self.write_err(e))?;
            f.sync_all().map_err(|e| self.write_err(e))?;
        }
        if self.path.exists() {
            // A hard link keeps the previous version without a window where no state exists.
            let backup = self.backup_path();
            let _ = std::fs::remove_file(&backup);
            std::fs::hard_link(&self.path, &backup)
                .or_else(|_| std::fs::copy(&self.path, &backup).map(|_| ()))
                .map_err(|e| self.write_err(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.write_err(e))?;
        sync_dir(&self.path);
        Ok(())
    }

    async fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::create_dir_all(dir).map_err(|e| self.write_err(e))?;
        }
        let info = LockInfo::for_this_process(operation);
        let mut took_over = None;
        for _ in 0..3 {
            match self.try_create_lock(&info) {
                Ok(()) => {
                    let path = self.lock_path();
                    let id = info.id.clone();
                    let release = Box::new(move || {
                        // Only remove the lock if it is still ours.
                        let ours = std::fs::read_to_string(&path)
                            .ok()
                            .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok())
                            .is_some_and(|l| l.id == id);
                        if ours {
                            let _ = std::fs::remove_file(&path);
                        }
                    });
                    return Ok(LockGuard::new(info, took_over, release));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let Some(holder) = self.read_lock() else {
                        // Being written right now, or unreadable: treat as held.
                        return Err(StateError::Locked {
                            holder: format!(
                                "an unreadable lock file {}",
                                self.lock_path().display()
                            ),
                            id: "?".into(),
                        });
                    };
                    if !holder.is_stale() {
                        return Err(StateError::Locked {
                            holder: holder.describe(),
                            id: holder.id,
                        });
                    }
                    // Stale: move it aside atomically, so only one taker wins, then retry.
                    let aside = self.sibling(&format!(".lock.stale.{}", info.id));
                    if std::fs::rename(self.lock_path(), &aside).is_ok() {
                        let _ = std::fs::remove_file(&aside);
                        took_over = Some(holder);
                    }
                }
                Err(e) => return Err(self.write_err(e)),
            }
        }
        let holder = self.read_lock();
        Err(StateError::Locked {
            holder: holder
                .as_ref()
                .map(LockInfo::describe)
                .unwrap_or_else(|| "another process".into()),
            id: holder.map(|h| h.id).unwrap_or_default(),
        })
    }

    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        match self.read_lock() {
            Some(holder) if holder.id == id => {
                std::fs::remove_file(self.lock_path()).map_err(|e| self.write_err(e))?;
                Ok(holder)
            }
            other => Err(StateError::NotLocked {
                id: id.to_string(),
                current: other.map(|h| h.describe()).unwrap_or_else(|| "none".into()),
            }),
        }
    }
}
