//! Live mode and replication on real btrfs filesystems (loop devices), real OverlayFS mounts and
//! real `btrfs send`/`receive`. Every test makes its own filesystems and cleans up on drop;
//! without root they print "skipped: <reason>" and pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod live;
mod send;
// The sshd of the CLI's replication tests, one helper for both test binaries.
#[path = "../../../cli/tests/it/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;
mod support;
