//! Requirements files as pip reads them: requirements, `-r`/`-c` includes,
//! `--hash` options, comments and continuation lines. Each requirement is
//! parsed with `pep508_rs` (PEP 508: names, extras, PEP 440 specifiers,
//! environment markers); what is written here is only the file's own
//! structure (lines, options), which no crate on crates.io parses apart
//! from a whole resolver. Options that would change where packages come
//! from (`--index-url`, `-e`, URLs) are refused: refine reaches the index
//! through pip's own configuration.

use pep508_rs::{Requirement, VersionOrUrl};
use std::path::{Path, PathBuf};

/// One requirement of a file, with where it was written.
#[derive(Clone, Debug)]
pub struct Entry {
    pub requirement: Requirement,
    /// `--hash=sha256:…` values (lowercase hex).
    pub hashes: Vec<String>,
    /// A constraint (`-c`) limits versions without asking for the package.
    pub constraint: bool,
    pub file: PathBuf,
    pub line: usize,
}

impl Entry {
    /// `file:line`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The exact version `==X` / `===X` pins, if it does.
    pub fn pinned(&self) -> Option<String> {
        match &self.requirement.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specs)) => {
                let v: Vec<_> = specs.iter().collect();
                match v.as_slice() {
                    [s] if matches!(
                        s.operator(),
                        pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual
                    ) =>
                    {
                        Some(s.version().to_string())
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ReqFileError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    pub hint: String,
}

/// Read a requirements file (and what it includes).
pub fn read(path: &Path, constraint: bool) -> Result<Vec<Entry>, ReqFileError> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    read_into(path, constraint, &mut out, &mut stack)?;
    Ok(out)
}

/// Parse requirements given as text (`refine add SPEC…`), one per item.
pub fn parse_specs(specs: &[String]) -> Result<Vec<Entry>, ReqFileError> {
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let file = PathBuf::from("<command line>");
        out.push(requirement(&file, i + 1, s, false)?);
    }
    Ok(out)
}

fn read_into(
    path: &Path,
    constraint: bool,
    out: &mut Vec<Entry>,
    stack: &mut Vec<PathBuf>,
) -> Result<(), ReqFileError> {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canon) {
        return Err(ReqFileError {
            file: path.to_path_buf(),
            line: 0,
            message: "includes itself (through -r or -c)".into(),
            hint: "remove the include that comes back to this file".into(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| ReqFileError {
        file: path.to_path_buf(),
        line: 0,
        message: format!("cannot read it: {e}"),
        hint: "check the path".into(),
    })?;
    stack.push(canon);
    let dir = path.parent().unwrap_or(Path::new("."));
    for (line, content) in logical_lines(&text) {
        let err = |message: String, hint: &str| ReqFileError {
            file: path.to_path_buf(),
            line,
            message,
            hint: hint.to_string(),
        };
        let content = strip_comment(&content);
        let content = content.trim();
        if content.is_empty() {
            continue;
        }
        if let Some((opt, value)) = include(content) {
            let Some(value) = value else {
                return Err(err(format!("`{opt}` needs a file"), "write `-r other.txt`"));
            };
            let target = dir.join(value);
            let as_constraint = constraint || matches!(opt, "-c" | "--constraint");
            read_into(&target, as_constraint, out, stack).map_err(|e| {
                if e.line == 0 && e.file == target {
                    err(format!("`{content}`: {}", e.message), &e.hint)
                } else {
                    e
                }
            })?;
            continue;
        }
        if content.starts_with('-') {
            let opt = content.split([' ', '=']).next().unwrap_or(content);
            let (message, hint) = match opt {
                "-e" | "--editable" => (
                    format!("`{opt}`: refine builds released packages, not editable checkouts"),
                    "name the package and version instead (`name==version`)",
                ),
                "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links"
                | "--trusted-host" | "--no-index" => (
                    format!("`{opt}` in a requirements file is not followed"),
                    "refine reaches the package index through pip's own configuration (pip.conf, PIP_INDEX_URL): configure it there and remove this line",
                ),
                "--require-hashes" | "--pre" | "--prefer-binary" => continue,
                _ => (
                    format!("unknown option `{opt}`"),
                    "requirements files hold requirements, -r/-c includes and --hash options",
                ),
            };
            return Err(err(message, hint));
        }
        out.push(requirement(path, line, content, constraint)?);
    }
    stack.pop();
    Ok(())
}

/// `-r FILE`, `--requirement=FILE`, `-c FILE`, `--constraint FILE`.
fn include(content: &str) -> Option<(&str, Option<&str>)> {
    for opt in ["--requirement", "--constraint", "-r", "-c"] {
        let Some(rest) = content.strip_prefix(opt) else {
            continue;
        };
        if !rest.is_empty() && !rest.starts_with([' ', '\t', '=']) {
            // `-rfoo.txt` is pip's too.
            if opt.len() == 2 {
                return Some((opt, Some(rest.trim())));
            }
            continue;
        }
        let v = rest.trim_start_matches('=').trim();
        return Some((opt, (!v.is_empty()).then_some(v)));
    }
    None
}

/// A requirement and its options (`--hash=…`).
fn requirement(
    file: &Path,
    line: usize,
    content: &str,
    constraint: bool,
) -> Result<Entry, ReqFileError> {
    let err = |message: String, hint: &str| ReqFileError {
        file: file.to_path_buf(),
        line,
        message,
        hint: hint.to_string(),
    };
    let (spec, options) = split_options(content);
    let mut hashes = Vec::new();
    let mut opts = options.split_whitespace().peekable();
    while let Some(o) = opts.next() {
        let value = if let Some(v) = o.strip_prefix("--hash=") {
            v.to_string()
        } else if o == "--hash" {
            opts.next().unwrap_or_default().to_string()
        } else {
            return Err(err(
                format!("`{o}` is not an option a requirement takes"),
                "a requirement line takes `--hash=sha256:<hex>` options only",
            ));
        };
        match value.split_once(':') {
            Some(("sha256", hex))
                if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                hashes.push(hex.to_ascii_lowercase());
            }
            Some((algo, _)) if algo != "sha256" => {} // pip takes others; refine pins sha256
            _ => {
                return Err(err(
                    format!("`{value}` is not a sha256 hash"),
                    "write `--hash=sha256:<64 hex digits>`",
                ));
            }
        }
    }
    let requirement: Requirement = spec.parse().map_err(|e: pep508_rs::Pep508Error| {
        err(
            format!("not a requirement: {}", e.message),
            "write PEP 508 requirements, e.g. `MarkupSafe==2.1.5` or `requests>=2.31 ; python_version >= \"3.8\"`",
        )
    })?;
    if matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_))) {
        return Err(err(
            format!("`{}` names a URL", requirement.name),
            "refine builds packages of the index pip is configured with: give a version instead",
        ));
    }
    Ok(Entry {
        requirement,
        hashes,
        constraint,
        file: file.to_path_buf(),
        line,
    })
}

