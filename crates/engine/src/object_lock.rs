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
//! needs to restore (`snapguard lock`), [`refresh`] keeps everything any restore needs
//! retained (`snapguard object-lock refresh`, to be run at least once per half period),
//! [`expiring_retentions`] lets `check` report what the refresh would fix, and
//! [`retained_snapshots`] lets `forget` keep retained snapshots. Prune treats retained
//! objects as kept (see `prune.rs`).
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

/// Which of the snapshot files of `ids` are retained now, with their retain-until dates
/// (RFC 3339), in the order given: one HEAD per snapshot, in parallel; nothing and no request
/// on a repository without Object Lock.
pub fn retained_snapshots(
    repo: &Repository,
    ids: &[SnapshotId],
) -> Result<Vec<(SnapshotId, String)>> {
    let held = retained(
        repo,
        FileType::Snapshot,
        ids.iter().map(SnapshotId::to_hex).collect(),
    )?;
    Ok(ids
        .iter()
        .filter_map(|id| held.get(&id.to_hex()).map(|u| (*id, fmt_until(*u))))
        .collect())
}

/// The error for a snapshot named for deletion whose file is still retained.
pub fn retained_snapshot_error(id: &SnapshotId, until: String) -> Error {
    Error::ObjectLocked {
        what: format!("snapshot {} (snapshots/{})", id.short(), id.to_hex()),
        until,
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

/// For `check`: every object a restore needs ([`needed_objects`]) whose storage retention has
/// ended or ends within half the repository's period, as one note per kind of object, with the
/// command that extends them. Nothing on a repository without Object Lock.
pub(crate) fn expiring_retentions(repo: &Repository) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(settings) = repo.config().object_lock else {
        return Ok(out);
    };
    let Some(lock) = repo.backend().object_lock() else {
        return Ok(out);
    };
    // A repository whose index cannot be read is left to the rest of `check`.
    let Ok(needed) = needed_objects(repo) else {
        return Ok(out);
    };
    let found = lock
        .retentions(&needed.objects)
        .map_err(|cause| Error::Backend {
            location: repo.location(),
            cause,
        })?;
    let now = SystemTime::now();
    let threshold = now + Duration::from_secs(settings.retention_secs / 2);
    for t in REFRESHED {
        let mut expired = 0u64;
        let mut ending = Vec::new();
        for ((_, _), r) in needed
            .objects
            .iter()
            .zip(&found)
            .filter(|((x, _), _)| *x == t)
        {
            match r {
                Some(r) if r.until >= threshold => {}
                Some(r) if r.until > now => ending.push(r.until),
                _ => expired += 1,
            }
        }
        if expired == 0 && ending.is_empty() {
            continue;
        }
        let mut parts = Vec::new();
        if expired > 0 {
            parts.push(format!("{expired} no longer retained"));
        }
        if let Some(first) = ending.iter().min() {
            parts.push(format!(
                "{} retained only until {} at the earliest",
                ending.len(),
                fmt_until(*first)
            ));
        }
        out.push((
            format!("S3 Object Lock ({})", kind_name(t)),
            format!(
                "{} of the {} object(s) a restore needs: {} (less than half the repository's retention period of {} left); run 'snapguard object-lock refresh' (at least once per half period, e.g. from cron or a systemd timer) to extend them",
                kind_name(t),
                needed.objects.iter().filter(|(x, _)| *x == t).count(),
                parts.join(", "),
                snapguard_policy::format_duration(settings.retention_secs as i64)
            ),
        ));
    }
    Ok(out)
}

/// The kinds of objects `object-lock refresh` keeps retained, in report order.
const REFRESHED: [FileType; 6] = [
    FileType::Config,
    FileType::Key,
    FileType::Index,
    FileType::Pack,
    FileType::Snapshot,
    FileType::Annotation,
];

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Config => "config",
        FileType::Key => "key slots",
        FileType::Index => "index files",
        FileType::Pack => "packs",
        FileType::Snapshot => "snapshot files",
        FileType::Annotation => "annotations",
        FileType::Lock => "lock files",
    }
}

