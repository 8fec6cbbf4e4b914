//! S3 Object Lock for a repository: which objects are retained, for how long, and by whom.
//!
//! A repository created with Object Lock records its mode and retention period in the config
//! ([`ObjectLockSettings`], body version 2, `incompat` bit [`INCOMPAT_OBJECT_LOCK`]). Every
//! client that opens it arms its backend with that retention ([`arm`]), so every object it then
//! writes (packs, index files, snapshots, annotations, key slots, config; not lock files)
//! carries a retain-until date of "now + period", and the backend never sends a deletion for
//! an object still retained ([`snapguard_backend::BackendError::RetentionLocked`] instead).
//!
//! On top of that, [`extend_for_snapshot`] raises the retention of everything one snapshot
//! needs to restore (`snapguard lock`), and [`refuse_retained_snapshots`] lets `forget` refuse
//! before deleting anything. Prune treats retained objects as kept (see `prune.rs`).
//!
//! It does not talk to S3 itself (the backend's [`snapguard_backend::ObjectLock`] does) and
//! it does not decide policy beyond the repository's settings.

use crate::repo::Repository;
use crate::{Error, Result};
use snapguard_backend::{Backend, BackendError, FileType, RetentionMode, WriteRetention};
use snapguard_format::{
    BlobId, ConfigFile, ConfigHeader, ContentPart, IndexId, ObjectLockMode, ObjectLockSettings,
    SnapshotId, Timestamp, TreeId, INCOMPAT_OBJECT_LOCK,
};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Longest retention period accepted at init (100 years).
pub const MAX_RETENTION_SECS: u64 = 100 * 365 * 86_400;

fn backend_mode(m: ObjectLockMode) -> RetentionMode {
    match m {
        ObjectLockMode::Governance => RetentionMode::Governance,
        ObjectLockMode::Compliance => RetentionMode::Compliance,
    }
}

fn write_retention(s: &ObjectLockSettings) -> WriteRetention {
    WriteRetention {
        mode: backend_mode(s.mode),
        period: Duration::from_secs(s.retention_secs),
    }
}

/// Check that `backend` can hold an Object Lock repository with `settings` and arm it, before
/// [`Repository::init`] writes anything: init then records the armed settings in the config.
pub fn prepare_init(backend: &dyn Backend, settings: ObjectLockSettings) -> Result<()> {
    let unavailable = |reason: String| Error::ObjectLockUnavailable {
        location: backend.location(),
        reason,
    };
    if settings.retention_secs == 0 || settings.retention_secs > MAX_RETENTION_SECS {
        return Err(Error::InvalidArgument(format!(
            "object lock retention must be between 1 second and 100 years, not {} seconds",
            settings.retention_secs
        )));
    }
    let Some(lock) = backend.object_lock() else {
        return Err(unavailable(
            "only S3 repositories (s3:https://HOST/BUCKET[/PREFIX]) support object lock".into(),
        ));
    };
    let bucket = lock.bucket_lock().map_err(|cause| Error::Backend {
        location: backend.location(),
        cause,
    })?;
    if !bucket.enabled {
        return Err(unavailable(
            "the bucket does not have S3 Object Lock enabled; create a bucket with Object Lock enabled (for example 'aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket'; it also turns on versioning) and initialize the repository there".into(),
        ));
    }
    if let Some(rule) = bucket.default_retention {
        // It would also retain the short-lived lock files, which every command deletes when
        // it ends; a lock that cannot be deleted blocks prune and forget until it expires.
        return Err(unavailable(format!(
            "the bucket has a default retention rule ({rule}), which would also apply to SnapGuard's lock files; remove the rule (for example 'aws s3api put-object-lock-configuration --bucket NAME --object-lock-configuration ObjectLockEnabled=Enabled'): SnapGuard sets the retention of each object itself (--object-lock-retention)"
        )));
    }
    lock.set_write_retention(Some(write_retention(&settings)));
    Ok(())
}

