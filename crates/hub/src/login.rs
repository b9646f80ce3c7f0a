//! `Login`, for a [`Session`]: check the proof (a signature of this
//! connection's challenge and TLS channel binding), then the claim —
//! log in, register (open hubs), or redeem an invite — after the wait the
//! source's recent failures earned.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use ferry_protocol::{
    Claim, ErrorCode, Handle, HandleError, LegacyProof, MAX_FRAME_LEN, PublicKey, Response, Role,
    Signature, login_transcript,
};

use crate::access::Admission;
use crate::catalog::{QuotaSetting, Redeemed, UserRecord};
use crate::error::HubError;
use crate::outcome::Refusal;
use crate::publish::unix_now;
use crate::session::{Flow, Session};

/// What a stranger (or anyone without a handle for its key) is told on an
/// invite-only hub.
const INVITE_ONLY: &str = "this hub admits new users by invite only: ask one of its admins for an \
     invite (they run `ferry invite`), then run `ferry join LINK --name HANDLE`";

/// How precisely a user's last login is recorded, in seconds.
const SEEN_RESOLUTION: i64 = 3600;

/// A login request's parts.
pub(crate) struct LoginRequest {
    pub(crate) handle: String,
    pub(crate) key: PublicKey,
    pub(crate) proof: Signature,
    pub(crate) claim: Claim,
    pub(crate) legacy: Option<LegacyProof>,
}

/// What a login attempt came to.
enum Verdict {
    In {
        user: UserRecord,
        registered: bool,
    },
    /// Refused for a reason that counts as a failed guess.
    Failed(Refusal),
    /// Refused for a reason that is no guess (taken handle, closed hub).
    Refused(Refusal),
}

impl Session {
    pub(crate) async fn login(&mut self, request: LoginRequest) -> Result<Flow, HubError> {
        let Ok(handle) = Handle::parse(&request.handle) else {
            let refusal = Refusal::new(ErrorCode::InvalidHandle, HandleError.to_string());
            self.refuse(refusal).await?;
            return Ok(Flow::Continue);
        };
        let attempts = &self.hub.access.attempts;
        let attempt = attempts.begin(self.remote.ip());
        if !attempt.delay.is_zero() {
            tokio::time::sleep(attempt.delay).await;
        }
        let verdict = self.verdict(&handle, &request).await;
        let attempts = &self.hub.access.attempts;
        match &verdict {
            Ok(Verdict::Failed(_)) => attempts.failed(attempt),
            _ => attempts.succeeded(attempt),
        }
        let verdict = self.uniform(verdict?, &request.claim);
        let (user, registered) = match verdict {
            Verdict::In { user, registered } => (user, registered),
            Verdict::Failed(refusal) => {
                self.audit("login.refused", handle.as_str(), Some(&refusal));
                self.refuse(refusal).await?;
                return Ok(Flow::Continue);
            }
            Verdict::Refused(refusal) => {
                self.refuse(refusal).await?;
                return Ok(Flow::Continue);
            }
        };
        // Last seen to the hour: a disk flush per login would cost a burst
        // of logins one flush each.
        let now = unix_now();
        if user
            .last_seen
            .is_none_or(|seen| now - seen >= SEEN_RESOLUTION)
        {
            self.hub.catalog.seen(&handle, now).await?;
        }
        self.enter(handle.clone(), &user);
        // A revocation or change between the check and `enter` found no
        // session of ours to end: look once more now that it would.
        let current = self.hub.catalog.user(&handle).await?;
        if current.is_none_or(|now| now.revoked || now.role != user.role) {
            self.entered = None;
            self.handle = None;
            let refusal = Refusal::new(
                ErrorCode::Busy,
                "your handle changed while you logged in; log in again",
            );
            self.refuse(refusal).await?;
            return Ok(Flow::Continue);
        }
        // Shown as its user spelled it when registering ("User1").
        let accounts = &self.hub.publisher.accounts;
        accounts.note_spelling(&user.handle, &user.spelling);
        let reply = Response::LoggedIn {
            handle: user.spelling.clone(),
            registered,
            role: user.role,
        };
        self.writer.send(&reply).await?;
        Ok(Flow::Continue)
    }

