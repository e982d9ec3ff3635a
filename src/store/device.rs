//! The device seam: a flat, byte-addressed backing (image file, block device or memory) that
//! the rest of the store reads and writes through. It is kept as small as redb's
//! `StorageBackend` so a new backend (an object store, a fault injector) costs only a few
//! methods. `FaultyDevice` remembers what was synced apart from what was written, for crash
//! tests.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub trait Device: Send + Sync + fmt::Debug {
    /// Read exactly buf.len() bytes at off. Reading past len() is an error (UnexpectedEof).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Write all of buf at off. The caller calls `grow` first when off + buf.len() > len();
    /// the in-memory devices refuse such writes so a forgotten `grow` shows up in tests.
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    /// Make every completed write durable.
    fn sync(&self) -> io::Result<()>;
    /// Current backing length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Grow the backing to at least new_len (sparse for files; for block devices a no-op when
    /// new_len <= device size, else an error). Never shrinks.
    fn grow(&self, new_len: u64) -> io::Result<()>;
    /// Give back the space of a range (punch a hole in a file; may be a no-op).
    fn discard(&self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Forward through `Arc` so the fs can own `Arc<dyn Device>` while a test keeps another handle
/// to the same device.
impl<D: Device + ?Sized> Device for Arc<D> {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        (**self).read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        (**self).write_at(buf, off)
    }
    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn grow(&self, new_len: u64) -> io::Result<()> {
        (**self).grow(new_len)
    }
    fn discard(&self, off: u64, len: u64) -> io::Result<()> {
        (**self).discard(off, len)
    }
}

fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn end_of(buf_len: usize, off: u64) -> io::Result<u64> {
    off.checked_add(buf_len as u64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "device offset overflows u64"))
}

/// An image file or a block device, accessed with positional I/O so that concurrent readers
/// never share a file cursor.
pub struct FileDevice {
    file: File,
    path: PathBuf,
    block: bool,
}

impl fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDevice")
            .field("path", &self.path)
            .field("block", &self.block)
            .finish()
    }
}

impl FileDevice {
    /// Open an existing image file or block device read-write.
    pub fn open(path: &Path) -> io::Result<FileDevice> {
        Self::open_mode(path, true)
    }

    /// Open for reading only (read-only mounts, offline checks without repair).
    pub fn open_read_only(path: &Path) -> io::Result<FileDevice> {
        Self::open_mode(path, false)
    }

    fn open_mode(path: &Path, write: bool) -> io::Result<FileDevice> {
        let file = OpenOptions::new().read(true).write(write).open(path)?;
        let block = file.metadata()?.file_type().is_block_device();
        Ok(FileDevice {
            file,
            path: path.to_owned(),
            block,
        })
    }

    /// Create a new, empty image file; fails if the path exists so mkfs never clobbers data.
    pub fn create(path: &Path) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        // The new name must survive a crash as well as the bytes written into it later.
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
        Ok(FileDevice {
            file,
            path: path.to_owned(),
            block: false,
        })
    }

    pub fn is_block_device(&self) -> bool {
        self.block
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take an advisory exclusive lock so a second mount or an offline fsck of a mounted store
    /// is refused instead of corrupting it. Released when the device is dropped.
    pub fn try_lock_exclusive(&self) -> io::Result<()> {
        self.file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another chunkfs process",
                    self.path.display()
                ),
            ),
            std::fs::TryLockError::Error(e) => e,
        })
    }
}

impl Device for FileDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.file.write_all_at(buf, off)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        if self.block {
            // A block device's metadata says 0; seeking to its end gives the size without an
            // ioctl. The cursor is never used for I/O, so moving it is harmless.
            (&self.file).seek(SeekFrom::End(0))
        } else {
            Ok(self.file.metadata()?.len())
        }
    }

    fn grow(&self, new_len: u64) -> io::Result<()> {
        let len = self.len()?;
        if new_len <= len {
            Ok(())
        } else if self.block {
            Err(os_error(libc::ENOSPC))
        } else {
            self.file.set_len(new_len)
        }
    }

    fn discard(&self, off: u64, len: u64) -> io::Result<()> {
        // On a block device a punched range reads back as zeros only on some drivers, and the
        // space is not ours to give back anyway; a no-op is the safe choice there.
        if self.block || len == 0 {
            return Ok(());
        }
        let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "discard range too large",
            ));
        };
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate only reads its integer arguments; the fd is owned by self.file and
        // stays open for the duration of the call.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Not every filesystem can punch holes; the space is then simply kept.
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
            _ => Err(err),
        }
    }
}