/// The objects a restore of any snapshot needs, and those in storage it does not.
pub struct NeededObjects {
    /// `config`, every key slot, every index file not superseded, every pack those list
    /// (that exists), every snapshot file and every annotation.
    pub objects: Vec<(FileType, String)>,
    /// Packs in storage no current index file lists, and superseded index files: left to
    /// prune, their retention is not extended.
    pub not_needed: Vec<(FileType, String)>,
}

/// Everything a restore of any snapshot in the repository needs (see [`NeededObjects`]).
pub fn needed_objects(repo: &Repository) -> Result<NeededObjects> {
    let list = |t: FileType| -> Result<Vec<String>> {
        Ok(repo
            .backend()
            .list(t)
            .map_err(repo.backend_err())?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    };
    let mut objects: Vec<(FileType, String)> = list(FileType::Config)?
        .into_iter()
        .map(|n| (FileType::Config, n))
        .collect();
    objects.extend(list(FileType::Key)?.into_iter().map(|n| (FileType::Key, n)));
    let mut not_needed = Vec::new();
    // Index files: those no other file supersedes, and the packs they list.
    let mut files = Vec::new();
    let mut superseded: HashSet<IndexId> = HashSet::new();
    for id in repo.index_ids()? {
        let file = repo.read_index(&id.to_hex())?;
        superseded.extend(file.supersedes.iter().copied());
        files.push((id, file));
    }
    let mut listed: HashSet<String> = HashSet::new();
    for (id, file) in &files {
        if superseded.contains(id) {
            not_needed.push((FileType::Index, id.to_hex()));
            continue;
        }
        objects.push((FileType::Index, id.to_hex()));
        listed.extend(file.packs.iter().map(|p| p.id.to_hex()));
    }
    for p in list(FileType::Pack)? {
        if listed.contains(&p) {
            objects.push((FileType::Pack, p));
        } else {
            not_needed.push((FileType::Pack, p));
        }
    }
    objects.extend(
        list(FileType::Snapshot)?
            .into_iter()
            .map(|n| (FileType::Snapshot, n)),
    );
    objects.extend(
        list(FileType::Annotation)?
            .into_iter()
            .map(|n| (FileType::Annotation, n)),
    );
    Ok(NeededObjects {
        objects,
        not_needed,
    })
}

/// Per kind of object, what [`refresh`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefreshCounts {
    /// Retention raised to the new date.
    pub extended: u64,
    /// Already retained until at least now + half the period: nothing sent.
    pub already_retained: u64,
}

/// What [`refresh`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefreshSummary {
    /// The date extended objects are now retained until (RFC 3339, UTC).
    pub retain_until: String,
    /// Objects retained at least until this date were left alone (RFC 3339, UTC).
    pub skip_if_retained_until: String,
    pub extended: u64,
    pub already_retained: u64,
    /// Objects in storage that no restore needs (unlisted packs, superseded index files):
    /// not extended, left for prune once their retention ends.
    pub not_needed: u64,
    /// Per kind: config, key slots, index files, packs, snapshot files, annotations.
    pub by_kind: std::collections::BTreeMap<&'static str, RefreshCounts>,
}

