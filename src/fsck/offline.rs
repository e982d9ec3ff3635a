//! fsck of an unmounted store: lock it, open its device and database directly, check, and
//! repair or heal if asked.

use super::{CheckOptions, FsckError, Progress, Report, Result, heal, relocate, repair};
use crate::meta;
use crate::store::device::{Device, FileDevice};
use crate::store::lock::StoreLock;
use crate::store::superblock::Superblock;
use crate::store::superchunk::SuperchunkId;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct FsckOptions {
    pub quick: bool,
    pub repair: bool,
    pub repair_from: Option<PathBuf>,
}

pub fn run(store: &Path, opts: &FsckOptions, progress: &dyn Progress) -> Result<Report> {
    let _lock = StoreLock::acquire(store).map_err(FsckError::Setup)?;
    let meta_path = store.join(meta::META_FILE);
    if !meta_path.exists() {
        return Err(FsckError::Setup(format!(
            "{} is not a chunkfs store (no {})",
            store.display(),
            meta::META_FILE
        )));
    }
    let conn = meta::open(&meta_path, false)?;
    let dev_path = store.join(meta::device_path(&conn)?);
    let writable = opts.repair || opts.repair_from.is_some();
    let dev = if writable {
        FileDevice::open(&dev_path)
    } else {
        FileDevice::open_read_only(&dev_path)
    }
    .map_err(|e| {
        FsckError::Setup(format!(
            "cannot open the store's device {}: {e}",
            dev_path.display()
        ))
    })?;
    let sb = Superblock::read(&dev)?;
    let uuid = meta::get_value(&conn, "uuid")?.unwrap_or_default();
    if uuid != sb.uuid {
        return Err(FsckError::Setup(format!(
            "device {} belongs to another store ({}); nothing was checked",
            dev_path.display(),
            sb.uuid_string()
        )));
    }
    let check = |progress: &dyn Progress| -> Result<Report> {
        let quick = CheckOptions { quick: opts.quick };
        meta::in_transaction(&conn, false, || {
            super::check(&conn, &dev as &dyn Device, &sb, quick, progress)
        })
    };
    let mut report = check(progress)?;
    let mut fixes = Vec::new();
    if opts.repair && report.has_errors() {
        fixes.extend(repair::repair(&conn, &dev, &sb)?);
    }
    let target = u64::from(sb.superchunk_target);
    if let Some(dir) = &opts.repair_from {
        let wanted: HashSet<_> = report.damaged_hashes().into_iter().collect();
        if !wanted.is_empty() {
            let found = heal::find(dir, sb.chunk, &wanted)?;
            fixes.extend(heal::store(&conn, &dev, target, found, 3)?);
        }
    }
    // A damaged superchunk is retired once its chunks are safe elsewhere: the intact ones
    // are moved out and, when no damaged chunk is left in it, it is freed.
    if opts.repair || opts.repair_from.is_some() {
        let ids: Vec<_> = report
            .damaged_superchunk_ids
            .iter()
            .map(|&id| SuperchunkId(id))
            .collect();
        if !ids.is_empty() {
            fixes.extend(relocate::retire(&conn, &dev, target, &ids)?);
        }
    }
    if !fixes.is_empty() {
        // A second pass proves the repairs: only what it still finds is left.
        report = check(&super::Silent)?;
        report.repairs = fixes;
    }
    Ok(report)
}
