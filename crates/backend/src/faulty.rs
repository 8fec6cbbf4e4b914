//! A fault-injecting backend for tests.
//!
//! [`FaultyBackend`] wraps any other backend and, following a [`FaultPlan`] that tests may change
//! between operations, makes operations fail the way a crash, a lost connection or a broken
//! filesystem would:
//! - [`FaultyBackend::fail_after`]: operation number `n` (counting from 0) and every later one
//!   fail without reaching the wrapped backend — a process that died after `n` operations;
//! - [`FaultyBackend::torn_write_at`]: write number `n` (counting from 0) stores only a prefix of
//!   its data under the final name and then fails — a store that is not atomic, or an fsync that
//!   was lost ([`FaultyBackend::torn_write_silently_at`]: and reports success);
//! - [`FaultyBackend::fail_removes`]: every `remove` fails and deletes nothing
//!   ([`FaultyBackend::fail_removes_from`]: from remove number `n` on);
//! - [`FaultyBackend::fail_replace_config`]: every `replace_config` fails and changes nothing.
//!
//! Every call except `location` counts as one operation, whether it succeeds or not. Counters
//! ([`FaultyBackend::counts`]) and a journal of operations ([`FaultyBackend::journal`]) let a
//! test run an operation once cleanly to learn how many backend operations it makes, then rerun
//! it with a fault injected at each of them. Injected failures are [`BackendError::Io`] errors
//! whose message starts with [`INJECTED`].
//!
//! Clones share the plan, the counters and the journal.

use crate::{Backend, BackendError, FileType, Result};
use std::sync::{Arc, Mutex, MutexGuard};

/// The start of the message of every injected error.
pub const INJECTED: &str = "injected fault";

/// The kinds of backend operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Read,
    ReadRange,
    Size,
    Write,
    List,
    Remove,
    ReplaceConfig,
}

/// What to break. Plain data: build one and hand it to [`FaultyBackend::set_plan`], or use the
/// shortcuts on [`FaultyBackend`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Operations with an index (counting every operation from 0) at or above this fail.
    pub fail_after: Option<u64>,
    /// The write with this index (counting writes from 0) is torn.
    pub torn_write_at: Option<u64>,
    /// How many bytes a torn write keeps; `None` keeps half of the data (rounded down).
    pub torn_keep: Option<usize>,
    /// A torn write reports success instead of failing (a lost fsync found only after the
    /// caller went on).
    pub torn_silently: bool,
    /// Removes with an index (counting removes from 0) at or above this fail; `Some(0)`: all.
    pub fail_removes_from: Option<u64>,
    /// Every `replace_config` fails.
    pub fail_replace_config: bool,
}

/// Operation counters. `total` counts every operation attempted (including failed ones) and is
/// the index space of [`FaultPlan::fail_after`]; `writes` is that of
/// [`FaultPlan::torn_write_at`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub total: u64,
    pub creates: u64,
    pub reads: u64,
    pub read_ranges: u64,
    pub sizes: u64,
    pub writes: u64,
    pub lists: u64,
    pub removes: u64,
    pub replace_configs: u64,
    /// Operations that failed because of the plan (torn writes included).
    pub injected: u64,
}

/// One operation as recorded in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Index among all operations (what [`FaultPlan::fail_after`] counts).
    pub index: u64,
    pub op: Op,
    pub file_type: Option<FileType>,
    /// File name (empty for `list`, `create` and `replace_config`).
    pub name: String,
    /// Whether a fault was injected into this operation.
    pub injected: bool,
}

impl OpRecord {
    /// The repository-relative path concerned (`data/ab/ab…`, `index/…`), or the directory for
    /// `list`.
    pub fn path(&self) -> String {
        match (self.op, self.file_type) {
            (Op::ReplaceConfig, _) => "config".to_string(),
            (Op::List, Some(t)) => t.dir().to_string(),
            (_, Some(t)) => t.path(&self.name),
            (_, None) => String::new(),
        }
    }
}

/// A file that a torn write left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornFile {
    pub file_type: FileType,
    pub name: String,
    /// Bytes stored.
    pub kept: usize,
    /// Bytes that should have been stored.
    pub len: usize,
}

#[derive(Debug, Default)]
struct State {
    plan: FaultPlan,
    counts: OpCounts,
    journal: Vec<OpRecord>,
    torn: Vec<TornFile>,
}

/// What to do with one operation.
enum Verdict {
    Pass,
    Fail,
    /// Write this many bytes, then fail.
    Tear(usize),
}

