//! The same random operation sequence through a real mount and on a directory of the host's
//! own filesystem: every result (success or errno) and the whole trees (contents, modes,
//! sizes, link counts, listings) must be identical, step by step and after a remount.

mod mount_common;

use mount_common::{Mounted, random_bytes};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// xorshift, deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn rel(r: &mut Rng) -> PathBuf {
    // Mostly shallow paths, so most operations find what they name.
    let depth = match r.below(10) {
        0..=5 => 1,
        6..=8 => 2,
        _ => 3,
    };
    (0..depth).map(|_| NAMES[r.below(4) as usize]).collect()
}

/// One operation, applied under `root`; returns the errno on failure.
fn apply(root: &Path, op: u64, p: &Path, q: &Path, seed: u64) -> Result<(), i32> {
    let (p, q) = (root.join(p), root.join(q));
    let e = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error().unwrap_or(-1));
    match op {
        0 => e(fs::create_dir(&p)),
        1 => e(fs::write(&p, random_bytes(seed, (seed % 70_000) as usize))),
        2 => e((|| {
            let mut f = fs::OpenOptions::new().write(true).open(&p)?;
            f.seek(SeekFrom::Start(seed % 50_000))?;
            f.write_all(&random_bytes(seed + 1, (seed % 9_000) as usize))
        })()),
        3 => e(fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(seed % 80_000))),
        4 => e(fs::rename(&p, &q)),
        5 => e(fs::hard_link(&p, &q)),
        6 => e(fs::remove_file(&p)),
        7 => e(fs::remove_dir(&p)),
        8 => e(std::os::unix::fs::symlink(
            format!("target-{}", seed % 7),
            &p,
        )),
        9 => e(fs::set_permissions(
            &p,
            fs::Permissions::from_mode(0o600 | (seed as u32 % 0o100)),
        )),
        _ => e((|| {
            let mut f = fs::OpenOptions::new().append(true).open(&p)?;
            f.write_all(&random_bytes(seed + 2, (seed % 5_000) as usize))
        })()),
    }
}

/// Everything observable about a tree, as text: one line per entry, sorted.
fn describe(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let m = fs::symlink_metadata(&path).unwrap();
        let name = path.strip_prefix(root).unwrap().display().to_string();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            format!("dir nlink={}", m.nlink())
        } else if ft.is_symlink() {
            format!("symlink -> {}", fs::read_link(&path).unwrap().display())
        } else {
            let mut data = Vec::new();
            fs::File::open(&path)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            format!(
                "file size={} nlink={} blake3={}",
                m.len(),
                m.nlink(),
                blake3::hash(&data).to_hex()
            )
        };
        out.push(format!("{name} mode={:o} {what}", m.mode() & 0o7777));
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

#[test]
fn random_operations_give_the_same_results_and_trees_as_the_host_filesystem() {
    let Some(mut m) = Mounted::new() else { return };
    let host = m.dir.path().join("host");
    let ours = m.path("t");
    fs::create_dir(&host).unwrap();
    fs::create_dir(&ours).unwrap();
    let mut succeeded = 0;
    for seed in [1u64, 2, 3] {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for step in 0..250 {
            // One in four makes a directory or writes a file, so the tree keeps something to
            // rename, link, truncate and remove.
            let op = match r.below(8) {
                0 => 0,
                1 => 1,
                _ => r.below(11),
            };
            let (p, q, s) = (rel(&mut r), rel(&mut r), r.next() % 1_000_000);
            let want = apply(&host, op, &p, &q, s);
            let got = apply(&ours, op, &p, &q, s);
            assert_eq!(got, want, "seed {seed} step {step}: op {op} on {p:?} {q:?}");
            succeeded += got.is_ok() as u32;
            if step % 25 == 0 {
                assert_eq!(describe(&ours), describe(&host), "seed {seed} step {step}");
            }
        }
        assert_eq!(describe(&ours), describe(&host), "seed {seed} at the end");
    }
    // The sequence must exercise the filesystem, not only its error paths.
    assert!(
        succeeded > 200,
        "only {succeeded} of 750 operations succeeded"
    );
    assert!(describe(&host).len() > 5, "the tree ended nearly empty");
    m.remount();
    assert_eq!(describe(&m.path("t")), describe(&host), "after a remount");
}
