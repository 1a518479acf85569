//! The one error type refine reports, its classes and exit codes.
//!
//! Every failure refine reports is an [`Error`]: a class (what kind of
//! problem, which exit code), a scope (this node's, or the whole run's),
//! a message, a `hint:` that says what to do, the places in workspace
//! files it is about ([`Location`]), and the chain of causes under it.
//!
//! | class | exit | examples |
//! |---|---|---|
//! | build | 1 | a recipe failed, a build timed out |
//! | user | 2 | a bad rule, a bad flag, a wrong sha256 pin |
//! | environment | 3 | podman or mmdebstrap missing, registry down, disk full |
//! | internal | 70 | a bug in refine |
//! | interrupted | 130 | SIGINT or SIGTERM during a build |
//!
//! This module is a leaf: it knows no other module of refine. Each module
//! with a typed error of its own (`StoreError`, `ExecError`,
//! `WorkspaceError`…) writes its `From<…> for Error` beside that type, and
//! decides there which class and scope its cases have. Exit codes are
//! mapped here and nowhere else ([`ErrorClass::exit_code`], [`Exit`]).

use std::fmt;

/// What kind of problem it is. When one run has failures of several
/// classes, the run reports the one of highest [`ErrorClass::rank`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    Build,
    User,
    Environment,
    Internal,
    Interrupted,
}

impl ErrorClass {
    /// Which class a run with failures of several classes reports, highest
    /// first, and why:
    ///
    /// 1. interrupted: the user stopped it; nothing else is the answer;
    /// 2. internal: a bug in refine makes every other verdict suspect;
    /// 3. environment: the host must be fixed before anything else can be
    ///    trusted (a full disk fails recipes too);
    /// 4. user: a bad rule or flag is fixed before a recipe is looked at;
    /// 5. build: a recipe failed.
    pub fn rank(self) -> u8 {
        match self {
            ErrorClass::Interrupted => 5,
            ErrorClass::Internal => 4,
            ErrorClass::Environment => 3,
            ErrorClass::User => 2,
            ErrorClass::Build => 1,
        }
    }

    /// The class a run with failures of `classes` reports (build when there
    /// are none to go by).
    pub fn worst(classes: impl IntoIterator<Item = ErrorClass>) -> ErrorClass {
        classes
            .into_iter()
            .max_by_key(|c| c.rank())
            .unwrap_or(ErrorClass::Build)
    }

    /// The process exit code of a command that ends with this class.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Build => 1,
            ErrorClass::User => 2,
            ErrorClass::Environment => 3,
            ErrorClass::Internal => 70,
            ErrorClass::Interrupted => 130,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Build => "build",
            ErrorClass::User => "user",
            ErrorClass::Environment => "environment",
            ErrorClass::Internal => "internal",
            ErrorClass::Interrupted => "interrupted",
        }
    }
}

/// How far a failure reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// This node (or this command) failed; the other nodes of a run with
    /// `--keep-going` go on.
    #[default]
    Node,
    /// Every other build would fail the same way (podman cannot start a
    /// container, the store's disk is full): the run stops at once, with
    /// or without `--keep-going`.
    Run,
}

/// A place in a workspace file an error is about, as the user counts:
/// 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// Workspace-relative path.
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// What is wrong there.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// An error on its way to the user. The same type carries a whole
/// command's failure and one node's failure in a run.
#[derive(Clone, Debug)]
pub struct Error {
    pub class: ErrorClass,
    pub scope: Scope,
    pub message: String,
    pub hint: Option<String>,
    /// The places in workspace files it is about (rule errors).
    pub locations: Vec<Location>,
    /// The same diagnostics rendered with their snippets, printed before
    /// the message.
    pub rendered: Option<String>,
    /// What lay under it, outermost first ("store I/O on …: No space left").
    pub causes: Vec<String>,
    /// The last lines of the build log, for build failures.
    pub log_tail: Option<String>,
}

impl Error {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            scope: Scope::Node,
            message: message.into(),
            hint: None,
            locations: Vec::new(),
            rendered: None,
            causes: Vec::new(),
            log_tail: None,
        }
    }

    pub fn user(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::User, message)
    }

    pub fn env(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Environment, message)
    }

    pub fn build(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Build, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Internal, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Every other build would meet it: stop the run.
    pub fn run_wide(mut self) -> Self {
        self.scope = Scope::Run;
        self
    }

    pub fn is_run_wide(&self) -> bool {
        self.scope == Scope::Run
    }

    /// Put `message` in front; what was the message becomes the first cause.
    pub fn context(mut self, message: impl Into<String>) -> Self {
        let inner = std::mem::replace(&mut self.message, message.into());
        self.causes.insert(0, inner);
        self
    }

    /// Add a cause below the ones already named.
    pub fn caused_by(mut self, cause: impl fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub const DISK_FULL_HINT: &str = "the disk is full: free space (`refine gc --max-size 20G`) or use a store on another disk (--store DIR)";

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            return Error::env(e.to_string()).hint(DISK_FULL_HINT).run_wide();
        }
        Error::env(e.to_string()).hint("check free space and permissions")
    }
}

/// ENOSPC and EDQUOT: a host problem, never the recipe's.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

/// How a command ends: the one place a verb's outcome becomes an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The command ran and reported failures of this class (a build with
    /// failed targets, checks that did not pass).
    Failed(ErrorClass),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failed(c) => c.exit_code(),
        }
    }

    /// Success when nothing failed, else the class given.
    pub fn unless(failed: bool, class: ErrorClass) -> Exit {
        if failed {
            Exit::Failed(class)
        } else {
            Exit::Success
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorClass; 5] = [
        ErrorClass::Build,
        ErrorClass::User,
        ErrorClass::Environment,
        ErrorClass::Internal,
        ErrorClass::Interrupted,
    ];

    #[test]
    fn the_ranking_is_the_documented_one() {
        let mut by_rank = ALL.to_vec();
        by_rank.sort_by_key(|c| std::cmp::Reverse(c.rank()));
        let names: Vec<&str> = by_rank.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            ["interrupted", "internal", "environment", "user", "build"]
        );
        assert_eq!(
            ErrorClass::worst([ErrorClass::Build, ErrorClass::Environment, ErrorClass::User]),
            ErrorClass::Environment
        );
        assert_eq!(
            ErrorClass::worst([ErrorClass::Internal, ErrorClass::Interrupted]),
            ErrorClass::Interrupted
        );
        assert_eq!(ErrorClass::worst([]), ErrorClass::Build);
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes: Vec<i32> = ALL.iter().map(|c| c.exit_code()).collect();
        assert_eq!(codes, [1, 2, 3, 70, 130]);
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::Failed(ErrorClass::User).code(), 2);
        assert_eq!(Exit::unless(false, ErrorClass::Build), Exit::Success);
    }

    #[test]
    fn a_full_disk_stops_the_run_and_context_keeps_the_cause() {
        let e = Error::from(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(e.is_run_wide());
        assert_eq!(e.class, ErrorClass::Environment);
        let other = Error::from(std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(!other.is_run_wide());
        let c = other.context("writing the log");
        assert_eq!(c.message, "writing the log");
        assert_eq!(c.causes.len(), 1);
        assert!(c.causes[0].contains("ermission"), "{:?}", c.causes);
    }
}