/// A device held in memory, for tests and for tools that build an image before writing it.
#[derive(Default)]
pub struct MemDevice {
    bytes: Mutex<Vec<u8>>,
}

impl fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDevice")
            .field("len", &lock(&self.bytes).len())
            .finish()
    }
}

/// A panic while holding the lock leaves the bytes as consistent as any torn write would, so
/// a poisoned lock is not a reason to stop reading them.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_from(bytes: &[u8], buf: &mut [u8], off: u64) -> io::Result<()> {
    let end = end_of(buf.len(), off)?;
    if end > bytes.len() as u64 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "read past the end of the device",
        ));
    }
    buf.copy_from_slice(&bytes[off as usize..end as usize]);
    Ok(())
}

fn write_into(bytes: &mut [u8], buf: &[u8], off: u64) -> io::Result<()> {
    let end = end_of(buf.len(), off)?;
    if end > bytes.len() as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "write past the end of the device (grow it first)",
        ));
    }
    bytes[off as usize..end as usize].copy_from_slice(buf);
    Ok(())
}

fn grow_vec(bytes: &mut Vec<u8>, new_len: u64) -> io::Result<()> {
    let new_len = usize::try_from(new_len).map_err(|_| os_error(libc::ENOSPC))?;
    if new_len > bytes.len() {
        bytes.resize(new_len, 0);
    }
    Ok(())
}

impl MemDevice {
    pub fn new() -> MemDevice {
        MemDevice::default()
    }

    pub fn from_bytes(bytes: Vec<u8>) -> MemDevice {
        MemDevice {
            bytes: Mutex::new(bytes),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        lock(&self.bytes).clone()
    }
}

impl Device for MemDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        read_from(&lock(&self.bytes), buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        write_into(&mut lock(&self.bytes), buf, off)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.bytes).len() as u64)
    }
    fn grow(&self, new_len: u64) -> io::Result<()> {
        grow_vec(&mut lock(&self.bytes), new_len)
    }
}

/// Fault injection for crash tests. Clones share one device, so a test keeps a handle while
/// the filesystem owns another.
#[derive(Clone, Debug, Default)]
pub struct FaultyDevice {
    state: Arc<Mutex<FaultState>>,
}

#[derive(Default)]
struct FaultState {
    /// Bytes including unsynced writes: what a reader sees now.
    current: Vec<u8>,
    /// Bytes as of the last successful sync: what survives a power cut.
    synced: Vec<u8>,
    /// Writes since the last sync, in order, so a crash image can keep any subset of them.
    pending: Vec<(u64, Vec<u8>)>,
    /// Countdowns: Some(0) means the next call fails.
    fail_write_in: Option<u64>,
    fail_sync_in: Option<u64>,
    capacity_limit: Option<u64>,
    /// How long a discard takes (a thin-provisioned drive can be slow to unmap).
    discard_delay: std::time::Duration,
    writes: u64,
    syncs: u64,
    reads: u64,
    bytes_read: u64,
}

impl fmt::Debug for FaultState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultState")
            .field("len", &self.current.len())
            .field("synced_len", &self.synced.len())
            .field("pending", &self.pending.len())
            .field("fail_write_in", &self.fail_write_in)
            .field("fail_sync_in", &self.fail_sync_in)
            .field("capacity_limit", &self.capacity_limit)
            .finish()
    }
}

