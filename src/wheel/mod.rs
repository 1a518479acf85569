//! Wheels as files: deterministic normalization, RECORD, ELF checks.
//!
//! A wheel that comes out of a build is rewritten before it is stored:
//! entries in a fixed order (the `.dist-info` directory last, `RECORD`
//! at the very end), every timestamp set from `SOURCE_DATE_EPOCH`, modes
//! reduced to 644/755, compression by refine's own deflate at a fixed
//! level, and a `RECORD` recomputed from the bytes actually in the wheel.
//! Two builds that produced the same files therefore give the same wheel,
//! whatever zip tool and clock the build used.
//!
//! A wheel that comes out of a build is untrusted: what its zip headers
//! declare (sizes, entry counts, names, link bits) are claims. Reading
//! never allocates by a declared size, stops at the first byte past the
//! limits ([`OutputLimits`]: total bytes, entries, and growth over the
//! file's real size on disk), and refuses links and names that are not
//! plain relative paths.

pub mod policy;

pub use crate::store::limits::OutputLimits;
use std::io::{Read, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error("{path}: {message}")]
    Bad { path: String, message: String },
    /// Over one of the [`OutputLimits`].
    #[error("{path}: {message}")]
    Limit { path: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl WheelError {
    /// A host problem (disk full, permissions), not the wheel's.
    pub fn is_io(&self) -> bool {
        matches!(self, WheelError::Io(_))
    }
}

/// A zip error: the disk's (full, unreadable) or the wheel's.
fn zip_err(path: &Path, e: zip::result::ZipError) -> WheelError {
    match e {
        zip::result::ZipError::Io(io) => WheelError::Io(io),
        e => bad(path, e.to_string()),
    }
}

fn bad(path: &Path, message: impl Into<String>) -> WheelError {
    WheelError::Bad {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// One file of a wheel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelFile {
    pub name: String,
    pub executable: bool,
    pub data: Vec<u8>,
}

/// Read every file entry of a wheel (directories are dropped), within the
/// default [`OutputLimits`].
pub fn read_wheel(path: &Path) -> Result<Vec<WheelFile>, WheelError> {
    read_wheel_within(path, &OutputLimits::default())
}

/// Read every file entry of a wheel within `limits` (see the module header).
pub fn read_wheel_within(path: &Path, limits: &OutputLimits) -> Result<Vec<WheelFile>, WheelError> {
    let mut w = Entries::open(path, limits)?;
    let mut out = Vec::new();
    for (index, name, executable) in w.files()? {
        let data = w.read(index, &name)?;
        out.push(WheelFile {
            name,
            executable,
            data,
        });
    }
    Ok(out)
}

fn over(path: &Path, message: String) -> WheelError {
    WheelError::Limit {
        path: path.display().to_string(),
        message,
    }
}

/// A wheel's entries, read one at a time within [`OutputLimits`], so that
/// at most one entry is in memory (a 200 MB wheel is never held whole).
struct Entries<'a> {
    path: &'a Path,
    z: zip::ZipArchive<std::fs::File>,
    limits: &'a OutputLimits,
    /// What the entries may come to: the size limit, and the ratio over
    /// the file's real size (with 1 MiB of slack for tiny wheels).
    budget: u64,
    used: u64,
}

impl<'a> Entries<'a> {
    fn open(path: &'a Path, limits: &'a OutputLimits) -> Result<Entries<'a>, WheelError> {
        let f = std::fs::File::open(path)?;
        let on_disk = f.metadata()?.len();
        let budget = limits
            .max_bytes
            .min(on_disk.max(1 << 20).saturating_mul(limits.max_ratio));
        let z = zip::ZipArchive::new(f).map_err(|e| bad(path, format!("not a zip file: {e}")))?;
        if z.len() as u64 > limits.max_files {
            return Err(over(
                path,
                format!(
                    "{} entries, more than the {} an output may hold (max_output_files)",
                    z.len(),
                    limits.max_files
                ),
            ));
        }
        Ok(Entries {
            path,
            z,
            limits,
            budget,
            used: 0,
        })
    }

    /// (index, name, executable) of every file entry, names and kinds
    /// checked; directories dropped.
    fn files(&mut self) -> Result<Vec<(usize, String, bool)>, WheelError> {
        let path = self.path;
        let mut out = Vec::new();
        for i in 0..self.z.len() {
            let e = self.z.by_index_raw(i).map_err(|e| zip_err(path, e))?;
            let name = e.name().map_err(|e| bad(path, e.to_string()))?.to_string();
            if e.enclosed_name().is_none()
                || name.starts_with('/')
                || name.contains('\\')
                || name.contains('\0')
                || name.split('/').any(|c| c == "..")
            {
                return Err(bad(path, format!("unsafe entry name {name:?}")));
            }
            if e.is_symlink() {
                return Err(bad(path, format!("{name} is a link; wheels hold files")));
            }
            if e.is_dir() {
                continue;
            }
            let executable = e.unix_mode().is_some_and(|m| m & 0o111 != 0);
            out.push((i, name, executable));
        }
        Ok(out)
    }

    /// The bytes of entry `index`, counted against the budget; a declared
    /// size is a claim, never an allocation.
    fn read(&mut self, index: usize, name: &str) -> Result<Vec<u8>, WheelError> {
        let path = self.path;
        let left = self.budget - self.used;
        let (max_bytes, max_ratio) = (self.limits.max_bytes, self.limits.max_ratio);
        let e = self.z.by_index(index).map_err(|e| zip_err(path, e))?;
        if e.size() > left {
            let declared = e.size();
            return Err(over(
                path,
                format!(
                    "{name} declares {declared} bytes, more than the {left} left of this wheel's limit \
                 ({max_bytes} bytes, at most {max_ratio}× its own size)"
                ),
            ));
        }
        // At most what is left; the vector grows only with bytes really read.
        let mut data = Vec::with_capacity((e.size().min(left) as usize).min(1 << 20));
        let read = e.take(left + 1).read_to_end(&mut data).map_err(|err| {
            if err.kind() == std::io::ErrorKind::InvalidData
                || err.kind() == std::io::ErrorKind::UnexpectedEof
            {
                bad(path, format!("{name}: {err}"))
            } else {
                WheelError::Io(err)
            }
        })? as u64;
        if read > left {
            return Err(over(
                path,
                format!(
                    "{name} unpacks to more than the {left} bytes left of this wheel's limit \
                 ({max_bytes} bytes, at most {max_ratio}× its own size)"
                ),
            ));
        }
        self.used += read;
        Ok(data)
    }
}