/// The settings `backend` is armed with (by [`prepare_init`]), for init to record.
pub(crate) fn armed_settings(backend: &dyn Backend) -> Option<ObjectLockSettings> {
    let r = backend.object_lock()?.write_retention()?;
    Some(ObjectLockSettings {
        mode: match r.mode {
            RetentionMode::Governance => ObjectLockMode::Governance,
            RetentionMode::Compliance => ObjectLockMode::Compliance,
        },
        retention_secs: r.period.as_secs().max(1),
    })
}

/// Arm `backend` with the retention recorded in an opened repository's config.
pub(crate) fn arm(backend: &dyn Backend, header: &ConfigHeader, config: &ConfigFile) -> Result<()> {
    let flagged = header.features.incompat & INCOMPAT_OBJECT_LOCK != 0;
    if flagged != config.object_lock.is_some() {
        return Err(Error::corrupt(
            "config",
            "the object lock flag in the header and the settings in the sealed body disagree",
        ));
    }
    let Some(settings) = config.object_lock else {
        return Ok(());
    };
    match backend.object_lock() {
        Some(lock) => lock.set_write_retention(Some(write_retention(&settings))),
        // A copy of the repository on a disk or SFTP server: readable and writable, but
        // nothing it stores is protected by the storage.
        None => tracing::warn!(
            location = %backend.location(),
            "the repository was created with S3 Object Lock, but this backend has none; new objects get no retention"
        ),
    }
    Ok(())
}

/// Fail with [`Error::ObjectLocked`] if the snapshot file of any of `ids` is retained, before
/// `forget` deletes anything.
pub fn refuse_retained_snapshots(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    // One HEAD per snapshot, in parallel; a missing file has no retention.
    let held = retained(
        repo,
        FileType::Snapshot,
        ids.iter().map(SnapshotId::to_hex).collect(),
    )?;
    // The first in the order given, so the message is predictable.
    match ids
        .iter()
        .find_map(|id| held.get(&id.to_hex()).map(|u| (id, *u)))
    {
        Some((id, until)) => Err(Error::ObjectLocked {
            what: format!("snapshot {} (snapshots/{})", id.short(), id.to_hex()),
            until: fmt_until(until),
        }),
        None => Ok(()),
    }
}

/// Map a removal refused because of a retention to [`Error::ObjectLocked`].
pub(crate) fn locked_error(
    what: String,
    e: BackendError,
) -> std::result::Result<Error, BackendError> {
    match e {
        BackendError::RetentionLocked { until, .. } => Ok(Error::ObjectLocked { what, until }),
        other => Err(other),
    }
}

/// An object prune left in place because its retention has not ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RetainedObject {
    /// `pack` or `index`.
    pub kind: &'static str,
    pub name: String,
    /// RFC 3339, UTC.
    pub until: String,
}

impl RetainedObject {
    pub(crate) fn new(t: FileType, name: String, until: String) -> RetainedObject {
        RetainedObject {
            kind: match t {
                FileType::Pack => "pack",
                FileType::Index => "index",
                FileType::Snapshot => "snapshot",
                FileType::Annotation => "annotation",
                _ => "file",
            },
            name,
            until,
        }
    }
}

/// On an Object Lock repository, every pack in storage whose retention has not ended, with its
/// date (one `HEAD` per pack, in parallel); on any other repository nothing, without a request.
pub(crate) fn retained_packs(repo: &Repository) -> Result<HashMap<String, SystemTime>> {
    if repo.config().object_lock.is_none() {
        return Ok(HashMap::new());
    }
    let names = repo
        .backend()
        .list(FileType::Pack)
        .map_err(|cause| Error::Backend {
            location: repo.location(),
            cause,
        })?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    retained(repo, FileType::Pack, names)
}

