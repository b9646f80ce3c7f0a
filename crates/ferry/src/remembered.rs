//! What the client remembers between commands: its default hub and, per
//! hub, its handle and whether the hub is plaintext (`hubs.toml` in the
//! state dir, mode 0600, rewritten whole through a temp file). Written
//! after a login succeeds and by `ferry join`, so that later commands need
//! neither `--hub` nor `--name`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The remembered hubs.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Remembered {
    /// The hub used when no other is named.
    pub(crate) default: Option<String>,
    /// Per hub address.
    #[serde(default)]
    pub(crate) hubs: BTreeMap<String, HubMemory>,
}

/// What is remembered of one hub.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HubMemory {
    /// This client's handle there.
    pub(crate) handle: Option<String>,
    /// The hub runs without TLS.
    #[serde(default)]
    pub(crate) plaintext: bool,
}

impl Remembered {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("hubs.toml")
    }

    /// What `state_dir` remembers (nothing, if unreadable: it is only a
    /// convenience, and is rewritten on the next login).
    pub(crate) fn load(state_dir: &Path) -> Self {
        std::fs::read_to_string(Self::path(state_dir))
            .ok()
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Remembers `addr` as the default hub, with `memory`.
    pub(crate) fn remember(state_dir: &Path, addr: &str, memory: HubMemory) -> Result<()> {
        let mut remembered = Self::load(state_dir);
        if remembered.default.as_deref() == Some(addr) && remembered.hubs.get(addr) == Some(&memory)
        {
            return Ok(());
        }
        remembered.default = Some(addr.to_owned());
        remembered.hubs.insert(addr.to_owned(), memory);
        let text = toml::to_string(&remembered).context("encoding remembered hubs")?;
        write_private(&Self::path(state_dir), &text)
            .with_context(|| format!("writing {}", Self::path(state_dir).display()))
    }
}

/// Writes `text` to `path` (mode 0600) through a temp file and a rename.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        ferry_io::disk::create_private_dir_all(dir)?;
    }
    let temp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubs_are_remembered_and_the_last_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Remembered::load(dir.path()).default.is_none());
        let alice = HubMemory {
            handle: Some("alice".into()),
            plaintext: false,
        };
        Remembered::remember(dir.path(), "a:1", alice.clone()).unwrap();
        Remembered::remember(dir.path(), "b:2", HubMemory::default()).unwrap();
        let remembered = Remembered::load(dir.path());
        assert_eq!(remembered.default.as_deref(), Some("b:2"));
        assert_eq!(remembered.hubs.get("a:1"), Some(&alice));
    }
}