/// Advance a countdown; true when this call is the one that must fail.
fn fires(countdown: &mut Option<u64>) -> bool {
    match countdown {
        Some(0) => {
            *countdown = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl FaultyDevice {
    pub fn new() -> FaultyDevice {
        FaultyDevice::default()
    }

    /// Start from an image that counts as already synced.
    pub fn from_bytes(bytes: Vec<u8>) -> FaultyDevice {
        let state = FaultState {
            synced: bytes.clone(),
            current: bytes,
            ..FaultState::default()
        };
        FaultyDevice {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        lock(&self.state)
    }

    /// The Nth write_at from now (0 = the very next one) fails with EIO and writes nothing;
    /// later writes succeed again unless set again.
    pub fn fail_write_after(&self, n: u64) {
        self.state().fail_write_in = Some(n);
    }

    /// The Nth sync from now fails with EIO and makes nothing durable.
    pub fn fail_sync_after(&self, n: u64) {
        self.state().fail_sync_in = Some(n);
    }

    /// grow() beyond `limit` bytes fails with ENOSPC, as a full disk would.
    pub fn set_capacity_limit(&self, limit: Option<u64>) {
        self.state().capacity_limit = limit;
    }

    /// Make every discard take this long before it zeroes its range, as a slow unmap would:
    /// widens any window in which a discard races with a write to the same range.
    pub fn set_discard_delay(&self, d: std::time::Duration) {
        self.state().discard_delay = d;
    }

    /// Successful write_at calls so far (crash tests enumerate crash points with it).
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// Successful sync calls so far.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }

    /// read_at calls so far, and the bytes they asked for.
    pub fn reads(&self) -> (u64, u64) {
        let st = self.state();
        (st.reads, st.bytes_read)
    }

    /// What survives a power cut now: the bytes and length as of the last successful sync.
    pub fn crash_image(&self) -> Vec<u8> {
        self.state().synced.clone()
    }

    /// A power cut where the drive had already written some of the unsynced writes: `keep(i)`
    /// says whether the i-th write since the last sync (0-based) reached the media. The length
    /// is the current one, since a grown file keeps its size when any later write lands.
    pub fn crash_image_keeping(&self, mut keep: impl FnMut(usize) -> bool) -> Vec<u8> {
        let st = self.state();
        let mut img = st.synced.clone();
        img.resize(img.len().max(st.current.len()), 0);
        for (i, (off, buf)) in st.pending.iter().enumerate() {
            if keep(i) {
                let off = *off as usize;
                img[off..off + buf.len()].copy_from_slice(buf);
            }
        }
        img
    }

    /// Writes made since the last successful sync.
    pub fn unsynced_writes(&self) -> usize {
        self.state().pending.len()
    }

    /// Current bytes including unsynced writes.
    pub fn current_image(&self) -> Vec<u8> {
        self.state().current.clone()
    }
}

impl Device for FaultyDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let mut st = self.state();
        st.reads += 1;
        st.bytes_read += buf.len() as u64;
        read_from(&st.current, buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        let mut st = self.state();
        if fires(&mut st.fail_write_in) {
            return Err(os_error(libc::EIO));
        }
        write_into(&mut st.current, buf, off)?;
        st.pending.push((off, buf.to_vec()));
        st.writes += 1;
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.state();
        if fires(&mut st.fail_sync_in) {
            return Err(os_error(libc::EIO));
        }
        let st = &mut *st;
        // Replaying the pending writes costs what was written, not the device size, so tests
        // with many syncs stay fast.
        st.synced.resize(st.current.len(), 0);
        for (off, buf) in st.pending.drain(..) {
            let off = off as usize;
            st.synced[off..off + buf.len()].copy_from_slice(&buf);
        }
        st.syncs += 1;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state().current.len() as u64)
    }

    fn grow(&self, new_len: u64) -> io::Result<()> {
        let mut st = self.state();
        if st.capacity_limit.is_some_and(|limit| new_len > limit) {
            return Err(os_error(libc::ENOSPC));
        }
        grow_vec(&mut st.current, new_len)
    }

    /// A punched hole: the range reads back as zeros at once, and survives a power cut like
    /// any unsynced write (it may or may not have reached the media).
    fn discard(&self, off: u64, len: u64) -> io::Result<()> {
        let delay = self.state().discard_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut st = self.state();
        let dev_len = st.current.len() as u64;
        let (from, to) = (off.min(dev_len), off.saturating_add(len).min(dev_len));
        if from < to {
            let zeros = vec![0u8; (to - from) as usize];
            write_into(&mut st.current, &zeros, from)?;
            st.pending.push((from, zeros));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(dev: &dyn Device) {
        assert_eq!(dev.len().unwrap(), 0);
        dev.grow(8192).unwrap();
        assert_eq!(dev.len().unwrap(), 8192);
        dev.write_at(b"hello", 4000).unwrap();
        dev.sync().unwrap();
        let mut buf = [0u8; 7];
        dev.read_at(&mut buf, 3999).unwrap();
        assert_eq!(&buf, b"\0hello\0");
        dev.grow(100).unwrap();
        assert_eq!(dev.len().unwrap(), 8192, "grow never shrinks");
        let err = dev.read_at(&mut buf, 8190).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn mem_device_reads_back_what_was_written() {
        let dev = MemDevice::new();
        round_trip(&dev);
        assert_eq!(&dev.bytes()[4000..4005], b"hello");
    }

    #[test]
    fn mem_device_refuses_writes_past_its_end() {
        let dev = MemDevice::from_bytes(vec![0; 10]);
        assert!(dev.write_at(b"abc", 8).is_err());
        assert_eq!(dev.bytes(), vec![0; 10]);
    }

    #[test]
    fn file_device_reads_back_what_was_written_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.img");
        {
            let dev = FileDevice::create(&path).unwrap();
            assert!(!dev.is_block_device());
            round_trip(&dev);
        }
        let dev = FileDevice::open(&path).unwrap();
        assert_eq!(dev.len().unwrap(), 8192);
        let mut buf = [0u8; 5];
        dev.read_at(&mut buf, 4000).unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn file_device_create_refuses_an_existing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.img");
        FileDevice::create(&path).unwrap();
        let err = FileDevice::create(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn file_device_discard_zeroes_the_range_and_keeps_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let dev = FileDevice::create(&dir.path().join("data.img")).unwrap();
        dev.grow(3 * 4096).unwrap();
        dev.write_at(&[7u8; 3 * 4096], 0).unwrap();
        dev.discard(4096, 4096).unwrap();
        assert_eq!(dev.len().unwrap(), 3 * 4096);
        let mut buf = vec![0u8; 3 * 4096];
        dev.read_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 7));
        assert!(buf[8192..].iter().all(|&b| b == 7));
        // Where holes are unsupported the bytes stay; either way the neighbours are intact.
        let middle = &buf[4096..8192];
        assert!(middle.iter().all(|&b| b == 0) || middle.iter().all(|&b| b == 7));
    }

    #[test]
    fn file_device_second_exclusive_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.img");
        let a = FileDevice::create(&path).unwrap();
        a.try_lock_exclusive().unwrap();
        let b = FileDevice::open(&path).unwrap();
        assert_eq!(
            b.try_lock_exclusive().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(a);
        b.try_lock_exclusive().unwrap();
    }

    #[test]
    fn faulty_device_fails_exactly_the_nth_write_and_writes_nothing() {
        let dev = FaultyDevice::new();
        dev.grow(4096).unwrap();
        dev.fail_write_after(2);
        dev.write_at(b"a", 0).unwrap();
        dev.write_at(b"b", 1).unwrap();
        let err = dev.write_at(b"c", 2).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        dev.write_at(b"d", 3).unwrap();
        assert_eq!(&dev.current_image()[..4], b"ab\0d");
        assert_eq!(dev.writes(), 3);
    }

    #[test]
    fn faulty_device_failed_sync_makes_nothing_durable() {
        let dev = FaultyDevice::new();
        dev.grow(4096).unwrap();
        dev.write_at(b"x", 0).unwrap();
        dev.fail_sync_after(0);
        assert_eq!(dev.sync().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(dev.crash_image().is_empty());
        dev.sync().unwrap();
        assert_eq!(dev.crash_image()[0], b'x');
        assert_eq!(dev.syncs(), 1);
    }

    #[test]
    fn faulty_device_crash_image_drops_unsynced_writes_but_keeps_synced_ones() {
        let dev = FaultyDevice::new();
        dev.grow(4096).unwrap();
        dev.write_at(b"synced", 0).unwrap();
        dev.sync().unwrap();
        dev.grow(8192).unwrap();
        dev.write_at(b"lost", 10).unwrap();
        dev.write_at(b"gone", 5000).unwrap();
        let crash = dev.crash_image();
        assert_eq!(crash.len(), 4096, "length as of the last sync");
        assert_eq!(&crash[..6], b"synced");
        assert_eq!(&crash[10..14], b"\0\0\0\0");
        let now = dev.current_image();
        assert_eq!(&now[10..14], b"lost");
        assert_eq!(dev.unsynced_writes(), 2);

        let torn = dev.crash_image_keeping(|i| i == 1);
        assert_eq!(&torn[10..14], b"\0\0\0\0");
        assert_eq!(&torn[5000..5004], b"gone");

        let reopened = FaultyDevice::from_bytes(crash);
        assert_eq!(reopened.crash_image(), reopened.current_image());
    }

    #[test]
    fn faulty_device_capacity_limit_gives_enospc() {
        let dev = FaultyDevice::new();
        dev.set_capacity_limit(Some(8192));
        dev.grow(8192).unwrap();
        assert_eq!(
            dev.grow(8193).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert_eq!(dev.len().unwrap(), 8192);
        dev.set_capacity_limit(None);
        dev.grow(1 << 20).unwrap();
    }

    #[test]
    fn clones_of_a_faulty_device_share_one_backing() {
        let a = FaultyDevice::new();
        let owned: Arc<dyn Device> = Arc::new(a.clone());
        owned.grow(4096).unwrap();
        owned.write_at(b"shared", 0).unwrap();
        owned.sync().unwrap();
        assert_eq!(&a.crash_image()[..6], b"shared");
        assert_eq!(a.len().unwrap(), 4096);
    }
}
