//! Managing the hub, for a [`Session`]: invites, users, folder writers,
//! usage and the audit log. [`crate::access::policy`] has already checked
//! the role; what depends on the target (owners out of an admin's reach, a
//! folder's owner) is checked here.

use ferry_protocol::{
    ErrorCode, Handle, InviteTerms, MAX_TEXT_LEN, Response, Role, UserChange, UserInfo,
};

use crate::access::{policy, random_secret};
use crate::catalog::QuotaSetting;
use crate::error::HubError;
use crate::outcome::Refusal;
use crate::publish::unix_now;
use crate::session::{Flow, Session};

/// Most users or invites listed in one answer (each well under 200 bytes
/// encoded, so the answer fits a frame).
pub(crate) const MAX_LISTED: usize = 4096;
/// Most audit lines sent at once, and their bytes in all.
const MAX_AUDIT_LINES: usize = 1000;
const MAX_AUDIT_BYTES: usize = 512 << 10;
/// Most invites outstanding at once.
const MAX_INVITES: usize = 1000;

impl Session {
    pub(crate) async fn create_invite(&mut self, terms: InviteTerms) -> Result<Flow, HubError> {
        let by = self.handle.clone().expect("logged in");
        if terms.role == Role::Owner && self.role != Role::Owner {
            return self.refuse_continue(owner_only("invite an owner")).await;
        }
        if terms.uses == 0 {
            let refusal = Refusal::new(ErrorCode::BadRequest, "an invite needs at least one use");
            return self.refuse_continue(refusal).await;
        }
        let now = unix_now();
        if self.hub.catalog.invites(now).await?.len() >= MAX_INVITES {
            let message =
                format!("{MAX_INVITES} invites are outstanding; remove some (ferry invite rm ID)");
            return self
                .refuse_continue(Refusal::new(ErrorCode::TooLarge, message))
                .await;
        }
        let secret = random_secret()?;
        let invite = self
            .hub
            .catalog
            .add_invite(&secret.hashed(), &terms, Some(&by), now)
            .await?;
        self.audit(
            "invite.create",
            &format!("{} ({})", invite.id, terms.role),
            None,
        );
        self.writer
            .send(&Response::InviteCreated { invite, secret })
            .await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn list_invites(&mut self) -> Result<Flow, HubError> {
        let mut invites = self.hub.catalog.invites(unix_now()).await?;
        invites.truncate(MAX_LISTED);
        self.writer.send(&Response::Invites { invites }).await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn remove_invite(&mut self, id: &str) -> Result<Flow, HubError> {
        if id.len() > MAX_TEXT_LEN || !self.hub.catalog.remove_invite(id).await? {
            let refusal = Refusal::new(ErrorCode::NotFound, "no such invite (see ferry invite ls)");
            return self.refuse_continue(refusal).await;
        }
        self.audit("invite.remove", id, None);
        let id = id.to_owned();
        self.writer.send(&Response::InviteRemoved { id }).await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn list_users(&mut self) -> Result<Flow, HubError> {
        let accounts = &self.hub.publisher.accounts;
        let default_quota = self.hub.config.default_quota;
        let users: Vec<UserInfo> = self
            .hub
            .catalog
            .users()
            .await?
            .iter()
            .take(MAX_LISTED)
            .map(|u| u.info(accounts.used(&u.handle), default_quota))
            .collect();
        self.writer.send(&Response::Users { users }).await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn change_user(
        &mut self,
        raw: &str,
        change: UserChange,
    ) -> Result<Flow, HubError> {
        let Some(target) = self.user_or_refuse(raw).await? else {
            return Ok(Flow::Continue);
        };
        let new_role = match change {
            UserChange::Role(role) => Some(role),
            _ => None,
        };
        if !policy::may_manage(self.role, target.role, new_role) {
            return self
                .refuse_continue(owner_only("change an owner or make one"))
                .await;
        }
        let handle = Handle::parse(&target.handle).expect("stored handles are valid");
        let (quota, revoke) = match change {
            UserChange::Quota(quota) => {
                let setting = quota.map_or(QuotaSetting::Unlimited, QuotaSetting::Bytes);
                (Some(setting), false)
            }
            UserChange::Revoke => (None, true),
            UserChange::Role(_) => (None, false),
        };
        let changed = self
            .hub
            .catalog
            .change_user(&handle, target.role, new_role, quota, revoke)
            .await?;
        let Some(changed) = changed else {
            let refusal = Refusal::new(
                ErrorCode::Busy,
                format!(
                    "'{handle}' changed while this change was made; look again (ferry users) and retry"
                ),
            );
            return self.refuse_continue(refusal).await;
        };
        // Sessions hold their rights from login: end them, so that the
        // change holds at once (a revoked sharer's offers go with it).
        let ended = self.hub.access.live.end(handle.as_str());
        self.hub.access.credentials.forget(handle.as_str());
        let action = match change {
            UserChange::Role(role) => format!("users.role {role}"),
            UserChange::Quota(quota) => format!("users.quota {quota:?}"),
            UserChange::Revoke => "users.revoke".to_owned(),
        };
        self.audit(&action, &format!("{handle} ({ended} sessions ended)"), None);
        let used = self.hub.publisher.accounts.used(handle.as_str());
        let user = changed.info(used, self.hub.config.default_quota);
        self.writer.send(&Response::UserChanged { user }).await?;
        // This session may have been one of them.
        Ok(if self.ended.is_cancelled() {
            Flow::Close
        } else {
            Flow::Continue
        })
    }

    pub(crate) async fn usage(&mut self) -> Result<Flow, HubError> {
        let handle = self.handle.clone().expect("logged in");
        let Some(record) = self.hub.catalog.user(&handle).await? else {
            return self
                .refuse_continue(Refusal::new(ErrorCode::UnknownHandle, "no such user"))
                .await;
        };
        let used = self.hub.publisher.accounts.used(handle.as_str());
        let user = record.info(used, self.hub.config.default_quota);
        self.writer.send(&Response::Usage { user }).await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn allow(&mut self, raw: &str, folder: &str) -> Result<Flow, HubError> {
        let Some(target) = self.user_or_refuse(raw).await? else {
            return Ok(Flow::Continue);
        };
        let by = self.handle.clone().expect("logged in");
        let accounts = &self.hub.publisher.accounts;
        let owner = accounts.folder_owner(folder);
        let admin = policy::allows(self.role, policy::Permission::Manage);
        let refusal = match owner {
            None => Some(Refusal::new(
                ErrorCode::NotFound,
                format!("no top-level folder '{folder}' in the store"),
            )),
            Some(owner) if owner != by.as_str() && !admin => Some(Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "not allowed: the folder '{folder}' belongs to {owner}; only they or an admin can let others in"
                ),
            )),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            return self.refuse_continue(refusal).await;
        }
        let handle = Handle::parse(&target.handle).expect("stored handles are valid");
        self.hub.catalog.allow_writer(folder, &handle).await?;
        accounts.allow(folder, &handle);
        self.audit("folder.allow", &format!("{folder} {handle}"), None);
        let reply = Response::Allowed {
            folder: folder.to_owned(),
            handle: handle.to_string(),
        };
        self.writer.send(&reply).await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn audit_lines(&mut self, limit: u32) -> Result<Flow, HubError> {
        let limit = (limit as usize).clamp(1, MAX_AUDIT_LINES);
        let audit = &self.hub.access.audit;
        let lines = audit.tail(limit, MAX_AUDIT_BYTES).map_err(|e| {
            HubError::io(
                "reading the audit log",
                std::path::Path::new("audit.log"),
                e,
            )
        })?;
        self.writer.send(&Response::AuditLines { lines }).await?;
        Ok(Flow::Continue)
    }

    /// The user called `raw`, or a refusal sent (and `None`).
    async fn user_or_refuse(
        &mut self,
        raw: &str,
    ) -> Result<Option<crate::catalog::UserRecord>, HubError> {
        let Ok(handle) = Handle::parse(raw) else {
            let refusal = Refusal::new(
                ErrorCode::InvalidHandle,
                ferry_protocol::HandleError.to_string(),
            );
            self.refuse(refusal).await?;
            return Ok(None);
        };
        let user = self.hub.catalog.user(&handle).await?;
        if user.is_none() {
            let message = format!("no user '{handle}' on this hub (see ferry users)");
            self.refuse(Refusal::new(ErrorCode::UnknownHandle, message))
                .await?;
        }
        Ok(user)
    }

    pub(crate) async fn refuse_continue(&mut self, refusal: Refusal) -> Result<Flow, HubError> {
        self.audit("refused", "-", Some(&refusal));
        self.refuse(refusal).await?;
        Ok(Flow::Continue)
    }
}

fn owner_only(what: &str) -> Refusal {
    Refusal::new(
        ErrorCode::PermissionDenied,
        format!("not allowed: only an owner may {what}"),
    )
}
