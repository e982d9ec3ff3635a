//! The space counters statfs reads: one row that triggers (migration 0004) keep in step with
//! `inodes`, `chunks` and `superchunks` in the same transactions that change them, so that
//! statfs costs one primary-key lookup however large the store. `recount` computes the same
//! figures from scratch, for checks.

use super::Result;
use crate::store::superchunk::SuperchunkId;
use rusqlite::{Connection, OptionalExtension};

/// What statfs reports beyond the free map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rows of `inodes`.
    pub inodes: u64,
    /// Device bytes garbage collection gives back without pruning anything: see
    /// `dead_share`, summed over superchunks.
    pub dead_bytes: u64,
}

/// The only query statfs runs.
pub const GET: &str = "SELECT inodes, dead_bytes FROM counters WHERE id = 1";

/// The counters as the triggers keep them.
pub fn get(conn: &Connection) -> Result<Counters> {
    Ok(conn.prepare_cached(GET)?.query_row([], |r| {
        Ok(Counters {
            inodes: r.get::<_, i64>(0)?.max(0) as u64,
            dead_bytes: r.get::<_, i64>(1)?.max(0) as u64,
        })
    })?)
}

/// The counters, or for a database whose schema predates them (read-only, beside an older
/// binary's mount) the same figures recounted.
pub fn get_or_recount(conn: &Connection) -> Result<Counters> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < MIGRATION {
        return recount(conn);
    }
    get(conn)
}

/// The schema version that brought the counters (migration 0004).
const MIGRATION: u32 = 4;

/// A superchunk's extent length and the stored bytes of its chunks some list references.
pub fn referenced(conn: &Connection, id: SuperchunkId) -> Result<Option<(u64, i64)>> {
    Ok(conn
        .prepare_cached("SELECT len, live_bytes - dead_bytes FROM superchunks WHERE id = ?1")?
        .query_row([id.0 as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .optional()?)
}

/// The counters computed from scratch (a full scan of `inodes`, `superchunks` and the dead
/// chunks), whatever the `dead_bytes` columns and the `counters` row say.
pub fn recount(conn: &Connection) -> Result<Counters> {
    let inodes = conn.query_row("SELECT COUNT(*) FROM inodes", [], |r| r.get::<_, i64>(0))?;
    let mut st = conn.prepare(
        "SELECT s.len, s.live_bytes, COALESCE((SELECT SUM(c.stored_len) FROM chunks c
                                                WHERE c.superchunk = s.id AND c.refcount = 0), 0)
         FROM superchunks s",
    )?;
    let mut dead = 0;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (len, live, unref): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        dead += dead_share(len as u64, live - unref);
    }
    Ok(Counters {
        inodes: inodes as u64,
        dead_bytes: dead,
    })
}

/// Write `c` as the counters and recount every superchunk's `dead_bytes` column (repair).
pub fn set(conn: &Connection, c: &Counters) -> Result<()> {
    conn.execute(
        "UPDATE superchunks SET dead_bytes = COALESCE((SELECT SUM(c.stored_len) FROM chunks c
                                                        WHERE c.superchunk = superchunks.id
                                                          AND c.refcount = 0), 0)",
        [],
    )?;
    conn.execute(
        "UPDATE counters SET inodes = ?1, dead_bytes = ?2 WHERE id = 1",
        [c.inodes as i64, c.dead_bytes as i64],
    )?;
    Ok(())
}

