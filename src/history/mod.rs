//! History: every run and every node's result, in a SQLite database in the
//! store (`<store>/history.sqlite`), for `refine history`, the dashboard of
//! `refine serve`, and the scheduler (which orders by recorded durations).
//!
//! Invariants:
//! - History never fails a build: every write is best effort.
//! - It is moved aside (`history.sqlite.damaged-<time>`, with its WAL and
//!   shared-memory files, which hold committed rows) only when SQLite
//!   itself says it is damaged (`PRAGMA integrity_check`), or when it is
//!   of a schema version refine cannot migrate. A busy database (another
//!   process holding a lock past the busy timeout), a full disk or any
//!   other I/O error leaves it as it is: the run goes unrecorded, with
//!   one warning.
//! - Concurrent refine processes share it: WAL mode and a busy timeout;
//!   each write is one short transaction.
//! - Runs of refine processes that are gone (killed) are marked
//!   interrupted by the next process that opens it.
//! - A node is recorded when it starts building (verdict `running`, with
//!   its log path, so a dashboard can follow the log) and again when it
//!   ends.

use crate::rules::Label;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    command TEXT NOT NULL,
    workspace TEXT NOT NULL,
    arch TEXT NOT NULL,
    toolchain TEXT NOT NULL,
    owner TEXT NOT NULL,
    built INTEGER NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    label TEXT NOT NULL,
    arch TEXT NOT NULL,
    toolchain TEXT NOT NULL,
    key TEXT,
    output TEXT,
    verdict TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER,
    log TEXT,
    error TEXT,
    hints TEXT NOT NULL DEFAULT '[]',
    requested INTEGER NOT NULL DEFAULT 0,
    critical INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    UNIQUE (run, label)
);
CREATE INDEX IF NOT EXISTS results_by_label ON results (label, arch, id);
CREATE INDEX IF NOT EXISTS results_by_verdict ON results (verdict, id);
CREATE TABLE IF NOT EXISTS fixes (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    label TEXT NOT NULL,
    round INTEGER NOT NULL,
    import TEXT NOT NULL,
    edit TEXT NOT NULL,
    why TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'applied',
    outcome_run INTEGER
);
CREATE INDEX IF NOT EXISTS fixes_by_label ON fixes (label, id);
CREATE TABLE IF NOT EXISTS deliverables (
    arch TEXT NOT NULL,
    label TEXT NOT NULL,
    output TEXT NOT NULL,
    run INTEGER NOT NULL,
    PRIMARY KEY (arch, label)
) WITHOUT ROWID;
";

/// Version 4 to 5: the newest good output of each target a run named,
/// from the results recorded so far.
const FILL_DELIVERABLES: &str = "
INSERT OR REPLACE INTO deliverables (arch, label, output, run)
SELECT arch, label, output, run FROM results WHERE id IN (
    SELECT max(id) FROM results
    WHERE requested = 1 AND output IS NOT NULL AND verdict IN ('built', 'hit:local', 'hit:remote')
    GROUP BY arch, label);
";

/// The schema's version (`PRAGMA user_version`). Versions 2 (before runs
/// had `interrupted`), 3 (before `fixes`), 4 (before `deliverables`) and 5
/// (before results had `critical`) and 6 (before they had `worker`) are
/// migrated; a database of any other version is moved aside and made anew.
const VERSION: i64 = 7;

/// How long a write waits for another process's lock.
const BUSY: Duration = Duration::from_secs(10);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An open history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
    /// When SQLite last checked every page of it (seconds since the
    /// epoch), carried in the clean mark.
    checked_at: u64,
    /// Whether this open checked its pages.
    checked_now: bool,
    /// A statement met damage: the next open checks every page.
    suspect: std::cell::Cell<bool>,
}

/// How often every page is checked even when no one else touched the
/// file (damage of the disk itself changes no time stamp).
const CHECK_EVERY: u64 = 24 * 3600;

/// The clean mark (`history.sqlite.clean`): written when a connection
/// closes, it holds the database's and its WAL's inode, size, mtime and
/// ctime then, and when its pages were last checked. An open whose files
/// still have those stamps (nothing wrote them since a refine process
/// left them whole; ctime cannot be set back without the clock) within
/// [`CHECK_EVERY`] skips `PRAGMA quick_check`, which reads every page
/// (most of a no-op's time on a large history). Anything else (a crash,
/// another writer, an edit from outside, no mark) checks.
fn clean_mark(path: &Path) -> PathBuf {
    path.with_extension("sqlite.clean")
}

