//! The FUSE filesystem: the layout of the mount and the answers to the kernel's requests.
//!
//! ```text
//! /snapshots/<time>-<id>/...      every snapshot, its paths as backed up
//! /latest -> snapshots/<newest>
//! /tags/<tag>/<time>-<id>/...     snapshots by tag (and tags/<tag>/latest)
//! /hosts/<host>/<time>-<id>/...   snapshots by host (and hosts/<host>/latest)
//! /history/<path>/<time>-<id>     each version of <path> (see `history`)
//! ```
//!
//! Everything is read-only. Requests run on several FUSE threads at once, so every piece of
//! state here is behind a lock or atomic; no lock is held while the repository is read,
//! except the caches' own short critical sections.

use crate::attr;
use crate::catalog::{Catalog, Catalogs, Snap, REFRESH_AFTER};
use crate::content::OpenFile;
use crate::history::{self, HistEntry};
use crate::inode::{self, Key, Table};
use crate::store::{Readahead, Store};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use snapguard_format::{Node, NodeKind, TreeId};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long the kernel may cache what can change: the top-level listings, `latest`, tags,
/// hosts and history.
const TTL_DYNAMIC: Duration = Duration::from_secs(1);
/// How long the kernel may cache what a snapshot holds (which never changes).
const TTL_SNAPSHOT: Duration = Duration::from_secs(3600);

const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;

/// Whether a tag or host directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupKind {
    Tag,
    Host,
}

/// What an inode is.
#[derive(Debug)]
pub(crate) enum Item {
    Root,
    Snapshots,
    Tags,
    Hosts,
    /// A `latest` symlink: at the top (`None`) or in a tag or host directory.
    Latest(Option<(GroupKind, String)>),
    /// `tags/<name>` or `hosts/<name>` (the directory name, already escaped).
    Group(GroupKind, String),
    /// The root directory of a snapshot.
    SnapshotRoot(Arc<Snap>),
    /// An entry stored in a snapshot.
    Node {
        snap: Arc<Snap>,
        node: Arc<Node>,
    },
    /// `history/<path>` (the empty path is `history/` itself), with its listing cached for
    /// one catalog generation.
    History {
        path: Vec<u8>,
        listing: Mutex<Option<(u64, Arc<Vec<HistEntry>>)>>,
    },
}

impl Item {
    fn history(path: Vec<u8>) -> Item {
        Item::History {
            path,
            listing: Mutex::new(None),
        }
    }

    fn ttl(&self) -> Duration {
        match self {
            Item::Node { .. } => TTL_SNAPSHOT,
            _ => TTL_DYNAMIC,
        }
    }
}

/// One directory entry, as listed.
struct DirEntry {
    ino: u64,
    kind: FileType,
    name: Vec<u8>,
}

/// Why a request failed, as the kernel gets it: every repository failure (damaged or missing
/// data, an unreadable backend) is an I/O error to the reader; the log names the object.
fn errno_of(_: &snapguard_engine::Error) -> Errno {
    Errno::EIO
}

/// The filesystem handed to fuser.
pub(crate) struct SnapshotFs {
    store: Arc<Store>,
    catalogs: Catalogs,
    table: Table,
    readahead: Readahead,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_handle: AtomicU64,
    /// Owner of the directories the mount makes up: whoever mounted it.
    owner: (u32, u32),
    started: SystemTime,
    /// Ask the kernel to enforce POSIX ACLs (with `default_permissions`, for `allow_other`).
    posix_acl: bool,
}

