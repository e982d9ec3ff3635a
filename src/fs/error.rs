//! The core's one error type, and its errno in one exhaustive match.

use crate::meta::{Ino, MetaError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("file name too long (over 255 bytes)")]
    NameTooLong,
    #[error("invalid argument")]
    Invalid,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("permission denied")]
    AccessDenied,
    #[error("no space left on the device")]
    NoSpace,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("no such attribute")]
    NoAttribute,
    #[error("result does not fit the buffer")]
    Range,
    #[error("operation not supported")]
    NotSupported,
    #[error("too many links")]
    TooManyLinks,
    #[error("file too large")]
    TooBig,
    #[error("disk quota exceeded")]
    QuotaExceeded,
    #[error("too many views of the past in use; remount to free them")]
    TooManyViews,
    #[error("stale file handle")]
    Stale,
    #[error("no data (or hole) at or past that offset")]
    NoSuchOffset,
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Setup(String),
    #[error("{}", describe_unsaved(.0))]
    Unsaved(Vec<Unsaved>),
}

/// A file whose uncommitted data could not be committed when the store was closed: that data
/// is lost (its committed revisions are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsaved {
    pub ino: Ino,
    /// One of its paths, or `None` if it was unlinked.
    pub path: Option<String>,
    pub error: String,
}

fn describe_unsaved(files: &[Unsaved]) -> String {
    let each: Vec<String> = files
        .iter()
        .map(|u| match &u.path {
            Some(p) => format!("{p} (inode {}): {}", u.ino.0, u.error),
            None => format!("unlinked inode {}: {}", u.ino.0, u.error),
        })
        .collect();
    format!(
        "the uncommitted data of {} file{} could not be committed and is lost: {}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        each.join("; ")
    )
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for FsError {
    fn from(e: rusqlite::Error) -> Self {
        FsError::Meta(MetaError::Sql(e))
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        FsError::Store(StoreError::Io(e))
    }
}

impl FsError {
    /// The errno a POSIX caller sees. No wildcard arm: a new variant must be mapped here.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::Invalid => libc::EINVAL,
            FsError::NotPermitted => libc::EPERM,
            FsError::AccessDenied => libc::EACCES,
            FsError::NoSpace => libc::ENOSPC,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::NoAttribute => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::TooBig => libc::EFBIG,
            FsError::QuotaExceeded => libc::EDQUOT,
            FsError::TooManyViews => libc::ENFILE,
            FsError::Stale => libc::ESTALE,
            FsError::NoSuchOffset => libc::ENXIO,
            FsError::Corrupt(_) => libc::EIO,
            FsError::Store(StoreError::NoSpace) => libc::ENOSPC,
            FsError::Store(StoreError::Io(e)) => e.raw_os_error().unwrap_or(libc::EIO),
            FsError::Store(
                StoreError::NoSuperblock
                | StoreError::NewerFormat { .. }
                | StoreError::Corrupt { .. },
            ) => libc::EIO,
            FsError::Meta(_) => libc::EIO,
            FsError::Setup(_) => libc::EINVAL,
            FsError::Unsaved(_) => libc::EIO,
        }
    }

    /// Errors of the request itself (bad name, missing file): the operation changed nothing and
    /// the store is fine. Everything else means the device or database failed under us.
    pub(crate) fn is_request_error(&self) -> bool {
        !matches!(
            self,
            FsError::Store(_) | FsError::Meta(_) | FsError::Corrupt(_)
        )
    }
}
