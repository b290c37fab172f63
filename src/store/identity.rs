//! This device's identity: the member key, the device key and the member's
//! display name, in `identity/` (folder 0700, files 0600).
//!
//! The member key signs certificates, publications and endorsements; the
//! device key signs every change this device makes and will be its iroh
//! endpoint key. Secret keys are stored as hex and never printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::fsutil::{private_dir, read_if_exists, write_atomic};
use super::{Result, StoreError};
use crate::trust::{DeviceId, MemberId, SecretKey};

/// The member and device keys of this home, and the member's name.
#[derive(Debug)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// Member key (absent on a device linked to the member's first device).
    pub member: Option<SecretKey>,
    /// The member id (public half of the member key).
    pub member_public: MemberId,
    /// Device key.
    pub device: Arc<SecretKey>,
}

#[derive(Serialize, Deserialize)]
struct Profile {
    name: String,
    /// Set on a linked device, which holds no member key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<MemberId>,
    /// A check over the fields above, so that damage to them is seen
    /// (profiles written before it have none and are still read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<String>,
}

impl Profile {
    fn new(name: &str, member: Option<MemberId>) -> Self {
        let mut profile = Profile {
            name: name.to_string(),
            member,
            check: None,
        };
        profile.check = Some(profile.expected_check());
        profile
    }

    fn expected_check(&self) -> String {
        let mut input = self.name.as_bytes().to_vec();
        input.push(0);
        if let Some(m) = &self.member {
            input.extend_from_slice(&m.0);
        }
        hex::encode(&crate::trust::sha256(&input)[..8])
    }

    fn intact(&self) -> bool {
        self.check
            .as_ref()
            .is_none_or(|c| *c == self.expected_check())
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("member.key"),
        dir.join("device.key"),
        dir.join("profile.json"),
    )
}

/// A key file: the secret half in hex, then the public half in hex, which
/// catches any damage to the secret (a file with the secret alone, as
/// written before, is still read).
fn key_file(key: &SecretKey) -> String {
    format!(
        "{}\n{}\n",
        hex::encode(key.to_bytes()),
        hex::encode(key.public())
    )
}

fn read_key(path: &Path) -> Result<SecretKey> {
    let bytes = read_if_exists(path)?
        .ok_or_else(|| StoreError::Missing(format!("{} is missing", path.display())))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| StoreError::corrupt(path, "a key file is text"))?;
    let hex32 = |t: &str| -> Option<[u8; 32]> { hex::decode(t).ok()?.try_into().ok() };
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let (secret, public) = match tokens[..] {
        [secret] => (hex32(secret), None),
        [secret, public] => (hex32(secret), Some(hex32(public))),
        _ => (None, None),
    };
    let key = secret
        .map(SecretKey::from_bytes)
        .ok_or_else(|| StoreError::corrupt(path, "expected 64 hex digits"))?;
    match public {
        Some(Some(p)) if p == key.public() => Ok(key),
        None => Ok(key),
        _ => Err(StoreError::corrupt(
            path,
            "the key does not match its public half: the file is damaged",
        )),
    }
}

impl Identity {
    /// Make new keys for `name` in `dir`; refuses to overwrite an identity.
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Missing(
                "a name is required: --name NAME".into(),
            ));
        }
        let (member_path, device_path, profile_path) = paths(dir);
        if member_path.exists() {
            return Err(StoreError::Exists(format!(
                "an identity already exists in {}",
                dir.display()
            )));
        }
        private_dir(dir)?;
        let member = SecretKey::generate();
        let identity = Identity {
            name: name.to_string(),
            member_public: MemberId(member.public()),
            member: Some(member),
            device: Arc::new(SecretKey::generate()),
        };
        write_atomic(&device_path, key_file(&identity.device).as_bytes())?;
        let profile =
            serde_json::to_vec_pretty(&Profile::new(&identity.name, None)).unwrap_or_default();
        write_atomic(&profile_path, &profile)?;
        // The member key last: its presence marks a complete identity.
        write_atomic(&member_path, key_file(identity.member_key()?).as_bytes())?;
        Ok(identity)
    }

    /// Load the identity in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let (member_path, device_path, profile_path) = paths(dir);
        if !member_path.exists() && !profile_path.exists() {
            return Err(StoreError::Missing(format!(
                "no identity in {}",
                dir.parent().unwrap_or(dir).display()
            )));
        }
        let profile_bytes = read_if_exists(&profile_path)?
            .ok_or_else(|| StoreError::Missing(format!("{} is missing", profile_path.display())))?;
        let profile: Profile = serde_json::from_slice(&profile_bytes)
            .map_err(|e| StoreError::corrupt(&profile_path, e.to_string()))?;
        if !profile.intact() {
            return Err(StoreError::corrupt(
                &profile_path,
                "the profile does not match its check: the file is damaged",
            ));
        }
        let (member, member_public) = match profile.member {
            Some(id) if !member_path.exists() => (None, id),
            _ => {
                let key = read_key(&member_path)?;
                let id = MemberId(key.public());
                (Some(key), id)
            }
        };
        Ok(Identity {
            name: profile.name,
            member,
            member_public,
            device: Arc::new(read_key(&device_path)?),
        })
    }

    /// A device linked to an existing member: a new device key, the member's
    /// id and name, and no member key.
    pub fn create_linked(dir: &Path, name: &str, member: MemberId) -> Result<Self> {
        let (member_path, device_path, profile_path) = paths(dir);
        if member_path.exists() || profile_path.exists() {
            return Err(StoreError::Exists(format!(
                "an identity already exists in {}",
                dir.display()
            )));
        }
        private_dir(dir)?;
        let identity = Identity {
            name: name.to_string(),
            member: None,
            member_public: member,
            device: Arc::new(SecretKey::generate()),
        };
        write_atomic(&device_path, key_file(&identity.device).as_bytes())?;
        let profile = serde_json::to_vec_pretty(&Profile::new(&identity.name, Some(member)))
            .unwrap_or_default();
        // The profile last: its presence marks a complete linked identity.
        write_atomic(&profile_path, &profile)?;
        Ok(identity)
    }

    /// The member key, needed to sign certificates, publications and
    /// endorsements; a linked device has none.
    pub fn member_key(&self) -> Result<&SecretKey> {
        self.member.as_ref().ok_or_else(|| {
            StoreError::Missing(format!(
                "this device was linked to {}'s first device and holds no member key; do this from that device",
                self.name
            ))
        })
    }

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.member_public
    }

    /// The device id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.device.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_load_and_permissions() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = home.path().join("identity");
        let made = Identity::create(&dir, " Ana ").unwrap_or_else(|e| panic!("{e}"));
        let loaded = Identity::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.name, "Ana");
        assert_eq!(loaded.member_id(), made.member_id());
        assert_eq!(loaded.device_id(), made.device_id());
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&dir), 0o700);
        for f in ["member.key", "device.key", "profile.json"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert!(matches!(
            Identity::create(&dir, "Bo"),
            Err(StoreError::Exists(_))
        ));
    }

    #[test]
    fn a_damaged_key_is_corruption() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = home.path().join("identity");
        Identity::create(&dir, "Ana").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("device.key"), "zz").unwrap_or_else(|e| panic!("{e}"));
        assert!(Identity::load(&dir).is_err_and(|e| e.is_integrity()));
    }
}
