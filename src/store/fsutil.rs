//! Durable file operations: private folders and files, appends that are
//! fsynced before success is reported, and atomic replacement by
//! temp file + fsync + rename + fsync of the folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Missing(format!("{} has no parent folder", path.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(private_permissions())
        .tempfile_in(dir)
        .map_err(|e| StoreError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| StoreError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| StoreError::io(path, e.error))?;
    sync_dir(dir)
}

fn private_permissions() -> fs::Permissions {
    fs::Permissions::from_mode(0o600)
}

/// Append bytes to a file and fsync it. A file that does not exist yet is
/// created with `header` first, and its folder is fsynced too.
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
    Ok(())
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
