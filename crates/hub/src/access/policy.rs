//! The one policy: which role may do which request. Every way in (the
//! protocol today; HTTP and WebDAV later) asks [`check`] before acting.
//! Rules that depend on the target (only your own files, folders that
//! belong to someone, owners out of an admin's reach) are the publisher's
//! and `admin`'s, which call [`may_manage`] and [`Permission`] too.

use ferry_protocol::{ErrorCode, Request, Role};

use crate::outcome::Refusal;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// List, search, get (from the store or a peer), subscribe.
    Read,
    /// Upload, delete own files, allow others into own folders.
    Write,
    /// Offer files as a peer.
    Share,
    /// Users, invites, the audit log, anyone's files.
    Manage,
}

impl Permission {
    fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Share => "share",
            Self::Manage => "manage",
        }
    }
}

/// Whether `role` has `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    match permission {
        Permission::Read => true,
        Permission::Write | Permission::Share => role >= Role::Member,
        Permission::Manage => role >= Role::Admin,
    }
}

/// What `request` needs; `None` for requests with no session yet, that
/// only make sense on a sharing connection (checked where they are served),
/// or that only answer the hub (a `Proof`, read by the upload it belongs to).
pub fn needed(request: &Request) -> Option<Permission> {
    Some(match request {
        Request::Hello { .. }
        | Request::Login { .. }
        | Request::Offer { .. }
        | Request::Withdraw { .. }
        | Request::Heartbeat
        | Request::GrantReady { .. }
        | Request::GrantUsed { .. }
        | Request::Proof { .. } => return None,
        Request::Subscribe
        | Request::List { .. }
        | Request::Download { .. }
        | Request::Search { .. }
        | Request::RequestPeer { .. }
        | Request::Relay { .. }
        | Request::Usage
        | Request::CreateToken { .. }
        | Request::ListTokens
        | Request::RemoveToken { .. }
        | Request::CreateWebLink => Permission::Read,
        Request::Upload { .. } | Request::Delete { .. } | Request::Allow { .. } => {
            Permission::Write
        }
        Request::Share { .. } | Request::Push { .. } => Permission::Share,
        Request::CreateInvite { .. }
        | Request::ListInvites
        | Request::RemoveInvite { .. }
        | Request::ListUsers
        | Request::ChangeUser { .. }
        | Request::Audit { .. } => Permission::Manage,
    })
}

/// Allows `request` for `handle` in `role`, or says which permission is missing.
pub fn check(handle: &str, role: Role, request: &Request) -> Result<(), Refusal> {
    match needed(request) {
        Some(permission) if !allows(role, permission) => Err(denied(handle, role, permission)),
        _ => Ok(()),
    }
}

/// The refusal for a missing permission.
pub fn denied(handle: &str, role: Role, permission: Permission) -> Refusal {
    let can = match role {
        Role::Reader => "readers can list, search and get",
        Role::Member => "members can read, write their own files and share",
        Role::Admin | Role::Owner => "admins can do everything",
    };
    Refusal::new(
        ErrorCode::PermissionDenied,
        format!(
            "not allowed: '{handle}' is a {role} and this needs the '{}' permission ({can}); ask an admin",
            permission.name()
        ),
    )
}

/// Whether `actor` (in `actor_role`) may change or revoke a user whose role
/// is `target_role`, giving them `new_role`: admins manage everyone but
/// owners, and only an owner makes or unmakes an owner.
pub fn may_manage(actor_role: Role, target_role: Role, new_role: Option<Role>) -> bool {
    let owner_involved = target_role == Role::Owner || new_role == Some(Role::Owner);
    allows(actor_role, Permission::Manage) && (!owner_involved || actor_role == Role::Owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_read_members_write_admins_manage() {
        use Permission::*;
        let table = [
            (Role::Reader, [true, false, false, false]),
            (Role::Member, [true, true, true, false]),
            (Role::Admin, [true, true, true, true]),
            (Role::Owner, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Write, Share, Manage].map(|p| allows(role, p));
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn owners_are_out_of_an_admins_reach() {
        assert!(may_manage(Role::Admin, Role::Member, Some(Role::Reader)));
        assert!(!may_manage(Role::Admin, Role::Owner, None));
        assert!(!may_manage(Role::Admin, Role::Member, Some(Role::Owner)));
        assert!(may_manage(Role::Owner, Role::Owner, Some(Role::Admin)));
        assert!(!may_manage(Role::Member, Role::Reader, None));
    }
}
