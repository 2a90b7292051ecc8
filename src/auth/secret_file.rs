//! The HS256 secret generated on first start when no key is configured. It lives beside
//! the SQLite database, readable only by its owner, so every process on the machine
//! (`uplift serve`, `uplift token`) signs and verifies with the same key.

use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use anyhow::Context;
use base64::Engine;
use rand::RngCore;

/// Smallest secret accepted: RFC 7518 §3.2 wants at least the hash size (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

pub fn load_or_generate(path: &Path) -> anyhow::Result<String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    // Written in full to a private temporary file, then linked into place: a process
    // starting at the same moment sees either no file or the whole secret.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "no signing key configured: generated a random HS256 secret; set UPLIFT_JWT_SECRET (or a key pair) to choose your own"
            );
            Ok(secret)
        }
        // Someone (another process, an earlier start) made it first: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    let secret = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = secret.trim().to_string();
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_BYTES,
        "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes",
        path.display()
    );
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_generated_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/jwt-secret");
        let first = load_or_generate(&path).unwrap();
        let second = load_or_generate(&path).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_BYTES);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        fs::write(&path, "short").unwrap();
        assert!(load_or_generate(&path).is_err());
    }
}
