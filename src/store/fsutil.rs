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
/// ([`write_seal`]). A file that does not exist yet is created with
/// `header` first, and its folder is fsynced too.
pub fn append_durably(path: &Path, header: &[u8], bytes: &[u8]) -> Result<()> {
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
    // The log's new bytes are durable: a seal lost or left stale by a
    // crash from here on is shorter than the log, which is fine, so it
    // need not be durable itself (two fsyncs fewer per append).
    write_cache(
        &seal_path(path),
        &seal_bytes(len + header_len + bytes.len() as u64),
    )
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
/// shorter (a compaction, a repair): a stale seal would then be longer
/// than the log and look like lost records. An append, which only makes
/// the log longer, seals it without the fsyncs ([`append_durably`]).
pub fn write_seal(log: &Path, len: u64) -> Result<()> {
    write_atomic(&seal_path(log), &seal_bytes(len))
}

/// The length a log had after its last acknowledged write, if sealed. A
/// damaged seal is reported and ignored: the log's own checks still hold.
pub fn sealed_len(log: &Path) -> Result<Option<u64>> {
    let path = seal_path(log);
    let Some(bytes) = read_if_exists(&path)? else {
        return Ok(None);
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
        tracing::warn!("{} is damaged; it is ignored", path.display());
        return Ok(None);
    }
    Ok(Some(u64::from_be_bytes(len)))
}

/// Compare a log with its seal. If it is shorter (records lost at its end,
/// which nothing inside the log can show), say so loudly and, with
/// `repair`, leave a note beside it (`<log>.truncated-<time>`) and seal the
/// shorter length: what is left still loads, and a sync or a bundle brings
/// the lost changes back from other devices. Returns the bytes missing.
pub fn check_seal(log: &Path, actual: u64, repair: bool, now: i64) -> Result<u64> {
    let Some(sealed) = sealed_len(log)? else {
        return Ok(0);
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
