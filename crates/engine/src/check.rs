//! Verification: structure always, data on request.
//!
//! Structure: every index file opens; every pack the index lists exists with the recorded size
//! and its sealed header agrees with the index; every snapshot opens; every tree of every
//! snapshot opens and decodes; every data blob a file refers to is in the index. Data
//! (`--read-data*`): chosen packs are read whole, their headers opened and every blob
//! decrypted and re-hashed against its id. Every problem becomes a [`Finding`] naming the pack,
//! blob, snapshot and path concerned; checking never stops at the first one.
//!
//! Partial data checks can be spread over time: `Subset { n, m }` picks the packs whose id falls
//! in slice n of m (so m runs cover everything), and `Since(d)` re-reads only packs not verified
//! within `d`, according to a ledger kept in the local cache.

use crate::pack;
use crate::{Error, Repository, Result};
use snapguard_backend::{BackendError, FileType};
use snapguard_format::{
    BlobId, ContentPart, IndexPack, PackId, PackTrailer, SnapshotId, TreeId, PACK_TRAILER_LEN,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// Which packs to read completely.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// Slice `n` (1-based) of `m`, chosen by pack id: m runs with n = 1..m cover every pack.
    Subset {
        n: u32,
        m: u32,
    },
    /// A random sample of this percentage of packs.
    Percent(f64),
    /// Packs not verified within this many seconds (per the ledger).
    Since(u64),
}

/// Check settings.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub read_data: ReadData,
    /// Where the verification ledger lives (pack id → last verified time); None disables it.
    pub ledger: Option<PathBuf>,
    /// The current time in seconds (for the ledger).
    pub now: i64,
}

/// One problem (or, with `error: false`, something worth knowing).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    pub error: bool,
    pub object: String,
    pub message: String,
}

/// The result of a check.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub index_files: u64,
    pub packs: u64,
    pub snapshots: u64,
    pub trees: u64,
    pub packs_read: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.error).count()
    }
    fn error(&mut self, object: impl Into<String>, message: impl std::fmt::Display) {
        self.findings.push(Finding {
            error: true,
            object: object.into(),
            message: message.to_string(),
        });
    }
    fn note(&mut self, object: impl Into<String>, message: impl std::fmt::Display) {
        self.findings.push(Finding {
            error: false,
            object: object.into(),
            message: message.to_string(),
        });
    }
}

fn pack_name(id: &PackId) -> String {
    let h = id.to_hex();
    format!("pack {} (data/{}/{})", &h[..16], &h[..2], h)
}

/// Run a check.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    check_with_progress(repo, opts, None)
}

