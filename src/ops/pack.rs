//! `refine pack new NAME --debian SRC`: a pack rule and its recipe for a C
//! library the catalog lacks, from Debian's source package, in the shape
//! of the shipped packs (packs/*.toml, recipes/packs/*.sh).
//!
//! apt picks the version (the one it would install, or `--version`),
//! downloads the source package with its `.dsc` (checked by apt against
//! the signed lists) and refine checks each file against the `.dsc`; the
//! upstream tarball is pinned by its sha256 and put in the store, so the
//! first build does not download it again. How the library builds is read
//! from the tarball's top directory: `configure` (autoconf), else
//! `CMakeLists.txt` (CMake, in the image that has it), else a `Makefile`
//! (plain make with PREFIX; in `lib/` when the library has a Makefile of
//! its own there, as lz4's and zstd's do), else a `configure.ac` without
//! its generated `configure` (a git snapshot, as some of Debian's upstream
//! tarballs are: `autoreconf -fi` first, in the image that has autoconf,
//! automake and libtool); each is one helper (recipes/lib/pack.sh's
//! pack_autoconf, recipes/lib/shapes.sh's pack_cmake, pack_make and
//! pack_autoreconf), as the hand-written recipes use. A source with none of them (meson only,
//! or something stranger) is refused with what to write instead: a recipe
//! that guesses is worse than none.
//!
//! Nothing is half-written: the files are checked to be new first and
//! written whole (rename into place); the rule is evaluated with the
//! workspace before anything is written.

use super::Session;
use crate::error::{Error, Result};
use crate::fetch::SourcePackage;
use crate::rules::{Kind, Label};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a library's source builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// `./configure && make && make install` (pack_autoconf).
    Autotools,
    /// `cmake` with ninja (pack_cmake), in //images:bookworm-sci.
    Cmake,
    /// A plain Makefile that takes PREFIX and DESTDIR (pack_make).
    Make,
    /// `autoreconf -fi`, then as autotools (pack_autoreconf), in
    /// //images:bookworm-sci: a configure.ac whose configure is not made.
    Autoreconf,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Autotools => "autotools",
            Shape::Cmake => "cmake",
            Shape::Make => "make",
            Shape::Autoreconf => "autoreconf",
        }
    }

    fn helper(self) -> &'static str {
        match self {
            Shape::Autotools => "pack_autoconf",
            Shape::Cmake => "pack_cmake",
            Shape::Make => "pack_make",
            Shape::Autoreconf => "pack_autoreconf",
        }
    }

    /// The image the recipe runs in, if not the workspace's default.
    fn image(self) -> Option<&'static str> {
        match self {
            Shape::Cmake | Shape::Autoreconf => Some("//images:bookworm-sci"),
            _ => None,
        }
    }

    /// Extra arguments of the helper for a source with these paths: a
    /// Makefile in `lib/` builds the library alone (the top one builds
    /// programs too).
    fn args(self, paths: &[String]) -> &'static str {
        let lib_makefile = paths.iter().any(|p| {
            let parts: Vec<&str> = p.trim_start_matches("./").split('/').collect();
            matches!(parts.as_slice(), [_, "lib", "Makefile"])
        });
        match self {
            Shape::Make if lib_makefile => " -C lib",
            _ => "",
        }
    }

    /// The shape of a source from the paths in its tarball.
    pub fn detect(paths: &[String]) -> std::result::Result<Shape, String> {
        // Names directly under the single top directory (or at the top).
        let top: Vec<&str> = paths
            .iter()
            .filter_map(|p| {
                let p = p.trim_start_matches("./");
                let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
                match parts.as_slice() {
                    [_, name] => Some(*name),
                    [name] => Some(*name),
                    _ => None,
                }
            })
            .collect();
        let has = |n: &str| top.contains(&n);
        if has("configure") {
            Ok(Shape::Autotools)
        } else if has("CMakeLists.txt") {
            Ok(Shape::Cmake)
        } else if has("Makefile") || has("GNUmakefile") || has("makefile") {
            Ok(Shape::Make)
        } else if has("meson.build") {
            Err("it builds with meson only, which the builder images do not have".into())
        } else if has("configure.ac") || has("configure.in") {
            Ok(Shape::Autoreconf)
        } else {
            Err("its top directory has no configure, CMakeLists.txt or Makefile".into())
        }
    }
}

