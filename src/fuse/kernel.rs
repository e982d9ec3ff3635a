//! What chunkfs asks of the kernel: connection capabilities at INIT and the mount options.

use fuser::{Config, InitFlags, KernelConfig, MountOption, SessionACL};

/// Largest write the kernel sends in one request.
const MAX_WRITE: u32 = 1 << 20;
/// The st_blksize reported for regular files: programs that size their copy buffers by it
/// (cp, install, rsync; coreutils takes the larger of 128 KiB and st_blksize) then write in
/// requests of max_write, 8 times fewer for a large file than with the 4096 a disk reports
/// (docs/FUSE-TUNING.md, "Requests per file"). glibc's stdio only ever takes it when smaller
/// than BUFSIZ, so no FILE buffer grows.
pub const PREFERRED_IO: u32 = MAX_WRITE;
/// Readahead window asked for; the kernel caps it at what it allows.
const MAX_READAHEAD: u32 = 4 << 20;
/// Readahead of the mount's backing device info, in KiB: the kernel reads a FUSE file in
/// requests of at most this size, and the 4 MiB asked for at INIT is capped at the bdi's
/// default of 128 KiB until someone raises it (docs/FUSE-TUNING.md).
const READ_AHEAD_KB: u32 = MAX_READAHEAD >> 10;
/// Background requests (readahead, writeback) in flight at once.
const MAX_BACKGROUND: u16 = 64;

/// Capabilities that let the kernel cache and batch. Each is optional: an older kernel
/// without one still mounts, only slower.
///
/// The writeback cache is deliberately not asked for: with it the kernel takes a regular
/// file's size and mtime as its own and never again from chunkfs while the inode is cached,
/// so a revert (which changes files behind the kernel's back) could not be shown even after
/// invalidating. chunkfs buffers writes itself (the per-file dirty buffer), so what the
/// writeback cache would add is fewer, larger write requests; see docs/FUSE-TUNING.md.
const WANTED: [(InitFlags, &str); 8] = [
    (InitFlags::FUSE_ASYNC_READ, "async read"),
    (InitFlags::FUSE_BIG_WRITES, "big writes"),
    (InitFlags::FUSE_DO_READDIRPLUS, "readdirplus"),
    (InitFlags::FUSE_READDIRPLUS_AUTO, "adaptive readdirplus"),
    (
        InitFlags::FUSE_PARALLEL_DIROPS,
        "parallel directory operations",
    ),
    // O_TRUNC arrives with open instead of a separate setattr: one commit, not two.
    (InitFlags::FUSE_ATOMIC_O_TRUNC, "atomic O_TRUNC"),
    // The daemon drops suid/sgid itself (`fuse.rs`, `fs::privileges`), so the kernel probes
    // `security.capability` once per inode instead of before every write (SB_NOSEC), and
    // sends no GETATTR before each chown of a file.
    (
        InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        "suid/sgid clearing by the filesystem",
    ),
    // File handles (`open_by_handle_at`, NFS exports) of inodes the kernel no longer
    // caches: it asks LOOKUP of "." (the inode by number) and, for a directory, of ".."
    // (its parent), which the core answers (`Fs::lookup`). Without it such a handle is ESTALE.
    (InitFlags::FUSE_EXPORT_SUPPORT, "file handles (NFS export)"),
];

/// Called at INIT with what the kernel offers.
pub fn configure(config: &mut KernelConfig) {
    if let Err(max) = config.set_max_write(bench_switch::max_write().unwrap_or(MAX_WRITE)) {
        let _ = config.set_max_write(max);
    }
    if let Err(max) = config.set_max_readahead(MAX_READAHEAD) {
        let _ = config.set_max_readahead(max);
    }
    let _ = config.set_max_background(MAX_BACKGROUND);
    if bench_switch::writeback()
        && config
            .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
            .is_err()
    {
        log::warn!("CHUNKFS_WRITEBACK: the kernel does not offer the writeback cache");
    }
    for (flag, what) in WANTED {
        if flag == InitFlags::FUSE_HANDLE_KILLPRIV_V2 && bench_switch::no_killpriv() {
            continue;
        }
        if config.add_capabilities(flag).is_err() {
            log::warn!("the kernel does not offer {what}; continuing without it");
        }
    }
    if config
        .add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS)
        .is_err()
    {
        log::debug!("the kernel does not cache symlinks");
    }
}

/// The fuser configuration for a mount of the store at `fsname` (its canonical path, which
/// `/proc/self/mountinfo` then shows as the mount's source).
pub fn mount_config(fsname: &str, options: Vec<MountOption>, acl: SessionACL) -> Config {
    let mut mount_options = vec![
        MountOption::FSName(fsname.to_string()),
        // The kernel checks permissions from the attributes, as a local filesystem does.
        MountOption::DefaultPermissions,
        subtype(),
    ];
    mount_options.extend(options);
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = acl;
    config.n_threads = Some(worker_threads());
    config.clone_fd = true;
    config
}

/// Raise the readahead of the mount whose device number is `dev` ("MAJ:MIN", from
/// mountinfo) to `READ_AHEAD_KB`. Only root may; anyone else keeps the kernel's default.
pub fn raise_readahead(dev: &str) {
    let kb = bench_switch::read_ahead_kb().unwrap_or(READ_AHEAD_KB);
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&path, format!("{kb}\n")) {
        Ok(()) => log::debug!("readahead of the mount raised to {kb} KiB"),
        Err(e) => log::debug!("readahead of the mount left as the kernel set it ({path}: {e})"),
    }
}

/// fuser's direct mount(2) (taken when running as root) ignores `Subtype` and mounts as plain
/// "fuse"; the kernel itself accepts `subtype=`, so hand it over as a kernel option there.
/// fusermount3 (everyone else) understands `Subtype`.
fn subtype() -> MountOption {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        MountOption::CUSTOM("subtype=chunkfs".into())
    } else {
        MountOption::Subtype("chunkfs".into())
    }
}

/// One worker per CPU, at least 2 so a slow commit does not stall every other request, at most
/// 8 because the metadata lock serializes beyond that.
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// Benchmark-only switches read from the environment, so docs/FUSE-TUNING.md can measure each
/// setting's effect without rebuilding: `CHUNKFS_WRITEBACK=1` asks for the writeback cache
/// (which chunkfs leaves off, see WANTED; reverts are then not shown correctly, so never for
/// real use), `CHUNKFS_MAX_WRITE=131072` asks for that max_write instead of 1 MiB,
/// `CHUNKFS_READ_AHEAD_KB=128` sets the mount's readahead to that instead of 4 MiB,
/// `CHUNKFS_NO_KILLPRIV=1` leaves FUSE_HANDLE_KILLPRIV_V2 off (the kernel then clears suid/sgid
/// itself, at the cost of a probe per write and a GETATTR per chown). Unset (the normal case)
/// changes nothing.
mod bench_switch {
    fn var(name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty() && v != "0")
    }

    pub fn writeback() -> bool {
        var("CHUNKFS_WRITEBACK").is_some()
    }

    pub fn max_write() -> Option<u32> {
        var("CHUNKFS_MAX_WRITE").and_then(|v| v.parse().ok())
    }

    pub fn no_killpriv() -> bool {
        var("CHUNKFS_NO_KILLPRIV").is_some()
    }

    pub fn read_ahead_kb() -> Option<u32> {
        var("CHUNKFS_READ_AHEAD_KB").and_then(|v| v.parse().ok())
    }
}
