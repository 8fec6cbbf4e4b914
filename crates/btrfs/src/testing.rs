//! A btrfs filesystem of its own for a test: a sparse image file on a loop device, mounted in a
//! temporary directory, unmounted and detached on drop (also when the test panics).
//!
//! Enabled by the `testing` feature, for the tests of this and other crates:
//! `snapguard-btrfs = { workspace = true, features = ["testing"] }` under dev-dependencies.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted scratch btrfs filesystem.
pub struct LoopFs {
    dir: tempfile::TempDir,
    loopdev: Option<String>,
    mounted: bool,
}

/// Why btrfs tests cannot run here, if they cannot: not root, or no `mkfs.btrfs`/`losetup`.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (loop devices and mount)".into());
    }
    for tool in ["mkfs.btrfs", "losetup", "btrfs"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "`{tool}` is not installed (apt-get install btrfs-progs)"
            ));
        }
    }
    None
}

/// A new filesystem, or `None` (after printing why) where btrfs tests cannot run. In CI
/// (`CI` set) a missing prerequisite is a failure, not a skip.
pub fn try_new(size_mib: u64) -> Option<LoopFs> {
    if let Some(why) = unavailable() {
        if std::env::var_os("CI").is_some() && std::env::var_os("SG_ALLOW_SKIP").is_none() {
            panic!("btrfs test cannot run in CI: {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    Some(LoopFs::new(size_mib))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl LoopFs {
    /// Make, attach and mount a filesystem of `size_mib` MiB (at least 128).
    pub fn new(size_mib: u64) -> LoopFs {
        let dir = tempfile::Builder::new()
            .prefix("sg-btrfs-")
            .tempdir_in(std::env::var_os("SG_BTRFS_TMP").unwrap_or_else(|| "/var/tmp".into()))
            .expect("tempdir");
        let img = dir.path().join("fs.img");
        let f = std::fs::File::create(&img).expect("create image");
        f.set_len(size_mib.max(128) << 20).expect("size image");
        drop(f);
        run(Command::new("mkfs.btrfs").args(["-q", "-f"]).arg(&img));
        let mut fs = LoopFs {
            dir,
            loopdev: None,
            mounted: false,
        };
        let dev = run(Command::new("losetup").args(["-f", "--show"]).arg(&img));
        fs.loopdev = Some(dev.clone());
        std::fs::create_dir(fs.mnt()).expect("mount point");
        run(Command::new("mount").arg(&dev).arg(fs.mnt()));
        fs.mounted = true;
        fs
    }

    /// Where the filesystem (its top-level subvolume) is mounted.
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// A scratch directory beside the mount point (not on the btrfs filesystem).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The loop device.
    pub fn device(&self) -> &str {
        self.loopdev.as_deref().unwrap_or("")
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy unmount as a last resort so the loop device can always be detached.
            let ok = Command::new("umount")
                .arg(self.mnt())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
            }
        }
        if let Some(dev) = &self.loopdev {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
    }
}