pub struct NewPack {
    pub name: String,
    /// The Debian source package.
    pub debian: String,
    /// Its exact Debian version (default: the one apt would pick).
    pub version: Option<String>,
    /// Another suite of the machine's mirror than its release (`trixie`),
    /// for a library newer than the release has.
    pub suite: Option<String>,
    pub shape: Option<Shape>,
    /// C headers the pack provides, for the hint catalog.
    pub headers: Vec<String>,
    /// Packs it links (`//packs:zlib`).
    pub deps: Vec<String>,
}

pub struct Written {
    pub label: Label,
    pub files: Vec<PathBuf>,
    pub source: SourcePackage,
    pub tarball: String,
    pub shape: Shape,
    pub upstream_version: String,
}

/// Debian's version without epoch, revision or repack suffix:
/// `1:1.2.13.dfsg-1` → `1.2.13`, `2.1.5-2` → `2.1.5`, `0.3.21+ds-4` → `0.3.21`.
pub fn upstream_version(debian: &str) -> String {
    let v = debian.split_once(':').map_or(debian, |(_, v)| v);
    let v = v.rsplit_once('-').map_or(v, |(v, _)| v);
    let v = v.split(['+', '~']).next().unwrap_or(v);
    let v = [".dfsg", ".ds", ".orig"]
        .iter()
        .find_map(|s| v.find(s).map(|i| &v[..i]))
        .unwrap_or(v);
    v.to_string()
}

/// A pack name for a Debian source package: a version that ends the
/// name after a dot or a dash goes (`libpng1.6` → `libpng`, `postgresql-15`
/// → `postgresql`, `glib2.0` → `glib`); a bare digit stays (`lz4`, `pcre2`).
pub fn pack_name_for(source: &str) -> String {
    let stripped = source.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let tail = &source[stripped.len()..];
    let name = if tail.contains('.') {
        stripped
    } else if let Some(n) = stripped.strip_suffix('-')
        && !tail.is_empty()
    {
        n
    } else {
        source
    };
    if name.len() >= 2 { name } else { source }.to_string()
}

fn rel_paths(name: &str) -> (String, String) {
    (
        format!("packs/{name}.toml"),
        format!("recipes/packs/{name}.sh"),
    )
}

