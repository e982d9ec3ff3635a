//! Readers of device locations. A chunk's location is looked up under the core lock and read
//! from the device after the lock is dropped; in between, GC may move the chunk and free its old
//! extent. The extent must not be discarded or handed to a new superchunk while anyone may
//! still read the old bytes there, so every lookup that hands out a device location registers
//! a reader, in the same critical section as the lookup, and the registration lasts as long
//! as the location is held (`ReadGuard`). `Core` releases freed extents only once no reader is
//! registered (`Readers::wait_idle`, called with the core lock held, so no new reader can
//! register meanwhile). A reader never takes the core lock while registered, so the wait ends.

use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Default)]
pub struct Readers {
    active: Mutex<usize>,
    idle: Condvar,
}

/// One registered reader: the locations it holds stay readable until it is dropped.
#[derive(Debug)]
pub struct ReadGuard(Arc<Readers>);

impl Readers {
    /// Register a reader. Call with the core lock held, in the critical section that looks up
    /// the locations to be read.
    pub fn enter(self: &Arc<Self>) -> ReadGuard {
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        ReadGuard(self.clone())
    }

    /// Wait until no reader is registered.
    pub fn wait_idle(&self) {
        let mut n = self.active.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.idle.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let mut n = self.0.active.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn waiting_for_idle_returns_only_after_every_guard_is_dropped() {
        let r = Arc::new(Readers::default());
        r.wait_idle(); // none registered: returns at once
        let a = r.enter();
        let b = r.enter();
        let done = Arc::new(AtomicBool::new(false));
        let t = {
            let (r, done) = (r.clone(), done.clone());
            std::thread::spawn(move || {
                r.wait_idle();
                done.store(true, Ordering::SeqCst);
            })
        };
        drop(a);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(Ordering::SeqCst),
            "one reader is still registered"
        );
        drop(b);
        t.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
    }
}
