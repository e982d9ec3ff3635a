//! Numbered, append-only migrations embedded in the binary, applied in one transaction and
//! versioned by `PRAGMA user_version`. A database newer than the binary is refused.

use super::{MetaError, Result};
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_history.sql"),
    include_str!("../../migrations/0003_gc.sql"),
    include_str!("../../migrations/0004_counters.sql"),
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
    fn a_newer_database_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", VERSION + 1).unwrap();
        assert!(matches!(
            migrate(&mut c),
            Err(MetaError::NewerSchema { .. })
        ));
    }
}