/// A backend that forwards to another one and fails where its plan says.
#[derive(Clone, Debug)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    state: Arc<Mutex<State>>,
}

impl FaultyBackend {
    /// Wrap `inner` with an empty plan (nothing fails).
    pub fn new(inner: Arc<dyn Backend>) -> FaultyBackend {
        FaultyBackend {
            inner,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock cannot leave the counters in a state
        // worse than "some operation half-recorded"; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current plan.
    pub fn plan(&self) -> FaultPlan {
        self.state().plan.clone()
    }

    /// Replace the plan (counters are kept).
    pub fn set_plan(&self, plan: FaultPlan) {
        self.state().plan = plan;
    }

    /// Remove every fault (counters are kept).
    pub fn clear_faults(&self) {
        self.set_plan(FaultPlan::default());
    }

    /// Operation `n` (counting every operation from 0, including those already made) and all
    /// later ones fail. `fail_after(0)` fails everything from now on if no operation was made
    /// yet; use [`FaultyBackend::fail_after_next`] to count from now.
    pub fn fail_after(&self, n: u64) {
        self.state().plan.fail_after = Some(n);
    }

    /// After `n` more operations succeed, every later one fails.
    pub fn fail_after_next(&self, n: u64) {
        let mut s = self.state();
        s.plan.fail_after = Some(s.counts.total + n);
    }

    /// Write number `n` (counting writes from 0) stores half of its data at the final name, then
    /// fails.
    pub fn torn_write_at(&self, n: u64) {
        let mut s = self.state();
        s.plan.torn_write_at = Some(n);
        s.plan.torn_keep = None;
        s.plan.torn_silently = false;
    }

    /// Like [`FaultyBackend::torn_write_at`], keeping `keep` bytes (at most the whole data).
    pub fn torn_write_at_keeping(&self, n: u64, keep: usize) {
        let mut s = self.state();
        s.plan.torn_write_at = Some(n);
        s.plan.torn_keep = Some(keep);
        s.plan.torn_silently = false;
    }

    /// Write number `n` stores half of its data at the final name and reports success: the
    /// damage of a lost fsync, which the caller only meets later.
    pub fn torn_write_silently_at(&self, n: u64) {
        let mut s = self.state();
        s.plan.torn_write_at = Some(n);
        s.plan.torn_keep = None;
        s.plan.torn_silently = true;
    }

    /// Every `remove` fails from now on.
    pub fn fail_removes(&self) {
        self.state().plan.fail_removes_from = Some(0);
    }

    /// Remove number `n` (counting removes from 0, including those already made) and every
    /// later one fail.
    pub fn fail_removes_from(&self, n: u64) {
        self.state().plan.fail_removes_from = Some(n);
    }

    /// Every `replace_config` fails from now on.
    pub fn fail_replace_config(&self) {
        self.state().plan.fail_replace_config = true;
    }

    /// Counters so far.
    pub fn counts(&self) -> OpCounts {
        self.state().counts.clone()
    }

    /// Number of operations attempted so far (the index the next one gets).
    pub fn operations(&self) -> u64 {
        self.state().counts.total
    }

    /// Number of writes attempted so far (the write index the next one gets).
    pub fn writes(&self) -> u64 {
        self.state().counts.writes
    }

    /// Number of operations that failed because of the plan.
    pub fn injected(&self) -> u64 {
        self.state().counts.injected
    }

    /// Every operation so far, in order.
    pub fn journal(&self) -> Vec<OpRecord> {
        self.state().journal.clone()
    }

    /// Files that torn writes left behind.
    pub fn torn_files(&self) -> Vec<TornFile> {
        self.state().torn.clone()
    }

    /// Reset counters, journal and the list of torn files (the plan is kept).
    pub fn reset_counters(&self) {
        let mut s = self.state();
        s.counts = OpCounts::default();
        s.journal.clear();
        s.torn.clear();
    }

    /// Count the operation, record it and decide its fate.
    fn admit(&self, op: Op, t: Option<FileType>, name: &str, len: usize) -> Verdict {
        let mut s = self.state();
        let index = s.counts.total;
        s.counts.total += 1;
        let write_index = s.counts.writes;
        let remove_index = s.counts.removes;
        match op {
            Op::Create => s.counts.creates += 1,
            Op::Read => s.counts.reads += 1,
            Op::ReadRange => s.counts.read_ranges += 1,
            Op::Size => s.counts.sizes += 1,
            Op::Write => s.counts.writes += 1,
            Op::List => s.counts.lists += 1,
            Op::Remove => s.counts.removes += 1,
            Op::ReplaceConfig => s.counts.replace_configs += 1,
        }
        let plan = &s.plan;
        let verdict = if plan.fail_after.is_some_and(|n| index >= n)
            || (op == Op::Remove && plan.fail_removes_from.is_some_and(|n| remove_index >= n))
            || (op == Op::ReplaceConfig && plan.fail_replace_config)
        {
            Verdict::Fail
        } else if op == Op::Write && plan.torn_write_at == Some(write_index) {
            Verdict::Tear(plan.torn_keep.unwrap_or(len / 2).min(len))
        } else {
            Verdict::Pass
        };
        let injected = !matches!(verdict, Verdict::Pass);
        if injected {
            s.counts.injected += 1;
        }
        s.journal.push(OpRecord {
            index,
            op,
            file_type: t,
            name: name.to_string(),
            injected,
        });
        verdict
    }

    fn injected_error(&self, op: Op, path: String) -> BackendError {
        BackendError::Io {
            path: format!("{}/{}", self.inner.location(), path),
            source: std::io::Error::other(format!("{INJECTED}: {op:?} refused")),
        }
    }

    /// Run `f` unless the plan says `op` fails.
    fn guarded<T>(
        &self,
        op: Op,
        t: Option<FileType>,
        name: &str,
        path: impl FnOnce() -> String,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match self.admit(op, t, name, 0) {
            Verdict::Pass => f(),
            Verdict::Fail | Verdict::Tear(_) => Err(self.injected_error(op, path())),
        }
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.guarded(Op::Create, None, "", String::new, || self.inner.create())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        self.guarded(
            Op::Read,
            Some(t),
            name,
            || t.path(name),
            || self.inner.read(t, name),
        )
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.guarded(
            Op::ReadRange,
            Some(t),
            name,
            || t.path(name),
            || self.inner.read_range(t, name, offset, len),
        )
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        self.guarded(
            Op::Size,
            Some(t),
            name,
            || t.path(name),
            || self.inner.size(t, name),
        )
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        match self.admit(Op::Write, Some(t), name, data.len()) {
            Verdict::Pass => self.inner.write(t, name, data),
            Verdict::Fail => Err(self.injected_error(Op::Write, t.path(name))),
            Verdict::Tear(keep) => {
                // The prefix lands at the final name (the inner backend's own atomicity only
                // makes sure it is exactly this prefix); the caller is told the write failed.
                if let Err(e) = self.inner.write(t, name, &data[..keep]) {
                    // Nothing was torn (e.g. the name exists): the wrapped backend's own error.
                    let mut s = self.state();
                    s.counts.injected -= 1;
                    if let Some(r) = s
                        .journal
                        .iter_mut()
                        .rev()
                        .find(|r| r.op == Op::Write && r.injected && r.name == name)
                    {
                        r.injected = false;
                    }
                    return Err(e);
                }
                let silently = {
                    let mut s = self.state();
                    s.torn.push(TornFile {
                        file_type: t,
                        name: name.to_string(),
                        kept: keep,
                        len: data.len(),
                    });
                    s.plan.torn_silently
                };
                if silently {
                    Ok(())
                } else {
                    Err(self.injected_error(Op::Write, t.path(name)))
                }
            }
        }
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.guarded(
            Op::List,
            Some(t),
            "",
            || t.dir().to_string(),
            || self.inner.list(t),
        )
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.guarded(
            Op::Remove,
            Some(t),
            name,
            || t.path(name),
            || self.inner.remove(t, name),
        )
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        self.guarded(
            Op::ReplaceConfig,
            Some(FileType::Config),
            "config",
            || "config".to_string(),
            || self.inner.replace_config(data),
        )
    }

    fn object_lock(&self) -> Option<&dyn crate::ObjectLock> {
        self.inner.object_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    fn setup() -> (tempfile::TempDir, Arc<dyn Backend>, FaultyBackend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let faulty = FaultyBackend::new(local.clone());
        faulty.create().expect("create");
        (dir, local, faulty)
    }

    fn is_injected(r: &Result<impl std::fmt::Debug>) -> bool {
        match r {
            Err(BackendError::Io { source, .. }) => source.to_string().starts_with(INJECTED),
            _ => false,
        }
    }

    fn name(i: u8) -> String {
        format!("{i:02x}").repeat(32)
    }

    #[test]
    fn passes_everything_through_without_a_plan() -> Result<()> {
        let (_dir, local, f) = setup();
        f.write(FileType::Pack, &name(1), b"hello world")?;
        assert_eq!(f.read(FileType::Pack, &name(1))?, b"hello world");
        assert_eq!(f.read_range(FileType::Pack, &name(1), 6, 5)?, b"world");
        assert_eq!(f.size(FileType::Pack, &name(1))?, 11);
        assert_eq!(f.list(FileType::Pack)?, vec![(name(1), 11)]);
        f.replace_config(b"cfg")?;
        assert_eq!(local.read(FileType::Config, "config")?, b"cfg");
        f.remove(FileType::Pack, &name(1))?;
        assert!(local.list(FileType::Pack)?.is_empty());
        // Errors of the wrapped backend come through unchanged and are not counted as injected.
        assert!(matches!(
            f.read(FileType::Pack, &name(1)),
            Err(BackendError::NotFound { .. })
        ));
        let c = f.counts();
        assert_eq!(
            c,
            OpCounts {
                total: 9,
                creates: 1,
                reads: 2,
                read_ranges: 1,
                sizes: 1,
                writes: 1,
                lists: 1,
                removes: 1,
                replace_configs: 1,
                injected: 0,
            }
        );
        assert_eq!(f.location(), local.location());
        let j = f.journal();
        assert_eq!(j.len(), 9);
        assert!(j.iter().enumerate().all(|(i, r)| r.index == i as u64));
        assert_eq!(j[1].op, Op::Write);
        assert_eq!(j[1].path(), format!("data/01/{}", name(1)));
        Ok(())
    }

    #[test]
    fn fail_after_stops_every_later_operation() -> Result<()> {
        let (_dir, local, f) = setup(); // operation 0: create
        f.fail_after(3);
        f.write(FileType::Snapshot, &name(1), b"one")?; // 1
        f.write(FileType::Snapshot, &name(2), b"two")?; // 2
        let r = f.write(FileType::Snapshot, &name(3), b"three"); // 3: fails
        assert!(is_injected(&r), "{r:?}");
        assert!(is_injected(&f.read(FileType::Snapshot, &name(1))));
        assert!(is_injected(&f.read_range(
            FileType::Snapshot,
            &name(1),
            0,
            1
        )));
        assert!(is_injected(&f.size(FileType::Snapshot, &name(1))));
        assert!(is_injected(&f.list(FileType::Snapshot)));
        assert!(is_injected(&f.remove(FileType::Snapshot, &name(1))));
        assert!(is_injected(&f.replace_config(b"x")));
        assert!(is_injected(&f.create()));
        // Nothing after the failure point reached the disk.
        let names: Vec<String> = local
            .list(FileType::Snapshot)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec![name(1), name(2)]);
        assert!(matches!(
            local.read(FileType::Config, "config"),
            Err(BackendError::NotFound { .. })
        ));
        let c = f.counts();
        assert_eq!((c.total, c.injected), (11, 8));
        // Clearing the plan heals it; counting goes on.
        f.clear_faults();
        assert_eq!(f.read(FileType::Snapshot, &name(2))?, b"two");
        assert_eq!(f.operations(), 12);
        let j = f.journal();
        assert!(j[..3].iter().all(|r| !r.injected));
        assert!(j[3..11].iter().all(|r| r.injected));
        assert!(!j[11].injected);
        Ok(())
    }

    #[test]
    fn fail_after_zero_and_fail_after_next() -> Result<()> {
        let (_dir, _local, f) = setup();
        f.reset_counters();
        f.fail_after(0);
        assert!(is_injected(&f.list(FileType::Pack)));
        f.clear_faults();
        f.fail_after_next(2);
        f.list(FileType::Pack)?;
        f.list(FileType::Index)?;
        assert!(is_injected(&f.list(FileType::Key)));
        assert_eq!(f.operations(), 4);
        Ok(())
    }

    #[test]
    fn torn_write_leaves_a_prefix_and_fails() -> Result<()> {
        let (_dir, local, f) = setup();
        f.torn_write_at(1);
        let data: Vec<u8> = (0..=255u8).collect();
        f.write(FileType::Pack, &name(1), &data)?; // write 0: whole
        let r = f.write(FileType::Pack, &name(2), &data); // write 1: torn
        assert!(is_injected(&r), "{r:?}");
        f.write(FileType::Pack, &name(3), &data)?; // write 2: whole again
        assert_eq!(local.read(FileType::Pack, &name(1))?, data);
        assert_eq!(local.read(FileType::Pack, &name(2))?, &data[..128]);
        assert_eq!(local.read(FileType::Pack, &name(3))?, data);
        assert_eq!(
            f.torn_files(),
            vec![TornFile {
                file_type: FileType::Pack,
                name: name(2),
                kept: 128,
                len: 256,
            }]
        );
        assert_eq!(f.counts().injected, 1);
        assert_eq!(f.writes(), 3);

        f.torn_write_at_keeping(3, 1000);
        assert!(is_injected(&f.write(FileType::Index, &name(4), b"abc")));
        assert_eq!(local.read(FileType::Index, &name(4))?, b"abc");
        f.torn_write_at_keeping(4, 0);
        assert!(is_injected(&f.write(FileType::Index, &name(5), b"abc")));
        assert_eq!(local.size(FileType::Index, &name(5))?, 0);
        Ok(())
    }

    #[test]
    fn silent_torn_write_reports_success() -> Result<()> {
        let (_dir, local, f) = setup();
        f.torn_write_silently_at(0);
        f.write(FileType::Snapshot, &name(1), b"0123456789")?;
        assert_eq!(local.read(FileType::Snapshot, &name(1))?, b"01234");
        assert_eq!(f.torn_files().len(), 1);
        assert_eq!(f.injected(), 1);
        assert!(f.journal()[1].injected);
        Ok(())
    }

    #[test]
    fn torn_write_keeps_write_once() -> Result<()> {
        let (_dir, local, f) = setup();
        f.write(FileType::Pack, &name(1), b"original")?;
        f.torn_write_at(1);
        // The wrapped backend refuses to replace the file; that error is passed on and the
        // file is untouched.
        assert!(matches!(
            f.write(FileType::Pack, &name(1), b"replacement"),
            Err(BackendError::AlreadyExists { .. })
        ));
        assert_eq!(local.read(FileType::Pack, &name(1))?, b"original");
        assert!(f.torn_files().is_empty());
        assert_eq!(f.injected(), 0);
        Ok(())
    }

    #[test]
    fn fail_removes_and_replace_config() -> Result<()> {
        let (_dir, local, f) = setup();
        f.write(FileType::Lock, &name(1), b"lock")?;
        f.replace_config(b"v1")?;
        f.fail_removes();
        f.fail_replace_config();
        assert!(is_injected(&f.remove(FileType::Lock, &name(1))));
        assert!(is_injected(&f.replace_config(b"v2")));
        // Other operations still work.
        f.write(FileType::Lock, &name(2), b"lock2")?;
        assert_eq!(local.list(FileType::Lock)?.len(), 2);
        assert_eq!(local.read(FileType::Config, "config")?, b"v1");
        assert_eq!(
            f.plan(),
            FaultPlan {
                fail_removes_from: Some(0),
                fail_replace_config: true,
                ..FaultPlan::default()
            }
        );
        f.clear_faults();
        f.remove(FileType::Lock, &name(1))?;
        f.replace_config(b"v2")?;
        assert_eq!(local.read(FileType::Config, "config")?, b"v2");
        assert_eq!(f.injected(), 2);
        Ok(())
    }

    #[test]
    fn fail_removes_from_counts_removes() -> Result<()> {
        let (_dir, local, f) = setup();
        for i in 0..4 {
            f.write(FileType::Index, &name(i), b"i")?;
        }
        f.fail_removes_from(2);
        f.remove(FileType::Index, &name(0))?; // remove 0
        f.read(FileType::Index, &name(1))?; // not a remove: not counted as one
        f.remove(FileType::Index, &name(1))?; // remove 1
        assert!(is_injected(&f.remove(FileType::Index, &name(2)))); // remove 2
        assert!(is_injected(&f.remove(FileType::Index, &name(3)))); // remove 3
        let left: Vec<String> = local
            .list(FileType::Index)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(left, vec![name(2), name(3)]);
        assert_eq!(f.counts().removes, 4);
        Ok(())
    }

    #[test]
    fn clones_share_plan_and_counters_across_threads() -> Result<()> {
        let (_dir, _local, f) = setup();
        f.reset_counters();
        let shared: Arc<dyn Backend> = Arc::new(f.clone());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = shared.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let _ = b.list(FileType::Pack);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(f.operations(), 100);
        // A plan set on one clone applies to the other.
        f.fail_after_next(0);
        assert!(is_injected(&shared.list(FileType::Pack)));
        Ok(())
    }
}
