//! `snapguard mount MOUNTPOINT`: serve the repository as a read-only FUSE filesystem until it
//! is unmounted (see docs/mount.md). The filesystem itself is `snapguard-mount`; this module
//! checks the mountpoint, opens and locks the repository, and turns SIGINT, SIGTERM and SIGHUP
//! into an unmount, so that every way of stopping ends with exit code 0 and no mount left.

use crate::args::{GlobalArgs, MountArgs};
use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use snapguard_engine::lock::LockKind;
use snapguard_mount::{MountError, MountOptions};

/// A bad mountpoint is a usage error (exit code 2); everything else keeps its own code.
fn classify(e: MountError) -> anyhow::Error {
    match e {
        MountError::MountpointMissing(_)
        | MountError::NotADirectory(_)
        | MountError::NotEmpty(_) => crate::usage!("{e}"),
        other => anyhow::Error::new(other),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

pub fn mount(g: &GlobalArgs, a: &MountArgs) -> Result<i32> {
    // Everything that can be checked without the repository comes first, so a typo in the
    // mountpoint does not cost a password prompt.
    snapguard_mount::check_mountpoint(&a.mountpoint).map_err(classify)?;
    snapguard_mount::check_fuse()?;
    // The shared lock keeps prune and forget from deleting data under the mount; its guard
    // refreshes the lock in the background for as long as the mount lives.
    let (repo, _lock) = crate::commands::open(g, LockKind::Shared, "mount")?;
    let location = repo.location();
    let opts = MountOptions {
        allow_other: a.allow_other,
        ..MountOptions::default()
    };
    // Catch the signals before mounting: one arriving while the mount is being set up waits
    // in the queue and unmounts as soon as the filesystem is up.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
    let signals_handle = signals.handle();
    let mut mounted = snapguard_mount::mount(repo, &a.mountpoint, &opts).map_err(classify)?;
    let mountpoint = mounted.mountpoint().to_path_buf();
    let mut unmounter = mounted.unmounter();
    let shown = mountpoint.display().to_string();
    let quiet = g.quiet;
    let waiter = std::thread::Builder::new()
        .name("sg-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if !quiet {
                    eprintln!("{}: unmounting {shown}", signal_name(sig));
                }
                // On failure keep waiting: the next signal tries again.
                if let Err(e) = unmounter.unmount() {
                    eprintln!("snapguard: error: {e}");
                }
            }
        })
        .context("cannot start the signal thread")?;
    if !g.quiet {
        eprintln!(
            "mounted repository {location} at {} (read-only); press Ctrl-C or run '{}' to unmount",
            mountpoint.display(),
            mounted.unmount_command()
        );
    }
    let served = mounted.run();
    signals_handle.close();
    let _ = waiter.join();
    served?;
    if !g.quiet {
        eprintln!("unmounted {}", mountpoint.display());
    }
    Ok(0)
}
