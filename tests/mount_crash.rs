//! kill -9 of the daemon while a copy is in flight: after a remount every file fsync'd before
//! the kill reads back exactly, the store lock died with the daemon, and fsck finds the store
//! clean.

mod mount_common;

use mount_common::{Mounted, chunkfs, random_bytes, stderr};
use std::fs;
use std::io::Write;

#[test]
fn files_fsynced_before_a_kill_9_survive_and_the_store_checks_clean() {
    let Some(mut m) = Mounted::new() else { return };
    let mut synced = Vec::new();
    for i in 0..20u64 {
        let data = random_bytes(i, 20_000 + (i as usize * 7_919) % 300_000);
        let path = m.path(&format!("synced-{i}"));
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        synced.push((path, data));
    }
    // A copy in flight: a writer thread keeps writing unsynced data until the daemon dies.
    let busy = m.path("in-flight");
    fs::create_dir(&busy).unwrap();
    let writer = std::thread::spawn(move || {
        let mut n = 0u64;
        // Until the mount dies under it (ENOTCONN), or a bound.
        while let Ok(mut f) = fs::File::create(busy.join(format!("f{n}"))) {
            if f.write_all(&random_bytes(1000 + n, 100_000)).is_err() || n > 10_000 {
                break;
            }
            n += 1;
        }
        n
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = m.daemon_pid();
    // SAFETY: plain kill(2) of the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    m.wait_daemon_exit(pid);
    let written = writer.join().unwrap();
    assert!(written > 0, "the copy was not in flight");
    // The dead daemon leaves a dead mount: detach it, then mount again (the lock died too).
    let _ = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(&m.mnt)
        .status();
    m.forget_mount();
    m.mount(&[]);
    for (path, data) in &synced {
        assert!(
            fs::read(path).unwrap() == *data,
            "{} lost its fsync'd content",
            path.display()
        );
    }
    m.umount();
    let o = chunkfs(&["fsck".as_ref(), m.store.as_os_str()]);
    assert!(
        o.status.success(),
        "fsck after the crash: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}
