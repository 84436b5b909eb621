//! Durable file publication: write to a temporary file, fsync, link or rename into place,
//! fsync the directory. The only code in the engine that creates visible files.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An RFC 3339 UTC rendering of a millisecond timestamp.
pub fn rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm, public domain facts).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// fsync a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

/// A unique temporary path under `tmp_dir`.
pub fn temp_path(tmp_dir: &Path, hint: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp_dir.join(format!(
        "{}-{}-{n}-{hint}.tmp",
        std::process::id(),
        now_ms()
    ))
}

/// Write bytes to a new temporary file under `tmp_dir` and fsync it.
pub fn write_temp(tmp_dir: &Path, hint: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = temp_path(tmp_dir, hint);
    let mut f = File::create(&path).map_err(Error::io("create", &path))?;
    f.write_all(bytes).map_err(Error::io("write", &path))?;
    f.sync_all().map_err(Error::io("fsync", &path))?;
    Ok(path)
}

/// Publish a fsynced temporary file under `dest` without ever replacing an existing file
/// (`link`, which works on NFS where `renameat2(RENAME_NOREPLACE)` does not), then remove
/// the temporary name and fsync the destination directory. Returns false if `dest` exists.
pub fn publish_new(temp: &Path, dest: &Path) -> Result<bool> {
    match fs::hard_link(temp, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(Error::io("link", dest)(e)),
    }
    fs::remove_file(temp).map_err(Error::io("remove", temp))?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")))?;
    Ok(true)
}

/// Replace `dest` atomically with bytes: temporary file, fsync, rename, fsync directory.
pub fn replace_file(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let temp = write_temp(tmp_dir, "replace", bytes)?;
    fs::rename(&temp, dest).map_err(Error::io("rename into", dest))?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Create a directory (and parents) if missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_renders_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn publish_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_temp(dir.path(), "a", b"first").unwrap();
        let dest = dir.path().join("x");
        assert!(publish_new(&a, &dest).unwrap());
        let b = write_temp(dir.path(), "b", b"second").unwrap();
        assert!(!publish_new(&b, &dest).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"first");
    }
}