    /// On an invite-only hub, whether a handle exists, belongs to another
    /// key or was revoked is nobody's business before login: all of these
    /// get the one answer a stranger gets.
    fn uniform(&self, verdict: Verdict, claim: &Claim) -> Verdict {
        let hidden = [
            ErrorCode::HandleTaken,
            ErrorCode::UnknownHandle,
            ErrorCode::Revoked,
            ErrorCode::InviteRequired,
        ];
        if self.hub.access.admission != Admission::Invite || matches!(claim, Claim::Invite(_)) {
            return verdict;
        }
        match verdict {
            Verdict::Failed(refusal) | Verdict::Refused(refusal)
                if hidden.contains(&refusal.code) =>
            {
                Verdict::Failed(Refusal::new(ErrorCode::InviteRequired, INVITE_ONLY))
            }
            other => other,
        }
    }

    /// Binds the session to `handle` with `user`'s rights.
    fn enter(&mut self, handle: Handle, user: &UserRecord) {
        self.role = user.role;
        self.quota = user.quota.effective(self.hub.config.default_quota);
        self.entered = Some(
            self.hub
                .access
                .live
                .enter(handle.as_str(), self.ended.clone()),
        );
        self.handle = Some(handle);
        self.slot.verified();
        self.reader.set_max_frame_len(MAX_FRAME_LEN);
    }

    async fn verdict(&self, handle: &Handle, request: &LoginRequest) -> Result<Verdict, HubError> {
        let transcript = login_transcript(&self.challenge, self.channel.as_ref(), &request.handle);
        let verified = UnparsedPublicKey::new(&ED25519, request.key.0)
            .verify(&transcript, &request.proof.to_bytes());
        if verified.is_err() {
            return Ok(Verdict::Failed(Refusal::new(
                ErrorCode::PermissionDenied,
                "the login proof does not verify for this connection",
            )));
        }
        let catalog = &self.hub.catalog;
        if let Claim::Invite(secret) = request.claim {
            // A handle from before keys moves onto the key first (an owner
            // invite on an upgraded hub is for such a handle to claim).
            if let Some(user) = catalog.user(handle).await?
                && user.key.is_none()
                && !user.revoked
                && let moved @ (Verdict::Failed(_) | Verdict::Refused(_)) =
                    self.migrate(handle, user, request).await?
            {
                return Ok(moved);
            }
            return self.redeem(handle, request, &secret).await;
        }
        match catalog.user(handle).await? {
            Some(user) if user.revoked => Ok(Verdict::Failed(Refusal::new(
                ErrorCode::Revoked,
                format!("the handle '{handle}' was revoked on this hub"),
            ))),
            Some(user) if user.key == Some(request.key) => Ok(Verdict::In {
                user,
                registered: false,
            }),
            Some(user) if user.key.is_none() => self.migrate(handle, user, request).await,
            Some(_) => Ok(Verdict::Failed(Refusal::new(
                ErrorCode::HandleTaken,
                format!("handle '{handle}' is registered to another client; choose another"),
            ))),
            None if request.claim == Claim::Existing => Ok(Verdict::Failed(Refusal::new(
                ErrorCode::UnknownHandle,
                format!("no handle '{handle}' on this hub; register it first (/register {handle})"),
            ))),
            None => self.register(handle, request).await,
        }
    }

