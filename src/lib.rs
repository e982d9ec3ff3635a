//! chunkfs: a content-addressed, deduplicating filesystem.
//!
//! Layers, dependencies pointing down only (see `docs/` and DESIGN.md):
//! `cli` → `fuse` → `fs` → `meta` + `store` → `chunker`; `fsck` → `meta` + `store`;
//! `fs` → `gc` → `meta` + `store`.

pub mod chunker;
pub mod cli;
pub mod fs;
pub mod fsck;
pub mod fuse;
pub mod gc;
pub mod meta;
pub mod store;

/// The tests' deterministic data, shared by unit and integration tests (one generator).
#[cfg(test)]
#[path = "../tests/common/data.rs"]
pub(crate) mod testdata;
