//! Reading a store's indexes ahead of their first use.
//!
//! A no-op build spends its first hits waiting for two files to be parsed
//! (the label index, 20,000 JSON lines for the 10,000-wheel bench, and the
//! stat cache, 60,000 lines), while the evaluation snapshot is decoded on
//! one core before that. A verb that will run the graph (build, plan) asks
//! for both as soon as it knows the store ([`store`]): they are read on a
//! thread of their own while the snapshot decodes, and the first use takes
//! what was read ([`take`]) instead of reading the file again.
//!
//! Reading early is the same as a process that started a moment earlier:
//! both files are caches (a label record's hit is checked against the
//! store's blobs; a stat-cache line only vouches for a blob whose inode,
//! size and mtime still match). A read-ahead nobody took is dropped by the
//! next one of the same file, so a long-lived process (`refine serve`)
//! never takes an old one; writers (`flush`) always read the file afresh.
//!
//! Hand-written: a map of join handles is all it needs.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

type Reading = JoinHandle<Box<dyn Any + Send>>;

static AHEAD: Mutex<Vec<(PathBuf, Reading)>> = Mutex::new(Vec::new());

/// Parse `text`'s lines with `parse` on every core, in order, leaving out
/// the lines it refuses, into a map (or any collection) made with room for
/// every line. Plain scoped threads, never rayon's pool: a read-ahead is
/// waited for by whoever first needs it, which may be a rayon worker (a
/// no-op's hits run on the pool), and a read-ahead that needed the pool's
/// workers would then wait for the very threads waiting for it.
///
/// Each part's results go into a vector made to its size and then into
/// the collection made to the whole's: growing them by doubling touched
/// about as much fresh memory as the results themselves, and on these
/// machines fresh memory is most of a no-op's time (docs/BENCHMARKS.md).
pub fn parse_lines<T: Send, C: Extend<T>>(
    text: &str,
    with_capacity: impl FnOnce(usize) -> C,
    parse: impl Fn(&str) -> Option<T> + Sync,
) -> C {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = with_capacity(lines.len());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = lines.len().div_ceil(threads).max(2048);
    if lines.len() <= chunk {
        out.extend(lines.iter().filter_map(|l| parse(l)));
        return out;
    }
    let parse = &parse;
    let parts: Vec<Vec<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut v = Vec::with_capacity(part.len());
                    v.extend(part.iter().filter_map(|l| parse(l)));
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for part in parts {
        out.extend(part);
    }
    out
}

/// Start reading the indexes of the store at `root`: every label index
/// file and the stat cache.
pub fn store(root: &Path) {
    if let Ok(dir) = std::fs::read_dir(root.join("labels")) {
        for path in dir.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "jsonl") {
                let r = root.to_path_buf();
                start(path, move |p| super::labels::parse_file(&r, p));
            }
        }
    }
    start(root.join("statcache"), super::cas::parse_stat_cache);
}

/// Read `path` with `read` on a thread of its own.
pub fn start<T: Send + 'static>(path: PathBuf, read: impl FnOnce(&Path) -> T + Send + 'static) {
    let mut ahead = AHEAD.lock().unwrap_or_else(|e| e.into_inner());
    // One nobody took is older than this one: dropped.
    ahead.retain(|(p, _)| *p != path);
    let file = path.clone();
    if let Ok(h) = std::thread::Builder::new()
        .name("refine-read-ahead".into())
        .spawn(move || Box::new(read(&file)) as Box<dyn Any + Send>)
    {
        ahead.push((path, h));
    }
}

/// What a read-ahead of `path` read, taken (once), waiting for it if it is
/// still reading; `None` if none was started (or it failed).
pub fn take<T: 'static>(path: &Path) -> Option<T> {
    let h = {
        let mut ahead = AHEAD.lock().unwrap_or_else(|e| e.into_inner());
        let i = ahead.iter().position(|(p, _)| p == path)?;
        ahead.swap_remove(i).1
    };
    let t = std::time::Instant::now();
    let r = h.join().ok()?.downcast::<T>().ok().map(|b| *b);
    if std::env::var_os("REFINE_TIMINGS").is_some() {
        eprintln!(
            "timing: waited for the read-ahead of {} {:.1} ms",
            path.display(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_ahead_is_taken_once_and_a_newer_one_replaces_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index");
        std::fs::write(&p, "first").unwrap();
        start(p.clone(), |p| std::fs::read_to_string(p).unwrap());
        // Taken once: the next use reads the file itself.
        assert_eq!(take::<String>(&p).as_deref(), Some("first"));
        assert_eq!(take::<String>(&p), None);
        // One nobody took is replaced by the next.
        start(p.clone(), |_| "old".to_string());
        std::fs::write(&p, "second").unwrap();
        start(p.clone(), |p| std::fs::read_to_string(p).unwrap());
        assert_eq!(take::<String>(&p).as_deref(), Some("second"));
        // Asked as another type: nothing (never a wrong value).
        start(p.clone(), |_| 7u32);
        assert_eq!(take::<String>(&p), None);
    }
}
