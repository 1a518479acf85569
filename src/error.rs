//! Error classes and exit codes.
//!
//! Every failure refine reports is one of four classes, each with its own
//! exit code and a `hint:` that says what to do:
//!
//! | class | exit | examples |
//! |---|---|---|
//! | build | 1 | a recipe failed, a build timed out |
//! | user | 2 | a bad rule, a bad flag, a wrong sha256 pin |
//! | environment | 3 | podman or mmdebstrap missing, registry down, disk full |
//! | internal | 70 | a bug in refine |
//! | interrupted | 130 | SIGINT or SIGTERM during a build |

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    Build,
    User,
    Environment,
    Internal,
    Interrupted,
}

impl ErrorClass {
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

/// An error on its way to the user: a class, a message, a hint. The same
/// type carries a whole command's failure and one node's failure in a run.
#[derive(Clone, Debug)]
pub struct Error {
    pub class: ErrorClass,
    pub message: String,
    pub hint: Option<String>,
    /// Already rendered diagnostics (rule errors) printed before the message.
    pub rendered: Option<String>,
    /// The last lines of the build log, for build failures.
    pub log_tail: Option<String>,
}

impl Error {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            message: message.into(),
            hint: None,
            rendered: None,
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match &e {
            StoreError::Version { .. } => Error::env(e.to_string())
                .hint("use another store (--store DIR) or remove this one"),
            StoreError::Corrupt { .. } | StoreError::Missing(_) => {
                Error::env(format!("an entry in the store is damaged: {e}")).hint(
                    "the damaged entry was removed; run the build again to rebuild it",
                )
            }
            StoreError::Io { source, .. } if is_disk_full(source) => Error::env(e.to_string())
                .hint(
                    "the disk is full: free space (`refine gc --max-size 20G`) or use a store on another disk (--store DIR)",
                ),
            StoreError::Io { .. } => Error::env(e.to_string()).hint(
                "check free space and permissions of the store directory (--store, REFINE_STORE)",
            ),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let hint = if is_disk_full(&e) {
            "the disk is full: free space (`refine gc --max-size 20G`) or use a store on another disk (--store DIR)"
        } else {
            "check free space and permissions"
        };
        Error::env(e.to_string()).hint(hint)
    }
}

/// ENOSPC and EDQUOT: a host problem, never the recipe's.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

impl From<crate::exec::ExecError> for Error {
    fn from(e: crate::exec::ExecError) -> Self {
        let hint = e.hint();
        Error::env(e.to_string()).hint(hint)
    }
}

impl From<crate::workspace::WorkspaceError> for Error {
    fn from(e: crate::workspace::WorkspaceError) -> Self {
        let hint = e.hint();
        Error::user(e.to_string()).hint(hint)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
