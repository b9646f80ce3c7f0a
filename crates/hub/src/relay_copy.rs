//! What the hub does with the bytes it relays besides forwarding them:
//! checks them against the offered hash, and keeps a copy in its store
//! (when configured). Only a relay from byte 0 sees the whole file, so only
//! it can do either.
//!
//! The copy is hashed and written on a disk thread, direct to the disk like
//! an upload (see [`DiskWriter`]), while the session's task forwards: no
//! thread hop per chunk, and no fresh page-cache pages to fill. Failures
//! only cost the copy, never the relay.

use std::path::PathBuf;

use ferry_io::disk_writer::DiskWriter;
use ferry_protocol::{ConflictPolicy, ContentHash, FileName, Handle};

use crate::grants::Issued;
use crate::outcome::Outcome;
use crate::publish::Publication;
use crate::session::Session;
use crate::store::remove_quietly;

/// The relay's checking and copying, by what it can do.
pub(crate) enum RelayCopy {
    /// The relay started past byte 0, or the copy failed.
    Nothing,
    /// Checked only: this hub keeps no relayed files.
    Checked(Box<blake3::Hasher>),
    /// Checked and written to a temp file in the store.
    Kept { path: PathBuf, writer: DiskWriter },
}

impl RelayCopy {
    /// What a relay of `grant` from `offset` can do on this hub: a copy is
    /// kept only if the sharing peer allows it, within `max_file_size`.
    pub(crate) async fn start(session: &Session, grant: &Issued, offset: u64) -> Self {
        if offset > 0 {
            return Self::Nothing;
        }
        let hub = &session.hub;
        let size = grant.file.size;
        let keep = hub.index.allows_copies(&grant.owner) && size <= hub.config.max_file_size;
        if !keep {
            return Self::Checked(Box::default());
        }
        let path = session.hub.store.temp_path();
        let create = path.clone();
        match tokio::task::spawn_blocking(move || std::fs::File::create(create)).await {
            Ok(Ok(file)) => Self::Kept {
                path,
                writer: DiskWriter::start(file, size, blake3::Hasher::new(), true).await,
            },
            _ => Self::Checked(Box::default()),
        }
    }

    /// Takes the next relayed bytes.
    pub(crate) async fn write(&mut self, chunk: &[u8]) {
        match self {
            Self::Nothing => {}
            Self::Checked(hasher) => {
                hasher.update(chunk);
            }
            Self::Kept { writer, .. } => {
                if let Err(e) = writer.write(chunk).await {
                    tracing::warn!("could not keep a copy of a relayed file: {e}");
                    self.discard().await;
                }
            }
        }
    }

    /// Drops the copy (the relay failed).
    pub(crate) async fn discard(&mut self) {
        if let Self::Kept { path, .. } = std::mem::replace(self, Self::Nothing) {
            remove_quietly(&path).await;
        }
    }

    /// The relay is complete: checks the bytes against the grant's hash,
    /// and stores the copy if they match.
    pub(crate) async fn finish(self, session: &Session, grant: &Issued) {
        let (hasher, path) = match self {
            Self::Nothing => return,
            Self::Checked(hasher) => (*hasher, None),
            Self::Kept { path, writer } => match writer.finish().await {
                Ok(hasher) => (hasher, Some(path)),
                Err(e) => {
                    tracing::warn!("could not keep a copy of a relayed file: {e}");
                    remove_quietly(&path).await;
                    return;
                }
            },
        };
        if ContentHash::from(hasher.finalize()) != grant.file.hash {
            tracing::warn!(
                owner = grant.owner,
                name = grant.file.name,
                "relayed bytes do not match the offered hash"
            );
            if let Some(path) = path {
                remove_quietly(&path).await;
            }
            return;
        }
        if let Some(path) = path {
            keep(session, grant, path).await;
        }
    }
}

/// Publishes a verified, fsynced copy under the owner's name, unless the
/// name is taken.
async fn keep(session: &Session, grant: &Issued, path: PathBuf) {
    let (Ok(owner), Ok(name)) = (
        Handle::parse(&grant.owner),
        FileName::parse(&grant.file.name),
    ) else {
        remove_quietly(&path).await;
        return;
    };
    // A revoked or read-only owner keeps nothing here; the copy counts
    // against the hub's budget for copies, not against anyone's quota.
    let hub = &session.hub;
    let owner_ok = matches!(
        hub.catalog.user(&owner).await,
        Ok(Some(user)) if !user.revoked && user.role >= ferry_protocol::Role::Member
    );
    let made_room = owner_ok && make_room(session, grant.file.size).await;
    if !made_room {
        remove_quietly(&path).await;
        return;
    }
    let publication = Publication {
        name,
        size: grant.file.size,
        hash: grant.file.hash,
        owner,
        policy: ConflictPolicy::Refuse,
        admin: false,
        relayed: true,
    };
    match session
        .hub
        .publisher
        .publish(&publication, Some(&path), false)
        .await
    {
        Ok(Outcome::Done(_)) => {}
        Ok(Outcome::Refused(refusal)) => {
            tracing::info!(
                "not keeping relayed '{}': {}",
                grant.file.name,
                refusal.message
            );
            remove_quietly(&path).await;
        }
        Err(e) => tracing::warn!("keeping relayed '{}' failed: {e}", grant.file.name),
    }
}

/// Removes the oldest relayed copies until `size` more fits the hub's
/// budget for them; whether it fits.
async fn make_room(session: &Session, size: u64) -> bool {
    let hub = &session.hub;
    let budget = hub.config.relay_cache;
    if size > budget {
        return false;
    }
    // Bounded, in case a mark cannot be removed: then the copy is not kept.
    for _ in 0..MAX_EVICTIONS {
        let (total, oldest) = match hub.catalog.relayed().await {
            Ok(relayed) => relayed,
            Err(e) => {
                tracing::warn!("reading the relayed copies: {e}");
                return false;
            }
        };
        let Some(oldest) = oldest.filter(|_| total.saturating_add(size) > budget) else {
            return total.saturating_add(size) <= budget;
        };
        let evicted = match (FileName::parse(&oldest), Handle::parse("hub")) {
            (Ok(name), Ok(hub_handle)) => hub.publisher.remove(&name, &hub_handle, true).await,
            _ => Ok(Outcome::Refused(crate::outcome::Refusal::new(
                ferry_protocol::ErrorCode::InvalidName,
                "not a name",
            ))),
        };
        match evicted {
            Ok(Outcome::Done(_)) => tracing::info!("evicted the relayed copy '{oldest}' (oldest)"),
            // Gone already: only its mark was left.
            Ok(Outcome::Refused(_)) => {
                if hub.catalog.unmark_relayed(&oldest).await.is_err() {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!("evicting the relayed copy '{oldest}': {e}");
                return false;
            }
        }
    }
    false
}

/// Most copies evicted to make room for one.
const MAX_EVICTIONS: usize = 10_000;
