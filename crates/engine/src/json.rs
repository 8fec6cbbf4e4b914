//! Engine values as JSON: the forms `--json` prints and the daemon's web API answers with, so
//! both say the same thing the same way.

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use snapguard_format::{Node, NodeKind, SnapshotFile, SnapshotId, Timestamp};

/// RFC 3339 with nanoseconds, UTC.
pub fn rfc3339(t: Timestamp) -> String {
    match Utc.timestamp_opt(t.secs, t.nanos).single() {
        Some(d) => d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{}.{:09}", t.secs, t.nanos),
    }
}

pub fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
    }
}

/// `ls -l` style mode string.
pub fn mode_string(n: &Node) -> String {
    let t = match n.kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
    };
    let m = n.mode;
    let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
    let special = |x: u32, s: u32, lower: char, upper: char| match (m & x != 0, m & s != 0) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    format!(
        "{t}{}{}{}{}{}{}{}{}{}",
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    )
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A node as JSON (names and targets as lossy UTF-8; exact bytes as hex when they are not UTF-8).
pub fn node_json(path: &[u8], n: &Node) -> Value {
    let mut v = json!({
        "path": lossy(path),
        "name": lossy(&n.name),
        "type": kind_name(n.kind),
        "mode": n.mode,
        "permissions": mode_string(n),
        "uid": n.uid,
        "gid": n.gid,
        "user": n.user,
        "group": n.group,
        "size": n.size,
        "mtime": rfc3339(n.mtime),
        "atime": rfc3339(n.atime),
        "ctime": rfc3339(n.ctime),
        "inode": n.inode,
        "device": n.device,
        "nlink": n.nlink,
        "xattrs": n.xattrs.iter().map(|x| lossy(&x.name)).collect::<Vec<_>>(),
    });
    if std::str::from_utf8(path).is_err() {
        v["path_hex"] = json!(hex::encode(path));
    }
    if n.kind == NodeKind::Symlink {
        v["link_target"] = json!(lossy(&n.link_target));
    }
    if matches!(n.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        v["rdev"] = json!(n.rdev);
    }
    if let Some(t) = n.subtree {
        v["subtree"] = json!(t.to_hex());
    }
    if n.kind == NodeKind::File {
        v["content"] = json!(n
            .content
            .iter()
            .map(|p| match p {
                snapguard_format::ContentPart::Data { id, len } =>
                    json!({"blob": id.to_hex(), "len": len}),
                snapguard_format::ContentPart::Hole { len } => json!({"hole": len}),
            })
            .collect::<Vec<_>>());
    }
    if n.flags != 0 {
        v["flags"] = json!(n.flags);
    }
    v
}

pub fn snapshot_json(id: &SnapshotId, s: &SnapshotFile) -> Value {
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": rfc3339(s.time),
        "tree": s.tree.to_hex(),
        "paths": s.display_paths(),
        "hostname": s.hostname,
        "username": s.username,
        "uid": s.uid,
        "gid": s.gid,
        "tags": s.tags,
        "parent": s.parent.map(|p| p.to_hex()),
        "excludes": s.excludes,
        "program_version": s.program_version,
        "summary": s.summary,
        "source": s.source.as_ref().map(source_json),
        "copied_from": s.copied_from.as_ref().map(|c| json!({
            "snapshot": c.snapshot.to_hex(),
            "repository": c.repository.to_hex(),
            "source": c.source.to_hex(),
            "source_repository": c.source_repository.to_hex(),
        })),
    })
}

/// How a snapshot's files were captured (btrfs snapshots read), UUIDs as text.
fn source_json(src: &snapguard_format::SnapshotSource) -> Value {
    let uuid = |b: &[u8; 16]| snapguard_btrfs::Uuid(*b).to_string();
    let btrfs: Vec<Value> = src
        .btrfs
        .iter()
        .map(|o| {
            json!({
                "subvolume": lossy(&o.subvolume),
                "subvolume_uuid": uuid(&o.subvolume_uuid),
                "filesystem_uuid": uuid(&o.fsid),
                "snapshot_uuid": uuid(&o.snapshot_uuid),
                "generation": o.generation,
                "nested": o.nested.iter().map(|n| lossy(n)).collect::<Vec<_>>(),
                "local_snapshot": o.local.as_ref().map(|(c, n)| json!({"config": c, "number": n})),
            })
        })
        .collect();
    json!({ "btrfs": btrfs })
}

/// One blob of a pack header or index entry, ids in hex.
pub fn pack_blob_json(b: &snapguard_format::PackBlob) -> Value {
    json!({
        "id": b.id.to_hex(),
        "type": match b.kind { snapguard_format::BlobType::Data => "data", snapguard_format::BlobType::Tree => "tree" },
        "offset": b.offset,
        "length": b.length,
        "raw_length": b.raw_length,
        "compression": match b.compression { snapguard_format::Compression::None => "none", snapguard_format::Compression::Zstd => "zstd" },
    })
}

/// A snapshot with its annotations as JSON.
pub fn view_json(v: &crate::annotate::SnapshotView) -> Value {
    let mut j = snapshot_json(&v.id, &v.snapshot);
    j["tags"] = json!(v.tags);
    j["original_tags"] = json!(v.snapshot.tags);
    j["comment"] = json!(v.comment);
    j["locked_until"] = json!(v.lock_until.map(rfc3339));
    j
}
