//! Import restic repositories into SnapGuard (`snapguard import restic`).
//!
//! This crate owns everything that knows restic: it opens a local restic repository (format 1,
//! or 2 with compression) read-only through `rustic_core` ([`ResticRepo`]), decides which of its
//! snapshots still need importing ([`plan`]), and recreates each one with the engine's ingest
//! API ([`Importer`]): the same tree with every attribute restic records, file contents read
//! blob by blob, verified, and chunked, deduplicated and encrypted by SnapGuard. The engine
//! itself does not depend on rustic_core.
//!
//! It does not write to the restic repository (every write is refused, no cache is kept), does
//! not take restic's locks, and reads only local repositories.

mod backend;
mod convert;
mod error;
mod import;
mod placement;
mod source;

pub use error::{Error, Result};
pub use import::{imported, marker_tag, plan, ImportOptions, ImportPlan, Importer, MARKER_PREFIX};
pub use source::{check_layout, ResticRepo, ResticSnapshot};