/// Device bytes GC frees from a superchunk of extent `len` whose chunks referenced by some
/// list hold `referenced` stored bytes: all of it when nothing is referenced; when under
/// `gc::REPACK_BELOW` (1/2) of the extent is, the extent less the referenced bytes rounded up
/// to sectors (repacking copies them out); nothing otherwise. The triggers of migration
/// 0004 compute the same in SQL.
pub fn dead_share(len: u64, referenced: i64) -> u64 {
    use crate::store::SECTOR;
    if referenced <= 0 {
        len
    } else if (referenced as u64) * 2 < len {
        len - (referenced as u64).div_ceil(SECTOR) * SECTOR
    } else {
        0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every query plan step of `sql`, as SQLite words it ("SEARCH t USING ...", "SCAN t").
    pub(crate) fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; st.parameter_count()];
        let rows = st
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::meta::open(&dir.path().join("meta.db"), true).unwrap();
        (dir, conn)
    }

    #[test]
    fn statfs_reads_its_counters_without_scanning_any_table() {
        let (_d, conn) = db();
        let steps = plan(&conn, GET);
        assert!(!steps.is_empty());
        for s in &steps {
            assert!(
                !s.starts_with("SCAN"),
                "statfs query {GET:?} scans: {steps:?}"
            );
        }
    }

    #[test]
    fn the_triggers_look_rows_up_by_key() {
        // The statements the triggers run, with the trigger's row values as parameters.
        let (_d, conn) = db();
        for sql in [
            "UPDATE counters SET inodes = inodes + 1 WHERE id = 1",
            "UPDATE superchunks SET dead_bytes = dead_bytes + ?1 WHERE id = ?2",
            "UPDATE superchunks SET dead_bytes = COALESCE((SELECT SUM(c.stored_len) FROM chunks c
              WHERE c.superchunk = ?1 AND c.refcount = 0), 0) WHERE id = ?1",
        ] {
            let steps = plan(&conn, sql);
            for s in &steps {
                assert!(!s.starts_with("SCAN"), "{sql:?} scans: {steps:?}");
            }
        }
    }

    #[test]
    fn the_counters_follow_chunks_superchunks_and_inodes_as_recounted() {
        let (_d, conn) = db();
        let base = get(&conn).unwrap();
        assert_eq!(base, recount(&conn).unwrap());
        let chunk = |n: u8, sc: i64, len: i64| {
            conn.execute(
                "INSERT INTO chunks(hash, superchunk, offset, stored_len, raw_len, codec, refcount)
                 VALUES (?1, ?2, 0, ?3, ?3, 0, 0)",
                rusqlite::params![vec![n; 32], sc, len],
            )
            .unwrap();
        };
        let refs = |n: u8, d: i64| {
            conn.execute(
                "UPDATE chunks SET refcount = refcount + ?2 WHERE hash = ?1",
                rusqlite::params![vec![n; 32], d],
            )
            .unwrap();
        };
        let check = |what: &str| assert_eq!(get(&conn).unwrap(), recount(&conn).unwrap(), "{what}");
        // Chunks staged before their superchunk's row exists, one referenced already.
        chunk(1, 7, 30_000);
        chunk(2, 7, 30_000);
        refs(1, 1);
        conn.execute(
            "INSERT INTO superchunks(id, start, len, chunks, raw_bytes, live_bytes, created)
             VALUES (7, 4096, 65536, 2, 60000, 60000, 0)",
            [],
        )
        .unwrap();
        check("sealed with one chunk unreferenced");
        assert_eq!(get(&conn).unwrap().dead_bytes, 65536 - 32768);
        refs(2, 2);
        check("both referenced");
        assert_eq!(get(&conn).unwrap().dead_bytes, 0);
        refs(1, -1);
        refs(2, -2);
        check("both dead");
        assert_eq!(get(&conn).unwrap().dead_bytes, 65536);
        // Sweep: the chunks leave the index, then the superchunk its extent.
        for n in [1u8, 2] {
            conn.execute("DELETE FROM chunks WHERE hash = ?1", [vec![n; 32]])
                .unwrap();
            conn.execute(
                "UPDATE superchunks SET live_bytes = live_bytes - 30000 WHERE id = 7",
                [],
            )
            .unwrap();
            check("swept");
        }
        assert_eq!(get(&conn).unwrap().dead_bytes, 65536);
        conn.execute("DELETE FROM superchunks WHERE id = 7", [])
            .unwrap();
        check("freed");
        assert_eq!(get(&conn).unwrap().dead_bytes, 0);
        conn.execute("INSERT INTO inodes(ino, kind, born) VALUES (99, 1, 1)", [])
            .unwrap();
        assert_eq!(get(&conn).unwrap().inodes, base.inodes + 1);
        conn.execute("DELETE FROM inodes WHERE ino = 99", [])
            .unwrap();
        check("inode gone");
        // A dead chunk moved (repack, heal) to another superchunk, and a live one.
        for (id, start) in [(8, 1 << 20), (9, 2 << 20)] {
            conn.execute(
                "INSERT INTO superchunks(id, start, len, chunks, raw_bytes, live_bytes, created)
                 VALUES (?1, ?2, 65536, 1, 40000, 40000, 0)",
                [id, start],
            )
            .unwrap();
        }
        chunk(3, 8, 40_000);
        chunk(4, 8, 1_000);
        refs(4, 1);
        check("a dead chunk in 8");
        for n in [3u8, 4] {
            conn.execute(
                "UPDATE chunks SET superchunk = 9, stored_len = 39000 WHERE hash = ?1",
                [vec![n; 32]],
            )
            .unwrap();
            check("moved to 9");
        }
        conn.execute(
            "UPDATE chunks SET refcount = 0 WHERE hash = ?1",
            [vec![4u8; 32]],
        )
        .unwrap();
        check("set to zero");
    }

    #[test]
    fn a_superchunk_is_dead_when_empty_and_partly_so_when_sparse() {
        assert_eq!(dead_share(65536, 0), 65536);
        assert_eq!(dead_share(65536, -5), 65536);
        assert_eq!(dead_share(65536, 1), 65536 - 4096);
        assert_eq!(dead_share(65536, 32767), 65536 - 32768);
        assert_eq!(dead_share(65536, 32768), 0);
    }
}