/// Check that nothing stands in the way, before any download.
fn check_new(s: &Session, a: &NewPack) -> Result<Label> {
    if !crate::rules::label::valid_name(&a.name) {
        return Err(
            Error::user(format!("`{}` is not a valid target name", a.name)).hint(
                "names start with a letter or digit and hold letters, digits, '.', '_', '-', '+'",
            ),
        );
    }
    if let Some(suite) = a
        .suite
        .as_deref()
        .filter(|s| !crate::rules::lower::suite_name(s))
    {
        return Err(
            Error::user(format!("--suite {suite}: not a Debian suite's name"))
                .hint("name a suite of the machine's mirror, e.g. `--suite trixie`"),
        );
    }
    let label: Label = format!("//packs:{}", a.name)
        .parse()
        .map_err(|e| Error::user(format!("{e}")))?;
    if let Some(n) = s.all().get(&label) {
        let origin = s.origin(&label).unwrap_or_default();
        let builtin = n.decl().file.starts_with("builtin:");
        return Err(
            Error::user(format!("{label} is already declared ({origin})")).hint(if builtin {
                format!(
                    "{label} is one of refine's built-in packs: use it as it is (`packs = [\"{label}\"]`), or give yours another name (e.g. `{}-{}`)",
                    a.name,
                    a.version.as_deref().map(upstream_version).unwrap_or_else(|| "new".into())
                )
            } else {
                "edit that rule, or give the new pack another name".into()
            }),
        );
    }
    let (toml, sh) = rel_paths(&a.name);
    for f in [&toml, &sh] {
        if s.root.join(f).exists() {
            return Err(Error::user(format!("{f} already exists in the workspace"))
                .hint("refine pack new writes only new files: remove it or pick another name"));
        }
    }
    for d in &a.deps {
        let l: Label = d.parse().map_err(|e| {
            Error::user(format!("--deps {d}: {e}")).hint("name a pack: //packs:zlib")
        })?;
        if l.kind != Kind::Pack || s.all().get(&l).is_none() {
            return Err(Error::user(format!("--deps {d}: no such pack"))
                .hint("`refine query 'kind(pack, //packs:...)'` lists the workspace's packs; built-in ones are //packs:zlib, //packs:openssl…"));
        }
    }
    for h in &a.headers {
        if h.is_empty() || h.contains(['"', '\\', '\n']) || h.starts_with('/') {
            return Err(Error::user(format!("--header `{h}` is not a header path"))
                .hint("as the compiler names it: --header lz4.h, --header libxml/parser.h"));
        }
    }
    Ok(label)
}