/// `object-lock refresh`: extend every object a restore needs ([`needed_objects`]) to now +
/// the repository's retention period, skipping those already retained until at least now +
/// half the period, with as many requests in flight as the connection limit allows.
/// Idempotent; run at least once per half period, it keeps the whole repository retained.
pub fn refresh(repo: &Repository) -> Result<RefreshSummary> {
    let unavailable = |reason: &str| Error::ObjectLockUnavailable {
        location: repo.location(),
        reason: reason.to_string(),
    };
    let Some(settings) = repo.config().object_lock else {
        return Err(unavailable(
            "the repository was not created with --object-lock, so there is no retention to refresh",
        ));
    };
    let Some(lock) = repo.backend().object_lock() else {
        return Err(unavailable(
            "this is a copy of an object-lock repository on storage without S3 Object Lock; run the refresh against the S3 repository",
        ));
    };
    let needed = needed_objects(repo)?;
    let period = Duration::from_secs(settings.retention_secs);
    let now = SystemTime::now();
    let until = now + period;
    let threshold = now + period / 2;
    let backend_err = |cause| Error::Backend {
        location: repo.location(),
        cause,
    };
    let found = lock.retentions(&needed.objects).map_err(backend_err)?;
    let mut summary = RefreshSummary {
        retain_until: fmt_until(until),
        skip_if_retained_until: fmt_until(threshold),
        not_needed: needed.not_needed.len() as u64,
        ..Default::default()
    };
    let mut stale = Vec::new();
    for (obj, r) in needed.objects.iter().zip(found) {
        let counts = summary.by_kind.entry(kind_name(obj.0)).or_default();
        if r.is_some_and(|r| r.until >= threshold) {
            counts.already_retained += 1;
            summary.already_retained += 1;
        } else {
            stale.push(obj.clone());
        }
    }
    let report = lock.extend_retention(&stale, until).map_err(backend_err)?;
    // Extended concurrently by someone else between the HEAD and the PUT: already retained.
    summary.extended = report.extended;
    summary.already_retained += report.unchanged;
    for (t, _) in &stale {
        summary.by_kind.entry(kind_name(*t)).or_default().extended += 1;
    }
    if report.unchanged > 0 {
        tracing::debug!(unchanged = report.unchanged, "extended concurrently");
    }
    Ok(summary)
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
    /// Objects the snapshot needs: config, key slots, its file, its annotations, the packs of
    /// its trees and data, and the index files listing those packs.
    pub objects: u64,
    pub packs: u64,
    pub index_files: u64,
    pub key_slots: u64,
    /// Objects whose retention was raised.
    pub extended: u64,
    /// Objects already retained at least that long.
    pub unchanged: u64,
}

/// Every object snapshot `id` needs to be restored and listed: `config` and every key slot
/// (without them nothing opens), its file, its annotations, its packs and their index files.
pub fn objects_of_snapshot(repo: &Repository, id: SnapshotId) -> Result<Vec<(FileType, String)>> {
    let snapshot = repo.load_snapshot(&id)?;
    let mut objects = vec![
        (FileType::Config, "config".to_string()),
        (FileType::Snapshot, id.to_hex()),
    ];
    objects.extend(
        repo.backend()
            .list(FileType::Key)
            .map_err(repo.backend_err())?
            .into_iter()
            .map(|(n, _)| (FileType::Key, n)),
    );
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

/// Fail if `lock` could not give snapshot `id` a storage retention: the repository was created
/// with Object Lock but this copy of it is on storage without (called before anything is
/// written, so a refused `lock` changes nothing).
pub fn ensure_retainable(repo: &Repository, id: SnapshotId) -> Result<()> {
    if repo.config().object_lock.is_some() && repo.backend().object_lock().is_none() {
        return Err(Error::ObjectLockUnavailable {
            location: repo.location(),
            reason: format!(
                "this is a copy of an object-lock repository on storage without S3 Object Lock, so snapshot {} cannot be retained here; lock it in the S3 repository",
                id.short()
            ),
        });
    }
    Ok(())
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
        // A copy on a disk or SFTP server: the storage cannot retain anything, so the
        // snapshot would only look protected.
        return Err(Error::ObjectLockUnavailable {
            location: repo.location(),
            reason: format!(
                "this is a copy of an object-lock repository on storage without S3 Object Lock, so snapshot {} cannot be retained here; lock it in the S3 repository",
                id.short()
            ),
        });
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
        key_slots: count(FileType::Key),
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
