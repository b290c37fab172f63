//! Durable file operations: private folders and files, appends that are
//! fsynced before success is reported, and atomic replacement by
//! temp file + fsync + rename + fsync of the folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

/// Create a folder (and parents) readable by the owner only.
pub fn private_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|e| StoreError::io(path, e))
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// fsync a folder so that a rename or creation inside it is durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

/// Write a whole file atomically (mode 0600): temp file, fsync, rename, fsync
/// of the folder. Readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, bytes, true)
}

/// Write a cache file (a digest, an attestation): a temporary file renamed
/// into place, so readers see the old content or the new, but no fsync. A
/// crash may leave it torn or empty; what reads a cache must check it
/// (every cache here is attested or carries a checksum) and fall back to
/// the real data.
pub fn write_cache(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, bytes, false)
}

/// Write `bytes` to a temporary file (mode 0600) in `path`'s folder and
/// rename it over `path`; `durable`: fsync the file before the rename and
/// the folder after it.
fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Missing(format!("{} has no parent folder", path.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(private_permissions())
        .tempfile_in(dir)
        .map_err(|e| StoreError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
    if durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io(path, e))?;
    }
    tmp.persist(path)
        .map_err(|e| StoreError::io(path, e.error))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

fn private_permissions() -> fs::Permissions {
    fs::Permissions::from_mode(0o600)
}

/// Append bytes to a file and fsync it, then seal it at its new length
/// ([`write_seal`]), which is returned. A file that does not exist yet is
/// created with `header` first, and its folder is fsynced too.
pub fn append_durably(path: &Path, header: &[u8], bytes: &[u8]) -> Result<u64> {
    let exists = path.exists();
    let mut file = private_options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    if len == 0 {
        file.write_all(header)
            .map_err(|e| StoreError::io(path, e))?;
    }
    file.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
    file.sync_all().map_err(|e| StoreError::io(path, e))?;
    if !exists && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    let header_len = if len == 0 { header.len() as u64 } else { 0 };
    let sealed = len + header_len + bytes.len() as u64;
    match read_seal(path)? {
        // The log's new bytes are durable, and a seal only moves forward
        // here: one a crash leaves behind is shorter than the log, which
        // is fine, so it is renamed into place without fsyncs (two fewer
        // per append).
        Seal::Len(_) => write_cache(&seal_path(path), &seal_bytes(sealed))?,
        // A log's first seal, or one missing or damaged, durably: a crash
        // must not leave one torn for every later read to warn about.
        Seal::Missing | Seal::Damaged => write_seal(path, sealed)?,
    }
    Ok(sealed)
}

/// First bytes of a seal file.
const SEAL_MAGIC: &[u8; 8] = b"CVSEAL1\0";

fn seal_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".seal");
    PathBuf::from(name)
}

/// A seal's bytes: magic ‖ length u64 BE ‖ CRC-32 of the length.
fn seal_bytes(len: u64) -> Vec<u8> {
    let mut bytes = SEAL_MAGIC.to_vec();
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&len.to_be_bytes()).to_le_bytes());
    bytes
}

/// Record beside a log (`<log>.seal`) how long it is after an acknowledged
/// write, durably. A log cut at a record boundary looks whole from the
/// inside; the seal tells. This durable form is for a log about to become
/// shorter (a compaction, a repair), where a stale seal would be longer
/// than the log and look like lost records, and for a log's first seal.
/// An append to a sealed log, which only makes it longer, moves its seal
/// without the fsyncs ([`append_durably`]).
pub fn write_seal(log: &Path, len: u64) -> Result<()> {
    write_atomic(&seal_path(log), &seal_bytes(len))
}

/// What is beside a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seal {
    Missing,
    Damaged,
    Len(u64),
}

/// Read a log's seal, without a word.
fn read_seal(log: &Path) -> Result<Seal> {
    let Some(bytes) = read_if_exists(&seal_path(log))? else {
        return Ok(Seal::Missing);
    };
    let valid = bytes.len() == 20 && bytes[..8] == SEAL_MAGIC[..];
    let len: [u8; 8] = bytes
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 8]);
    let crc: [u8; 4] = bytes
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 4]);
    if !valid || crc32fast::hash(&len) != u32::from_le_bytes(crc) {
        return Ok(Seal::Damaged);
    }
    Ok(Seal::Len(u64::from_be_bytes(len)))
}

/// The length a log had after its last acknowledged write, if sealed. A
/// damaged seal is reported and ignored: the log's own checks still hold.
pub fn sealed_len(log: &Path) -> Result<Option<u64>> {
    Ok(match read_seal(log)? {
        Seal::Len(len) => Some(len),
        Seal::Missing => None,
        Seal::Damaged => {
            warn_damaged(log);
            None
        }
    })
}

fn warn_damaged(log: &Path) {
    tracing::warn!("{} is damaged; it is ignored", seal_path(log).display());
}