/// The requirement and the options after it: options begin at the first
/// `--` token outside quotes (markers may quote strings with spaces).
fn split_options(content: &str) -> (&str, &str) {
    let mut quote = None;
    let bytes = content.as_bytes();
    for (i, c) in content.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '-')
                if bytes.get(i + 1) == Some(&b'-')
                    && (i == 0 || bytes[i - 1].is_ascii_whitespace()) =>
            {
                return (content[..i].trim(), content[i..].trim());
            }
            _ => {}
        }
    }
    (content.trim(), "")
}

/// Drop a comment: `#` at the start or after whitespace (a `#` inside a
/// URL fragment is not one).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, c) in line.char_indices() {
        if c == '#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Lines joined where they end in `\`, each with the number of its first
/// physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (start, mut acc) = cur.take().unwrap_or((n, String::new()));
        match raw.strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                acc.push(' ');
                cur = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                out.push((start, acc));
            }
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_what_pip_reads() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "base.txt", "six==1.16.0\n");
        write(d.path(), "constraints.txt", "idna<4  # keep it\n");
        let main = write(
            d.path(),
            "requirements.txt",
            "# a lock, as pip-compile writes it\n\
             --require-hashes\n\
             -r base.txt\n\
             --constraint=constraints.txt\n\
             MarkupSafe==2.1.5 \\\n    --hash=sha256:d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b \\\n    --hash=sha256:00000000000000000000000000000000000000000000000000000000000000ab\n\
             requests[socks, security] >=2.31,<3 ; python_version >= \"3.8\" and platform_machine != 'x86 64'\n\
             PyYAML===6.0.2\n\
             \n\
             cffi ; sys_platform == \"linux\"  # a comment after a marker\n",
        );
        let e = read(&main, false).unwrap();
        let names: Vec<String> = e.iter().map(|x| x.requirement.name.to_string()).collect();
        assert_eq!(
            names,
            ["six", "idna", "markupsafe", "requests", "pyyaml", "cffi"]
        );
        assert!(e[1].constraint && !e[0].constraint);
        assert_eq!(e[2].pinned().as_deref(), Some("2.1.5"));
        assert_eq!(e[2].hashes.len(), 2);
        assert_eq!(
            e[2].line, 5,
            "a continued line is numbered by its first line"
        );
        assert_eq!(e[3].requirement.extras.len(), 2);
        assert!(e[3].pinned().is_none());
        assert!(!e[3].requirement.marker.is_true());
        assert_eq!(e[4].pinned().as_deref(), Some("6.0.2"));
        assert_eq!(e[5].line, 11);
        assert!(e[0].at().ends_with("base.txt:1"));
    }

    #[test]
    fn a_bad_line_names_its_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        for (text, line, says) in [
            ("six==1.16.0\nnot a requirement!!\n", 2, "not a requirement"),
            ("-e git+https://example.invalid/x.git\n", 1, "editable"),
            (
                "--index-url https://example.invalid/simple\nsix\n",
                1,
                "pip's own configuration",
            ),
            (
                "pkg @ https://example.invalid/pkg-1.0.tar.gz\n",
                1,
                "names a URL",
            ),
            ("six==1 --hash=md5\n", 1, "not a sha256 hash"),
            ("six==1 --frobnicate\n", 1, "not an option"),
            ("-r missing.txt\n", 1, "cannot read it"),
            ("--bogus\n", 1, "unknown option"),
        ] {
            let p = write(d.path(), "r.txt", text);
            let e = read(&p, false).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(
                format!("{} {}", e.message, e.hint).contains(says),
                "{text:?}: {e}"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("{}:{line}:", p.display())),
                "{e}"
            );
        }
        // An include that comes back to itself.
        write(d.path(), "a.txt", "-r b.txt\n");
        write(d.path(), "b.txt", "-r a.txt\n");
        assert!(
            read(&d.path().join("a.txt"), false)
                .unwrap_err()
                .message
                .contains("includes itself")
        );
    }

    #[test]
    fn specs_from_the_command_line() {
        let e = parse_specs(&["Flask==3.0.3".into(), "numpy>=2".into()]).unwrap();
        assert_eq!(e[0].pinned().as_deref(), Some("3.0.3"));
        assert!(parse_specs(&["==1".into()]).is_err());
    }
}
