//! A file exerciser in the manner of fsx: random writes, truncates, every fallocate mode,
//! mmap reads and writes, reads, fsyncs, cache drops, reopens and remounts on a few files,
//! each checked against an in-memory copy of what the file must hold. Everything it does
//! follows from one seed, so a failure replays with the same seed and op count; a failure
//! reports the seed, the op that failed and the ops before it.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const PAGE: u64 = 4096;
/// Ops shown before the one that failed.
const LOG_TAIL: usize = 60;

/// splitmix64: one 64-bit state, good enough spread for choosing ops.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    /// True `pct` times in a hundred.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// The fallocate modes asked for. chunkfs supports the first five; the last three must be
/// refused with EOPNOTSUPP and change nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Falloc {
    Allocate,
    KeepSize,
    PunchHole,
    ZeroRange,
    ZeroRangeKeepSize,
    PunchHoleAlone,
    Collapse,
    Insert,
}

impl Falloc {
    fn mode(self) -> i32 {
        match self {
            Falloc::Allocate => 0,
            Falloc::KeepSize => libc::FALLOC_FL_KEEP_SIZE,
            Falloc::PunchHole => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            Falloc::ZeroRange => libc::FALLOC_FL_ZERO_RANGE,
            Falloc::ZeroRangeKeepSize => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            Falloc::PunchHoleAlone => libc::FALLOC_FL_PUNCH_HOLE,
            Falloc::Collapse => libc::FALLOC_FL_COLLAPSE_RANGE,
            Falloc::Insert => libc::FALLOC_FL_INSERT_RANGE,
        }
    }
    fn supported(self) -> bool {
        !matches!(
            self,
            Falloc::PunchHoleAlone | Falloc::Collapse | Falloc::Insert
        )
    }
}

/// One operation on one file. Offsets and lengths are already fitted to the file.
#[derive(Clone, Debug)]
pub enum Op {
    Write {
        off: u64,
        len: u64,
        data: u64,
    },
    MapWrite {
        off: u64,
        len: u64,
        data: u64,
        sync: bool,
    },
    Read {
        off: u64,
        len: u64,
    },
    MapRead {
        off: u64,
        len: u64,
    },
    Truncate {
        size: u64,
    },
    Fallocate {
        how: Falloc,
        off: u64,
        len: u64,
    },
    /// `copy_file_range` into this file from file `from` (possibly this one).
    CopyRange {
        from: usize,
        off_in: u64,
        off_out: u64,
        len: u64,
    },
    Fsync,
    /// fsync, then drop the file's pages from the kernel's cache: the next reads ask the daemon.
    DropCache,
    /// Close and open again, then compare the whole file.
    Reopen,
}

