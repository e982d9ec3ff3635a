//! The data side of a store: the device, its superblock, the free map, superchunks and the
//! chunk cache. Nothing here knows SQL; the `fs` layer records what this layer writes.

pub mod cache;
pub mod device;
pub mod freemap;
pub mod lock;
pub mod superblock;
pub mod superchunk;

use std::io;

/// Size of a sector: every extent on the device starts and ends on a multiple of it.
pub const SECTOR: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The I/O error is in the message and so is no `source()`: a printer of the error's chain
    /// (`chunkfs: ...`) would say it twice.
    #[error("device I/O error: {0}")]
    Io(io::Error),
    #[error("no chunkfs superblock on the device (not a chunkfs store, or the wrong device)")]
    NoSuperblock,
    #[error(
        "the device has format version {found}, but this chunkfs understands up to {supported}; upgrade chunkfs"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("no space left on the device")]
    NoSpace,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}
