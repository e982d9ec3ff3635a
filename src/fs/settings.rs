//! Store settings that can change after mkfs (`chunkfs config`): their names, how a value is
//! read and shown, and their defaults. Stored as text in the `config` table.

use crate::gc::{self, DEFAULT_REPACK_AGE_SECS, DEFAULT_WINDOW_SECS, HISTORY_WINDOW, REPACK_AGE};
use crate::meta;
use rusqlite::Connection;

/// How many snapshots one user other than root may hold (`snapshot-limit`).
pub const SNAPSHOT_LIMIT: &str = "snapshot-limit";
pub const DEFAULT_SNAPSHOT_LIMIT: u64 = 64;

/// Every setting, in the order `chunkfs config get` lists them.
pub const KEYS: [&str; 3] = [HISTORY_WINDOW, SNAPSHOT_LIMIT, REPACK_AGE];

/// The stored form of `value` for `key`, or why it is not one.
pub fn parse(key: &str, value: &str) -> Result<String, String> {
    match key {
        HISTORY_WINDOW | REPACK_AGE => Ok(gc::parse_duration(value)?.to_string()),
        SNAPSHOT_LIMIT => value
            .trim()
            .parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| format!("{value:?} is not a count of snapshots (try 64, or 0)")),
        _ => Err(unknown(key)),
    }
}

pub fn unknown(key: &str) -> String {
    format!(
        "unknown setting {key:?}; the settings are: {}",
        KEYS.join(", ")
    )
}

/// A stored value as a person reads it (and `parse` reads back).
pub fn show(key: &str, stored: &str) -> String {
    match (key, stored.parse::<u64>()) {
        (HISTORY_WINDOW | REPACK_AGE, Ok(s)) => gc::format_duration(s),
        _ => stored.to_string(),
    }
}

fn default(key: &str) -> String {
    match key {
        HISTORY_WINDOW => DEFAULT_WINDOW_SECS.to_string(),
        REPACK_AGE => DEFAULT_REPACK_AGE_SECS.to_string(),
        _ => DEFAULT_SNAPSHOT_LIMIT.to_string(),
    }
}

/// Every setting (or the one named) with its value as shown, defaults included.
pub fn all(conn: &Connection, only: Option<&str>) -> meta::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for key in KEYS.iter().filter(|k| only.is_none_or(|o| o == **k)) {
        let stored = meta::gc::config_get(conn, key)?.unwrap_or_else(|| default(key));
        out.push((key.to_string(), show(key, &stored)));
    }
    Ok(out)
}

pub fn snapshot_limit(conn: &Connection) -> meta::Result<u64> {
    Ok(meta::gc::config_get(conn, SNAPSHOT_LIMIT)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SNAPSHOT_LIMIT))
}