/// Run a check, reporting packs read and their bytes to `progress`.
pub fn check_with_progress(
    repo: &Repository,
    opts: &CheckOptions,
    progress: Option<&crate::progress::Progress>,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    // Index files.
    let mut superseded = HashSet::new();
    let mut files = Vec::new();
    for id in repo.index_ids()? {
        r.index_files += 1;
        match repo.read_index(&id.to_hex()) {
            Ok(f) => {
                superseded.extend(f.supersedes.iter().copied());
                files.push((id, f));
            }
            Err(Error::Corrupt { object, detail }) => r.error(object, detail),
            Err(e) => return Err(e),
        }
    }
    let mut packs: BTreeMap<PackId, IndexPack> = BTreeMap::new();
    for (id, f) in files {
        if superseded.contains(&id) {
            continue;
        }
        for p in f.packs {
            packs.entry(p.id).or_insert(p);
        }
    }
    // Pack files against the index.
    let files: HashMap<String, u64> = repo
        .backend()
        .list(FileType::Pack)
        .map_err(repo.backend_err())?
        .into_iter()
        .collect();
    r.packs = packs.len() as u64;
    let mut present = Vec::new();
    // Blobs whose data is gone or damaged; the files using them are named at the end.
    let mut bad_blobs: HashSet<BlobId> = HashSet::new();
    for p in packs.values() {
        match files.get(&p.id.to_hex()) {
            None => {
                r.error(
                    pack_name(&p.id),
                    format!(
                        "listed in the index with {} blobs but the file is missing",
                        p.blobs.len()
                    ),
                );
                bad_blobs.extend(p.blobs.iter().map(|b| b.id));
            }
            Some(&size) if size != p.size => {
                r.error(
                    pack_name(&p.id),
                    format!(
                        "has {size} bytes but the index says {} (truncated or damaged)",
                        p.size
                    ),
                );
                bad_blobs.extend(p.blobs.iter().map(|b| b.id));
            }
            Some(_) => present.push(p),
        }
    }
    // Other processes' live locks (ours is always there): a leftover pack may be theirs.
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let locked = crate::lock::list_locks(repo.backend(), repo.crypt(), &host)?
        .iter()
        .any(|l| !l.stale && l.lock.pid != std::process::id());
    for name in files.keys() {
        let known = PackId::from_hex(name)
            .map(|id| packs.contains_key(&id))
            .unwrap_or(false);
        if !known {
            let why = if locked {
                "a running backup may still be writing it"
            } else {
                "left by an interrupted backup; 'snapguard prune' removes it"
            };
            r.note(
                format!("pack file data/{}/{name}", &name[..2.min(name.len())]),
                format!("not referenced by any index ({why})"),
            );
        }
    }
    // Pack headers against the index (two small reads per pack).
    for p in &present {
        if let Err(e) = check_header(repo, p) {
            r.error(pack_name(&p.id), e);
        }
    }
    // Snapshots and trees.
    let (snaps, damaged) = repo.list_snapshots_report()?;
    for e in damaged {
        match e {
            Error::Corrupt { object, detail } => r.error(object, detail),
            other => return Err(other),
        }
    }
    r.snapshots = snaps.len() as u64;
    let mut seen_trees: HashSet<TreeId> = HashSet::new();
    for (sid, snap) in &snaps {
        walk_snapshot(repo, sid, snap.tree, &mut seen_trees, &mut r);
    }
    r.trees = seen_trees.len() as u64;
    // Data.
    let chosen = choose_packs(&present, opts)?;
    let mut verified = Vec::new();
    if let Some(pr) = progress {
        pr.set_totals(chosen.len() as u64, chosen.iter().map(|p| p.size).sum());
    }
    for p in chosen {
        if let Some(pr) = progress {
            pr.set_current(&p.id.to_hex());
        }
        let result = read_pack(repo, p, &mut r, &mut bad_blobs);
        if let Some(pr) = progress {
            pr.add_files(1);
            pr.add_bytes(p.size);
        }
        match result {
            Ok(true) => verified.push(p.id),
            Ok(false) => {}
            Err(e) => return Err(e),
        }
    }
    if !bad_blobs.is_empty() {
        name_users(repo, &snaps, &bad_blobs, &mut r);
    }
    // S3 Object Lock: immutable snapshots whose objects the storage would let go earlier.
    for (object, message) in crate::object_lock::expiring_retentions(repo)? {
        r.note(object, message);
    }
    for (object, message) in crate::object_lock::short_retentions(repo, opts.now)? {
        r.note(object, message);
    }
    if let Some(path) = &opts.ledger {
        if !verified.is_empty() {
            let mut ledger = read_ledger(path);
            for id in verified {
                ledger.insert(id.to_hex(), opts.now);
            }
            write_ledger(path, &ledger).map_err(|e| Error::io(path, e))?;
        }
    }
    Ok(r)
}

fn check_header(repo: &Repository, p: &IndexPack) -> std::result::Result<(), String> {
    let name = p.id.to_hex();
    let tail = repo
        .backend()
        .read_range(
            FileType::Pack,
            &name,
            p.size.saturating_sub(PACK_TRAILER_LEN as u64),
            PACK_TRAILER_LEN as u64,
        )
        .map_err(|e| e.to_string())?;
    let (trailer, start) = PackTrailer::parse(&tail, p.size).map_err(|e| e.to_string())?;
    let header = repo
        .backend()
        .read_range(FileType::Pack, &name, start, u64::from(trailer.header_len))
        .map_err(|e| e.to_string())?;
    let blobs = pack::open_header(repo.crypt(), &p.id, &header, &tail, p.size)
        .map_err(|e| e.to_string())?;
    if blobs != p.blobs {
        return Err(format!(
            "its header lists {} blobs that differ from the index's {}",
            blobs.len(),
            p.blobs.len()
        ));
    }
    Ok(())
}

fn walk_snapshot(
    repo: &Repository,
    sid: &SnapshotId,
    root: TreeId,
    seen: &mut HashSet<TreeId>,
    r: &mut CheckReport,
) {
    let mut stack: Vec<(TreeId, Vec<u8>)> = vec![(root, b"/".to_vec())];
    while let Some((id, path)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = match repo.read_tree(&id) {
            Ok(t) => t,
            Err(e) => {
                r.error(
                    format!(
                        "snapshot {} path {}",
                        sid.short(),
                        String::from_utf8_lossy(&path)
                    ),
                    e,
                );
                continue;
            }
        };
        for n in &tree.nodes {
            let mut child = path.clone();
            if !child.ends_with(b"/") {
                child.push(b'/');
            }
            child.extend_from_slice(&n.name);
            if let Some(sub) = n.subtree {
                stack.push((sub, child.clone()));
            }
            for part in &n.content {
                if let ContentPart::Data { id, .. } = part {
                    let object = || {
                        format!(
                            "snapshot {} file {}",
                            sid.short(),
                            String::from_utf8_lossy(&child)
                        )
                    };
                    match repo.index().contains(id) {
                        Ok(true) => {}
                        Ok(false) => r.error(
                            object(),
                            format!("refers to blob {id}, which no index lists (data lost)"),
                        ),
                        Err(e) => r.error(object(), e),
                    }
                }
            }
        }
    }
}