/// The `.dist-info` directory of a wheel's files.
pub fn dist_info(files: &[WheelFile]) -> Option<String> {
    files.iter().find_map(|f| {
        let (dir, rest) = f.name.split_once('/')?;
        (dir.ends_with(".dist-info") && !rest.contains('/')).then(|| dir.to_string())
    })
}

fn record_hash(data: &[u8]) -> String {
    let d = crate::key::sha256_bytes(data);
    let raw = hex::decode(d.hex()).unwrap_or_default();
    format!(
        "sha256={}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
    )
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// DOS date-time for a Unix time (zip cannot say anything before 1980).
fn zip_time(epoch: i64) -> zip::DateTime {
    let epoch = epoch.max(315_532_800); // 1980-01-01
    let days = epoch.div_euclid(86400);
    let secs = epoch.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    zip::DateTime::from_date_and_time(
        y.min(2107) as u16,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        ((secs % 3600) / 60) as u8,
        (secs % 60) as u8,
    )
    .unwrap_or_default()
}

/// Rewrite a wheel deterministically (see the module documentation).
pub fn normalize(path: &Path, source_date_epoch: i64) -> Result<(), WheelError> {
    normalize_within(path, source_date_epoch, &OutputLimits::default())
}

/// [`normalize`] a wheel a build wrote, read within `limits`.
pub fn normalize_within(
    path: &Path,
    source_date_epoch: i64,
    limits: &OutputLimits,
) -> Result<(), WheelError> {
    let mut w = Entries::open(path, limits)?;
    let mut files = w.files()?;
    let di = files
        .iter()
        .find_map(|(_, name, _)| {
            let (dir, rest) = name.split_once('/')?;
            (dir.ends_with(".dist-info") && !rest.contains('/')).then(|| dir.to_string())
        })
        .ok_or_else(|| bad(path, "no .dist-info directory"))?;
    let record_name = format!("{di}/RECORD");
    files.retain(|(_, n, _)| *n != record_name && !n.starts_with(&format!("{di}/RECORD.")));
    let prefix = format!("{di}/");
    files.sort_by(|(_, a, _), (_, b, _)| {
        let ka = (a.starts_with(&prefix), a.as_bytes());
        let kb = (b.starts_with(&prefix), b.as_bytes());
        ka.cmp(&kb)
    });

    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut z = zip::ZipWriter::new(std::io::BufWriter::new(tmp.as_file()));
        let time = zip_time(source_date_epoch);
        let opts = |executable: bool| {
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .compression_level(Some(6))
                .last_modified_time(time)
                .unix_permissions(if executable { 0o755 } else { 0o644 })
        };
        let mut record = String::new();
        // One entry in memory at a time.
        for (index, name, executable) in &files {
            let data = w.read(*index, name)?;
            record.push_str(&format!(
                "{},{},{}\n",
                csv_field(name),
                record_hash(&data),
                data.len()
            ));
            z.start_file(name.as_str(), opts(*executable))
                .map_err(|e| zip_err(path, e))?;
            z.write_all(&data)?;
        }
        record.push_str(&format!("{},,\n", csv_field(&record_name)));
        z.start_file(record_name.as_str(), opts(false))
            .map_err(|e| zip_err(path, e))?;
        z.write_all(record.as_bytes())?;
        let mut out = z.finish().map_err(|e| zip_err(path, e))?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| WheelError::Io(e.error))?;
    Ok(())
}

