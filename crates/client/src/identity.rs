//! The client's secret: 32 random bytes made on first use and kept in the
//! state directory (mode 0600). Whoever holds it owns the handles it
//! registered.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ferry_protocol::Secret;

use crate::error::ClientError;

/// Loads the secret at `path`, creating it if absent.
pub fn load_or_create_secret(path: &Path) -> Result<Secret, ClientError> {
    match fs::read(path) {
        Ok(bytes) => {
            let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                let reason = std::io::Error::other("expected exactly 32 bytes");
                ClientError::local("reading client secret", path, reason)
            })?;
            Ok(Secret(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(ClientError::local("reading client secret", path, e)),
    }
}

fn create(path: &Path) -> Result<Secret, ClientError> {
    let io = |e| ClientError::local("creating client secret", path, e);
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| io(std::io::Error::other("no randomness")))?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(Secret(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = load_or_create_secret(&path).unwrap();
        assert_eq!(load_or_create_secret(&path).unwrap(), first);
        assert_ne!(first, Secret([0; 32]));
    }
}
