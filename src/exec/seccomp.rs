//! The seccomp profile builds run under: podman's own default, less the
//! means to make a user namespace.
//!
//! Build code runs as an unprivileged uid with no capabilities, but the
//! kernel lets any process make a user namespace of its own, and inside it
//! be "root" again (`unshare -Ur`): every kernel bug reachable from a user
//! namespace is then reachable from build code. Like Docker's default
//! profile, builds get `clone`/`unshare` only without `CLONE_NEWUSER`, and
//! `clone3` answers ENOSYS (its flags are behind a pointer, which seccomp
//! cannot read; glibc and musl fall back to `clone`). A rule that needs
//! nested namespaces (a build that runs its own sandbox) says
//! `nested_userns = true` and runs under podman's default profile.
//!
//! The profile is derived, not written out here: podman's default
//! (`/usr/share/containers/seccomp.json`, from containers-common) is read,
//! the three calls are taken out of its unconditional allow list and
//! conditional rules are added; everything else stays podman's. The result
//! is written once per content under the store (`sandbox/seccomp-<hash>.json`).

use std::path::{Path, PathBuf};

/// podman's default seccomp profile, as Debian installs it.
pub const PODMAN_DEFAULT: &str = "/usr/share/containers/seccomp.json";
/// `CLONE_NEWUSER`.
const CLONE_NEWUSER: u64 = 0x1000_0000;
const EPERM: u64 = 1;
const ENOSYS: u64 = 38;

/// Podman's default profile with user namespaces refused (see the module
/// header), as JSON text; `None` if `default` is not a profile of the
/// expected shape.
pub fn without_userns(default: &str) -> Option<String> {
    let mut p: serde_json::Value = serde_json::from_str(default).ok()?;
    let calls = p.get_mut("syscalls")?.as_array_mut()?;
    let gated = ["clone", "clone3", "unshare"];
    let mut found = 0;
    for rule in calls.iter_mut() {
        let unconditional = rule.get("action").and_then(|a| a.as_str()) == Some("SCMP_ACT_ALLOW")
            && rule
                .get("args")
                .is_none_or(|a| a.as_array().is_some_and(|a| a.is_empty()))
            && rule
                .get("includes")
                .is_none_or(|a| a.as_object().is_some_and(|a| a.is_empty()));
        if !unconditional {
            continue;
        }
        if let Some(names) = rule.get_mut("names").and_then(|n| n.as_array_mut()) {
            let before = names.len();
            names.retain(|n| !n.as_str().is_some_and(|n| gated.contains(&n)));
            found += before - names.len();
        }
    }
    if found == 0 {
        return None;
    }
    let flags = |index: u64, eq: u64| serde_json::json!([{ "index": index, "value": CLONE_NEWUSER, "valueTwo": eq, "op": "SCMP_CMP_MASKED_EQ" }]);
    // On s390 the flags of clone are its second argument.
    let s390 = serde_json::json!({ "arches": ["s390", "s390x"] });
    let mut add = |names: &[&str], action: &str, errno: Option<u64>, args, includes, excludes| {
        let mut r = serde_json::json!({
            "names": names,
            "action": action,
            "args": args,
            "includes": includes,
            "excludes": excludes,
        });
        if let Some(e) = errno {
            r["errnoRet"] = e.into();
        }
        calls.push(r);
    };
    let none = serde_json::json!({});
    let no_args = serde_json::json!([]);
    add(
        &["unshare"],
        "SCMP_ACT_ALLOW",
        None,
        flags(0, 0),
        none.clone(),
        none.clone(),
    );
    add(
        &["unshare"],
        "SCMP_ACT_ERRNO",
        Some(EPERM),
        flags(0, CLONE_NEWUSER),
        none.clone(),
        none.clone(),
    );
    add(
        &["clone"],
        "SCMP_ACT_ALLOW",
        None,
        flags(0, 0),
        none.clone(),
        s390.clone(),
    );
    add(
        &["clone"],
        "SCMP_ACT_ERRNO",
        Some(EPERM),
        flags(0, CLONE_NEWUSER),
        none.clone(),
        s390.clone(),
    );
    add(
        &["clone"],
        "SCMP_ACT_ALLOW",
        None,
        flags(1, 0),
        s390.clone(),
        none.clone(),
    );
    add(
        &["clone"],
        "SCMP_ACT_ERRNO",
        Some(EPERM),
        flags(1, CLONE_NEWUSER),
        s390,
        none.clone(),
    );
    add(
        &["clone3"],
        "SCMP_ACT_ERRNO",
        Some(ENOSYS),
        no_args,
        none.clone(),
        none,
    );
    serde_json::to_string_pretty(&p).ok()
}

