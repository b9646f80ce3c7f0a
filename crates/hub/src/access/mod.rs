//! Access control: who gets in (admission, invites, login proofs, slowed
//! guesses), what they may do ([`policy`]), the sessions a revocation
//! ends ([`live`]), and the record of it all ([`audit`]).
//!
//! Threat model, in short: anyone who can reach the port may try; only a
//! key registered on this hub logs in, and only with a proof bound to that
//! connection. An invite admits whoever holds it, once per use, until it
//! expires; its link carries the fingerprint, so a client never shows it
//! to an impostor. Roles decide everything else, in one place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_protocol::{Fingerprint, InviteLink, InviteSecret, InviteTerms, Role};

use crate::catalog::Catalog;
use crate::error::HubError;
use crate::publish::unix_now;

pub mod attempts;
pub mod audit;
pub mod credentials;
pub mod live;
pub mod policy;

/// Who may register a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Only whoever holds an invite.
    Invite,
    /// Anyone who connects (the older designs' behaviour).
    Open,
}

impl Admission {
    /// `invite` or `open`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "invite" => Some(Self::Invite),
            "open" => Some(Self::Open),
            _ => None,
        }
    }
}

/// The hub's access state.
#[derive(Debug)]
pub struct Access {
    /// How handles are admitted.
    pub admission: Admission,
    /// Why: said at start.
    pub admission_reason: &'static str,
    /// Failed attempts and registrations per source.
    pub attempts: attempts::Attempts,
    /// The audit log.
    pub audit: audit::AuditLog,
    /// Open sessions by handle.
    pub live: Arc<live::Live>,
    /// API tokens verified lately.
    pub credentials: credentials::Credentials,
    owner_invite_path: PathBuf,
}

/// The settings key that marks a data dir made before access control.
const CREATED_OPEN: &str = "created_open";

impl Access {
    /// Decides the admission mode (`configured`, else open for a data dir
    /// from before invites, else invite) and opens the audit log.
    pub async fn open(
        data_dir: &Path,
        catalog: &Catalog,
        configured: Option<Admission>,
        registrations_per_source: u32,
    ) -> Result<Self, HubError> {
        let legacy = catalog.setting(CREATED_OPEN).await?.is_some();
        let (admission, admission_reason) = match (configured, legacy) {
            (Some(mode), _) => (mode, "as configured"),
            (None, true) => (
                Admission::Open,
                "this data dir predates invites; start with --admission invite to require them",
            ),
            (None, false) => (Admission::Invite, "the default"),
        };
        let audit_path = data_dir.join("audit.log");
        let audit = audit::AuditLog::open(&audit_path)
            .map_err(|e| HubError::io("opening the audit log", &audit_path, e))?;
        Ok(Self {
            admission,
            admission_reason,
            attempts: attempts::Attempts::new(registrations_per_source),
            audit,
            live: Arc::default(),
            credentials: credentials::Credentials::default(),
            owner_invite_path: data_dir.join("owner-invite"),
        })
    }

    /// While no one owns this hub (whatever its admission: an open hub is
    /// managed too): the owner invite, made on first call and kept (mode
    /// 0600) in the data dir until it is used, and whether it was made just
    /// now. `addr` is where clients reach the hub.
    pub async fn owner_invite(
        &self,
        catalog: &Catalog,
        fingerprint: Option<Fingerprint>,
        addr: &str,
    ) -> Result<Option<(InviteLink, bool)>, HubError> {
        if catalog.has_owner().await? {
            self.owner_invite_used();
            return Ok(None);
        }
        let kept = std::fs::read_to_string(&self.owner_invite_path)
            .ok()
            .and_then(|text| InviteLink::parse(&text).ok());
        let (secret, fresh) = match kept {
            Some(link)
                if catalog
                    .invite_usable(&link.secret.hashed(), unix_now())
                    .await? =>
            {
                (link.secret, false)
            }
            _ => (self.new_owner_invite(catalog).await?, true),
        };
        let link = InviteLink {
            addr: addr.to_owned(),
            fingerprint,
            secret,
        };
        ferry_io::disk::write_private(&self.owner_invite_path, format!("{link}\n").as_bytes())
            .map_err(|e| HubError::io("writing the owner invite", &self.owner_invite_path, e))?;
        Ok(Some((link, fresh)))
    }

    async fn new_owner_invite(&self, catalog: &Catalog) -> Result<InviteSecret, HubError> {
        catalog.remove_hub_invites().await?;
        let secret = random_secret()?;
        let terms = InviteTerms {
            role: Role::Owner,
            uses: 1,
            expires_at: None,
            quota: None,
        };
        catalog
            .add_invite(&secret.hashed(), &terms, None, unix_now())
            .await?;
        self.audit.record("-", "invite.owner", &secret.id(), None);
        Ok(secret)
    }

    /// Forgets the owner invite's file (it was used, or is not needed).
    pub fn owner_invite_used(&self) {
        let _ = std::fs::remove_file(&self.owner_invite_path);
    }
}

/// 32 random bytes as an invite secret.
pub fn random_secret() -> Result<InviteSecret, HubError> {
    let mut bytes = [0; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| {
        HubError::io(
            "drawing random bytes",
            Path::new("-"),
            std::io::Error::other("no randomness"),
        )
    })?;
    Ok(InviteSecret(bytes))
}