/// The files' stamps, as the clean mark records them.
fn stamps(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    [path.to_path_buf(), path.with_extension("sqlite-wal")]
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => format!(
                "{}:{}:{}.{}:{}.{}",
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            ),
            Err(_) => "-".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// When the pages were last checked, if the mark says the files are as
/// a refine process left them.
fn clean_since(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(clean_mark(path)).ok()?;
    let (at, stamp) = text.trim_end().split_once(' ')?;
    (stamp == stamps(path)).then(|| at.parse().ok())?
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Drop for History {
    /// Close, then mark the files clean (or, after damage was met, not).
    fn drop(&mut self) {
        let mark = clean_mark(&self.path);
        let _ = std::fs::remove_file(&mark);
        if self.suspect.get() {
            return;
        }
        let Ok(mem) = Connection::open_in_memory() else {
            return;
        };
        let conn = std::mem::replace(&mut self.conn, mem);
        if conn.close().is_err() {
            return;
        }
        let tmp = mark.with_extension(format!("clean.{}", std::process::id()));
        let text = format!("{} {}\n", self.checked_at, stamps(&self.path));
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &mark);
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// One recorded run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub command: String,
    pub workspace: String,
    pub arch: String,
    pub toolchain: String,
    /// The refine process that ran it (`pid-start`, see `runid`).
    pub owner: String,
    pub built: i64,
    pub hits: i64,
    pub failed: i64,
    pub blocked: i64,
    pub skipped: i64,
    /// Its process ended before it did (killed, or the machine went down).
    pub interrupted: bool,
}

const FINISHED_SQL: &str = "INSERT INTO results (run, label, arch, toolchain, key, output, verdict, started_ms, duration_ms, log, error, requested)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT (run, label) DO UPDATE SET key = excluded.key, output = excluded.output,
         verdict = excluded.verdict, duration_ms = excluded.duration_ms,
         log = coalesce(excluded.log, results.log), error = excluded.error, requested = excluded.requested";

/// A finished node, for [`History::finished_batch`].
#[derive(Clone, Debug)]
pub struct Finished {
    pub label: String,
    pub arch: String,
    pub toolchain: String,
    pub key: Option<String>,
    pub output: Option<String>,
    pub verdict: &'static str,
    pub duration_ms: i64,
    pub log: Option<String>,
    pub error: Option<String>,
    pub requested: bool,
}

/// A fix to record (see [`History::record_fix`]).
pub struct NewFix<'a> {
    /// The run whose failure suggested it.
    pub run: i64,
    pub label: &'a str,
    pub round: u32,
    pub import: &'a str,
    /// The edit, in words (`build_requires += six`).
    pub edit: &'a str,
    pub why: &'a str,
}

/// A fix `--auto-apply` applied, and what came of it: `applied` (not
/// rebuilt yet), `helped`, `did not help` (the same failure again),
/// `failed another way`, `not rebuilt` (a dependency failed first).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FixRow {
    pub id: i64,
    pub run: i64,
    pub label: String,
    pub round: u32,
    pub import: String,
    pub edit: String,
    pub why: String,
    pub outcome: String,
    /// The run that rebuilt it.
    pub outcome_run: Option<i64>,
}

/// One recorded node result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResultRow {
    pub id: i64,
    pub run: i64,
    pub label: String,
    pub arch: String,
    pub toolchain: String,
    pub key: Option<String>,
    pub output: Option<String>,
    pub verdict: String,
    pub started_ms: i64,
    pub duration_ms: Option<i64>,
    pub log: Option<String>,
    pub error: Option<String>,
    /// JSON list of hint messages.
    pub hints: Vec<String>,
    /// Named by the run (not only needed by what was).
    pub requested: bool,
    /// On the run's critical path (the chain of dependencies that ended
    /// last: `refine build --profile` draws the same).
    pub critical: bool,
    /// The remote worker that built it (REAPI); `None`: this machine.
    pub worker: Option<String>,
}

/// What a query of results asks for.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub label: Option<String>,
    pub arch: Option<String>,
    pub verdict: Option<String>,
    pub run: Option<i64>,
    /// Slowest first (by duration) instead of newest first.
    pub slowest: bool,
    pub limit: usize,
}

fn result_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResultRow> {
    let hints: String = r.get(12)?;
    Ok(ResultRow {
        id: r.get(0)?,
        run: r.get(1)?,
        label: r.get(2)?,
        arch: r.get(3)?,
        toolchain: r.get(4)?,
        key: r.get(5)?,
        output: r.get(6)?,
        verdict: r.get(7)?,
        started_ms: r.get(8)?,
        duration_ms: r.get(9)?,
        log: r.get(10)?,
        error: r.get(11)?,
        hints: serde_json::from_str(&hints).unwrap_or_default(),
        requested: r.get::<_, i64>(13)? != 0,
        critical: r.get::<_, i64>(14)? != 0,
        worker: r.get(15)?,
    })
}

const RESULT_COLUMNS: &str = "id, run, label, arch, toolchain, key, output, verdict, started_ms, duration_ms, log, error, hints, requested, critical, worker";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        started_ms: r.get(1)?,
        finished_ms: r.get(2)?,
        command: r.get(3)?,
        workspace: r.get(4)?,
        arch: r.get(5)?,
        toolchain: r.get(6)?,
        owner: r.get(7)?,
        built: r.get(8)?,
        hits: r.get(9)?,
        failed: r.get(10)?,
        blocked: r.get(11)?,
        skipped: r.get(12)?,
        interrupted: r.get::<_, i64>(13)? != 0,
    })
}

const RUN_COLUMNS: &str = "id, started_ms, finished_ms, command, workspace, arch, toolchain, owner, built, hits, failed, blocked, skipped, interrupted";

/// What SQLite says of a failed open: damage (move it aside), another
/// schema version (move it aside), or anything else (leave it alone).
#[derive(Debug, PartialEq, Eq)]
enum OpenFailure {
    Damaged,
    OtherVersion,
    Unavailable,
}

fn classify(e: &rusqlite::Error) -> OpenFailure {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            OpenFailure::Damaged
        }
        Some(rusqlite::ErrorCode::SchemaChanged) => OpenFailure::OtherVersion,
        _ => OpenFailure::Unavailable,
    }
}

/// `PRAGMA integrity_check` on a connection of its own: whether SQLite
/// finds the file damaged (a file that is not a database is).
fn is_corrupt(path: &Path, busy: Duration) -> bool {
    let Ok(conn) = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
    else {
        return false;
    };
    let _ = conn.busy_timeout(busy);
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(ok) => ok != "ok",
        Err(e) => classify(&e) == OpenFailure::Damaged,
    }
}