/// Compare a log with its seal. If it is shorter (records lost at its end,
/// which nothing inside the log can show), say so loudly and, with
/// `repair`, leave a note beside it (`<log>.truncated-<time>`) and seal the
/// shorter length: what is left still loads, and a sync or a bundle brings
/// the lost changes back from other devices. With `repair`, a damaged seal
/// is sealed anew at the log's length, so that it warns once. Returns the
/// bytes missing.
pub fn check_seal(log: &Path, actual: u64, repair: bool, now: i64) -> Result<u64> {
    let sealed = match read_seal(log)? {
        Seal::Len(sealed) => sealed,
        Seal::Missing => return Ok(0),
        Seal::Damaged => {
            warn_damaged(log);
            if repair {
                write_seal(log, actual)?;
            }
            return Ok(0);
        }
    };
    if actual >= sealed {
        return Ok(0);
    }
    let missing = sealed - actual;
    tracing::warn!(
        "{} lost its last {missing} bytes (it held {sealed} after its last write): \
         sync with another device or import a bundle to recover them",
        log.display()
    );
    if repair {
        let mut note = log.as_os_str().to_owned();
        note.push(format!(".truncated-{now}"));
        write_atomic(
            Path::new(&note),
            format!("{missing} bytes were missing at the end (sealed length {sealed})\n")
                .as_bytes(),
        )?;
        write_seal(log, actual)?;
    }
    Ok(missing)
}

/// Read a whole file, or `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Cut a file back to `len` bytes after saving what is cut beside it as
/// `<name>.torn-<unix time>`, so that a torn tail is never silently lost.
pub fn cut_torn_tail(path: &Path, bytes: &[u8], len: usize, now: i64) -> Result<()> {
    let aside = path.with_extension(format!(
        "{}.torn-{now}",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    write_atomic(&aside, &bytes[len..])?;
    // A seal past the cut (the log lost its end in the middle of a record
    // the seal covered, and `check_seal` sealed what was left) moves back
    // first, or the cut would look like lost records at the next read.
    if let Seal::Len(sealed) = read_seal(path)?
        && sealed > len as u64
    {
        write_seal(path, len as u64)?;
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    file.set_len(len as u64)
        .map_err(|e| StoreError::io(path, e))?;
    file.sync_all().map_err(|e| StoreError::io(path, e))?;
    tracing::warn!(
        "cut a torn tail of {} bytes from {} (kept in {})",
        bytes.len() - len,
        path.display(),
        aside.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"TESTLOG\0";

    fn log_in(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("doc.log")
    }

    fn notes(dir: &tempfile::TempDir) -> usize {
        fs::read_dir(dir.path())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().contains(".truncated-"))
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn an_append_seals_the_log_at_its_new_length_and_mends_a_damaged_seal() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = log_in(&dir);
        append_durably(&log, HEADER, b"first").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed_len(&log).ok().flatten(), Some(8 + 5));
        append_durably(&log, HEADER, b"second").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed_len(&log).ok().flatten(), Some(8 + 5 + 6));
        // A seal a crash left torn is written whole by the next append.
        fs::write(seal_path(&log), b"CVSE").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_seal(&log).ok(), Some(Seal::Damaged));
        append_durably(&log, HEADER, b"third").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed_len(&log).ok().flatten(), Some(8 + 5 + 6 + 5));
    }

    #[test]
    fn a_damaged_seal_is_sealed_anew_by_a_repair_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = log_in(&dir);
        append_durably(&log, HEADER, b"first").unwrap_or_else(|e| panic!("{e}"));
        fs::write(seal_path(&log), b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_seal(&log, 13, false, 1).ok(), Some(0));
        assert_eq!(
            read_seal(&log).ok(),
            Some(Seal::Damaged),
            "a reader changes nothing"
        );
        assert_eq!(check_seal(&log, 13, true, 1).ok(), Some(0));
        assert_eq!(read_seal(&log).ok(), Some(Seal::Len(13)));
        assert_eq!(notes(&dir), 0, "nothing was lost");
    }

    #[test]
    fn a_torn_tail_cut_below_its_seal_moves_the_seal_back_and_is_noted_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = log_in(&dir);
        append_durably(&log, HEADER, b"record one|").unwrap_or_else(|e| panic!("{e}"));
        append_durably(&log, HEADER, b"record two|").unwrap_or_else(|e| panic!("{e}"));
        let whole = fs::read(&log).unwrap_or_else(|e| panic!("{e}"));
        // The log lost its end in the middle of the second record.
        let torn = whole.len() - 4;
        fs::write(&log, &whole[..torn]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_seal(&log, torn as u64, true, 1).ok(), Some(4));
        assert_eq!(notes(&dir), 1);
        // The next step of the repair cuts the torn record off.
        let boundary = HEADER.len() + 11;
        cut_torn_tail(&log, &whole[..torn], boundary, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed_len(&log).ok().flatten(), Some(boundary as u64));
        assert_eq!(check_seal(&log, boundary as u64, true, 2).ok(), Some(0));
        assert_eq!(notes(&dir), 1, "the cut is not taken for a second loss");
    }
}