impl SnapshotFs {
    /// The file opened under handle `fh`, if it is still open.
    fn open_file(&self, fh: FileHandle) -> Option<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned()
    }

    pub(crate) fn new(store: Arc<Store>, posix_acl: bool) -> std::io::Result<SnapshotFs> {
        let readahead = Readahead::start(&store)?;
        let table = Table::new(vec![
            (inode::ROOT, Item::Root),
            (inode::SNAPSHOTS, Item::Snapshots),
            (inode::TAGS, Item::Tags),
            (inode::HOSTS, Item::Hosts),
            (inode::HISTORY, Item::history(Vec::new())),
            (inode::LATEST, Item::Latest(None)),
        ]);
        let fs = SnapshotFs {
            store,
            catalogs: Catalogs::new(),
            table,
            readahead,
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            owner: (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw(),
            ),
            started: SystemTime::now(),
            posix_acl,
        };
        // Read the snapshot list now, so that a broken repository fails the mount rather than
        // the first `ls`.
        fs.catalogs.get(&fs.store, Duration::ZERO);
        Ok(fs)
    }

    fn catalog(&self, fresh: bool) -> Arc<Catalog> {
        if fresh {
            self.catalogs.get(&self.store, REFRESH_AFTER)
        } else {
            self.catalogs.current()
        }
    }

    fn handle(&self) -> u64 {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }

    /// Snapshots of a tag or host directory (empty if it vanished).
    fn group_snaps(cat: &Catalog, kind: GroupKind, name: &str) -> Vec<Arc<Snap>> {
        let map = match kind {
            GroupKind::Tag => &cat.tags,
            GroupKind::Host => &cat.hosts,
        };
        map.get(name).cloned().unwrap_or_default()
    }

    /// Where a `latest` link points, None if there is no snapshot (in that group).
    fn latest_target(&self, group: &Option<(GroupKind, String)>) -> Option<String> {
        match group {
            None => self
                .catalog(true)
                .latest()
                .map(|s| format!("snapshots/{}", s.name)),
            Some((kind, name)) => Self::group_snaps(&self.catalog(true), *kind, name)
                .last()
                .map(|s| s.name.clone()),
        }
    }

    /// The key of a node stored in a snapshot: hard-linked files share theirs.
    fn node_key(parent: u64, snap: &Snap, node: &Node) -> Key {
        if node.kind != NodeKind::Dir && node.nlink > 1 {
            Key::Hardlink {
                snapshot: snap.id,
                device: node.device,
                inode: node.inode,
            }
        } else {
            Key::Child {
                parent,
                name: node.name.clone(),
            }
        }
    }

    fn child_key(parent: u64, name: &[u8]) -> Key {
        Key::Child {
            parent,
            name: name.to_vec(),
        }
    }

    /// The tree a directory item lists, if it is a snapshot directory.
    fn tree_of(item: &Item) -> Option<(Arc<Snap>, TreeId)> {
        match item {
            Item::SnapshotRoot(s) => Some((s.clone(), s.file.tree)),
            Item::Node { snap, node } => node.subtree.map(|t| (snap.clone(), t)),
            _ => None,
        }
    }

    fn history_listing(&self, item: &Item) -> snapguard_engine::Result<Arc<Vec<HistEntry>>> {
        let Item::History { path, listing } = item else {
            return Ok(Arc::new(Vec::new()));
        };
        let cat = self.catalog(true);
        if let Some((generation, l)) = &*listing.lock().unwrap_or_else(|p| p.into_inner()) {
            if *generation == cat.generation {
                return Ok(l.clone());
            }
        }
        let l = Arc::new(history::listing(&self.store, &cat, path)?);
        *listing.lock().unwrap_or_else(|p| p.into_inner()) = Some((cat.generation, l.clone()));
        Ok(l)
    }

    /// The entry `name` of directory `parent`: its key and (if the kernel does not hold it
    /// yet) its item. `Err(errno)` for "not a directory" and read failures.
    fn find_child(
        &self,
        parent: u64,
        item: &Item,
        name: &[u8],
    ) -> Result<Option<(Key, Item)>, Errno> {
        let io = |e: snapguard_engine::Error| {
            tracing::error!("{e}");
            errno_of(&e)
        };
        Ok(match item {
            Item::Root => match name {
                b"snapshots" => Some((Key::Fixed(inode::SNAPSHOTS), Item::Snapshots)),
                b"tags" => Some((Key::Fixed(inode::TAGS), Item::Tags)),
                b"hosts" => Some((Key::Fixed(inode::HOSTS), Item::Hosts)),
                b"history" => Some((Key::Fixed(inode::HISTORY), Item::history(Vec::new()))),
                b"latest" => self
                    .catalog(true)
                    .latest()
                    .map(|_| (Key::Fixed(inode::LATEST), Item::Latest(None))),
                _ => None,
            },
            Item::Snapshots => {
                let name = String::from_utf8_lossy(name);
                self.catalog(true).by_name.get(name.as_ref()).map(|s| {
                    (
                        Self::child_key(parent, name.as_bytes()),
                        Item::SnapshotRoot(s.clone()),
                    )
                })
            }
            Item::Tags | Item::Hosts => {
                let (kind, name) = (
                    if matches!(item, Item::Tags) {
                        GroupKind::Tag
                    } else {
                        GroupKind::Host
                    },
                    String::from_utf8_lossy(name).into_owned(),
                );
                let cat = self.catalog(true);
                (!Self::group_snaps(&cat, kind, &name).is_empty()).then(|| {
                    (
                        Self::child_key(parent, name.as_bytes()),
                        Item::Group(kind, name),
                    )
                })
            }
            Item::Group(kind, group) => {
                let snaps = Self::group_snaps(&self.catalog(true), *kind, group);
                if name == b"latest" {
                    (!snaps.is_empty()).then(|| {
                        (
                            Self::child_key(parent, name),
                            Item::Latest(Some((*kind, group.clone()))),
                        )
                    })
                } else {
                    snaps
                        .into_iter()
                        .find(|s| s.name.as_bytes() == name)
                        .map(|s| (Self::child_key(parent, name), Item::SnapshotRoot(s)))
                }
            }
            Item::SnapshotRoot(_) | Item::Node { .. } => {
                let Some((snap, tree)) = Self::tree_of(item) else {
                    return Err(Errno::ENOTDIR);
                };
                let tree = self.store.tree(&tree).map_err(io)?;
                tree.find(name).map(|n| {
                    (
                        Self::node_key(parent, &snap, n),
                        Item::Node {
                            snap: snap.clone(),
                            node: Arc::new(n.clone()),
                        },
                    )
                })
            }
            Item::History { path, .. } => {
                let listing = self.history_listing(item).map_err(io)?;
                listing.iter().find(|e| e.name() == name).map(|e| match e {
                    HistEntry::Path { name } => {
                        let mut sub = path.clone();
                        if !sub.is_empty() {
                            sub.push(b'/');
                        }
                        sub.extend_from_slice(name);
                        (Self::child_key(parent, name), Item::history(sub))
                    }
                    HistEntry::Version { snap, node, name } => (
                        if node.nlink > 1 {
                            Self::node_key(parent, snap, node)
                        } else {
                            Self::child_key(parent, name.as_bytes())
                        },
                        Item::Node {
                            snap: snap.clone(),
                            node: node.clone(),
                        },
                    ),
                })
            }
            Item::Latest(_) => return Err(Errno::ENOTDIR),
        })
    }

    /// Every entry of directory `ino` (with `.` and `..`).
    fn list(&self, ino: u64, parent: Option<u64>, item: &Item) -> Result<Vec<DirEntry>, Errno> {
        let io = |e: snapguard_engine::Error| {
            tracing::error!("{e}");
            errno_of(&e)
        };
        let dir = |ino: u64, name: &[u8]| DirEntry {
            ino,
            kind: FileType::Directory,
            name: name.to_vec(),
        };
        let mut out = vec![dir(ino, b"."), dir(parent.unwrap_or(inode::ROOT), b"..")];
        let child = |name: &[u8]| self.table.peek(&Self::child_key(ino, name));
        let latest = |out: &mut Vec<DirEntry>, ino: u64| {
            out.push(DirEntry {
                ino,
                kind: FileType::Symlink,
                name: b"latest".to_vec(),
            })
        };
        match item {
            Item::Root => {
                out.push(dir(inode::SNAPSHOTS, b"snapshots"));
                out.push(dir(inode::TAGS, b"tags"));
                out.push(dir(inode::HOSTS, b"hosts"));
                out.push(dir(inode::HISTORY, b"history"));
                if self.catalog(true).latest().is_some() {
                    latest(&mut out, inode::LATEST);
                }
            }
            Item::Snapshots => {
                for s in &self.catalog(true).snaps {
                    out.push(dir(child(s.name.as_bytes()), s.name.as_bytes()));
                }
            }
            Item::Tags | Item::Hosts => {
                let cat = self.catalog(true);
                let map = if matches!(item, Item::Tags) {
                    &cat.tags
                } else {
                    &cat.hosts
                };
                for name in map.keys() {
                    out.push(dir(child(name.as_bytes()), name.as_bytes()));
                }
            }
            Item::Group(kind, group) => {
                let snaps = Self::group_snaps(&self.catalog(true), *kind, group);
                for s in &snaps {
                    out.push(dir(child(s.name.as_bytes()), s.name.as_bytes()));
                }
                if !snaps.is_empty() {
                    latest(&mut out, child(b"latest"));
                }
            }
            Item::SnapshotRoot(_) | Item::Node { .. } => {
                let Some((snap, tree)) = Self::tree_of(item) else {
                    return Err(Errno::ENOTDIR);
                };
                let tree = self.store.tree(&tree).map_err(io)?;
                out.reserve(tree.nodes.len());
                for n in &tree.nodes {
                    out.push(DirEntry {
                        ino: self.table.peek(&Self::node_key(ino, &snap, n)),
                        kind: attr::file_type(n.kind),
                        name: n.name.clone(),
                    });
                }
            }
            Item::History { .. } => {
                for e in self.history_listing(item).map_err(io)?.iter() {
                    out.push(match e {
                        HistEntry::Path { name } => dir(child(name), name),
                        HistEntry::Version { name, snap, node } => DirEntry {
                            ino: self.table.peek(&if node.nlink > 1 {
                                Self::node_key(ino, snap, node)
                            } else {
                                Self::child_key(ino, name.as_bytes())
                            }),
                            kind: attr::file_type(node.kind),
                            name: name.as_bytes().to_vec(),
                        },
                    });
                }
            }
            Item::Latest(_) => return Err(Errno::ENOTDIR),
        }
        Ok(out)
    }

    /// Time shown on made-up directories: the newest snapshot's, else the mount's start.
    fn virtual_time(&self, snaps: &[Arc<Snap>]) -> SystemTime {
        snaps
            .last()
            .map(|s| attr::system_time(s.file.time))
            .unwrap_or(self.started)
    }

    fn attr(&self, ino: u64, item: &Item) -> Result<FileAttr, Errno> {
        Ok(match item {
            Item::Root | Item::Snapshots | Item::Tags | Item::Hosts | Item::History { .. } => {
                attr::virtual_dir(
                    ino,
                    0o555,
                    self.owner,
                    self.virtual_time(&self.catalog(false).snaps),
                )
            }
            Item::Group(kind, name) => attr::virtual_dir(
                ino,
                0o555,
                self.owner,
                self.virtual_time(&Self::group_snaps(&self.catalog(false), *kind, name)),
            ),
            Item::Latest(group) => {
                let target = self.latest_target(group).ok_or(Errno::ENOENT)?;
                attr::virtual_symlink(
                    ino,
                    target.len(),
                    self.owner,
                    self.virtual_time(&self.catalog(false).snaps),
                )
            }
            Item::SnapshotRoot(s) => attr::virtual_dir(
                ino,
                0o755,
                (s.file.uid, s.file.gid),
                attr::system_time(s.file.time),
            ),
            Item::Node { node, .. } => attr::node_attr(ino, node),
        })
    }

    fn item(&self, ino: INodeNo) -> Result<(Arc<Item>, Option<u64>), Errno> {
        self.table.get(ino.0).ok_or(Errno::ENOENT)
    }
}

