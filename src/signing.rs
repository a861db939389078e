//! Ed25519 keys and pack signatures (contract sections 3 and 5): `riskgate keygen` and
//! `riskgate sign`, and what the loader verifies.
//!
//! Formats, so that any Ed25519 tool can make keys and signatures:
//! - a public key is `ed25519:` and the standard base64 (with padding) of its 32 bytes;
//! - a secret key file holds `ed25519-secret:` and the standard base64 of the 32-byte private
//!   key seed (RFC 8032), and may end in a newline;
//! - `pack.sig` holds `ed25519:` and the standard base64 of the 64-byte signature of the
//!   pack's signed message ([`signed_message`]: the `sha256sum` lines of every file of the pack
//!   folder but the top-level `pack.sig`, sorted by relative path), and may end in a newline.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::Error;
use crate::rules::packfs;

/// What a public key (and a signature) starts with.
pub const PUBLIC_PREFIX: &str = "ed25519:";
/// What a secret key file starts with.
pub const SECRET_PREFIX: &str = "ed25519-secret:";
/// The signature's file name, at the top of a pack folder.
pub const SIGNATURE_FILE: &str = "pack.sig";
/// Secret key files and `pack.sig` files longer than this are refused.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// An Ed25519 public key, as `policy.toml` names it in `[partners.<id>] public_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:BASE64` (32 bytes).
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let bytes = decode(text, PUBLIC_PREFIX, 32, "public key")?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a public key is 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&array)
            .map(PublicKey)
            .map_err(|_| "not a valid Ed25519 public key (not a curve point)".to_string())
    }

    /// Checks `signature` (the text of a `pack.sig`: `ed25519:BASE64`, an optional final
    /// newline) over `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<(), String> {
        let bytes = decode(trim_newline(signature), PUBLIC_PREFIX, 64, "signature")?;
        let array: [u8; 64] = bytes
            .try_into()
            .map_err(|_| "a signature is 64 bytes".to_string())?;
        self.0
            .verify_strict(message, &Signature::from_bytes(&array))
            .map_err(|_| {
                "the signature does not match the pack's files under this public key".to_string()
            })
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

/// An Ed25519 secret key (its 32-byte seed).
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, Error> {
        let mut seed = [0_u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| Error::io(Path::new("(random source)"), e))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Parses a secret key file's text: `ed25519-secret:BASE64` (32 bytes), an optional final
    /// newline.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        let bytes = decode(trim_newline(text), SECRET_PREFIX, 32, "secret key")?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a secret key is 32 bytes".to_string())?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// The secret key file's text, `ed25519-secret:BASE64\n`.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", STANDARD.encode(self.0.to_bytes()))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `message`, as `pack.sig` holds it (without the final newline).
    pub fn sign(&self, message: &[u8]) -> String {
        let signature = self.0.sign(message);
        format!("{PUBLIC_PREFIX}{}", STANDARD.encode(signature.to_bytes()))
    }
}

/// Writes a new secret key to `out` (owner-only permissions from the moment the file exists:
/// it is created under a temporary name with mode 0600, then renamed over `out`) and returns
/// its public key.
pub fn keygen(out: &Path) -> Result<PublicKey, Error> {
    let key = SecretKey::generate()?;
    write_private(out, key.to_file_text().as_bytes())?;
    Ok(key.public())
}

/// What [`sign_pack`] did.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The `pack.sig` written.
    pub path: PathBuf,
    /// Files covered by the signature.
    pub files: usize,
    /// The public key that verifies it (what `policy.toml` must name).
    pub public_key: PublicKey,
}

/// Signs the pack folder `pack_dir` with the secret key in `key_file`: writes
/// `pack_dir/pack.sig`. The pack's files must be regular files and folders with UTF-8 names
/// (the rules the loader applies), else the problems come back as a load error.
pub fn sign_pack(key_file: &Path, pack_dir: &Path) -> Result<Signed, Error> {
    let text = read_small(key_file)?;
    let key = SecretKey::parse(&text).map_err(|e| Error::io(key_file, e))?;
    let (message, files) = signed_message_counted(pack_dir)?;
    let signature = key.sign(message.as_bytes());
    let path = pack_dir.join(SIGNATURE_FILE);
    write_atomic(&path, format!("{signature}\n").as_bytes(), false)?;
    Ok(Signed {
        path,
        files,
        public_key: key.public(),
    })
}

/// The signed message of a pack folder: one `sha256sum` line (`HEX  relative/path\n`) per file,
/// every file of the folder and its subfolders but the top-level `pack.sig`, sorted by relative
/// path as bytes. Refused (as a load error) when the folder holds a symbolic link, a special
/// file, or a file name that is not UTF-8 or holds a backslash or a newline.
pub fn signed_message(pack_dir: &Path) -> Result<String, Error> {
    signed_message_counted(pack_dir).map(|(message, _)| message)
}

fn signed_message_counted(pack_dir: &Path) -> Result<(String, usize), Error> {
    let folder = pack_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| pack_dir.display().to_string());
    let files = packfs::scan_or_error(pack_dir, &folder)?;
    let message = packfs::message(&files).map_err(|(path, e)| Error::io(&path, e))?;
    let count = files.iter().filter(|f| !f.is_signature()).count();
    Ok((message, count))
}

fn trim_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

fn decode(text: &str, prefix: &str, len: usize, what: &str) -> Result<Vec<u8>, String> {
    let Some(body) = text.strip_prefix(prefix) else {
        return Err(format!(
            "a {what} must start with \"{prefix}\" followed by standard base64"
        ));
    };
    let bytes = STANDARD.decode(body).map_err(|e| {
        format!("a {what} must be \"{prefix}\" followed by standard base64 (with padding): {e}")
    })?;
    if bytes.len() != len {
        return Err(format!(
            "a {what} is {len} bytes, this one decodes to {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Reads a small regular text file (a key file may be a link, as mounted secrets often are;
/// a `pack.sig` never is: the pack walk refuses links first).
pub(crate) fn read_small(path: &Path) -> Result<String, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::io(path, "not a regular file"));
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(Error::io(
            path,
            format!(
                "{} bytes; a key or signature file is at most {MAX_KEY_FILE_BYTES}",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|_| Error::io(path, "not UTF-8 text"))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes, true)
}

/// Writes `bytes` to a new temporary file next to `path` (mode 0600 when `private`), syncs it,
/// and renames it over `path` (which replaces a symbolic link there rather than following it).
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0_u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{}-{attempt}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if private { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = private;
        match options.open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let signature = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len() / 2)
                .filter_map(|i| s.get(2 * i..2 * i + 2))
                .filter_map(|b| u8::from_str_radix(b, 16).ok())
                .collect()
        };
        let key =
            SecretKey::parse(&format!("{SECRET_PREFIX}{}\n", STANDARD.encode(hex(seed)))).ok();
        let key = key.as_ref();
        assert_eq!(
            key.map(|k| k.public().to_string()),
            Some(format!("{PUBLIC_PREFIX}{}", STANDARD.encode(hex(public))))
        );
        let sig = format!("{PUBLIC_PREFIX}{}", STANDARD.encode(hex(signature)));
        assert_eq!(key.map(|k| k.sign(b"")), Some(sig.clone()));
        let verified = key.map(|k| k.public().verify(b"", &format!("{sig}\n")));
        assert_eq!(verified, Some(Ok(())));
        let tampered = key.map(|k| k.public().verify(b"x", &sig).is_err());
        assert_eq!(tampered, Some(true));
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
        assert!(PublicKey::parse("rsa:AAAA").is_err());
        assert!(SecretKey::parse("ed25519-secret:not base64!").is_err());
    }
}
