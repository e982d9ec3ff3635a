//! chunkfs: a content-addressed, deduplicating filesystem.
//!
//! Layers, dependencies pointing down only (see `docs/` and DESIGN.md):
//! `fuse` → `fs` → `meta` + `store` → `chunker`.

pub mod chunker;
pub mod fs;
pub mod fsck;
pub mod meta;
pub mod store;