/// Content for a write: mostly incompressible, sometimes text-like (compressible), and often
/// from a small pool of seeds so equal chunks recur (deduplication).
pub fn content(data: u64, len: u64) -> Vec<u8> {
    let len = len as usize;
    if data.is_multiple_of(4) {
        let words: &[&[u8]] = &[b"chunk ", b"store ", b"extent ", b"seal ", b"gc\n"];
        let mut out = Vec::with_capacity(len + 8);
        let mut x = data;
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 60) as usize % words.len()]);
        }
        out.truncate(len);
        out
    } else {
        // Eight bytes per step: the test crate is built without optimization.
        let mut out = Vec::with_capacity(len + 8);
        let mut r = Rng::new(data);
        while out.len() < len {
            out.extend_from_slice(&r.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// One file under test: its path, its open descriptor and what it must hold.
pub struct Subject {
    pub name: String,
    path: PathBuf,
    file: Option<File>,
    model: Vec<u8>,
    /// Largest size the generator aims at (ops may pass it a little).
    max: u64,
    /// Largest ordinary transfer; a few in a hundred go up to `max / 4`.
    io: u64,
}

/// A run: files, the seed, the op log and counters.
pub struct Fsx {
    pub seed: u64,
    rng: Rng,
    pub files: Vec<Subject>,
    log: VecDeque<String>,
    pub done: u64,
    /// Ops and time spent by kind.
    pub counts: std::collections::BTreeMap<&'static str, (u64, std::time::Duration)>,
    /// Remount roughly once in this many ops (0: never).
    pub remount_every: u64,
}

thread_local! {
    /// The address of the last SIGBUS in this thread, 0 for none. SIGBUS arrives in the
    /// thread whose mmap access the daemon failed.
    static SIGBUS_AT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An mmap access to a page the daemon cannot read raises SIGBUS, which would kill the whole
/// test process. Map a page of zeros over the faulting one instead, so the access completes,
/// and note it: the op then fails like any other, with its report.
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO; mmap is a plain system call.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let page = (addr as u64 / PAGE * PAGE) as usize;
        let p = libc::mmap(
            page as *mut libc::c_void,
            PAGE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            libc::_exit(101);
        }
        SIGBUS_AT.with(|c| c.set(addr));
    }
}

fn install_sigbus_handler() {
    // SAFETY: the handler only replaces the faulting page and records its address.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

/// `CHUNKFS_FSX_SEED` (decimal or 0x-hex) or `default`.
pub fn seed_from_env(default: u64) -> u64 {
    match std::env::var("CHUNKFS_FSX_SEED") {
        Ok(s) => {
            let s = s.trim();
            s.strip_prefix("0x")
                .map(|h| u64::from_str_radix(h, 16))
                .unwrap_or_else(|| s.parse())
                .expect("CHUNKFS_FSX_SEED: a decimal or 0x-hex number")
        }
        Err(_) => default,
    }
}

/// `CHUNKFS_FSX_OPS` or `default`.
pub fn ops_from_env(default: u64) -> u64 {
    std::env::var("CHUNKFS_FSX_OPS")
        .ok()
        .map(|s| s.trim().parse().expect("CHUNKFS_FSX_OPS: a number"))
        .unwrap_or(default)
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

impl Fsx {
    /// Files named in `specs` (name, largest size, largest ordinary transfer) under `dir`,
    /// created empty.
    pub fn new(seed: u64, dir: &Path, specs: &[(&str, u64, u64)]) -> Fsx {
        install_sigbus_handler();
        let files = specs
            .iter()
            .map(|&(name, max, io)| Subject {
                name: name.to_string(),
                path: dir.join(name),
                file: None,
                model: Vec::new(),
                max,
                io,
            })
            .collect();
        let mut fsx = Fsx {
            seed,
            rng: Rng::new(seed),
            files,
            log: VecDeque::new(),
            done: 0,
            counts: Default::default(),
            remount_every: 0,
        };
        for i in 0..fsx.files.len() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&fsx.files[i].path)
                .unwrap_or_else(|e| panic!("create {}: {e}", fsx.files[i].path.display()));
            fsx.files[i].file = Some(f);
        }
        fsx
    }

    /// Run `ops` operations; `remount` unmounts and mounts again (files are closed around it).
    pub fn run(&mut self, ops: u64, remount: &mut dyn FnMut()) {
        while self.done < ops {
            if self.remount_every > 0 && self.rng.below(self.remount_every) == 0 {
                self.remount(remount);
            }
            let i = self.rng.below(self.files.len() as u64) as usize;
            let op = self.generate(i);
            let kind = self.note(i, &op);
            let t = std::time::Instant::now();
            self.apply(i, &op);
            self.counts.get_mut(kind).unwrap().1 += t.elapsed();
            self.check_size(i);
            self.done += 1;
            if self.done.is_multiple_of(50_000) {
                eprintln!("fsx {:#x}: {} ops clean", self.seed, self.done);
            }
        }
        self.remount(remount);
    }

    /// Close every file, remount, open again and compare each whole file.
    pub fn remount(&mut self, remount: &mut dyn FnMut()) {
        self.log_line("remount".to_string());
        let t = std::time::Instant::now();
        for f in &mut self.files {
            f.file = None;
        }
        remount();
        for i in 0..self.files.len() {
            self.open(i);
            self.check_size(i);
            self.compare_all(i, "after remount");
        }
        let c = self.counts.entry("remount").or_default();
        c.0 += 1;
        c.1 += t.elapsed();
    }

    fn generate(&mut self, i: usize) -> Op {
        let r = &mut self.rng;
        let f = &self.files[i];
        let size = f.model.len() as u64;
        let max = f.max;
        let io = if r.chance(3) { f.io.max(max / 4) } else { f.io };
        let len = 1 + r.below(io);
        // Offsets mostly inside the file, some at or past its end.
        let off = match r.below(10) {
            0 => size,
            1 => r.below(max),
            _ => r.below(size.max(1)),
        };
        let data = if r.chance(30) { r.below(16) } else { r.next() };
        match r.below(100) {
            0..=21 => {
                let off = off.min(max);
                Op::Write {
                    off,
                    len: len.min(max + io - off),
                    data,
                }
            }
            22..=29 if size > 0 => {
                let off = off % size;
                Op::MapWrite {
                    off,
                    len: len.min(size - off),
                    data,
                    sync: r.chance(70),
                }
            }
            30..=41 => Op::Read { off, len },
            42..=47 => {
                let from = r.below(self.files.len() as u64) as usize;
                let src_size = self.files[from].model.len() as u64;
                let off_in = if src_size > 0 && r.chance(90) {
                    r.below(src_size)
                } else {
                    r.below(max)
                };
                let off_out = off.min(max);
                Op::CopyRange {
                    from,
                    off_in,
                    off_out,
                    len: len.min(max + io - off_out),
                }
            }
            48..=55 if size > 0 => {
                let off = off % size;
                Op::MapRead {
                    off,
                    len: len.min(size - off),
                }
            }
            56..=62 => {
                let size = if r.chance(50) {
                    (size + r.below(2 * io)).saturating_sub(io)
                } else {
                    r.below(max + 1)
                };
                Op::Truncate {
                    size: size.min(max + io),
                }
            }
            63..=85 => {
                let how = match r.below(20) {
                    0..=3 => Falloc::Allocate,
                    4..=6 => Falloc::KeepSize,
                    7..=11 => Falloc::PunchHole,
                    12..=15 => Falloc::ZeroRange,
                    16..=17 => Falloc::ZeroRangeKeepSize,
                    18 => Falloc::PunchHoleAlone,
                    _ if r.chance(50) => Falloc::Collapse,
                    _ => Falloc::Insert,
                };
                // Page-aligned ranges sometimes, as collapse and insert need and as
                // applications use.
                let off = off.min(max);
                let (off, len) = if r.chance(30) {
                    (off / PAGE * PAGE, len.div_ceil(PAGE) * PAGE)
                } else {
                    (off, len)
                };
                let len = len.min(max + io - off);
                Op::Fallocate { how, off, len }
            }
            86..=89 => Op::Fsync,
            90..=95 => Op::DropCache,
            96..=97 => Op::Reopen,
            _ => Op::Read { off: 0, len: size },
        }
    }

    fn note(&mut self, i: usize, op: &Op) -> &'static str {
        let line = format!(
            "#{} {} (size {}): {op:?}",
            self.done,
            self.files[i].name,
            self.files[i].model.len()
        );
        self.log_line(line);
        let name = match op {
            Op::Write { .. } => "write",
            Op::MapWrite { .. } => "mmap write",
            Op::Read { .. } => "read",
            Op::MapRead { .. } => "mmap read",
            Op::Truncate { .. } => "truncate",
            Op::Fallocate { how, .. } => match how {
                Falloc::Allocate => "fallocate",
                Falloc::KeepSize => "fallocate keep-size",
                Falloc::PunchHole => "fallocate punch-hole",
                Falloc::ZeroRange => "fallocate zero-range",
                Falloc::ZeroRangeKeepSize => "fallocate zero-range keep-size",
                _ => "fallocate unsupported",
            },
            Op::CopyRange { .. } => "copy range",
            Op::Fsync => "fsync",
            Op::DropCache => "drop cache",
            Op::Reopen => "reopen",
        };
        self.counts.entry(name).or_default().0 += 1;
        name
    }

    fn log_line(&mut self, line: String) {
        if self.log.len() == LOG_TAIL {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    /// Panic with everything needed to replay: seed, op count, the failure and the ops before.
    pub fn fail(&self, what: &str) -> ! {
        panic!("{}", self.report(what));
    }

    fn report(&self, what: &str) -> String {
        let mut s = format!(
            "\nfsx FAILED at op #{} (seed {:#x}; replay: CHUNKFS_FSX_SEED={:#x} CHUNKFS_FSX_OPS={}): {what}\nlast ops:\n",
            self.done,
            self.seed,
            self.seed,
            self.done + 1
        );
        for l in &self.log {
            s.push_str("  ");
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn file(&self, i: usize) -> &File {
        self.files[i].file.as_ref().expect("open")
    }

    fn fd(&self, i: usize) -> i32 {
        self.file(i).as_raw_fd()
    }

    fn open(&mut self, i: usize) {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.files[i].path)
        {
            Ok(f) => self.files[i].file = Some(f),
            Err(e) => self.fail(&format!("open {}: {e}", self.files[i].name)),
        }
    }

    fn apply(&mut self, i: usize, op: &Op) {
        match *op {
            Op::Write { off, len, data } => {
                let buf = content(data, len);
                if let Err(e) = self.file(i).write_all_at(&buf, off) {
                    self.fail(&format!("write: {e}"));
                }
                put(&mut self.files[i].model, off, &buf);
            }
            Op::MapWrite {
                off,
                len,
                data,
                sync,
            } => {
                let buf = content(data, len);
                self.map_write(i, off, &buf, sync);
                put(&mut self.files[i].model, off, &buf);
            }
            Op::Read { off, len } => {
                let want = slice(&self.files[i].model, off, len).to_vec();
                let mut got = vec![0u8; len as usize];
                let n = self.read_fully(i, off, &mut got);
                got.truncate(n);
                self.expect_equal(i, off, &want, &got, "read");
            }
            Op::MapRead { off, len } => {
                let want = slice(&self.files[i].model, off, len).to_vec();
                let got = self.map_read(i, off, len);
                self.expect_equal(i, off, &want, &got, "mmap read");
            }
            Op::Truncate { size } => {
                if let Err(e) = self.file(i).set_len(size) {
                    self.fail(&format!("truncate: {e}"));
                }
                self.files[i].model.resize(size as usize, 0);
            }
            Op::Fallocate { how, off, len } => self.fallocate(i, how, off, len),
            Op::CopyRange {
                from,
                off_in,
                off_out,
                len,
            } => self.copy_range(i, from, off_in, off_out, len),
            Op::Fsync => {
                if let Err(e) = self.file(i).sync_all() {
                    self.fail(&format!("fsync: {e}"));
                }
            }
            Op::DropCache => {
                if let Err(e) = self.file(i).sync_all() {
                    self.fail(&format!("fsync: {e}"));
                }
                // SAFETY: a valid descriptor; fadvise only drops clean cached pages.
                let r = unsafe { libc::posix_fadvise(self.fd(i), 0, 0, libc::POSIX_FADV_DONTNEED) };
                if r != 0 {
                    self.fail(&format!("posix_fadvise: errno {r}"));
                }
            }
            Op::Reopen => {
                self.files[i].file = None;
                self.open(i);
                self.compare_all(i, "after reopen");
            }
        }
    }

    fn copy_range(&mut self, i: usize, from: usize, off_in: u64, off_out: u64, len: u64) {
        let (mut oi, mut oo) = (off_in as i64, off_out as i64);
        // SAFETY: valid descriptors and offsets.
        let r = unsafe {
            libc::copy_file_range(self.fd(from), &mut oi, self.fd(i), &mut oo, len as usize, 0)
        };
        let err = (r < 0).then(std::io::Error::last_os_error);
        // The kernel clips the length to the source's end, then judges the overlap.
        let want = len.min((self.files[from].model.len() as u64).saturating_sub(off_in));
        if from == i && want > 0 && off_in < off_out + want && off_out < off_in + want {
            match err {
                Some(e) if errno_of(&e) == libc::EINVAL => return,
                Some(e) => self.fail(&format!("overlapping copy: {e}, expected EINVAL")),
                None => self.fail("overlapping copy succeeded, expected EINVAL"),
            }
        }
        if let Some(e) = err {
            self.fail(&format!("copy_file_range: {e}"));
        }
        if r as u64 != want {
            self.fail(&format!(
                "copy_file_range copied {r} bytes, expected {want}"
            ));
        }
        if want > 0 {
            let src = &self.files[from].model;
            let bytes = src[off_in as usize..(off_in + want) as usize].to_vec();
            put(&mut self.files[i].model, off_out, &bytes);
        }
    }

    fn fallocate(&mut self, i: usize, how: Falloc, off: u64, len: u64) {
        // SAFETY: a valid descriptor.
        let r = unsafe { libc::fallocate(self.fd(i), how.mode(), off as i64, len as i64) };
        let err = (r != 0).then(std::io::Error::last_os_error);
        if !how.supported() {
            match err {
                Some(e) if errno_of(&e) == libc::EOPNOTSUPP => return,
                Some(e) => self.fail(&format!("{how:?}: {e}, expected EOPNOTSUPP")),
                None => self.fail(&format!("{how:?} succeeded, expected EOPNOTSUPP")),
            }
        }
        if let Some(e) = err {
            self.fail(&format!("fallocate {how:?}: {e}"));
        }
        let m = &mut self.files[i].model;
        let size = m.len() as u64;
        let end = off + len;
        match how {
            Falloc::Allocate => {
                if end > size {
                    m.resize(end as usize, 0);
                }
            }
            Falloc::KeepSize => {}
            Falloc::PunchHole | Falloc::ZeroRangeKeepSize => {
                if off < size {
                    m[off as usize..end.min(size) as usize].fill(0);
                }
            }
            Falloc::ZeroRange => {
                if end > size {
                    m.resize(end as usize, 0);
                }
                m[off as usize..end as usize].fill(0);
            }
            Falloc::PunchHoleAlone | Falloc::Collapse | Falloc::Insert => unreachable!(),
        }
    }

    /// Map the pages covering [off, off+len) of file `i`, shared.
    fn map(&self, i: usize, off: u64, len: u64, write: bool) -> (*mut u8, usize, usize) {
        let start = off / PAGE * PAGE;
        let map_len = (off + len - start) as usize;
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping of a valid descriptor; the range lies inside the file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                libc::MAP_SHARED,
                self.fd(i),
                start as i64,
            )
        };
        if p == libc::MAP_FAILED {
            self.fail(&format!("mmap: {}", std::io::Error::last_os_error()));
        }
        (p.cast(), map_len, (off - start) as usize)
    }

    fn map_write(&self, i: usize, off: u64, buf: &[u8], sync: bool) {
        let (p, map_len, at) = self.map(i, off, buf.len() as u64, true);
        // SAFETY: [at, at + len) lies inside the mapping, which is writable.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(at), buf.len()) };
        self.check_sigbus(p, map_len, off - at as u64, "write");
        // SAFETY: the mapping made above.
        unsafe {
            if sync && libc::msync(p.cast(), map_len, libc::MS_SYNC) != 0 {
                let e = std::io::Error::last_os_error();
                libc::munmap(p.cast(), map_len);
                self.fail(&format!("msync: {e}"));
            }
            libc::munmap(p.cast(), map_len);
        }
    }

    fn map_read(&self, i: usize, off: u64, len: u64) -> Vec<u8> {
        let (p, map_len, at) = self.map(i, off, len, false);
        let mut out = vec![0u8; len as usize];
        // SAFETY: [at, at + len) lies inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(p.add(at), out.as_mut_ptr(), len as usize) };
        self.check_sigbus(p, map_len, off - at as u64, "read");
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(p.cast(), map_len) };
        out
    }

    /// Fail if an access to the mapping at `p` (file offset `start`) raised SIGBUS.
    fn check_sigbus(&self, p: *mut u8, map_len: usize, start: u64, what: &str) {
        let at = SIGBUS_AT.with(|c| c.replace(0));
        if at != 0 {
            // SAFETY: the mapping made by `map`.
            unsafe { libc::munmap(p.cast(), map_len) };
            self.fail(&format!(
                "SIGBUS in an mmap {what} at file offset {}: the daemon failed the page's read",
                start + (at - p as usize) as u64
            ));
        }
    }

    /// pread until `buf` is full or EOF; returns the bytes read.
    fn read_fully(&self, i: usize, off: u64, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match self.file(i).read_at(&mut buf[n..], off + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => self.fail(&format!("read at {}: {e}", off + n as u64)),
            }
        }
        n
    }

    fn check_size(&self, i: usize) {
        match self.file(i).metadata() {
            Ok(m) if m.len() == self.files[i].model.len() as u64 => {}
            Ok(m) => self.fail(&format!(
                "{} has size {}, the model {}",
                self.files[i].name,
                m.len(),
                self.files[i].model.len()
            )),
            Err(e) => self.fail(&format!("fstat: {e}")),
        }
    }

    /// Compare the whole file, read from the daemon (cached pages dropped first).
    pub fn compare_all(&mut self, i: usize, when: &str) {
        // SAFETY: a valid descriptor.
        unsafe { libc::posix_fadvise(self.fd(i), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let want = self.files[i].model.clone();
        let mut got = vec![0u8; want.len() + 1];
        let n = self.read_fully(i, 0, &mut got);
        got.truncate(n);
        self.expect_equal(i, 0, &want, &got, when);
    }

    fn expect_equal(&self, i: usize, off: u64, want: &[u8], got: &[u8], what: &str) {
        if want == got {
            return;
        }
        let name = &self.files[i].name;
        if want.len() != got.len() {
            self.fail(&format!(
                "{what} of {name} at {off}: {} bytes, expected {}",
                got.len(),
                want.len()
            ));
        }
        let first = want.iter().zip(got).position(|(a, b)| a != b).unwrap();
        let last = want.iter().zip(got).rposition(|(a, b)| a != b).unwrap();
        let zeros = got[first..=last].iter().all(|b| *b == 0);
        let show = |b: &[u8]| {
            b[first..(first + 16).min(b.len())]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        };
        self.fail(&format!(
            "{what} of {name} at {off}: bytes differ from file offset {} to {} ({} bytes{}); \
             expected {}.. got {}..",
            off + first as u64,
            off + last as u64,
            last - first + 1,
            if zeros { ", read back as zeros" } else { "" },
            show(want),
            show(got)
        ));
    }

    /// Op counts by kind, one line.
    pub fn summary(&self) -> String {
        let mut s = format!("{} ops (seed {:#x}):", self.done, self.seed);
        for (k, (n, t)) in &self.counts {
            s.push_str(&format!(" {k} {n} ({:.1} s),", t.as_secs_f64()));
        }
        s.pop();
        s
    }
}

fn put(model: &mut Vec<u8>, off: u64, buf: &[u8]) {
    let end = off as usize + buf.len();
    if model.len() < end {
        model.resize(end, 0);
    }
    model[off as usize..end].copy_from_slice(buf);
}

fn slice(model: &[u8], off: u64, len: u64) -> &[u8] {
    let size = model.len() as u64;
    &model[off.min(size) as usize..(off + len).min(size) as usize]
}
