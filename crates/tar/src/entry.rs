//! One archive member and its metadata, as the reader yields it and the writer takes it.

/// Seconds and nanoseconds since the Unix epoch; `secs` may be negative, `nanos` is always in
/// `0..1_000_000_000` (so `-0.5 s` is `{ secs: -1, nanos: 500_000_000 }`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

/// What kind of file a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A second name for a regular file stored earlier in the archive (`link` names it).
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// A run of data in a sparse file: `len` bytes at `offset`; everything between runs is a hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
}

/// One archive member.
///
/// Names and link targets are the archive's raw bytes (never re-encoded). Fields the archive did
/// not carry are `None` or empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Symlink target, or the earlier member a hardlink refers to.
    pub link: Vec<u8>,
    /// Permission bits including setuid, setgid and sticky (`0o7777` at most).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// User and group names (empty if the archive has none).
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub mtime: Time,
    pub atime: Option<Time>,
    pub ctime: Option<Time>,
    /// Device numbers of character and block devices.
    pub dev_major: u64,
    pub dev_minor: u64,
    /// A regular file's size (for a sparse file, its full size including holes).
    pub size: u64,
    /// A sparse file's data runs, in order; `None` means every byte is stored.
    pub sparse: Option<Vec<Segment>>,
    /// Extended attributes in archive order (`system.posix_acl_*` among them).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// POSIX ACLs in text form (`SCHILY.acl.access`, `SCHILY.acl.default`).
    pub acl_access: Option<Vec<u8>>,
    pub acl_default: Option<Vec<u8>>,
    /// Inode number, device and link count (star's `SCHILY.ino`, `SCHILY.dev`, `SCHILY.nlink`).
    pub inode: Option<u64>,
    pub device: Option<u64>,
    pub nlink: Option<u64>,
}

impl Entry {
    /// An entry with the given path and kind and every other field zero or empty.
    pub fn new(path: Vec<u8>, kind: EntryKind) -> Entry {
        Entry {
            path,
            kind,
            link: Vec::new(),
            mode: 0,
            uid: 0,
            gid: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: Time::default(),
            atime: None,
            ctime: None,
            dev_major: 0,
            dev_minor: 0,
            size: 0,
            sparse: None,
            xattrs: Vec::new(),
            acl_access: None,
            acl_default: None,
            inode: None,
            device: None,
            nlink: None,
        }
    }

    /// How many data bytes follow the entry's headers in the archive (for a sparse file, the
    /// sum of its runs; for everything but regular files, zero).
    pub fn stored_size(&self) -> u64 {
        match (&self.kind, &self.sparse) {
            (EntryKind::File, Some(segs)) => segs.iter().map(|s| s.len).sum(),
            (EntryKind::File, None) => self.size,
            _ => 0,
        }
    }

    /// The path for messages (lossy UTF-8).
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}
