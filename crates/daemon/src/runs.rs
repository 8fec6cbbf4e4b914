//! Jobs, their runs and task logs.
//!
//! The scheduler needs, per configured job, when it was first seen and when it last started
//! ([`JobTimes`], for `snapguard_policy::schedule::due`); these survive restarts, so missed runs
//! are caught up once after the machine was off. Each run is a row with its trigger, status and
//! a JSON summary, and its log lines are rows of their own, numbered, so a reader can follow a
//! running job by asking for the lines after the last one it saw.

use crate::{Error, Result, State};
use rusqlite::OptionalExtension;
use serde::Serialize;

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Its scheduled time.
    Schedule,
    /// Its scheduled time passed while the daemon was not running.
    CatchUp,
    /// The machine became idle (a `when = "idle"` job).
    Idle,
    /// An idle job's deadline.
    Deadline,
    /// A user asked (`run now`).
    Manual,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The daemon stopped (or crashed) while it ran.
    Interrupted,
}

macro_rules! names {
    ($t:ty { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
names!(Trigger { Schedule = "schedule", CatchUp = "catch-up", Idle = "idle", Deadline = "deadline", Manual = "manual" });
names!(Status { Running = "running", Succeeded = "succeeded", Failed = "failed", Cancelled = "cancelled", Interrupted = "interrupted" });

/// When a job was first seen and last started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct JobTimes {
    pub first_seen: i64,
    pub last_start: Option<i64>,
}

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    pub id: i64,
    pub job: String,
    pub trigger: Trigger,
    pub started: i64,
    pub ended: Option<i64>,
    pub status: Status,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Counts of one job's runs (see [`State::job_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    pub job: String,
    /// (status, runs) for each status that occurred.
    pub counts: Vec<(String, i64)>,
    /// The end time and duration (seconds) of the last successful run.
    pub last_success: Option<(i64, i64)>,
}

/// One line of a run's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub seq: i64,
    pub at: i64,
    pub level: String,
    pub line: String,
}

type RunRow = (
    i64,
    String,
    String,
    i64,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
);

const RUN_COLUMNS: &str = "id, job, trigger, started, ended, status, summary, error";

impl State {
    /// The job's times, recording `now` as its first sighting if it is new.
    pub fn job_times(&self, job: &str, now: i64) -> Result<JobTimes> {
        self.conn()
            .execute(
                "INSERT INTO jobs (name, first_seen) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                rusqlite::params![job, now],
            )
            .map_err(|e| self.db(e))?;
        self.conn()
            .query_row(
                "SELECT first_seen, last_start FROM jobs WHERE name = ?1",
                [job],
                |r| {
                    Ok(JobTimes {
                        first_seen: r.get(0)?,
                        last_start: r.get(1)?,
                    })
                },
            )
            .map_err(|e| self.db(e))
    }