/// Which of `names` (of type `t`) are retained now, with their dates; nothing (and no
/// request) on a repository without Object Lock.
pub(crate) fn retained(
    repo: &Repository,
    t: FileType,
    names: Vec<String>,
) -> Result<HashMap<String, SystemTime>> {
    let mut out = HashMap::new();
    if repo.config().object_lock.is_none() || names.is_empty() {
        return Ok(out);
    }
    let Some(lock) = repo.backend().object_lock() else {
        return Ok(out);
    };
    let objects: Vec<(FileType, String)> = names.into_iter().map(|n| (t, n)).collect();
    let found = lock.retentions(&objects).map_err(|cause| Error::Backend {
        location: repo.location(),
        cause,
    })?;
    let now = SystemTime::now();
    for ((_, name), r) in objects.iter().zip(found) {
        if let Some(r) = r.filter(|r| r.active_at(now)) {
            out.insert(name.clone(), r.until);
        }
    }
    Ok(out)
}

/// Give a new index file (written by prune) at least the latest retention among the packs it
/// lists, so the index of a locked snapshot stays as protected as its packs.
pub(crate) fn cover_index(
    repo: &Repository,
    index: IndexId,
    packs: &[String],
    retained: &HashMap<String, SystemTime>,
) -> Result<()> {
    let Some(until) = packs.iter().filter_map(|p| retained.get(p)).max() else {
        return Ok(());
    };
    let Some(lock) = repo.backend().object_lock() else {
        return Ok(());
    };
    lock.extend_retention(&[(FileType::Index, index.to_hex())], *until)
        .map_err(|cause| Error::Backend {
            location: repo.location(),
            cause,
        })?;
    Ok(())
}

/// Format a retain-until date for messages and reports.
pub(crate) fn fmt_until(t: SystemTime) -> String {
    snapguard_backend::fmt_system_time(t)
}

/// For `check`: per snapshot still immutable at `now` (unix seconds), the objects it needs
/// whose storage retention ends before its lock does (an interrupted `lock`, or one run on a
/// copy without Object Lock), as (object, message) notes. Snapshots whose objects cannot be
/// listed are left to the rest of `check`.
pub(crate) fn short_retentions(repo: &Repository, now: i64) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if repo.config().object_lock.is_none() {
        return Ok(out);
    }
    let Some(lock) = repo.backend().object_lock() else {
        return Ok(out);
    };
    let (views, _) = crate::annotate::views(repo)?;
    for v in views {
        let Some(lock_until) = v.lock_until.filter(|u| u.secs > now) else {
            continue;
        };
        let Ok(objects) = objects_of_snapshot(repo, v.id) else {
            continue;
        };
        let needed = SystemTime::UNIX_EPOCH + Duration::from_secs(lock_until.secs.max(0) as u64);
        let found = lock.retentions(&objects).map_err(|cause| Error::Backend {
            location: repo.location(),
            cause,
        })?;
        let short: Vec<Option<SystemTime>> = found
            .into_iter()
            .map(|r| r.map(|r| r.until))
            .filter(|u| u.is_none_or(|u| u + Duration::from_secs(1) < needed))
            .collect();
        if short.is_empty() {
            continue;
        }
        let earliest = match short.iter().flatten().min() {
            Some(t) if short.iter().all(Option::is_some) => fmt_until(*t),
            _ => "never (some have no retention)".into(),
        };
        out.push((
            format!("snapshot {}", v.id.short()),
            format!(
                "immutable until {}, but {} of the {} objects it needs are retained by S3 Object Lock only until {earliest}; run 'snapguard lock {} --until {}' to extend them",
                crate::fmt_time(lock_until),
                short.len(),
                objects.len(),
                v.id.short(),
                crate::fmt_time(lock_until)
            ),
        ));
    }
    Ok(out)
}

/// What [`extend_for_snapshot`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendSummary {
    /// Objects the snapshot needs: its file, its annotations, the packs of its trees and
    /// data, and the index files listing those packs.
    pub objects: u64,
    pub packs: u64,
    pub index_files: u64,
    /// Objects whose retention was raised.
    pub extended: u64,
    /// Objects already retained at least that long.
    pub unchanged: u64,
}