impl Filesystem for SnapshotFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Let the kernel read ahead as far as it allows (it offers its maximum); our own
        // read-ahead works in blobs on top of that.
        let mut ra = 8 << 20;
        while ra >= 128 << 10 {
            if config.set_max_readahead(ra).is_ok() {
                break;
            }
            ra /= 2;
        }
        let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS;
        if self.posix_acl {
            wanted |= InitFlags::FUSE_POSIX_ACL;
        }
        if let Err(unsupported) = config.add_capabilities(wanted) {
            tracing::debug!("kernel lacks FUSE capabilities {unsupported:?}");
            let _ = config.add_capabilities(wanted & !unsupported);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.readahead.stop();
        let stats = self.store.blob_stats();
        tracing::debug!(
            "blob cache: {} hits, {} loads, {} waits for a load in progress; {} inodes held",
            stats.hits,
            stats.loads,
            stats.waits,
            self.table.len()
        );
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (pitem, _) = match self.item(parent) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        match self.find_child(parent.0, &pitem, name.as_bytes()) {
            Ok(Some((key, item))) => {
                let (ino, item) = self.table.lookup(key, || item);
                match self.attr(ino, &item) {
                    Ok(attr) => reply.entry(&item.ttl(), &attr, Generation(0)),
                    Err(e) => {
                        self.table.forget(ino, 1);
                        reply.error(e)
                    }
                }
            }
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.table.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .item(ino)
            .and_then(|(item, _)| self.attr(ino.0, &item).map(|a| (a, item.ttl())))
        {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.item(ino) {
            Ok((item, _)) => match &*item {
                Item::Latest(group) => match self.latest_target(group) {
                    Some(t) => reply.data(t.as_bytes()),
                    None => reply.error(Errno::ENOENT),
                },
                Item::Node { node, .. } if node.kind == NodeKind::Symlink => {
                    reply.data(&node.link_target)
                }
                _ => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let node = match self.item(ino) {
            Ok((item, _)) => match &*item {
                Item::Node { node, .. } if node.kind == NodeKind::File => node.clone(),
                Item::Node { node, .. } if node.kind == NodeKind::Dir => {
                    return reply.error(Errno::EISDIR)
                }
                _ => return reply.error(Errno::EINVAL),
            },
            Err(e) => return reply.error(e),
        };
        let fh = self.handle();
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(OpenFile::new(node)));
        // Snapshot content never changes, so the page cache stays valid across opens.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.open_file(fh) else {
            return reply.error(Errno::EBADF);
        };
        match file.read(&self.store, &self.readahead, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => {
                tracing::error!(
                    "reading {:?} at offset {offset}: {e}",
                    String::from_utf8_lossy(&file.layout.node.name)
                );
                reply.error(errno_of(&e))
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let listed = self
            .item(ino)
            .and_then(|(item, parent)| self.list(ino.0, parent, &item).map(|l| (l, item)));
        match listed {
            Ok((entries, item)) => {
                let fh = self.handle();
                self.dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(fh, Arc::new(entries));
                // A snapshot's directories never change: let the kernel cache their listing.
                let flags = match &*item {
                    Item::SnapshotRoot(_) | Item::Node { .. } => {
                        FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
                    }
                    _ => FopenFlags::empty(),
                };
                reply.opened(FileHandle(fh), flags);
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(entries) = entries else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(e.ino),
                i as u64 + 1,
                e.kind,
                OsStr::from_bytes(&e.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, attr::BLOCK_SIZE, 255, attr::BLOCK_SIZE);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let item = match self.item(ino) {
            Ok((item, _)) => item,
            Err(e) => return reply.error(e),
        };
        let Item::Node { node, .. } = &*item else {
            return reply.error(Errno::NO_XATTR);
        };
        match node.xattrs.iter().find(|x| x.name == name.as_bytes()) {
            None => reply.error(Errno::NO_XATTR),
            Some(x) if size == 0 => reply.size(x.value.len() as u32),
            Some(x) if x.value.len() > size as usize => reply.error(Errno::ERANGE),
            Some(x) => reply.data(&x.value),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let item = match self.item(ino) {
            Ok((item, _)) => item,
            Err(e) => return reply.error(e),
        };
        let mut names = Vec::new();
        if let Item::Node { node, .. } = &*item {
            for x in &node.xattrs {
                names.extend_from_slice(&x.name);
                names.push(0);
            }
        }
        if size == 0 {
            reply.size(names.len() as u32)
        } else if names.len() > size as usize {
            reply.error(Errno::ERANGE)
        } else {
            reply.data(&names)
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Only called without default_permissions, i.e. for the owner-only mount, whose users
        // (the owner, root) may read everything: answer as for root. Nothing is writable, and
        // a file is executable if any execute bit is set.
        if mask.contains(fuser::AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        let attr = match self.item(ino).and_then(|(item, _)| self.attr(ino.0, &item)) {
            Ok(a) => a,
            Err(e) => return reply.error(e),
        };
        if mask.contains(fuser::AccessFlags::X_OK)
            && attr.kind != FileType::Directory
            && attr.perm & 0o111 == 0
        {
            return reply.error(Errno::EACCES);
        }
        reply.ok()
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let Some(file) = self.open_file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let Ok(off) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        let found = match whence {
            SEEK_DATA => file.layout.seek_data(off),
            SEEK_HOLE => file.layout.seek_hole(off),
            _ => return reply.error(Errno::EINVAL),
        };
        match found.and_then(|o| i64::try_from(o).ok()) {
            Some(o) => reply.offset(o),
            None => reply.error(Errno::ENXIO),
        }
    }
}