fn choose_packs<'a>(packs: &[&'a IndexPack], opts: &CheckOptions) -> Result<Vec<&'a IndexPack>> {
    Ok(match &opts.read_data {
        ReadData::None => Vec::new(),
        ReadData::All => packs.to_vec(),
        ReadData::Subset { n, m } => {
            if *m == 0 || *n == 0 || n > m {
                return Err(Error::InvalidArgument(format!(
                    "invalid subset {n}/{m}: use n/m with 1 <= n <= m"
                )));
            }
            packs
                .iter()
                .copied()
                .filter(|p| {
                    u32::from_le_bytes([p.id.0[0], p.id.0[1], p.id.0[2], p.id.0[3]]) % m == n - 1
                })
                .collect()
        }
        ReadData::Percent(pct) => {
            if !(0.0..=100.0).contains(pct) {
                return Err(Error::InvalidArgument(format!(
                    "invalid subset {pct}%: use 0-100%"
                )));
            }
            let want = ((packs.len() as f64) * pct / 100.0).ceil() as usize;
            let salt: [u8; 32] = snapguard_crypto::random_bytes(&mut rand_core::OsRng);
            let mut v = packs.to_vec();
            v.sort_by_key(|p| blake3::keyed_hash(&salt, &p.id.0).as_bytes().to_owned());
            v.truncate(want);
            v
        }
        ReadData::Since(secs) => {
            let ledger = opts
                .ledger
                .as_ref()
                .map(|p| read_ledger(p))
                .unwrap_or_default();
            packs
                .iter()
                .copied()
                .filter(|p| match ledger.get(&p.id.to_hex()) {
                    Some(&t) => opts.now.saturating_sub(t) >= *secs as i64,
                    None => true,
                })
                .collect()
        }
    })
}

/// Read and verify a whole pack. Returns whether it was entirely good.
fn read_pack(
    repo: &Repository,
    p: &IndexPack,
    r: &mut CheckReport,
    bad: &mut HashSet<BlobId>,
) -> Result<bool> {
    let bytes = match repo.backend().read(FileType::Pack, &p.id.to_hex()) {
        Ok(b) => b,
        Err(BackendError::NotFound { .. }) => {
            r.error(pack_name(&p.id), "vanished while checking");
            return Ok(false);
        }
        Err(e) => return Err(repo.backend_err()(e)),
    };
    r.packs_read += 1;
    r.bytes_read += bytes.len() as u64;
    let mut ok = true;
    if let Err(e) = pack::read_header(repo.crypt(), &p.id, &bytes) {
        r.error(pack_name(&p.id), format!("header: {e}"));
        ok = false;
    }
    let cipher = match snapguard_crypto::Cipher::from_code(p.cipher_code) {
        Ok(c) => c,
        Err(e) => {
            r.error(pack_name(&p.id), e);
            return Ok(false);
        }
    };
    let key = repo.crypt().pack_key(&p.id, p.epoch, cipher)?;
    for b in &p.blobs {
        r.blobs_read += 1;
        let start = b.offset as usize;
        let end = start + b.length as usize;
        let res = match bytes.get(start..end) {
            Some(sealed) => repo.crypt().open_blob(&p.id, &key, b, sealed).map(|_| ()),
            None => Err(Error::corrupt(
                format!("blob {}", b.id),
                "lies beyond the end of the pack",
            )),
        };
        if let Err(e) = res {
            ok = false;
            bad.insert(b.id);
            r.error(format!("blob {} in {}", b.id, pack_name(&p.id)), e);
        }
    }
    Ok(ok)
}

/// Say which snapshot files use damaged blobs.
fn name_users(
    repo: &Repository,
    snaps: &[(SnapshotId, snapguard_format::SnapshotFile)],
    bad: &HashSet<BlobId>,
    r: &mut CheckReport,
) {
    for (sid, snap) in snaps {
        let _ = crate::browse::walk(repo, snap, b"/", &mut |path, node| {
            if bad.contains(&BlobId::from(node.subtree.unwrap_or_default()))
                || node
                    .content
                    .iter()
                    .any(|c| matches!(c, ContentPart::Data { id, .. } if bad.contains(id)))
            {
                r.error(
                    format!("snapshot {} {}", sid.short(), String::from_utf8_lossy(path)),
                    "uses damaged data (see above); this file cannot be restored intact",
                );
            }
            Ok(())
        });
    }
}

fn read_ledger(path: &std::path::Path) -> BTreeMap<String, i64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let (id, t) = l.split_once(' ')?;
            Some((id.to_string(), t.trim().parse().ok()?))
        })
        .collect()
}

fn write_ledger(path: &std::path::Path, ledger: &BTreeMap<String, i64>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let text: String = ledger.iter().map(|(id, t)| format!("{id} {t}\n")).collect();
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
