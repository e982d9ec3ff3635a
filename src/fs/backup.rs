//! Backups of the metadata database while the store is open (`meta::backup` makes them):
//! after a group commit when the last one is older than `INTERVAL` and something committed
//! since, on a thread of its own, and once more when the store closes. A backup is a reader
//! of the WAL database, so writers never wait for it; it costs one read of the database and
//! one compact write of it (docs/SEMANTICS.md, "Metadata damage").

use super::Inner;
use crate::meta::backup;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// At most one backup per this interval while mounted (plus one at unmount).
pub const INTERVAL: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub(super) struct Backups(Mutex<State>);

#[derive(Default)]
struct State {
    /// `Core::changes` when the last backup started; None before any backup of this store
    /// exists.
    changes: Option<u64>,
    at: Option<Instant>,
    running: Option<JoinHandle<()>>,
}

impl Backups {
    /// `exists`: whether a backup is already there (of the store as it opened, with no
    /// changes yet).
    pub(super) fn new(exists: bool) -> Backups {
        Backups(Mutex::new(State {
            changes: exists.then_some(0),
            at: Some(Instant::now()),
            running: None,
        }))
    }
}

impl Inner {
    fn backups_wanted(&self) -> bool {
        !self.opts.read_only
            && !self.opts.meta_path.as_os_str().is_empty()
            && self.writable.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After a group commit: start a background backup if one is due.
    pub(super) fn maybe_backup(&self) {
        if !self.backups_wanted() {
            return;
        }
        let changes = self.changes();
        let mut st = self.backups.0.lock().unwrap();
        if st.running.as_ref().is_some_and(|t| !t.is_finished())
            || st.changes == Some(changes)
            || st.at.is_some_and(|t| t.elapsed() < INTERVAL)
        {
            return;
        }
        if let Some(t) = st.running.take() {
            let _ = t.join();
        }
        let path = self.opts.meta_path.clone();
        st.changes = Some(changes);
        st.at = Some(Instant::now());
        st.running = std::thread::Builder::new()
            .name("chunkfs-backup".into())
            .spawn(move || take(&path))
            .ok();
    }

    /// At close, after the final commit: wait for a running backup, then take one if anything
    /// committed since the last.
    pub(super) fn final_backup(&self) {
        let running = self.backups.0.lock().unwrap().running.take();
        if let Some(t) = running {
            let _ = t.join();
        }
        if !self.backups_wanted() {
            return;
        }
        let changes = self.changes();
        let mut st = self.backups.0.lock().unwrap();
        if st.changes != Some(changes) {
            st.changes = Some(changes);
            take(&self.opts.meta_path);
        }
    }
}

fn take(meta: &std::path::Path) {
    let started = Instant::now();
    match backup::take(meta) {
        Ok(b) => log::info!(
            "chunkfs: backed up the metadata to {} (seq {}, {} bytes, {:?})",
            b.path.display(),
            b.seq,
            b.bytes,
            started.elapsed()
        ),
        Err(e) => {
            log::warn!("chunkfs: backup of the metadata failed, the older backups are kept: {e}")
        }
    }
}
