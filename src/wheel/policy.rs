//! What a repaired wheel's platform tags stand on: the report the repair
//! recipe writes beside each wheel (`<wheel>.policy.json`), from
//! auditwheel's own analysis of the repaired wheel.
//!
//! `auditwheel repair --plat P` tags a wheel that needed grafting with P
//! alone, even when its symbols allow older policies; the repair recipe
//! adds the tags of the oldest policy the repaired wheel meets, and says
//! which versioned symbols (or libraries) kept it from the next older one.
//! The manifest, the provenance and `refine history` carry it. The report
//! is build output, so it is checked like any: a bounded size, the shape
//! below, and the name of a wheel that is really there.

use serde::{Deserialize, Serialize};

/// A report's name ends so: `<wheel file name>.policy.json`.
pub const REPORT_SUFFIX: &str = ".policy.json";
/// The most a report may hold.
pub const MAX_REPORT: usize = 64 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyReport {
    /// The wheel's file name.
    pub wheel: String,
    /// The oldest policy the repaired wheel meets (`manylinux_2_17_s390x`).
    pub policy: String,
    /// The tags that policy gave the wheel (its name and aliases).
    pub tags: Vec<String>,
    /// The next older policy, if there is one.
    pub older: Option<String>,
    /// What kept the wheel from `older`: `libc.so.6: GLIBC_2.34`, or a
    /// library that policy does not provide.
    pub limited_by: Vec<String>,
}

/// Parse a report a build wrote for `wheel`, checking what it claims.
pub fn parse(bytes: &[u8], wheel: &str) -> Result<PolicyReport, String> {
    if bytes.len() > MAX_REPORT {
        return Err(format!("more than {MAX_REPORT} bytes"));
    }
    let r: PolicyReport = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if r.wheel != wheel {
        return Err(format!("it names {}, not {wheel}", r.wheel));
    }
    let plain = |s: &str| {
        !s.is_empty() && s.len() <= 200 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !plain(&r.policy) || !r.tags.iter().all(|t| plain(t)) {
        return Err("a policy or tag that is not a platform tag".into());
    }
    if !r.tags.contains(&r.policy) {
        return Err(format!("its tags do not include {}", r.policy));
    }
    if let Some((_, _, _, _, plat)) = super::parse_filename(wheel)
        && !r.tags.iter().all(|t| plat.split('.').any(|p| p == t))
    {
        return Err(format!("{wheel} does not carry the tags it reports"));
    }
    Ok(r)
}

/// One line for people: what the wheel meets and why not older.
pub fn describe(r: &PolicyReport) -> String {
    match (&r.older, r.limited_by.is_empty()) {
        (Some(o), false) => format!("meets {}; not {o}: {}", r.policy, r.limited_by.join(", ")),
        (None, _) => format!("meets {} (the oldest there is)", r.policy),
        (Some(_), true) => format!("meets {}", r.policy),
    }
}

/// The systems IBM Z users run, with their glibc, oldest first: what a
/// floor means to them. (Each is the release's own glibc, as its
/// packages list it.)
pub const SYSTEMS: &[(&str, (u32, u32))] = &[
    ("RHEL 7", (2, 17)),
    ("SLES 12 SP5", (2, 22)),
    ("Ubuntu 18.04", (2, 27)),
    ("RHEL 8", (2, 28)),
    ("SLES 15 SP3+", (2, 31)),
    ("Ubuntu 20.04", (2, 31)),
    ("Debian 11", (2, 31)),
    ("RHEL 9", (2, 34)),
    ("Ubuntu 22.04", (2, 35)),
    ("Debian 12", (2, 36)),
    ("Ubuntu 24.04", (2, 39)),
    ("RHEL 10", (2, 39)),
];

/// The systems of [`SYSTEMS`] whose glibc is `floor` or newer.
pub fn systems(floor: (u32, u32)) -> Vec<&'static str> {
    SYSTEMS
        .iter()
        .filter(|(_, g)| *g >= floor)
        .map(|(n, _)| *n)
        .collect()
}

/// The oldest glibc a wheel file's platform tags install on: None for a
/// pure wheel (anywhere), and for a wheel with no manylinux tag (a
/// `linux_*` one installs nowhere but where it was built: Some of a glibc
/// no system has).
pub fn wheel_floor(file: &str) -> Option<(u32, u32)> {
    let (_, _, _, _, plat) = super::parse_filename(file)?;
    if plat.split('.').any(|p| p == "any") {
        return None;
    }
    plat.split('.')
        .filter_map(|t| {
            let (policy, _arch) = t.rsplit_once('_')?;
            // `manylinux_2_17_s390x` splits at the last `_`; an arch with
            // one (`x86_64`) needs one more.
            crate::platform::policy_glibc(policy).or_else(|| {
                let (policy, _) = policy.rsplit_once('_')?;
                crate::platform::policy_glibc(policy)
            })
        })
        .min()
        .or(Some((u32::MAX, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_of_wheel_files_and_who_they_reach() {
        assert_eq!(wheel_floor("six-1.16.0-py2.py3-none-any.whl"), None);
        assert_eq!(
            wheel_floor("a-1-cp311-cp311-manylinux_2_28_x86_64.manylinux_2_17_x86_64.whl"),
            Some((2, 17))
        );
        assert_eq!(
            wheel_floor("a-1-cp311-cp311-manylinux_2_34_s390x.whl"),
            Some((2, 34))
        );
        assert_eq!(
            wheel_floor("a-1-cp311-cp311-linux_s390x.whl"),
            Some((u32::MAX, 0))
        );
        assert_eq!(systems((2, 17)).len(), SYSTEMS.len());
        assert_eq!(systems((2, 34))[0], "RHEL 9");
        assert!(systems((u32::MAX, 0)).is_empty());
    }

    const WHEEL: &str = "PyYAML-6.0.1-cp311-cp311-manylinux_2_36_s390x.manylinux_2_17_s390x.manylinux2014_s390x.whl";

    fn report(wheel: &str) -> String {
        format!(
            r#"{{"wheel": "{wheel}", "policy": "manylinux_2_17_s390x", "tags": ["manylinux_2_17_s390x", "manylinux2014_s390x"], "older": null, "limited_by": []}}"#
        )
    }

    #[test]
    fn reports_are_checked_against_the_wheel() {
        let r = parse(report(WHEEL).as_bytes(), WHEEL).unwrap();
        assert_eq!(r.policy, "manylinux_2_17_s390x");
        assert_eq!(
            describe(&r),
            "meets manylinux_2_17_s390x (the oldest there is)"
        );
        // Another wheel's report, or tags the file name lacks.
        assert!(parse(report(WHEEL).as_bytes(), "x-1-cp311-cp311-linux_s390x.whl").is_err());
        let lying = "PyYAML-6.0.1-cp311-cp311-manylinux_2_36_s390x.whl";
        assert!(
            parse(report(lying).as_bytes(), lying)
                .unwrap_err()
                .contains("does not carry")
        );
        assert!(parse(b"{}", WHEEL).is_err());
        assert!(parse(&vec![b' '; MAX_REPORT + 1], WHEEL).is_err());
        let bad = report(WHEEL).replace("manylinux2014_s390x", "../../etc");
        assert!(parse(bad.as_bytes(), WHEEL).is_err());
        let why = PolicyReport {
            older: Some("manylinux_2_35_s390x".into()),
            limited_by: vec!["libc.so.6: GLIBC_2.36".into()],
            ..r
        };
        assert_eq!(
            describe(&why),
            "meets manylinux_2_17_s390x; not manylinux_2_35_s390x: libc.so.6: GLIBC_2.36"
        );
    }
}