/// Every object snapshot `id` needs to be restored and listed.
pub fn objects_of_snapshot(repo: &Repository, id: SnapshotId) -> Result<Vec<(FileType, String)>> {
    let snapshot = repo.load_snapshot(&id)?;
    let mut objects = vec![(FileType::Snapshot, id.to_hex())];
    if let Some(list) = crate::annotate::load(repo)?.get(&id) {
        objects.extend(
            list.iter()
                .map(|(aid, _)| (FileType::Annotation, aid.to_hex())),
        );
    }
    // Every pack holding a tree or data blob reachable from the snapshot.
    let mut packs = HashSet::new();
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut trees: Vec<TreeId> = vec![snapshot.tree];
    let locate = |blob: &BlobId, packs: &mut HashSet<String>| -> Result<()> {
        match repo.index().get(blob)? {
            Some(loc) => {
                packs.insert(loc.pack.to_hex());
                Ok(())
            }
            None => Err(Error::Corrupt {
                object: format!("blob {blob}"),
                detail: format!(
                    "needed by snapshot {} but in no index; run 'snapguard check'",
                    id.short()
                ),
            }),
        }
    };
    while let Some(t) = trees.pop() {
        let blob = BlobId::from(t);
        if !seen.insert(blob) {
            continue;
        }
        locate(&blob, &mut packs)?;
        for n in repo.read_tree(&t)?.nodes {
            if let Some(sub) = n.subtree {
                trees.push(sub);
            }
            for p in &n.content {
                if let ContentPart::Data { id: data, .. } = p {
                    if seen.insert(*data) {
                        locate(data, &mut packs)?;
                    }
                }
            }
        }
    }
    // Index files that list one of those packs (superseded ones included: they are only
    // deleted by prune, and only once their retention allows it).
    for index_id in repo.index_ids()? {
        let name = index_id.to_hex();
        let file = repo.read_index(&name)?;
        if file.packs.iter().any(|p| packs.contains(&p.id.to_hex())) {
            objects.push((FileType::Index, name));
        }
    }
    let mut packs: Vec<String> = packs.into_iter().collect();
    packs.sort();
    objects.extend(packs.into_iter().map(|p| (FileType::Pack, p)));
    Ok(objects)
}

/// Raise the storage retention of everything snapshot `id` needs to at least `until` (never
/// shortened). Idempotent: objects already retained long enough are counted, not touched.
/// On a repository without Object Lock this does nothing and returns None.
pub fn extend_for_snapshot(
    repo: &Repository,
    id: SnapshotId,
    until: Timestamp,
) -> Result<Option<ExtendSummary>> {
    if repo.config().object_lock.is_none() {
        return Ok(None);
    }
    let Some(lock) = repo.backend().object_lock() else {
        // A copy on a disk or SFTP server: the immutability annotation is all there is.
        tracing::warn!(
            location = %repo.location(),
            "this copy of an S3 Object Lock repository has no object lock; lock the snapshot in the S3 repository too"
        );
        return Ok(None);
    };
    let objects = objects_of_snapshot(repo, id)?;
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(until.secs.max(0) as u64);
    let report = lock
        .extend_retention(&objects, until)
        .map_err(|cause| Error::Backend {
            location: repo.location(),
            cause,
        })?;
    let count = |t: FileType| objects.iter().filter(|(x, _)| *x == t).count() as u64;
    Ok(Some(ExtendSummary {
        objects: objects.len() as u64,
        packs: count(FileType::Pack),
        index_files: count(FileType::Index),
        extended: report.extended,
        unchanged: report.unchanged,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapguard_backend::LocalBackend;

    #[test]
    fn init_refuses_backends_without_object_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = LocalBackend::new(dir.path().join("repo"));
        let settings = ObjectLockSettings {
            mode: ObjectLockMode::Compliance,
            retention_secs: 86_400,
        };
        let e = prepare_init(&backend, settings).expect_err("local disk has no object lock");
        assert!(e.to_string().contains("only S3 repositories"), "{e}");
        let zero = ObjectLockSettings {
            retention_secs: 0,
            ..settings
        };
        assert!(prepare_init(&backend, zero)
            .expect_err("zero")
            .to_string()
            .contains("between 1 second"));
        assert_eq!(armed_settings(&backend), None);
    }
}
