//! The local state backend: atomic saves with a backup, and locks that name their holder,
//! are taken over when their process is gone, and can be removed by ID.

use vaultform::state::local::LocalBackend;
use vaultform::state::lock::{LockInfo, process_start};
use vaultform::state::{Backend, State, StateError};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn save_is_atomic_and_keeps_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path().join(".vaultform/s.state.json"));
    runtime().block_on(async {
        assert_eq!(backend.load().await.unwrap(), None);
        let mut state = State::new("s");
        state.serial = 1;
        backend.save(&state).await.unwrap();
        state.serial = 2;
        backend.save(&state).await.unwrap();
        let loaded = backend.load().await.unwrap().unwrap();
        assert_eq!(loaded.serial, 2);
        assert_eq!(loaded.lineage, state.lineage);
        let backup: State =
            serde_json::from_str(&std::fs::read_to_string(backend.backup_path()).unwrap()).unwrap();
        assert_eq!(backup.serial, 1);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join(".vaultform"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    });
}

#[test]
fn corrupt_state_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.state.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = runtime()
        .block_on(LocalBackend::new(&path).load())
        .unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_held_lock_names_its_holder_and_is_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path().join("s.state.json"));
    runtime().block_on(async {
        let guard = backend.lock("apply").await.unwrap();
        let err = backend.lock("apply").await.unwrap_err();
        match &err {
            StateError::Locked { holder, id } => {
                assert_eq!(id, &guard.info.id);
                assert!(
                    holder.contains(&format!("PID {}", std::process::id())),
                    "{holder}"
                );
                assert!(holder.starts_with("apply"), "{holder}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(guard);
        assert!(!backend.lock_path().exists());
        let again = backend.lock("destroy").await.unwrap();
        assert!(again.took_over.is_none());
    });
}

#[test]
fn a_lock_whose_process_is_gone_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path().join("s.state.json"));
    // A process that has exited: its PID no longer exists (or belongs to another process).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    let start = process_start(pid);
    child.wait().unwrap();
    let mut dead = LockInfo::for_this_process("apply");
    dead.pid = pid;
    dead.pid_start = start.or(Some(1));
    std::fs::write(backend.lock_path(), serde_json::to_string(&dead).unwrap()).unwrap();
    assert!(dead.is_stale());
    runtime().block_on(async {
        let guard = backend.lock("apply").await.unwrap();
        assert_eq!(
            guard.took_over.as_ref().map(|l| l.id.as_str()),
            Some(dead.id.as_str())
        );
    });
}

#[test]
fn force_unlock_removes_only_the_named_lock() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path().join("s.state.json"));
    runtime().block_on(async {
        let guard = backend.lock("apply").await.unwrap();
        let id = guard.info.id.clone();
        std::mem::forget(guard);
        let err = backend.force_unlock("not-the-id").await.unwrap_err();
        assert!(matches!(err, StateError::NotLocked { .. }));
        let removed = backend.force_unlock(&id).await.unwrap();
        assert_eq!(removed.id, id);
        assert!(!backend.lock_path().exists());
    });
}