/// The derived profile, written under `dir` (once per content, derived
/// once per process); an error says what is missing and how to get it.
pub fn profile_in(dir: &Path) -> Result<PathBuf, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static MADE: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    if let Some(p) = made.lock().unwrap_or_else(|e| e.into_inner()).get(dir)
        && p.is_file()
    {
        return Ok(p.clone());
    }
    let p = derive_into(dir)?;
    made.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dir.to_path_buf(), p.clone());
    Ok(p)
}

fn derive_into(dir: &Path) -> Result<PathBuf, String> {
    let default = std::fs::read_to_string(PODMAN_DEFAULT).map_err(|e| {
        format!("cannot read podman's default seccomp profile {PODMAN_DEFAULT}: {e}")
    })?;
    let text = without_userns(&default).ok_or_else(|| {
        format!("{PODMAN_DEFAULT} is not a seccomp profile refine can derive its own from")
    })?;
    let hash = blake3::hash(text.as_bytes()).to_hex();
    let path = dir.join(format!("seccomp-{}.json", &hash[..16]));
    if !path.is_file() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        crate::store::local::write_atomic(dir, &path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// What fixes a missing default profile.
pub const FIX: &str = "apt-get install golang-github-containers-common";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_profile_gates_user_namespaces_and_keeps_the_rest() {
        let default = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","clone","clone3","unshare","write"],"action":"SCMP_ACT_ALLOW","args":[],"includes":{},"excludes":{}},
            {"names":["setns"],"action":"SCMP_ACT_ALLOW","args":[],"includes":{"caps":["CAP_SYS_ADMIN"]},"excludes":{}}
        ]}"#;
        let out: serde_json::Value =
            serde_json::from_str(&without_userns(default).unwrap()).unwrap();
        let calls = out["syscalls"].as_array().unwrap();
        assert_eq!(calls[0]["names"], serde_json::json!(["read", "write"]));
        assert_eq!(
            calls[1]["names"],
            serde_json::json!(["setns"]),
            "conditional rules stay"
        );
        let rules_for = |n: &str| -> Vec<&serde_json::Value> {
            calls
                .iter()
                .filter(|r| r["names"].as_array().unwrap().iter().any(|x| x == n))
                .collect()
        };
        let unshare = rules_for("unshare");
        assert_eq!(unshare.len(), 2);
        assert!(
            unshare
                .iter()
                .all(|r| r["args"][0]["value"] == CLONE_NEWUSER)
        );
        assert!(
            unshare
                .iter()
                .any(|r| r["action"] == "SCMP_ACT_ERRNO" && r["errnoRet"] == 1)
        );
        assert_eq!(rules_for("clone").len(), 4, "both argument orders");
        assert_eq!(rules_for("clone3")[0]["errnoRet"], 38);
        assert!(without_userns("{}").is_none());
        assert!(without_userns(r#"{"syscalls":[]}"#).is_none());
    }

    /// The profile podman really has on this machine derives.
    #[test]
    fn podmans_own_default_derives() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_in(d.path()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("SCMP_CMP_MASKED_EQ"));
        assert_eq!(profile_in(d.path()).unwrap(), p, "one file per content");
    }
}
