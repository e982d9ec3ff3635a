//! Numbered, append-only migrations embedded in the binary, applied in one transaction and
//! versioned by `PRAGMA user_version`. A database newer than the binary is refused. The schema
//! a database holds is compared with the one the migrations make (fsck, and every open).

use super::{MetaError, Result};
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_history.sql"),
    include_str!("../../migrations/0003_gc.sql"),
    include_str!("../../migrations/0004_counters.sql"),
    include_str!("../../migrations/0005_snapshot_owner.sql"),
    include_str!("../../migrations/0006_lean_indexes.sql"),
    include_str!("../../migrations/0007_gc_indexes.sql"),
];

/// The schema version this binary writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(MetaError::NewerSchema {
            found,
            supported: VERSION,
        });
    }
    if found == VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

/// `user_version` 0: no migration ever ran, so this is no chunkfs database.
pub fn is_empty(conn: &Connection) -> Result<bool> {
    let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(v == 0)
}

/// A schema object: its type (table, index, trigger, view) and its SQL with whitespace
/// runs made one space, by name.
type Objects = std::collections::BTreeMap<String, (String, String)>;

fn objects(conn: &Connection) -> Result<Objects> {
    // Objects SQLite makes for itself (sqlite_sequence, sqlite_stat1, automatic indexes of
    // primary keys, which have no SQL) are not the migrations'.
    let mut st = conn.prepare(
        "SELECT type, name, sql FROM sqlite_master
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let rows = st.query_map([], |r| {
        let sql: String = r.get(2)?;
        Ok((
            r.get::<_, String>(1)?,
            (
                r.get::<_, String>(0)?,
                sql.split_whitespace().collect::<Vec<_>>().join(" "),
            ),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The schema the migrations make, built by applying them to an empty in-memory database.
fn expected() -> Result<Objects> {
    let mut mem = Connection::open_in_memory()?;
    migrate(&mut mem)?;
    objects(&mem)
}

/// How the database's schema differs from the one its migrations make: one line per table,
/// index or trigger missing, different or extra, and a version that is not this binary's.
/// Empty when they agree.
pub fn differences(conn: &Connection) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version != VERSION {
        out.push(format!(
            "schema version {version}, this chunkfs writes {VERSION}"
        ));
        return Ok(out);
    }
    let mut found = objects(conn)?;
    for (name, (kind, sql)) in expected()? {
        match found.remove(&name) {
            None => out.push(format!("{kind} {name} is missing")),
            Some((k, s)) if k != kind || s != sql => {
                out.push(format!("{kind} {name} differs from the migrations: {s}"))
            }
            Some(_) => {}
        }
    }
    for (name, (kind, _)) in found {
        out.push(format!("{kind} {name} is not made by any migration"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_set_user_version() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
    }

    #[test]
    fn a_migrated_database_has_the_expected_schema_and_a_dropped_table_shows() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(differences(&c).unwrap(), Vec::<String>::new());
        c.execute_batch("DROP TABLE snapshots; DROP INDEX commits_by_time; CREATE TABLE x(a)")
            .unwrap();
        let d = differences(&c).unwrap();
        assert_eq!(
            d,
            vec![
                "index commits_by_time is missing".to_string(),
                "table snapshots is missing".to_string(),
                "index snapshots_by_owner is missing".to_string(), // dropped with its table
                "index snapshots_by_seq is missing".to_string(),
                "table x is not made by any migration".to_string(),
            ]
        );
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", VERSION + 1).unwrap();
        assert!(matches!(
            migrate(&mut c),
            Err(MetaError::NewerSchema { .. })
        ));
    }
}
