//! A read-only FUSE view of a SnapGuard repository: every snapshot by time, tag and host, and
//! the history of every path (`snapguard mount`, see docs/mount.md).
//!
//! This crate owns the filesystem (`fs`: layout and FUSE requests), its inode numbering
//! (`inode`), reading file content with a blob cache and read-ahead (`content`, `store`),
//! the snapshot list (`catalog`) and path histories (`history`). It mounts
//! through the `fuser` crate's pure-Rust mount (no libfuse). It does not parse arguments,
//! take the repository lock or handle signals: the caller opens and locks the repository,
//! calls [`mount`], arranges for [`Unmounter::unmount`] to be called (on Ctrl-C, say) and
//! runs [`Mounted::run`] until the filesystem is unmounted.

mod attr;
mod cache;
mod catalog;
mod content;
mod fs;
mod history;
mod inode;
mod store;

pub use store::StoreOptions;

use fs::SnapshotFs;
use snapguard_engine::Repository;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why mounting failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mountpoint {} does not exist; create an empty directory for it (mkdir -p {})", .0.display(), .0.display())]
    MountpointMissing(PathBuf),
    #[error("mountpoint {} is not a directory; give an empty directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("mountpoint {} is not empty; give an empty directory (mounting over it would hide what it holds)", .0.display())]
    NotEmpty(PathBuf),
    #[error("cannot use mountpoint {}: {cause}", path.display())]
    Mountpoint {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("FUSE is not available: {0}")]
    FuseUnavailable(String),
    #[error("cannot mount the repository at {}: {cause}", path.display())]
    Mount {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot unmount {}: {cause}; run 'fusermount3 -u -z {}'", path.display(), path.display())]
    Unmount {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the FUSE session at {} failed: {cause}", path.display())]
    Session {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Repository(#[from] snapguard_engine::Error),
}

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Let every user of the machine use the mount; the kernel then checks each file's mode,
    /// owner and ACLs (`default_permissions`). Without it only the mounting user (and root)
    /// may enter it, and no permission checks apply to them.
    pub allow_other: bool,
    /// Threads answering FUSE requests.
    pub threads: usize,
    pub store: StoreOptions,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: false,
            threads: 4,
            store: StoreOptions::default(),
        }
    }
}

/// Check that `path` is an empty directory; returns its canonical form.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountError::MountpointMissing(path.to_path_buf()))
        }
        Err(cause) => {
            return Err(MountError::Mountpoint {
                path: path.to_path_buf(),
                cause,
            })
        }
    };
    if !meta.is_dir() {
        return Err(MountError::NotADirectory(path.to_path_buf()));
    }
    let io = |cause| MountError::Mountpoint {
        path: path.to_path_buf(),
        cause,
    };
    if std::fs::read_dir(path).map_err(io)?.next().is_some() {
        return Err(MountError::NotEmpty(path.to_path_buf()));
    }
    path.canonicalize().map_err(io)
}

/// The setuid mount helper: `fusermount3` (libfuse 3), else `fusermount` (libfuse 2, which
/// speaks the same protocol to us); `$FUSERMOUNT_PATH` overrides the search, as in fuser.
fn fusermount() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    ["fusermount3", "fusermount"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether /etc/fuse.conf lets ordinary users pass `allow_other`.
fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|c| {
        c.lines()
            .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
    })
}

/// Check that this process can mount a FUSE filesystem at all.
pub fn check_fuse() -> Result<(), MountError> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountError::FuseUnavailable(
                "/dev/fuse does not exist; load the kernel module ('modprobe fuse'), or in a container pass the device (--device /dev/fuse)".into(),
            ))
        }
        Err(e) => {
            return Err(MountError::FuseUnavailable(format!(
                "cannot open /dev/fuse: {e}; check its permissions (normally mode 0666), or in a container pass the device (--device /dev/fuse)"
            )))
        }
    }
    if !is_root() && fusermount().is_none() {
        return Err(MountError::FuseUnavailable(
            "mounting as a normal user needs the fusermount3 (or fusermount) helper, which is not in PATH; install the fuse3 package".into(),
        ));
    }
    Ok(())
}

/// A mounted repository; [`Mounted::run`] serves it until it is unmounted.
pub struct Mounted {
    session: fuser::Session<SnapshotFs>,
    mountpoint: PathBuf,
}

/// Unmounts a [`Mounted`] from another thread (a signal handler thread, say).
pub struct Unmounter {
    inner: fuser::SessionUnmounter,
    mountpoint: PathBuf,
}