/// The paths in a tarball, by the host's tar (which reads every
/// compression Debian uses).
fn list_tarball(path: &Path) -> Result<Vec<String>> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(path)
        .output()
        .map_err(|e| Error::env(format!("cannot run tar: {e}")).hint("apt-get install tar"))?;
    if !out.status.success() {
        return Err(Error::user(format!(
            "{} is not a tarball tar can read: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("pass --version with another Debian version of the package"));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn rule_text(
    a: &NewPack,
    sp: &SourcePackage,
    tarball: &(String, String),
    shape: Shape,
    upstream: &str,
) -> String {
    let mut t = format!(
        "# {name} {upstream}, from Debian's source package {src} (written by\n# `refine pack new {name} --debian {src}{suite_flag}`): the usual {shape} build,\n# recipes/packs/{name}.sh. Check what it installs (`refine build\n# //packs:{name}`, then `refine log //packs:{name}`) and give the recipe\n# the options the library needs.\n[packs.{name}]\nversion = \"{upstream}\"\nsource = {{ debian = \"{src}={version}\",{suite} file = \"{file}\", sha256 = \"{sha}\" }}\nrecipe = \"recipes/packs/{name}.sh\"\nincludes = [\"recipes/lib/common.sh\", \"recipes/lib/pack.sh\", \"recipes/lib/shapes.sh\"]\n",
        name = a.name,
        src = sp.package,
        version = sp.version,
        suite = a
            .suite
            .as_deref()
            .map(|s| format!(" suite = \"{s}\","))
            .unwrap_or_default(),
        suite_flag = a
            .suite
            .as_deref()
            .map(|s| format!(" --suite {s}"))
            .unwrap_or_default(),
        file = tarball.0,
        sha = tarball.1,
        shape = shape.as_str(),
    );
    if !a.deps.is_empty() {
        let deps: Vec<String> = a.deps.iter().map(|d| format!("\"{d}\"")).collect();
        t.push_str(&format!("deps = [{}]\n", deps.join(", ")));
    }
    if let Some(image) = shape.image() {
        let why = match shape {
            Shape::Autoreconf => "the image with autoconf, automake and libtool",
            _ => "the image with cmake",
        };
        t.push_str(&format!("image = \"{image}\"  # {why}\n"));
    }
    if !a.headers.is_empty() {
        t.push_str(
            "\n# The headers it provides, for the hint catalog: a build that misses\n# one is told to add this pack (and `--auto-apply` adds it).\n[headers]\n",
        );
        for h in &a.headers {
            t.push_str(&format!("\"{h}\" = \"//packs:{}\"\n", a.name));
        }
    }
    t
}

fn recipe_text(a: &NewPack, sp: &SourcePackage, tarball: &str, shape: Shape, args: &str) -> String {
    // The file by pattern, as the shipped recipes do: a new Debian
    // version needs only the rule's pin changed.
    let pattern = if tarball.contains(".orig.tar.") {
        format!("{}_*.orig.tar.*", sp.package)
    } else {
        format!("{}_*.tar.*", sp.package)
    };
    format!(
        "#!/bin/sh\n# {name}: from Debian's source package {src} (written by `refine pack\n# new`): built with {shape} by the helper of recipes/lib/pack.sh or\n# shapes.sh; arguments after it go to {what}.\nset -eu\n. \"$REFINE_WS/recipes/lib/pack.sh\"\n. \"$REFINE_WS/recipes/lib/shapes.sh\"\ncd \"$(unpack \"$(source_file '{pattern}')\")\"\n{helper}{args}\n",
        name = a.name,
        src = sp.package,
        shape = shape.as_str(),
        helper = shape.helper(),
        what = match shape {
            Shape::Autotools | Shape::Autoreconf => "./configure",
            Shape::Cmake => "cmake's configure step",
            Shape::Make => "both make runs",
        },
    )
}

/// Write `text` to `rel` under `root` whole, or not at all (never over a
/// file).
fn write_new(root: &Path, rel: &str, text: &str) -> Result<PathBuf> {
    let path = root.join(rel);
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist_noclobber(&path)
        .map_err(|e| Error::user(format!("cannot write {rel}: {}", e.error)))?;
    Ok(path)
}

pub fn new_pack(s: &Session, opts: &super::GlobalOpts, a: &NewPack) -> Result<Written> {
    let label = check_new(s, a)?;
    let store = s.open_store()?;
    let tmp = store.tmp_dir()?;
    let log_path = tmp.path().join("apt.log");
    let mut log = std::fs::File::create(&log_path)?;
    let dl = tmp.path().join("src");
    let sp = crate::fetch::download_debian_package(
        &a.debian,
        a.version.as_deref(),
        a.suite.as_deref(),
        &store,
        &dl,
        &mut log,
    )
    .map_err(|e| {
        // What apt said: its errors and warnings, else the log's end.
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let mut said: Vec<&str> = Vec::new();
        for l in text.lines() {
            if (l.starts_with("E: ") || l.starts_with("W: ")) && !said.contains(&l) {
                said.push(l);
            }
        }
        let tail: Vec<&str> = if said.is_empty() {
            text.lines().rev().take(3).collect()
        } else {
            said.into_iter().rev().take(5).collect()
        };
        let class = if e.is_user_error() {
            crate::error::ErrorClass::User
        } else {
            crate::error::ErrorClass::Environment
        };
        let mut err = Error::new(class, format!("--debian {}: {e}", a.debian)).hint(e.hint());
        for l in tail.into_iter().rev() {
            err = err.caused_by(l);
        }
        err
    })?;
    let tarball = sp.tarball().cloned().ok_or_else(|| {
        Error::user(format!(
            "Debian's {} {} has no upstream tarball (its files: {})",
            sp.package,
            sp.version,
            sp.files
                .iter()
                .map(|f| f.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint("write the pack by hand with a `url` source (docs/RULES.md)")
    })?;
    let path = sp.dir.join(&tarball.0);
    let paths = list_tarball(&path)?;
    let shape = match a.shape {
        Some(sh) => sh,
        None => Shape::detect(&paths).map_err(|why| {
            Error::user(format!("cannot tell how {} builds: {why}", tarball.0)).hint(format!(
                "pass --shape autotools|cmake|make|autoreconf if one of them fits, or write recipes/packs/{}.sh by hand (docs/RULES.md, \"Recipes\")",
                a.name
            ))
        })?,
    };
    let upstream = upstream_version(&sp.version);
    let rule = rule_text(a, &sp, &tarball, shape, &upstream);
    let recipe = recipe_text(a, &sp, &tarball.0, shape, shape.args(&paths));
    // The tarball into the store, under its pin: the first build's fetch
    // finds it there.
    let pin = crate::key::Digest::parse(&format!("sha256:{}", tarball.1))
        .or_else(|_| crate::key::Digest::parse(&tarball.1))
        .map_err(|e| Error::internal(format!("the .dsc's sha256 of {}: {e}", tarball.0)))?;
    store
        .cas
        .put_reader(std::fs::File::open(&path)?, Some(&pin))?;
    store.actions.set_source_name(&pin, &tarball.0)?;
    let (toml, sh) = rel_paths(&a.name);
    let recipe_path = write_new(&s.root, &sh, &recipe)?;
    let rule_path = match write_new(&s.root, &toml, &rule) {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&recipe_path);
            return Err(e);
        }
    };
    // The workspace must evaluate with them; if not, nothing is kept.
    if let Err(e) = Session::load(opts) {
        let _ = std::fs::remove_file(&rule_path);
        let _ = std::fs::remove_file(&recipe_path);
        let mut err = Error::internal(format!(
            "the pack rule refine wrote for {label} does not evaluate: {}",
            e.message
        ))
        .hint("nothing was kept; please report this with the command line");
        err.rendered = e.rendered;
        err.locations = e.locations;
        return Err(err);
    }
    let files = vec![recipe_path, rule_path];
    Ok(Written {
        label,
        files,
        source: sp,
        tarball: tarball.0,
        shape,
        upstream_version: upstream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions_lose_epoch_revision_and_repack() {
        assert_eq!(upstream_version("1:1.2.13.dfsg-1"), "1.2.13");
        assert_eq!(upstream_version("0.3.21+ds-4"), "0.3.21");
        assert_eq!(upstream_version("1.9.4-1"), "1.9.4");
        assert_eq!(upstream_version("2.9.14+dfsg-1.3~deb12u6"), "2.9.14");
        assert_eq!(upstream_version("1.6.39-2"), "1.6.39");
        assert_eq!(upstream_version("3.0"), "3.0");
    }

    #[test]
    fn pack_names_drop_the_sonames_version() {
        assert_eq!(pack_name_for("libpng1.6"), "libpng");
        assert_eq!(pack_name_for("postgresql-15"), "postgresql");
        assert_eq!(pack_name_for("lz4"), "lz4");
        assert_eq!(pack_name_for("libjpeg-turbo"), "libjpeg-turbo");
        assert_eq!(pack_name_for("libzstd"), "libzstd");
        assert_eq!(pack_name_for("zeromq3"), "zeromq3");
        assert_eq!(pack_name_for("glib2.0"), "glib");
    }

    #[test]
    fn the_shape_is_read_from_the_top_directory() {
        let t = |ps: &[&str]| Shape::detect(&ps.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            t(&["x-1/", "x-1/configure", "x-1/CMakeLists.txt"]),
            Ok(Shape::Autotools)
        );
        assert_eq!(t(&["x-1/CMakeLists.txt", "x-1/Makefile"]), Ok(Shape::Cmake));
        let lz4: Vec<String> = [
            "./x-1/Makefile",
            "./x-1/build/cmake/CMakeLists.txt",
            "./x-1/lib/Makefile",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(Shape::detect(&lz4), Ok(Shape::Make));
        assert_eq!(Shape::Make.args(&lz4), " -C lib");
        assert_eq!(Shape::Make.args(&lz4[..2]), "");
        // Deeper files do not count.
        assert!(t(&["x-1/sub/configure", "x-1/meson.build"]).is_err());
        // configure.ac alone: autoreconf makes the configure.
        assert_eq!(
            t(&["x-1/configure.ac", "x-1/Makefile.am"]),
            Ok(Shape::Autoreconf)
        );
        assert_eq!(Shape::Autoreconf.image(), Some("//images:bookworm-sci"));
    }
}
