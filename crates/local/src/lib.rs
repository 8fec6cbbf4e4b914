//! The local snapshot tier: numbered, read-only btrfs snapshots of a subvolume, kept beside it
//! (as Snapper does), with diff, undo, rollback, retention cleanup, an OverlayFS live mode and
//! btrfs send/receive replication. Documented for users in `docs/local.md`.

mod error;
pub use error::{Error, Result};

pub mod cleanup;
mod content;
mod files;
pub mod mounts;
pub mod rollback;
pub mod store;
pub use store::*;

pub mod diff;
pub mod undo;

pub mod live;
pub mod send;
