//! End-to-end tests of the `snapguard` binary (one test binary, many modules).

mod btrfs_backup;
mod commands;
mod config;
mod copy;
mod crash;
mod daemon;
mod errors;
mod fidelity;
mod golden;
mod history;
mod import_restic;
mod index_cache;
mod live;
mod local;
mod maintenance;
mod mount;
mod object_lock;
mod remote_perf;
mod restore_modes;
mod s3;
mod send;
mod sftp;
mod support;
mod throttle;
mod transfer;
mod user;