/// Why the history cannot be used now. A run goes on unrecorded; a
/// command that reads the history reports it as the environment's.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Busy past the timeout, a full disk, permissions: left as it is.
    #[error("the history database {} cannot be used now ({source}); it is left as it is", path.display())]
    Unusable {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Damaged (or of another schema), and it could not be set aside.
    #[error("the history database {} is {why} ({source}) and cannot be moved aside ({io})", path.display())]
    CannotSetAside {
        path: PathBuf,
        why: &'static str,
        source: rusqlite::Error,
        io: std::io::Error,
    },
    /// Set aside, and a new one could not be made.
    #[error("the history database {} cannot be made: {source}", path.display())]
    CannotMake {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl From<HistoryError> for crate::error::Error {
    fn from(e: HistoryError) -> Self {
        crate::error::Error::env(e.to_string())
            .hint("check that the store is writable and has free space (--store DIR)")
    }
}

impl History {
    pub fn path_in(store: &Path) -> PathBuf {
        store.join("history.sqlite")
    }

    /// Open (or make) the store's history. A database SQLite finds damaged
    /// (or of a schema version refine cannot migrate) is moved aside and
    /// made anew; the message says so (for the caller to show). Any other
    /// failure (busy past the timeout, disk full, permissions) is an `Err`
    /// that leaves the file as it is: the run goes unrecorded.
    pub fn open(store: &Path) -> Result<(History, Option<String>), HistoryError> {
        Self::open_waiting(store, BUSY)
    }

    /// [`History::open`], waiting at most `busy` for another's lock.
    pub fn open_waiting(
        store: &Path,
        busy: Duration,
    ) -> Result<(History, Option<String>), HistoryError> {
        let path = Self::path_in(store);
        // SQLite deletes the WAL when the last connection closes, even of
        // a file it found damaged: a second name for it keeps its rows for
        // the copy set aside.
        let wal = path.with_extension("sqlite-wal");
        let keep = path.with_extension(format!("sqlite-wal.keep-{}", std::process::id()));
        let kept = std::fs::hard_link(&wal, &keep).is_ok();
        let opened = Self::try_open(&path, busy);
        let e = match opened {
            Ok(h) => {
                if kept {
                    let _ = std::fs::remove_file(&keep);
                }
                return Ok((h, None));
            }
            Err(e) => e,
        };
        let damaged = classify(&e) == OpenFailure::Damaged && is_corrupt(&path, busy);
        if kept && !wal.exists() && damaged {
            let _ = std::fs::rename(&keep, &wal);
        } else if kept {
            let _ = std::fs::remove_file(&keep);
        }
        let why = match classify(&e) {
            OpenFailure::Damaged if damaged => "damaged",
            OpenFailure::OtherVersion => "of another schema version",
            _ => return Err(HistoryError::Unusable { path, source: e }),
        };
        let aside = path.with_extension(format!("sqlite.{}-{}", why.replace(' ', "-"), now_ms()));
        if let Err(io) = std::fs::rename(&path, &aside) {
            return Err(HistoryError::CannotSetAside {
                path,
                why,
                source: e,
                io,
            });
        }
        // Committed rows may still be in the WAL: they go with it.
        for ext in ["wal", "shm"] {
            let from = path.with_extension(format!("sqlite-{ext}"));
            let mut to = aside.clone().into_os_string();
            to.push(format!("-{ext}"));
            let _ = std::fs::rename(&from, &to);
        }
        let h = Self::try_open(&path, busy).map_err(|source| HistoryError::CannotMake {
            path: path.clone(),
            source,
        })?;
        let msg = format!(
            "the history database was {why} ({e}): kept as {} and made anew",
            aside.display()
        );
        Ok((h, Some(msg)))
    }

    fn try_open(path: &Path, busy: Duration) -> rusqlite::Result<History> {
        if let Some(p) = path.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        // Stamped before the open touches anything.
        let clean = clean_since(path).filter(|at| now_secs().saturating_sub(*at) < CHECK_EVERY);
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy)?;
        // Damage shows here: a file that is not a database, or one whose
        // pages do not check (checked unless the clean mark vouches).
        if clean.is_none() {
            let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if ok != "ok" {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(ok),
                ));
            }
        }
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        let mut version = version;
        if tables > 0 && version == 2 {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 ALTER TABLE runs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 3;
                 COMMIT;",
            )?;
            version = 3;
        }
        if tables > 0 && version == 3 {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = 4; COMMIT;"
            ))?;
            version = 4;
        }
        if tables > 0 && version == 4 {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} {FILL_DELIVERABLES} PRAGMA user_version = 5; COMMIT;"
            ))?;
            version = 5;
        }
        if tables > 0 && version == 5 {
            // (A database made at an older version by this SCHEMA, as the
            // migrations above do, has the column already.)
            let has: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_table_info('results') WHERE name = 'critical'",
                [],
                |r| r.get(0),
            )?;
            let add = if has == 0 {
                "ALTER TABLE results ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;"
            } else {
                ""
            };
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {add} PRAGMA user_version = 6; COMMIT;"
            ))?;
            version = 6;
        }
        if tables > 0 && version == 6 {
            let has: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_table_info('results') WHERE name = 'worker'",
                [],
                |r| r.get(0),
            )?;
            let add = if has == 0 {
                "ALTER TABLE results ADD COLUMN worker TEXT;"
            } else {
                ""
            };
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {add} PRAGMA user_version = 7; COMMIT;"
            ))?;
            version = 7;
        }
        if tables > 0 && version != VERSION {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_SCHEMA),
                Some(format!("schema version {version}, refine writes {VERSION}")),
            ));
        }
        if tables == 0 {
            conn.execute_batch(SCHEMA)?;
            conn.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
        }
        Ok(History {
            conn,
            path: path.to_path_buf(),
            checked_at: clean.unwrap_or_else(now_secs),
            checked_now: clean.is_none(),
            suspect: std::cell::Cell::new(false),
        })
    }

    /// Whether this open checked every page (no clean mark vouched).
    pub fn checked_now(&self) -> bool {
        self.checked_now
    }

    /// Say that a statement met damage (`SQLITE_CORRUPT`, `SQLITE_NOTADB`):
    /// the next open checks every page, and sets it aside if so.
    pub fn note_error(&self, e: &rusqlite::Error) {
        if classify(e) == OpenFailure::Damaged {
            self.suspect.set(true);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn begin_run(
        &self,
        command: &str,
        workspace: &Path,
        arch: &str,
        toolchain: &str,
    ) -> rusqlite::Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (started_ms, command, workspace, arch, toolchain, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_ms(), command, workspace.display().to_string(), arch, toolchain, crate::runid::RunId::current().tag()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn end_run(&self, run: i64, counts: [i64; 5]) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_ms = ?2, built = ?3, hits = ?4, failed = ?5, blocked = ?6, skipped = ?7 WHERE id = ?1",
            params![run, now_ms(), counts[0], counts[1], counts[2], counts[3], counts[4]],
        )?;
        Ok(())
    }

    /// A node started building (its log is being written).
    pub fn started(
        &self,
        run: i64,
        label: &Label,
        arch: &str,
        toolchain: &str,
        log: &Path,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO results (run, label, arch, toolchain, verdict, started_ms, log) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)
             ON CONFLICT (run, label) DO UPDATE SET verdict = 'running', log = excluded.log",
            params![run, label.to_string(), arch, toolchain, now_ms(), log.display().to_string()],
        )?;
        Ok(())
    }

    /// A node ended (whatever its verdict).
    #[allow(clippy::too_many_arguments)]
    pub fn finished(
        &self,
        run: i64,
        label: &Label,
        arch: &str,
        toolchain: &str,
        key: Option<&str>,
        output: Option<&str>,
        verdict: &str,
        duration_ms: i64,
        log: Option<&Path>,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.finished_as(
            run,
            label,
            arch,
            toolchain,
            key,
            output,
            verdict,
            duration_ms,
            log,
            error,
            false,
        )
    }

    /// [`History::finished`], saying whether the run named it.
    #[allow(clippy::too_many_arguments)]
    /// Record many finished nodes in one transaction, with one prepared
    /// statement: what a run's hits cost (a row each in a batch, not a
    /// transaction each).
    pub fn finished_batch(&self, run: i64, rows: &[Finished]) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(FINISHED_SQL)?;
            let now = now_ms();
            for r in rows {
                st.execute(params![
                    run,
                    r.label,
                    r.arch,
                    r.toolchain,
                    r.key,
                    r.output,
                    r.verdict,
                    now - r.duration_ms,
                    r.duration_ms,
                    r.log,
                    r.error,
                    r.requested as i64
                ])?;
            }
        }
        tx.commit()
    }

    pub fn finished_as(
        &self,
        run: i64,
        label: &Label,
        arch: &str,
        toolchain: &str,
        key: Option<&str>,
        output: Option<&str>,
        verdict: &str,
        duration_ms: i64,
        log: Option<&Path>,
        error: Option<&str>,
        requested: bool,
    ) -> rusqlite::Result<()> {
        let started = now_ms() - duration_ms;
        self.conn.prepare_cached(FINISHED_SQL)?.execute(params![
            run,
            label.to_string(),
            arch,
            toolchain,
            key,
            output,
            verdict,
            started,
            duration_ms,
            log.map(|p| p.display().to_string()),
            error,
            requested as i64
        ])?;
        Ok(())
    }

    /// Every target's newest good output of those a run named, as
    /// `(arch, label) -> (output, run)`: what the package index serves,
    /// and what tells the recorder whether a hit says anything new.
    pub fn deliverables(
        &self,
    ) -> rusqlite::Result<std::collections::HashMap<(String, String), (String, i64)>> {
        let mut st = self
            .conn
            .prepare("SELECT arch, label, output, run FROM deliverables")?;
        let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))?;
        rows.collect()
    }

    /// Record the newest good outputs of targets run `run` named
    /// (`(arch, label, output)`), in one transaction.
    pub fn set_deliverables(
        &self,
        run: i64,
        rows: &[(String, String, String)],
    ) -> rusqlite::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO deliverables (arch, label, output, run) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (a, l, o) in rows {
                st.execute(params![a, l, o, run])?;
            }
        }
        tx.commit()
    }

    /// A fix `--auto-apply` recorded for `label` after run `run` failed;
    /// its outcome is `applied` until the next round says.
    pub fn record_fix(&self, f: &NewFix<'_>) -> rusqlite::Result<i64> {
        self.conn.execute(
            "INSERT INTO fixes (run, label, round, import, edit, why) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![f.run, f.label, f.round, f.import, f.edit, f.why],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// What the rebuild (run `run`) made of fix `id`.
    pub fn settle_fix(&self, id: i64, outcome: &str, run: Option<i64>) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE fixes SET outcome = ?2, outcome_run = ?3 WHERE id = ?1",
            params![id, outcome, run],
        )?;
        Ok(())
    }

    /// The fixes recorded for `label`, newest first.
    pub fn fixes(&self, label: &str, limit: usize) -> rusqlite::Result<Vec<FixRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, run, label, round, import, edit, why, outcome, outcome_run
             FROM fixes WHERE label = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        st.query_map(params![label, limit as i64], |r| {
            Ok(FixRow {
                id: r.get(0)?,
                run: r.get(1)?,
                label: r.get(2)?,
                round: r.get(3)?,
                import: r.get(4)?,
                edit: r.get(5)?,
                why: r.get(6)?,
                outcome: r.get(7)?,
                outcome_run: r.get(8)?,
            })
        })?
        .collect()
    }

    /// Record which remote worker built a node of a run.
    pub fn set_worker(&self, run: i64, label: &Label, worker: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE results SET worker = ?3 WHERE run = ?1 AND label = ?2")?
            .execute(params![run, label.to_string(), worker])?;
        Ok(())
    }

    /// Mark the run's critical path (labels of results it has rows for).
    pub fn set_critical(&self, run: i64, labels: &[Label]) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st =
                tx.prepare("UPDATE results SET critical = 1 WHERE run = ?1 AND label = ?2")?;
            for l in labels {
                st.execute(params![run, l.to_string()])?;
            }
        }
        tx.commit()
    }

    pub fn set_hints(&self, run: i64, label: &Label, hints: &[String]) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE results SET hints = ?3 WHERE run = ?1 AND label = ?2",
            params![
                run,
                label.to_string(),
                serde_json::to_string(hints).unwrap_or_default()
            ],
        )?;
        Ok(())
    }

    pub fn runs(&self, limit: usize) -> rusqlite::Result<Vec<RunRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map(params![limit as i64], run_row)?;
        rows.collect()
    }

    pub fn run(&self, id: i64) -> rusqlite::Result<Option<RunRow>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                params![id],
                run_row,
            )
            .optional()
    }

    pub fn result(&self, id: i64) -> rusqlite::Result<Option<ResultRow>> {
        self.conn
            .query_row(
                &format!("SELECT {RESULT_COLUMNS} FROM results WHERE id = ?1"),
                params![id],
                result_row,
            )
            .optional()
    }

    pub fn results(&self, f: &Filter) -> rusqlite::Result<Vec<ResultRow>> {
        let mut sql = format!("SELECT {RESULT_COLUMNS} FROM results WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(l) = &f.label {
            sql.push_str(" AND label = ?");
            args.push(l.clone().into());
        }
        if let Some(a) = &f.arch {
            sql.push_str(" AND arch = ?");
            args.push(a.clone().into());
        }
        if let Some(v) = &f.verdict {
            sql.push_str(" AND verdict = ?");
            args.push(v.clone().into());
        }
        if let Some(r) = f.run {
            sql.push_str(" AND run = ?");
            args.push(r.into());
        }
        if f.slowest {
            sql.push_str(" AND verdict = 'built' ORDER BY duration_ms DESC, id DESC");
        } else {
            sql.push_str(" ORDER BY id DESC");
        }
        sql.push_str(" LIMIT ?");
        args.push((f.limit.max(1) as i64).into());
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), result_row)?;
        rows.collect()
    }

    /// The median duration of the last builds of each (arch, label), for
    /// the scheduler's ordering.
    pub fn durations(&self) -> rusqlite::Result<std::collections::HashMap<(String, String), u64>> {
        let mut st = self.conn.prepare(
            "SELECT arch, label, duration_ms FROM results WHERE verdict = 'built' AND duration_ms IS NOT NULL ORDER BY id DESC LIMIT 20000",
        )?;
        let mut all: std::collections::HashMap<(String, String), Vec<u64>> = Default::default();
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (a, l, d) = row?;
            let v = all.entry((a, l)).or_default();
            if v.len() < 5 {
                v.push(d.max(0) as u64);
            }
        }
        Ok(all
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                (k, v[v.len() / 2])
            })
            .collect())
    }

    /// Counts of results by verdict (for metrics). Hits are counted per
    /// run (most have no row of their own), as `hit`.
    pub fn verdict_counts(&self) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT verdict, count(*) FROM results WHERE verdict NOT LIKE 'hit:%' GROUP BY verdict
             UNION ALL SELECT 'hit', coalesce(sum(hits), 0) FROM runs
             ORDER BY 1",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// Runs that never ended and whose process is gone were interrupted
    /// (SIGKILL, a crash, the machine going down): each is marked so, ended
    /// at its last recorded result, and its results still marked running
    /// are failed as interrupted. Returns how many results were settled.
    pub fn settle_dead_runs(&self) -> rusqlite::Result<usize> {
        let mut st = self.conn.prepare(
            // By the index on verdict: not a scan of every result ever
            // recorded (a no-op of a large graph records thousands).
            "SELECT r.id, r.owner FROM runs r
             WHERE r.finished_ms IS NULL
                OR r.id IN (SELECT run FROM results WHERE verdict = 'running')",
        )?;
        let dead: Vec<i64> = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .filter_map(|x| x.ok())
            .filter(|(_, owner)| !crate::runid::RunId::parse(owner).is_some_and(|o| o.alive()))
            .map(|(id, _)| id)
            .collect();
        let mut n = 0;
        for id in dead {
            n += self.conn.execute(
                "UPDATE results SET verdict = 'failed', error = 'interrupted: the refine process running it ended' WHERE run = ?1 AND verdict = 'running'",
                params![id],
            )?;
            self.conn.execute(
                "UPDATE runs SET interrupted = 1,
                     finished_ms = (SELECT max(runs.started_ms, coalesce(max(x.started_ms + coalesce(x.duration_ms, 0)), 0))
                                    FROM results x WHERE x.run = ?1),
                     built = (SELECT count(*) FROM results x WHERE x.run = ?1 AND x.verdict = 'built'),
                     failed = (SELECT count(*) FROM results x WHERE x.run = ?1 AND x.verdict = 'failed')
                 WHERE id = ?1 AND finished_ms IS NULL",
                params![id],
            )?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Label {
        s.parse().unwrap()
    }

    #[test]
    fn runs_and_results_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let (h, note) = History::open(d.path()).unwrap();
        assert!(note.is_none());
        let run = h
            .begin_run("build", Path::new("/ws"), "s390x", "cross")
            .unwrap();
        let log = d.path().join("a.log");
        h.started(run, &l("//wheels:a"), "s390x", "cross", &log)
            .unwrap();
        let running = h
            .results(&Filter {
                verdict: Some("running".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].log.as_deref(), Some(log.to_str().unwrap()));
        h.finished(
            run,
            &l("//wheels:a"),
            "s390x",
            "cross",
            Some("k1"),
            Some("sha256:o"),
            "built",
            3000,
            None,
            None,
        )
        .unwrap();
        h.finished(
            run,
            &l("//wheels:b"),
            "s390x",
            "cross",
            Some("k2"),
            None,
            "failed",
            10,
            None,
            Some("boom"),
        )
        .unwrap();
        h.set_hints(run, &l("//wheels:b"), &["add a pack".into()])
            .unwrap();
        h.end_run(run, [1, 0, 1, 0, 0]).unwrap();
        let all = h
            .results(&Filter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        let a = all.iter().find(|r| r.label == "//wheels:a").unwrap();
        assert_eq!(a.verdict, "built");
        assert_eq!(
            a.log.as_deref(),
            Some(log.to_str().unwrap()),
            "the log of its start is kept"
        );
        let b = all.iter().find(|r| r.label == "//wheels:b").unwrap();
        assert_eq!(b.hints, ["add a pack"]);
        assert_eq!(b.error.as_deref(), Some("boom"));
        let r = h.run(run).unwrap().unwrap();
        assert_eq!((r.built, r.failed), (1, 1));
        assert!(r.finished_ms.is_some());
        let durations = h.durations().unwrap();
        assert_eq!(
            durations[&("s390x".to_string(), "//wheels:a".to_string())],
            3000
        );
    }

    /// Another process holds the write lock past the busy timeout: the
    /// history is busy, not damaged. It stays where it is, whole, and the
    /// run goes unrecorded; once the lock is gone, it opens as before.
    #[test]
    fn a_locked_database_is_waited_for_and_never_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        let (h, _) = History::open(d.path()).unwrap();
        let run = h
            .begin_run("build", Path::new("/ws"), "x86_64", "native")
            .unwrap();
        h.end_run(run, [1, 0, 0, 0, 0]).unwrap();
        drop(h);
        // An exclusive lock, as a rollback-journal writer or a VACUUM holds it.
        let other = Connection::open(History::path_in(d.path())).unwrap();
        other
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let e = History::open_waiting(d.path(), Duration::from_millis(300))
            .err()
            .expect("busy");
        assert!(matches!(e, HistoryError::Unusable { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("cannot be used now") && e.contains("left as it is"),
            "{e}"
        );
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("damaged")), "{names:?}");
        // Waited for: a lock released within the timeout is no failure.
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            other
                .execute_batch("COMMIT; PRAGMA locking_mode = NORMAL;")
                .unwrap();
            // The exclusive mode ends with the next read.
            let _: i64 = other
                .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
                .unwrap();
            drop(other);
        });
        let (h, note) = History::open_waiting(d.path(), Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        assert_eq!(note, None);
        assert_eq!(h.runs(5).unwrap().len(), 1, "nothing was lost");
    }

    /// A damaged database goes aside with its WAL (which may hold rows).
    #[test]
    fn a_damaged_database_goes_aside_with_its_wal() {
        let d = tempfile::tempdir().unwrap();
        let p = History::path_in(d.path());
        std::fs::write(&p, b"this is not a database, not at all").unwrap();
        std::fs::write(p.with_extension("sqlite-wal"), b"wal bytes").unwrap();
        let (_h, note) = History::open(d.path()).unwrap();
        assert!(note.unwrap().contains("damaged"));
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let wal = names
            .iter()
            .find(|n| n.contains("damaged") && n.ends_with("-wal"))
            .unwrap_or_else(|| panic!("{names:?}"));
        assert_eq!(std::fs::read(d.path().join(wal)).unwrap(), b"wal bytes");
    }

    /// A fix is recorded as applied, then settled by the rebuild; a
    /// version-3 database (before `fixes`) gains the table in place.
    #[test]
    fn fixes_are_recorded_settled_and_migrated_in() {
        let d = tempfile::tempdir().unwrap();
        let p = History::path_in(d.path());
        {
            let c = Connection::open(&p).unwrap();
            let v3 = &SCHEMA[..SCHEMA.find("CREATE TABLE IF NOT EXISTS fixes").unwrap()];
            c.execute_batch(v3).unwrap();
            c.execute_batch("PRAGMA user_version = 3;").unwrap();
        }
        let (h, note) = History::open(d.path()).unwrap();
        assert_eq!(note, None);
        let run = h
            .begin_run("build", Path::new("/ws"), "s390x", "cross")
            .unwrap();
        let id = h
            .record_fix(&NewFix {
                run,
                label: "//wheels:a",
                round: 1,
                import: "rules/imported/r.toml",
                edit: "build_requires += six",
                why: "the build imported six",
            })
            .unwrap();
        let rows = h.fixes("//wheels:a", 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].outcome.as_str(), rows[0].outcome_run),
            ("applied", None)
        );
        let again = h
            .begin_run("build", Path::new("/ws"), "s390x", "cross")
            .unwrap();
        h.settle_fix(id, "helped", Some(again)).unwrap();
        let rows = h.fixes("//wheels:a", 10).unwrap();
        assert_eq!(rows[0].outcome, "helped");
        assert_eq!(rows[0].outcome_run, Some(again));
        assert_eq!(rows[0].edit, "build_requires += six");
        assert!(h.fixes("//wheels:b", 10).unwrap().is_empty());
    }

    /// A history made by an older schema (today's without `line`, at
    /// `version`) holding one run of two built results, opened (migrated).
    fn with_two_results_at(dir: &Path, line: &str, version: i64) -> History {
        let p = History::path_in(dir);
        {
            let c = Connection::open(&p).unwrap();
            let old = SCHEMA.replace(line, "");
            assert_ne!(old, SCHEMA);
            c.execute_batch(&old).unwrap();
            c.execute_batch(&format!(
                "PRAGMA user_version = {version};
                 INSERT INTO runs (id, started_ms, command, workspace, arch, toolchain, owner) VALUES (1, 0, 'build', '/ws', 's390x', 'cross', 'x');
                 INSERT INTO results (run, label, arch, toolchain, verdict, started_ms, duration_ms) VALUES
                   (1, '//packs:zlib', 's390x', 'cross', 'built', 0, 5),
                   (1, '//wheels:a', 's390x', 'cross', 'built', 5, 7);"
            ))
            .unwrap();
        }
        History::open(dir).unwrap().0
    }

    /// A version-5 database (before results had `critical`) gains the
    /// column, its rows not on any path; a run marks its critical path.
    #[test]
    fn the_critical_path_column_is_migrated_and_marked() {
        let d = tempfile::tempdir().unwrap();
        let h = with_two_results_at(d.path(), "    critical INTEGER NOT NULL DEFAULT 0,\n", 5);
        let rows = |run| {
            h.results(&Filter {
                run: Some(run),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
        };
        assert!(rows(1).iter().all(|r| !r.critical));
        h.set_critical(1, &[l("//wheels:a")]).unwrap();
        let marked: Vec<(String, bool)> =
            rows(1).into_iter().map(|r| (r.label, r.critical)).collect();
        assert!(
            marked.contains(&("//wheels:a".to_string(), true)),
            "{marked:?}"
        );
        assert!(
            marked.contains(&("//packs:zlib".to_string(), false)),
            "{marked:?}"
        );
    }

    /// A version-6 database (before results had `worker`) gains the
    /// column, its rows built here; a remote build records its worker.
    #[test]
    fn the_worker_column_is_migrated_and_recorded() {
        let d = tempfile::tempdir().unwrap();
        let h = with_two_results_at(d.path(), "    worker TEXT,\n", 6);
        h.set_worker(1, &l("//wheels:a"), "w-s390x").unwrap();
        let rows: Vec<(String, Option<String>)> = h
            .results(&Filter {
                run: Some(1),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| (r.label, r.worker))
            .collect();
        assert!(
            rows.contains(&("//wheels:a".into(), Some("w-s390x".into()))),
            "{rows:?}"
        );
        assert!(rows.contains(&("//packs:zlib".into(), None)), "{rows:?}");
    }

    /// A version-4 database (before `deliverables`) gains the table, filled
    /// with each named target's newest good output.
    #[test]
    fn deliverables_are_migrated_from_the_results() {
        let d = tempfile::tempdir().unwrap();
        let p = History::path_in(d.path());
        {
            let c = Connection::open(&p).unwrap();
            let v4 = &SCHEMA[..SCHEMA
                .find("CREATE TABLE IF NOT EXISTS deliverables")
                .unwrap()];
            c.execute_batch(v4).unwrap();
            c.execute_batch("PRAGMA user_version = 4;").unwrap();
        }
        {
            // Rows written by a version-4 refine (the table is not there
            // yet for the recorder: written by hand).
            let c = Connection::open(&p).unwrap();
            c.execute_batch(
                "INSERT INTO runs (id, started_ms, command, workspace, arch, toolchain, owner) VALUES (1, 0, 'build', '/ws', 's390x', 'cross', 'x'), (2, 0, 'build', '/ws', 's390x', 'cross', 'x');
                 INSERT INTO results (run, label, arch, toolchain, key, output, verdict, started_ms, requested) VALUES
                   (1, '//wheels:a', 's390x', 'cross', 'k1', 'sha256:old', 'built', 0, 1),
                   (2, '//wheels:a', 's390x', 'cross', 'k2', 'sha256:new', 'hit:local', 0, 1),
                   (2, '//wheels:b', 's390x', 'cross', 'k3', 'sha256:b', 'built', 0, 0),
                   (2, '//wheels:c', 's390x', 'cross', 'k4', NULL, 'failed', 0, 1);",
            )
            .unwrap();
        }
        let (h, note) = History::open(d.path()).unwrap();
        assert_eq!(note, None);
        let got = h.deliverables().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[&("s390x".to_string(), "//wheels:a".to_string())],
            ("sha256:new".to_string(), 2)
        );
    }

    /// A history closed clean and untouched is not read page by page on
    /// the next open; one written behind its back (a byte changed, its
    /// mtime put back) is, and its damage sets it aside.
    #[test]
    fn the_clean_mark_vouches_only_for_files_left_as_they_were() {
        let d = tempfile::tempdir().unwrap();
        {
            let (h, _) = History::open(d.path()).unwrap();
            assert!(h.checked_now(), "no mark yet: checked");
            let run = h
                .begin_run("build", Path::new("/ws"), "s390x", "cross")
                .unwrap();
            for i in 0..3000 {
                h.finished(
                    run,
                    &l(&format!("//wheels:w{i}")),
                    "s390x",
                    "cross",
                    Some("k"),
                    Some("sha256:o"),
                    "built",
                    1,
                    None,
                    Some("a long error text to fill the pages of the table"),
                )
                .unwrap();
            }
        }
        let p = History::path_in(d.path());
        assert!(clean_mark(&p).exists());
        {
            let (h, _) = History::open(d.path()).unwrap();
            assert!(!h.checked_now(), "left clean: not checked again");
        }
        // Damage a page of the results in the middle of the file, with
        // size and mtime kept.
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.len() / 2;
        for b in &mut bytes[at..at + 4096] {
            *b = 0x5a;
        }
        std::fs::write(&p, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let (h, note) = History::open(d.path()).unwrap();
        assert!(h.checked_now());
        let note = note.expect("the damage is found and said");
        assert!(note.contains("damaged"), "{note}");
        assert!(h.runs(5).unwrap().is_empty(), "made anew");
        let aside = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .count();
        assert_eq!(aside, 1, "kept aside, not thrown away");
    }

    /// A version-2 database (before `interrupted`) is migrated in place.
    #[test]
    fn a_version_2_database_is_migrated_not_moved() {
        let d = tempfile::tempdir().unwrap();
        let p = History::path_in(d.path());
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(&SCHEMA.replace(",\n    interrupted INTEGER NOT NULL DEFAULT 0", ""))
                .unwrap();
            c.execute_batch("PRAGMA user_version = 2; INSERT INTO runs (started_ms, command, workspace, arch, toolchain, owner) VALUES (1, 'build', '/ws', 'x86_64', 'native', '1-1');").unwrap();
        }
        let (h, note) = History::open(d.path()).unwrap();
        assert_eq!(note, None);
        let runs = h.runs(5).unwrap();
        assert_eq!(runs.len(), 1);
        assert!(!runs[0].interrupted);
    }

    /// A run whose process is gone stays "running" no more.
    #[test]
    fn runs_of_dead_processes_are_marked_interrupted() {
        let d = tempfile::tempdir().unwrap();
        let (h, _) = History::open(d.path()).unwrap();
        let gone = "999999999-1";
        h.conn
            .execute(
                "INSERT INTO runs (started_ms, command, workspace, arch, toolchain, owner) VALUES (1000, 'build', '/ws', 'x86_64', 'native', ?1)",
                params![gone],
            )
            .unwrap();
        let dead = h.conn.last_insert_rowid();
        let label: Label = "//wheels:a".parse().unwrap();
        h.finished(
            dead, &label, "x86_64", "native", None, None, "built", 500, None, None,
        )
        .unwrap();
        let label_b: Label = "//wheels:b".parse().unwrap();
        h.started(dead, &label_b, "x86_64", "native", Path::new("/log"))
            .unwrap();
        let alive = h
            .begin_run("build", Path::new("/ws"), "x86_64", "native")
            .unwrap();
        assert_eq!(h.settle_dead_runs().unwrap(), 1);
        let r = h.run(dead).unwrap().unwrap();
        assert!(r.interrupted && r.finished_ms.is_some(), "{r:?}");
        assert_eq!((r.built, r.failed), (1, 1));
        let live = h.run(alive).unwrap().unwrap();
        assert!(
            !live.interrupted && live.finished_ms.is_none(),
            "this process's run is alive"
        );
        // Settled once.
        assert_eq!(h.settle_dead_runs().unwrap(), 0);
    }

    #[test]
    fn a_damaged_database_is_moved_aside_and_made_anew() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            History::path_in(d.path()),
            b"this is not a database, not at all",
        )
        .unwrap();
        let (h, note) = History::open(d.path()).unwrap();
        let note = note.expect("said");
        assert!(
            note.contains("damaged") && note.contains("made anew"),
            "{note}"
        );
        let aside: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .collect();
        assert_eq!(aside.len(), 1);
        h.begin_run("build", Path::new("/ws"), "x86_64", "native")
            .unwrap();
        assert_eq!(h.runs(5).unwrap().len(), 1);
    }

    #[test]
    fn two_connections_write_at_once() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = History::open(d.path()).unwrap();
        let (b, _) = History::open(d.path()).unwrap();
        let ra = a
            .begin_run("build", Path::new("/a"), "x86_64", "native")
            .unwrap();
        let rb = b
            .begin_run("build", Path::new("/b"), "x86_64", "native")
            .unwrap();
        let t = std::thread::spawn(move || {
            for i in 0..50 {
                a.finished(
                    ra,
                    &l(&format!("//wheels:a{i}")),
                    "x86_64",
                    "native",
                    None,
                    None,
                    "built",
                    1,
                    None,
                    None,
                )
                .unwrap();
            }
            a
        });
        for i in 0..50 {
            b.finished(
                rb,
                &l(&format!("//wheels:b{i}")),
                "x86_64",
                "native",
                None,
                None,
                "built",
                1,
                None,
                None,
            )
            .unwrap();
        }
        let a = t.join().unwrap();
        assert_eq!(
            a.results(&Filter {
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .len(),
            100
        );
    }
}
