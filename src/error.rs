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

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    Build,
    User,
    Environment,
    Internal,
}

impl ErrorClass {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Build => 1,
            ErrorClass::User => 2,
            ErrorClass::Environment => 3,
            ErrorClass::Internal => 70,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Build => "build",
            ErrorClass::User => "user",
            ErrorClass::Environment => "environment",
            ErrorClass::Internal => "internal",
        }
    }
}

/// An error on its way to the user: a class, a message, a hint.
#[derive(Clone, Debug)]
pub struct Error {
    pub class: ErrorClass,
    pub message: String,
    pub hint: Option<String>,
    /// Already rendered diagnostics (rule errors) printed before the message.
    pub rendered: Option<String>,
}

impl Error {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            message: message.into(),
            hint: None,
            rendered: None,
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
        let hint = match &e {
            crate::store::StoreError::Version { .. } => {
                "use another store (--store DIR) or remove this one"
            }
            _ => "check free space and permissions of the store directory (--store, REFINE_STORE)",
        };
        Error::env(e.to_string()).hint(hint)
    }
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
