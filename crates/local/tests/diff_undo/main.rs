//! Tests of `snapguard_local::{diff, undo}` through the public API: on plain directories, on a
//! real btrfs filesystem on a loop device, and property tests on random trees and edits.

mod btrfs;
mod diff;
mod props;
mod support;
mod undo;