    /// Record that a run starts: the job's last start and a `running` row, in one transaction.
    pub fn start_run(&self, job: &str, trigger: Trigger, now: i64) -> Result<i64> {
        // IMMEDIATE: take the write lock first (waiting for the busy timeout), so a read
        // cannot fail to turn into a write when the CLI writes at the same time.
        let tx = rusqlite::Transaction::new_unchecked(
            self.conn(),
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| self.db(e))?;
        tx.execute(
            "INSERT INTO jobs (name, first_seen, last_start) VALUES (?1, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET last_start = ?2",
            rusqlite::params![job, now],
        )
        .map_err(|e| self.db(e))?;
        tx.execute(
            "INSERT INTO runs (job, trigger, started, status) VALUES (?1, ?2, ?3, 'running')",
            rusqlite::params![job, trigger.as_str(), now],
        )
        .map_err(|e| self.db(e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.db(e))?;
        Ok(id)
    }

    /// Record how a run ended. Only a running run can end; ending one twice is an error.
    pub fn finish_run(
        &self,
        id: i64,
        status: Status,
        now: i64,
        summary: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<()> {
        if status == Status::Running {
            return Err(Error::Invalid("a run cannot finish as running".into()));
        }
        let n = self
            .conn()
            .execute(
                "UPDATE runs SET status = ?2, ended = ?3, summary = ?4, error = ?5
                 WHERE id = ?1 AND status = 'running'",
                rusqlite::params![
                    id,
                    status.as_str(),
                    now,
                    summary.map(serde_json::Value::to_string),
                    error
                ],
            )
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(Error::NoRun(id));
        }
        Ok(())
    }

    /// Runs still marked running when the daemon starts were cut short by its end: mark them
    /// interrupted. Returns how many.
    pub fn interrupt_stale_runs(&self, now: i64) -> Result<usize> {
        self.conn()
            .execute(
                "UPDATE runs SET status = 'interrupted', ended = ?1,
                 error = 'the daemon stopped while the job ran'
                 WHERE status = 'running'",
                [now],
            )
            .map_err(|e| self.db(e))
    }

    /// Append a line to a run's log; returns its number (1, 2, 3 …).
    pub fn log(&self, run: i64, at: i64, level: &str, line: &str) -> Result<i64> {
        // IMMEDIATE: take the write lock first (waiting for the busy timeout), so a read
        // cannot fail to turn into a write when the CLI writes at the same time.
        let tx = rusqlite::Transaction::new_unchecked(
            self.conn(),
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| self.db(e))?;
        let seq: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM run_log WHERE run = ?1",
                [run],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))?;
        tx.execute(
            "INSERT INTO run_log (run, seq, at, level, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![run, seq, at, level, line],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Error::NoRun(run)
            }
            e => self.db(e),
        })?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(seq)
    }

    /// A run's log lines after line `after` (0: from the start).
    pub fn log_lines(&self, run: i64, after: i64) -> Result<Vec<LogLine>> {
        self.run(run)?;
        let mut st = self
            .conn()
            .prepare(
                "SELECT seq, at, level, line FROM run_log WHERE run = ?1 AND seq > ?2 ORDER BY seq",
            )
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(rusqlite::params![run, after], |r| {
                Ok(LogLine {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    level: r.get(2)?,
                    line: r.get(3)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.db(e))
    }

    /// One run.
    pub fn run(&self, id: i64) -> Result<Run> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()
            .map_err(|e| self.db(e))?;
        match row {
            Some(r) => self.to_run(r),
            None => Err(Error::NoRun(id)),
        }
    }

    /// The newest runs first, of one job or of all; at most `limit`.
    pub fn runs(&self, job: Option<&str>, limit: u32) -> Result<Vec<Run>> {
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR job = ?1)
                 ORDER BY started DESC, id DESC LIMIT ?2"
            ))
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map(rusqlite::params![job, limit], run_row)
            .map_err(|e| self.db(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.db(e))?;
        rows.into_iter().map(|r| self.to_run(r)).collect()
    }

    /// Per job: how many runs ended with each status, and the end and duration of its last
    /// successful run (for `/metrics`).
    pub fn job_stats(&self) -> Result<Vec<JobStats>> {
        let mut out: std::collections::BTreeMap<String, JobStats> = Default::default();
        let mut st = self
            .conn()
            .prepare("SELECT job, status, COUNT(*) FROM runs GROUP BY job, status")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.db(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.db(e))?;
        for (job, status, n) in rows {
            let e = out.entry(job.clone()).or_insert_with(|| JobStats {
                job,
                ..Default::default()
            });
            e.counts.push((status, n));
        }
        let mut st = self
            .conn()
            .prepare(
                "SELECT job, ended, ended - started FROM runs r WHERE status = 'succeeded'
                 AND id = (SELECT id FROM runs WHERE job = r.job AND status = 'succeeded'
                           ORDER BY ended DESC, id DESC LIMIT 1)",
            )
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.db(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.db(e))?;
        for (job, ended, duration) in rows {
            let e = out.entry(job.clone()).or_insert_with(|| JobStats {
                job,
                ..Default::default()
            });
            e.last_success = Some((ended, duration));
        }
        Ok(out.into_values().collect())
    }

    fn to_run(&self, r: RunRow) -> Result<Run> {
        let (id, job, trigger, started, ended, status, summary, error) = r;
        let damaged = |what: &str| {
            Error::Invalid(format!(
                "state database {}: run {id} has an unknown {what}; it was written by another program",
                self.dir().join("state.db").display()
            ))
        };
        Ok(Run {
            id,
            job,
            trigger: Trigger::parse(&trigger).ok_or_else(|| damaged("trigger"))?,
            started,
            ended,
            status: Status::parse(&status).ok_or_else(|| damaged("status"))?,
            summary: summary
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|_| damaged("summary"))?,
            error,
        })
    }
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}
