//! End-to-end tests of the `snapguard` binary (one test binary, many modules).

mod commands;
mod config;
mod crash;
mod errors;
mod fidelity;
mod golden;
mod index_cache;
mod maintenance;
mod support;
mod throttle;
