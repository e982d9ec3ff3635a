//! fsck of an unmounted store: lock it, open its device and database directly, check, and
//! repair or heal if asked. A database too damaged to open is reported (exit 4), not failed
//! on; `--rebuild-metadata` hands over to `rebuild`.

use super::{CheckOptions, FsckError, Progress, Report, Result, heal, rebuild, relocate, repair};
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
    /// Rebuild the chunk index, superchunk table and free map from the device, taking the
    /// namespace from meta.db or, when it is damaged, from its newest good backup.
    pub rebuild_metadata: bool,
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
    if opts.rebuild_metadata {
        return rebuild::run(store, progress);
    }
    match check_store(store, &meta_path, opts, progress) {
        Err(e) if is_damage(&e) => Ok(damaged(store, damage_text(&meta_path, e))),
        r => r,
    }
}

fn check_store(
    store: &Path,
    meta_path: &Path,
    opts: &FsckOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let conn = meta::open(meta_path, false)?;
    // `check` checks the database before anything else; this is for the store's own
    // records, read before it, sitting on a damaged page.
    let (dev_name, uuid) = match meta::device_path(&conn)
        .and_then(|d| Ok((d, meta::get_value(&conn, "uuid")?.unwrap_or_default())))
    {
        Err(e) if e.is_damage() => {
            let mut database_errors = meta::check::database(&conn, opts.quick)?;
            if database_errors.is_empty() {
                database_errors.push(meta::damaged_at(meta_path, e).detail());
            }
            return Ok(Report {
                database_errors,
                quick: opts.quick,
                ..damaged(store, String::new())
            });
        }
        r => r?,
    };
    let dev_path = store.join(dev_name);
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
    let mut report = match check(progress) {
        Err(e) if is_damage(&e) => return Ok(damaged(store, e.to_string())),
        r => r?,
    };
    if !report.database_errors.is_empty() {
        // Repairs would write into pages that cannot be trusted: only a rebuild helps.
        return Ok(report);
    }
    let mut fixes = Vec::new();
    let mut backed_up = None;
    if opts.repair && report.has_errors() {
        backed_up = Some(backup_before_repair(meta_path)?);
        fixes.extend(repair::repair(&conn, &dev, &sb)?);
    }
    let target = u64::from(sb.superchunk_target);
    if let Some(dir) = &opts.repair_from {
        let wanted: HashSet<_> = report.damaged_hashes().into_iter().collect();
        if !wanted.is_empty() {
            let found = heal::find(dir, sb.chunk, &wanted)?;
            if backed_up.is_none() {
                backed_up = Some(backup_before_repair(meta_path)?);
            }
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
            if backed_up.is_none() {
                backed_up = Some(backup_before_repair(meta_path)?);
            }
            fixes.extend(relocate::retire(&conn, &dev, target, &ids)?);
        }
    }
    if let Some(line) = backed_up
        && !fixes.is_empty()
    {
        fixes.insert(0, line);
    }
    if !fixes.is_empty() {
        // A second pass proves the repairs: only what it still finds is left.
        report = check(&super::Silent)?;
        report.repairs = fixes;
    }
    Ok(report)
}

/// A copy of the metadata as it was before a repair changed it.
fn backup_before_repair(meta_path: &Path) -> Result<String> {
    let b = meta::backup::take(meta_path)?;
    Ok(format!(
        "saved the metadata as it was before repairing to {} (seq {}, {} bytes)",
        b.path.display(),
        b.seq,
        b.bytes
    ))
}

/// Does this error mean the database file is damaged?
pub(super) fn is_damage(e: &FsckError) -> bool {
    match e {
        FsckError::Meta(m) => m.is_damage(),
        FsckError::Sql(s) => meta::is_damage(s),
        FsckError::Store(_) | FsckError::Io(_) | FsckError::Setup(_) => false,
    }
}

fn damage_text(meta_path: &Path, e: FsckError) -> String {
    match e {
        FsckError::Meta(m) => meta::damaged_at(meta_path, m).detail(),
        FsckError::Sql(s) => meta::damaged_at(meta_path, s.into()).detail(),
        e => e.to_string(),
    }
}

/// The report on a store whose database cannot be read: its damage, and the store's uuid
/// if the default device shows it.
fn damaged(store: &Path, why: String) -> Report {
    let uuid = FileDevice::open_read_only(&store.join(rebuild::DEFAULT_IMAGE))
        .ok()
        .and_then(|d| Superblock::read(&d).ok())
        .map_or_else(|| "unknown".to_string(), |sb| sb.uuid_string());
    Report {
        store_uuid: uuid,
        database_errors: if why.is_empty() { vec![] } else { vec![why] },
        ..Report::default()
    }
}