/// (name, e_machine) of the ELF files of a wheel whose machine is not
/// `machine`, reading one entry at a time within `limits`.
pub fn foreign_elves_within(
    path: &Path,
    machine: u16,
    limits: &OutputLimits,
) -> Result<Vec<(String, u16)>, WheelError> {
    let mut w = Entries::open(path, limits)?;
    let mut out = Vec::new();
    for (index, name, _) in w.files()? {
        let data = w.read(index, &name)?;
        if let Some(m) = elf_machine(&data).filter(|m| *m != machine) {
            out.push((name, m));
        }
    }
    Ok(out)
}

/// Check a wheel's RECORD against its contents; returns the problems.
pub fn check_record(path: &Path) -> Result<Vec<String>, WheelError> {
    let files = read_wheel(path)?;
    let di = dist_info(&files).ok_or_else(|| bad(path, "no .dist-info directory"))?;
    let record_name = format!("{di}/RECORD");
    let record = files
        .iter()
        .find(|f| f.name == record_name)
        .ok_or_else(|| bad(path, "no RECORD"))?;
    let text = String::from_utf8_lossy(&record.data);
    let mut listed = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.rsplitn(3, ',').collect();
        if parts.len() == 3 {
            listed.insert(parts[2].trim_matches('"').to_string(), parts[1].to_string());
        }
    }
    let mut problems = Vec::new();
    for f in &files {
        if f.name == record_name {
            continue;
        }
        match listed.get(&f.name) {
            None => problems.push(format!("{} is not in RECORD", f.name)),
            Some(h) if *h != record_hash(&f.data) => {
                problems.push(format!("{} does not match its RECORD hash", f.name))
            }
            _ => {}
        }
    }
    Ok(problems)
}

