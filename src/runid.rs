//! Which refine process owns something left on the machine: a container, a
//! staging directory in the store. A process is named by its pid and its
//! start time (in clock ticks since boot, from `/proc/<pid>/stat`), so a
//! pid reused by another process after a crash is not mistaken for the
//! owner.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunId {
    pub pid: u32,
    pub start: u64,
}

impl RunId {
    /// This process.
    pub fn current() -> RunId {
        static ME: OnceLock<RunId> = OnceLock::new();
        *ME.get_or_init(|| {
            let pid = std::process::id();
            RunId {
                pid,
                start: start_time(pid).unwrap_or(0),
            }
        })
    }

    /// Another running process.
    pub fn of(pid: u32) -> Option<RunId> {
        Some(RunId {
            pid,
            start: start_time(pid)?,
        })
    }

    /// Whether the process that made this id is still running.
    pub fn alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// `<pid>-<start>`: what labels and names carry.
    pub fn tag(self) -> String {
        format!("{}-{}", self.pid, self.start)
    }

    pub fn parse(tag: &str) -> Option<RunId> {
        let (pid, start) = tag.split_once('-')?;
        Some(RunId {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = RunId::current();
        assert!(me.start > 0);
        assert!(me.alive());
        assert_eq!(RunId::parse(&me.tag()), Some(me));
        let other = RunId {
            start: me.start + 1,
            ..me
        };
        assert!(!other.alive(), "same pid, other start: a reused pid");
        assert!(RunId::parse("12x-3").is_none());
    }
}