/// Mount `repo` (opened, locked and with its index loaded) read-only at `mountpoint`, which
/// must be an empty directory. Returns once the kernel has accepted the filesystem.
pub fn mount(
    repo: Repository,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<Mounted, MountError> {
    use fuser::{Config, MountOption, SessionACL};
    let mountpoint = check_mountpoint(mountpoint)?;
    let store = Arc::new(store::Store::new(repo, opts.store.clone()));
    let fs = SnapshotFs::new(store, opts.allow_other).map_err(|cause| MountError::Mount {
        path: mountpoint.clone(),
        cause,
    })?;
    // With auto_unmount, the helper (fusermount3) stays alive beside us and unmounts (lazily) when we exit
    // in any way, even killed: no dead mountpoint is left behind. It needs allow_other in the
    // kernel's options; fuser then admits only root and us unless allow_other was asked for.
    let auto_unmount = fusermount().is_some() && (is_root() || user_allow_other());
    let mut mount_options = vec![
        MountOption::RO,
        MountOption::FSName("snapguard".into()),
        MountOption::Subtype("snapguard".into()),
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoAtime,
    ];
    if opts.allow_other {
        mount_options.push(MountOption::DefaultPermissions);
    }
    if auto_unmount {
        mount_options.push(MountOption::AutoUnmount);
    }
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = match (opts.allow_other, auto_unmount) {
        (true, _) => SessionACL::All,
        (false, true) => SessionACL::RootAndOwner,
        (false, false) => SessionACL::Owner,
    };
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = opts.threads > 1;
    let session =
        fuser::Session::new(fs, &mountpoint, &config).map_err(|cause| MountError::Mount {
            path: mountpoint.clone(),
            cause,
        })?;
    tracing::info!(
        "mounted at {} (auto_unmount: {auto_unmount}, {} threads)",
        mountpoint.display(),
        opts.threads
    );
    Ok(Mounted {
        session,
        mountpoint,
    })
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The command a user runs to unmount it (`fusermount3 -u MOUNTPOINT`, or whichever
    /// helper is installed; `umount` without one).
    pub fn unmount_command(&self) -> String {
        match fusermount() {
            Some(h) => format!(
                "{} -u {}",
                h.file_name()
                    .map_or("fusermount3".into(), |n| n.to_string_lossy()),
                self.mountpoint.display()
            ),
            None => format!("umount {}", self.mountpoint.display()),
        }
    }

    /// A handle that unmounts this filesystem, which makes [`Mounted::run`] return.
    pub fn unmounter(&mut self) -> Unmounter {
        Unmounter {
            inner: self.session.unmount_callable(),
            mountpoint: self.mountpoint.clone(),
        }
    }

    /// Serve requests until the filesystem is unmounted (by [`Unmounter::unmount`],
    /// `fusermount3 -u` or `umount`).
    pub fn run(self) -> Result<(), MountError> {
        let path = self.mountpoint.clone();
        match self.session.run() {
            // The kernel ended the connection (a detached mount whose last user let go can end
            // this way rather than with ENODEV): the filesystem is gone, as when unmounted.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::CONNABORTED.raw_os_error()) => {
                tracing::info!("{}: the kernel ended the FUSE connection", path.display());
                Ok(())
            }
            r => r.map_err(|cause| MountError::Session { path, cause }),
        }
    }
}

impl Unmounter {
    /// Unmount. If the filesystem is busy (a file open, a shell inside it), detach it
    /// instead: it disappears from the directory tree at once and is released when the last
    /// user lets go.
    pub fn unmount(&mut self) -> Result<(), MountError> {
        match self.inner.unmount() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                self.detach(e)
            }
            Err(cause) => Err(MountError::Unmount {
                path: self.mountpoint.clone(),
                cause,
            }),
        }
    }

    fn detach(&self, busy: std::io::Error) -> Result<(), MountError> {
        tracing::info!(
            "{} is busy ({busy}); detaching it (lazy unmount)",
            self.mountpoint.display()
        );
        if rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH).is_ok() {
            return Ok(());
        }
        let helper = fusermount().unwrap_or_else(|| PathBuf::from("fusermount3"));
        let status = std::process::Command::new(&helper)
            .args(["-u", "-z", "--"])
            .arg(&self.mountpoint)
            .status();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(MountError::Unmount {
                path: self.mountpoint.clone(),
                cause: std::io::Error::other(format!("{} -u -z failed ({s})", helper.display())),
            }),
            Err(cause) => Err(MountError::Unmount {
                path: self.mountpoint.clone(),
                cause,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_must_be_an_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        assert!(matches!(
            check_mountpoint(&missing),
            Err(MountError::MountpointMissing(_))
        ));
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&file),
            Err(MountError::NotADirectory(_))
        ));
        let full = tmp.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("a"), b"x").unwrap();
        let e = check_mountpoint(&full).unwrap_err();
        assert!(matches!(e, MountError::NotEmpty(_)));
        assert!(e.to_string().contains("not empty"), "{e}");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(
            check_mountpoint(&empty).unwrap(),
            empty.canonicalize().unwrap()
        );
    }
}