/// ELF `e_machine` of a file's bytes, if it is an ELF file.
pub fn elf_machine(data: &[u8]) -> Option<u16> {
    if data.len() < 20 || &data[..4] != b"\x7fELF" {
        return None;
    }
    let m = [data[18], data[19]];
    Some(match data[5] {
        2 => u16::from_be_bytes(m),
        _ => u16::from_le_bytes(m),
    })
}

/// Whether an ELF executable is static: it has no program interpreter
/// (`PT_INTERP`), so it runs in a root filesystem of its own.
pub fn is_static_elf(data: &[u8]) -> bool {
    if elf_machine(data).is_none() {
        return false;
    }
    let be = data[5] == 2;
    let num = |at: usize, n: usize| -> Option<u64> {
        let b = data.get(at..at + n)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if be { b[i] } else { b[n - 1 - i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = match data[4] {
        2 => (num(32, 8), num(54, 2), num(56, 2)),
        1 => (num(28, 4), num(42, 2), num(44, 2)),
        _ => return false,
    };
    let (Some(off), Some(size), Some(n)) = (phoff, phentsize, phnum) else {
        return false;
    };
    (0..n).all(|i| {
        let at = off.saturating_add(i.saturating_mul(size));
        usize::try_from(at)
            .ok()
            .and_then(|at| num(at, 4))
            .is_some_and(|t| t != 3)
    })
}

/// The ELF files of a wheel whose machine is not `machine`.
pub fn foreign_elves(files: &[WheelFile], machine: u16) -> Vec<(String, u16)> {
    files
        .iter()
        .filter_map(|f| {
            elf_machine(&f.data)
                .filter(|m| *m != machine)
                .map(|m| (f.name.clone(), m))
        })
        .collect()
}

/// Parsed wheel file name: name, version, python tag, abi tag, platform tag.
pub fn parse_filename(name: &str) -> Option<(String, String, String, String, String)> {
    let stem = name.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let (n, v, rest) = match parts.len() {
        5 => (parts[0], parts[1], &parts[2..]),
        6 => (parts[0], parts[1], &parts[3..]),
        _ => return None,
    };
    Some((
        n.into(),
        v.into(),
        rest[0].into(),
        rest[1].into(),
        rest[2].into(),
    ))
}

/// A zip of stored entries `(name, data, claimed)`, each declaring
/// `claimed` bytes through its zip64 fields: how hostile build output lies
/// about sizes. For refine's own tests.
#[cfg(any(test, feature = "fake-executor"))]
pub fn zip64_claiming(entries: &[(&str, &[u8], u64)]) -> Vec<u8> {
    let crc32 = |data: &[u8]| {
        !data.iter().fold(!0u32, |mut c, b| {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            }
            c
        })
    };
    // flags, stored, time, date, crc, sizes (in the zip64 extra), name
    // length, extra length
    let head = |v: &mut Vec<u8>, name: &str, data: &[u8]| {
        v.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend(crc32(data).to_le_bytes());
        v.extend(u32::MAX.to_le_bytes());
        v.extend(u32::MAX.to_le_bytes());
        v.extend((name.len() as u16).to_le_bytes());
        v.extend(20u16.to_le_bytes());
    };
    let extra = |v: &mut Vec<u8>, data: &[u8], claimed: u64| {
        v.extend(1u16.to_le_bytes());
        v.extend(16u16.to_le_bytes());
        v.extend(claimed.to_le_bytes());
        v.extend((data.len() as u64).to_le_bytes());
    };
    let mut v = Vec::new();
    let mut offsets = Vec::new();
    for (name, data, claimed) in entries {
        offsets.push(v.len() as u32);
        v.extend(0x0403_4b50u32.to_le_bytes());
        v.extend([45, 0]);
        head(&mut v, name, data);
        v.extend(name.as_bytes());
        extra(&mut v, data, *claimed);
        v.extend(*data);
    }
    let cd = v.len() as u32;
    for ((name, data, claimed), offset) in entries.iter().zip(offsets) {
        v.extend(0x0201_4b50u32.to_le_bytes());
        v.extend([45, 3, 45, 0]);
        head(&mut v, name, data);
        v.extend([0, 0, 0, 0, 0, 0]); // comment, disk, internal attributes
        v.extend((0o100644u32 << 16).to_le_bytes());
        v.extend(offset.to_le_bytes());
        v.extend(name.as_bytes());
        extra(&mut v, data, *claimed);
    }
    let cd_size = v.len() as u32 - cd;
    let n = (entries.len() as u16).to_le_bytes();
    v.extend(0x0605_4b50u32.to_le_bytes());
    v.extend([0, 0, 0, 0, n[0], n[1], n[0], n[1]]);
    v.extend(cd_size.to_le_bytes());
    v.extend(cd.to_le_bytes());
    v.extend([0, 0]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip of `(name, bytes)` entries, deflated, written with `mode`.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            z.start_file(*name, o).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    fn read_bytes(bytes: &[u8], limits: &OutputLimits) -> Result<Vec<WheelFile>, WheelError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.whl");
        std::fs::write(&p, bytes).unwrap();
        read_wheel_within(&p, limits)
    }

    #[test]
    fn a_declared_size_is_a_claim_never_an_allocation() {
        // The crash a hostile tester found: 2^50 bytes declared, 10 there.
        let meta: &[u8] = b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n";
        let bomb = zip64_claiming(&[
            ("bomb/data.bin", b"0123456789", 1 << 50),
            ("bomb-1.0.dist-info/METADATA", meta, meta.len() as u64),
        ]);
        let e = read_bytes(&bomb, &OutputLimits::default()).unwrap_err();
        assert!(matches!(e, WheelError::Limit { .. }), "{e}");
        assert!(
            e.to_string().contains("declares 1125899906842624 bytes"),
            "{e}"
        );
        // Normalizing it (what a build's output goes through) stops there too.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bomb-1.0-py3-none-any.whl");
        std::fs::write(&p, &bomb).unwrap();
        let e = normalize(&p, 1_700_000_000).unwrap_err();
        assert!(
            e.to_string().contains("declares 1125899906842624 bytes"),
            "{e}"
        );
        // An honest claim of the same shape reads.
        let ok = zip64_claiming(&[("ok.bin", b"0123456789", 10)]);
        let files = read_bytes(&ok, &OutputLimits::default()).unwrap();
        assert_eq!(files[0].data, b"0123456789");
    }

    #[test]
    fn bombs_by_ratio_and_by_size_stop_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = zip_of(&[("zeros.bin", &zeros)]);
        assert!(bomb.len() < 100_000, "deflate squeezes it: {}", bomb.len());
        // 1 MiB of slack × 4: 4 MiB, half of what the entry unpacks to.
        let ratio = OutputLimits {
            max_ratio: 4,
            ..OutputLimits::default()
        };
        let e = read_bytes(&bomb, &ratio).unwrap_err();
        assert!(matches!(e, WheelError::Limit { .. }), "{e}");
        let size = OutputLimits {
            max_bytes: 1 << 20,
            ..OutputLimits::default()
        };
        assert!(matches!(
            read_bytes(&bomb, &size),
            Err(WheelError::Limit { .. })
        ));
        // Within the defaults it is an ordinary (if silly) wheel.
        assert_eq!(
            read_bytes(&bomb, &OutputLimits::default()).unwrap()[0]
                .data
                .len(),
            8 << 20
        );
    }

    #[test]
    fn foreign_elves_are_found_one_entry_at_a_time() {
        let mut s390 = vec![0u8; 64];
        s390[..4].copy_from_slice(b"\x7fELF");
        s390[5] = 2;
        s390[18..20].copy_from_slice(&22u16.to_be_bytes());
        let mut x86 = s390.clone();
        x86[5] = 1;
        x86[18..20].copy_from_slice(&62u16.to_le_bytes());
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.whl");
        std::fs::write(
            &p,
            zip_of(&[("a/_s.so", &s390), ("a/_x.so", &x86), ("a/x.py", b"pass")]),
        )
        .unwrap();
        let found = foreign_elves_within(&p, 22, &OutputLimits::default()).unwrap();
        assert_eq!(found, vec![("a/_x.so".to_string(), 62)]);
        assert!(foreign_elves_within(&p, 62, &OutputLimits::default()).unwrap()[0].0 == "a/_s.so");
    }

    #[test]
    fn entry_counts_names_and_links_are_checked() {
        let many: Vec<(String, &[u8])> = (0..20).map(|i| (format!("f{i}"), &b""[..])).collect();
        let refs: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let few = OutputLimits {
            max_files: 19,
            ..OutputLimits::default()
        };
        let e = read_bytes(&zip_of(&refs), &few).unwrap_err();
        assert!(e.to_string().contains("20 entries"), "{e}");
        for name in ["../escape", "/etc/passwd", "a/../../b", "a\\..\\b"] {
            let e = read_bytes(&zip_of(&[(name, b"x")]), &OutputLimits::default()).unwrap_err();
            assert!(matches!(e, WheelError::Bad { .. }), "{name}: {e}");
        }
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.add_symlink(
            "link",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let e =
            read_bytes(&z.finish().unwrap().into_inner(), &OutputLimits::default()).unwrap_err();
        assert!(e.to_string().contains("is a link"), "{e}");
    }

    #[test]
    fn normalization_is_deterministic_and_record_correct() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.whl");
        let b = d.path().join("b.whl");
        crate::exec::fake::write_fake_wheel(&a, "demo", "1.0", "x").unwrap();
        // Same files, written in another order with other timestamps.
        {
            let files = read_wheel(&a).unwrap();
            let f = std::fs::File::create(&b).unwrap();
            let mut z = zip::ZipWriter::new(f);
            for wf in files.iter().rev() {
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .last_modified_time(
                        zip::DateTime::from_date_and_time(2024, 5, 6, 7, 8, 10).unwrap(),
                    )
                    .unix_permissions(0o600);
                z.start_file(wf.name.as_str(), opts).unwrap();
                z.write_all(&wf.data).unwrap();
            }
            z.finish().unwrap();
        }
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        normalize(&a, 1_700_000_000).unwrap();
        normalize(&b, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(check_record(&a).unwrap().is_empty());
        let files = read_wheel(&a).unwrap();
        assert_eq!(files.last().unwrap().name, "demo-1.0.dist-info/RECORD");
        // Another epoch gives other bytes.
        normalize(&b, 1_600_000_000).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    #[test]
    fn zip_time_converts_epochs() {
        let t = zip_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (2023, 11, 14, 22, 13)
        );
        assert_eq!(zip_time(0).year(), 1980);
    }

    #[test]
    fn reads_elf_machine_both_endians() {
        let mut be = vec![0u8; 64];
        be[..4].copy_from_slice(b"\x7fELF");
        be[5] = 2;
        be[18..20].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(elf_machine(&be), Some(22));
        let mut le = be.clone();
        le[5] = 1;
        le[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert_eq!(elf_machine(&le), Some(62));
        assert_eq!(elf_machine(b"not elf"), None);
    }

    #[test]
    fn parses_wheel_names() {
        let p = parse_filename("MarkupSafe-2.1.5-cp311-cp311-linux_s390x.whl").unwrap();
        assert_eq!(p.4, "linux_s390x");
        assert!(parse_filename("x.tar.gz").is_none());
    }
}