    /// Moves a handle registered with a bearer secret onto the key, once
    /// the client proves that secret (it is never accepted again after).
    async fn migrate(
        &self,
        handle: &Handle,
        user: UserRecord,
        request: &LoginRequest,
    ) -> Result<Verdict, HubError> {
        let Some(proof) = request.legacy else {
            return Ok(Verdict::Refused(Refusal::new(
                ErrorCode::LegacySecretNeeded,
                format!(
                    "'{handle}' was registered before login keys: prove its old secret once to move it"
                ),
            )));
        };
        let taken = || {
            Verdict::Failed(Refusal::new(
                ErrorCode::HandleTaken,
                format!("handle '{handle}' is registered to another client; choose another"),
            ))
        };
        let Ok(stored) = <[u8; 32]>::try_from(user.secret_hash.as_slice()) else {
            return Ok(taken());
        };
        let expected = LegacyProof::new(
            &stored,
            &self.challenge,
            self.channel.as_ref(),
            &request.handle,
            &request.key,
        );
        // A MAC: compared in constant time.
        if verify_slices_are_equal(&expected.0, &proof.0).is_err() {
            return Ok(taken());
        }
        if !self.hub.catalog.adopt_key(handle, &request.key).await? {
            return Ok(taken()); // another login moved it first
        }
        self.audit("login.migrated", handle.as_str(), None);
        Ok(Verdict::In {
            user: UserRecord {
                key: Some(request.key),
                ..user
            },
            registered: false,
        })
    }

    async fn register(&self, handle: &Handle, request: &LoginRequest) -> Result<Verdict, HubError> {
        let (key, spelling) = (&request.key, request.handle.trim());
        if self.hub.access.admission == Admission::Invite {
            return Ok(Verdict::Refused(Refusal::new(
                ErrorCode::InviteRequired,
                INVITE_ONLY,
            )));
        }
        if !self.hub.access.attempts.may_register(self.remote.ip()) {
            return Ok(Verdict::Refused(Refusal::new(
                ErrorCode::Busy,
                "too many handles registered from your address lately; try again in a few minutes",
            )));
        }
        let now = unix_now();
        let registered = self
            .hub
            .catalog
            .register(
                handle,
                spelling,
                key,
                Role::Member,
                QuotaSetting::Default,
                now,
            )
            .await?;
        match self.hub.catalog.user(handle).await? {
            // Someone else registered it between our look and our insert.
            Some(user) if user.key != Some(*key) => Ok(Verdict::Refused(Refusal::new(
                ErrorCode::HandleTaken,
                format!("handle '{handle}' is registered to another client; choose another"),
            ))),
            Some(user) => {
                if registered {
                    self.audit("register", handle.as_str(), None);
                }
                Ok(Verdict::In { user, registered })
            }
            None => Err(HubError::io(
                "registering",
                std::path::Path::new("catalog"),
                std::io::Error::other("a registered handle vanished"),
            )),
        }
    }

    async fn redeem(
        &self,
        handle: &Handle,
        request: &LoginRequest,
        secret: &ferry_protocol::InviteSecret,
    ) -> Result<Verdict, HubError> {
        let (key, spelling) = (&request.key, request.handle.trim());
        let redeemed = self
            .hub
            .catalog
            .redeem(&secret.hashed(), handle, spelling, key, unix_now())
            .await?;
        let (user, registered) = match redeemed {
            Redeemed::Joined(user) => (user, true),
            Redeemed::Raised(user) | Redeemed::Unchanged(user) => (user, false),
            Redeemed::Invalid => {
                return Ok(Verdict::Failed(Refusal::new(
                    ErrorCode::InviteInvalid,
                    "this invite is not valid here: it is used up, expired, withdrawn or mistyped; ask for a new one",
                )));
            }
            Redeemed::Taken => {
                return Ok(Verdict::Refused(Refusal::new(
                    ErrorCode::HandleTaken,
                    format!("handle '{handle}' is taken; join with another (--name HANDLE)"),
                )));
            }
        };
        if user.role == Role::Owner {
            self.hub.access.owner_invite_used();
        }
        self.audit("join", handle.as_str(), None);
        Ok(Verdict::In { user, registered })
    }

    /// Records what this session did (or was refused) in the audit log.
    pub(crate) fn audit(&self, action: &str, target: &str, refusal: Option<&Refusal>) {
        let actor = self.handle.as_ref().map_or("-", Handle::as_str);
        let audit = &self.hub.access.audit;
        match refusal {
            Some(refusal) => {
                let target = format!("{target}: {}", refusal.message);
                audit.refusal(actor, action, &target, Some(self.remote));
            }
            None => audit.record(actor, action, target, Some(self.remote)),
        }
    }
}
