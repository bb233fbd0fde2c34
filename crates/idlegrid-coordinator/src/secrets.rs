//! Customers' secrets (the keys of their own buckets) are sealed before they are stored:
//! XChaCha20-Poly1305 under the grid's secrets key, so a copy of the records — a backup, a
//! replica, a leaked dump — holds nothing usable without the key.
//!
//! The key is 32 random bytes. An embedded coordinator creates it next to its data
//! (`secrets.key`, mode 0600) on first start; coordinators sharing records must share it, so
//! with shared backends it comes from `--secrets-key` (`IDLEGRID_SECRETS_KEY`, base64), and
//! without one the grid refuses jobs that carry secrets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Seals and opens secrets with one key, and signs what the coordinator hands out to be
/// given back (links) with a key derived from it.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// HMAC-SHA256 key: a hash of the secrets key under its own label, so a signature never
    /// reveals anything usable for sealing.
    signing_key: [u8; 32],
}

/// Marks a sealed value (and its format).
const SEALED: &str = "sealed1:";

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box for a base64 key of 32 bytes.
    pub fn from_base64(key: &str) -> Result<SecretBox, String> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|e| format!("the secrets key is not base64: {e}"))?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| {
            format!(
                "the secrets key must be 32 bytes, not {}; make one with `head -c32 /dev/urandom | base64`",
                bytes.len()
            )
        })?;
        let signing_key = Sha256::new()
            .chain_update(b"idlegrid signing key\0")
            .chain_update(&bytes)
            .finalize()
            .into();
        Ok(SecretBox {
            cipher,
            signing_key,
        })
    }

    /// The key in `path`, created (random, mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SecretBox> {
        if let Ok(text) = std::fs::read_to_string(path) {
            return SecretBox::from_base64(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        let key = STANDARD.encode(rand::random::<[u8; 32]>());
        write_private(path, key.as_bytes())?;
        SecretBox::from_base64(&key).map_err(anyhow::Error::msg)
    }

    /// `plain`, sealed.
    pub fn seal(&self, plain: &str) -> String {
        let nonce_bytes: [u8; 24] = rand::random();
        // Encryption with a valid key and nonce cannot fail.
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce_bytes), plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend(sealed);
        format!("{SEALED}{}", STANDARD.encode(out))
    }

    /// The HMAC-SHA256 of `message` under the signing key.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing_key)
            .expect("HMAC takes a key of any length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `signature` is the signature of `message` (compared in constant time).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing_key)
            .expect("HMAC takes a key of any length");
        mac.update(message);
        mac.verify_slice(signature).is_ok()
    }

    /// A sealed value, opened.
    pub fn open(&self, sealed: &str) -> Result<String, String> {
        let body = sealed
            .strip_prefix(SEALED)
            .ok_or("the stored secret is not sealed")?;
        let bytes = STANDARD
            .decode(body)
            .map_err(|_| "the stored secret is damaged")?;
        if bytes.len() < 24 {
            return Err("the stored secret is damaged".into());
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| "the stored secret is damaged")?;
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), ciphertext)
            .map_err(|_| "the stored secret was sealed with another secrets key")?;
        String::from_utf8(plain).map_err(|_| "the stored secret is damaged".into())
    }
}

/// Writes a file only its owner can read.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_only_under_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let sealer = SecretBox::load_or_create(&path).unwrap();
        let sealed = sealer.seal("hunter2");
        assert!(sealed.starts_with(SEALED) && !sealed.contains("hunter2"));
        assert_ne!(sealed, sealer.seal("hunter2"), "a fresh nonce every time");
        // The same key from its file opens it; another key does not.
        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "hunter2");
        let other = SecretBox::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        assert!(
            other
                .open(&sealed)
                .unwrap_err()
                .contains("another secrets key")
        );
        assert!(
            SecretBox::from_base64("c2hvcnQ=")
                .unwrap_err()
                .contains("32 bytes")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
