//! One connected client: handshake, then read a request, dispatch it, reply,
//! until the client leaves, idles too long, or the hub shuts down. A request
//! is always finished before shutdown is noticed, so transfers complete.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_io::{FrameReader, FrameWriter, Slot, Transport};
use ferry_protocol::{
    Challenge, ErrorCode, FileName, FrameError, Handle, MAX_LIST_PAGE, MAX_NAME_LEN,
    MAX_PRE_LOGIN_FRAME_LEN, MAX_TEXT_LEN, PROTOCOL_VERSION, Request, Response, Role, UploadMode,
};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::access::live::Entered;
use crate::access::policy;
use crate::error::HubError;
use crate::login::LoginRequest;
use crate::outcome::{Outcome, Refusal};
use crate::publish::group::Published;
use crate::state::Hub;

/// Reading half of a client connection.
pub(crate) type Reader = FrameReader<ReadHalf<Box<dyn Transport>>, Request>;
/// Writing half of a client connection.
pub(crate) type Writer = FrameWriter<WriteHalf<Box<dyn Transport>>, Response>;

/// Whether the session goes on after a request.
pub(crate) enum Flow {
    Continue,
    Close,
}

/// A connected client after the handshake.
pub(crate) struct Session {
    pub(crate) hub: Arc<Hub>,
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    pub(crate) handle: Option<Handle>,
    /// The client's address (a sharing peer is reached at its IP).
    pub(crate) remote: SocketAddr,
    /// Small uploads in a group commit, oldest first; their replies go out
    /// in this order, before any later reply.
    pub(crate) pending: VecDeque<JoinHandle<Result<Published, HubError>>>,
    /// A request read ahead (while batching downloads) and not yet served.
    pub(crate) deferred: Option<Result<Request, FrameError>>,
    /// This connection's place among its source's connections.
    pub(crate) slot: Slot,
    /// When a connection that has not logged in is closed.
    login_by: Instant,
    /// What a login proof on this connection signs: the challenge sent in
    /// `Welcome`, and the TLS channel binding (`None` in plaintext).
    pub(crate) challenge: Challenge,
    pub(crate) channel: Option<[u8; 32]>,
    /// The logged-in handle's rights (from login; changes end the session).
    pub(crate) role: Role,
    pub(crate) quota: Option<u64>,
    /// Cancelled to end this session: hub shutdown, or the handle revoked.
    pub(crate) ended: CancellationToken,
    /// This session's entry among its handle's live sessions.
    pub(crate) entered: Option<Entered>,
    /// Whether the handle's first upload or share was recorded.
    pub(crate) active: bool,
}

/// Grouped uploads a session may have waiting before it stops reading.
/// Each costs a reply slot and a task; their bytes are bounded by the
/// hub's budget for small uploads (past it they wait in temp files). At
/// 256, a pipelined upload of 16 KiB files stopped reading during most
/// commits, and the commit after each stall found only a file or two: one
/// disk flush for almost nothing.
pub(crate) const MAX_PENDING: usize = 1024;

/// What the session loop woke up for.
enum Wake {
    Shutdown,
    Committed(Result<Result<Published, HubError>, tokio::task::JoinError>),
    Request(Result<Result<Option<Request>, FrameError>, tokio::time::error::Elapsed>),
}

/// A connection the front door found speaking Ferry's protocol.
pub(crate) struct Opened {
    pub(crate) transport: Box<dyn Transport>,
    /// The TLS channel binding (`None` in plaintext).
    pub(crate) channel: Option<[u8; 32]>,
    pub(crate) remote: SocketAddr,
    pub(crate) slot: Slot,
    /// When `Hello` must have come.
    pub(crate) deadline: Instant,
}

/// Serves one Ferry connection to the end. Errors are logged here.
pub(crate) async fn serve(hub: Arc<Hub>, opened: Opened, shutdown: CancellationToken) {
    let (peer, deadline) = (opened.remote, opened.deadline);
    let ended = shutdown.child_token();
    let session = match timeout_at(deadline, handshake(hub, opened, ended.clone())).await {
        Ok(Ok(Some(session))) => session,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::debug!(%peer, "handshake failed: {e}"),
        Err(_) => return tracing::debug!(%peer, "handshake timed out"),
    };
    if let Err(e) = session.run(ended).await {
        // What a client did wrong is its business (and a free log flood);
        // what failed here is the operator's.
        match e.code() {
            ErrorCode::Internal | ErrorCode::StorageFull => {
                tracing::warn!(%peer, "session ended: {e}");
            }
            _ => tracing::debug!(%peer, "session ended: {e}"),
        }
    }
}

async fn handshake(
    hub: Arc<Hub>,
    opened: Opened,
    ended: CancellationToken,
) -> Result<Option<Session>, HubError> {
    let login_by = Instant::now() + hub.config.login_timeout;
    let Opened {
        transport,
        channel,
        remote,
        slot,
        ..
    } = opened;
    let challenge = crate::access::random_secret().map(|secret| Challenge(secret.0))?;
    let (read, write) = tokio::io::split(transport);
    let mut reader = FrameReader::new(read);
    reader.set_max_frame_len(MAX_PRE_LOGIN_FRAME_LEN);
    let mut writer = FrameWriter::new(write);
    writer.set_write_deadline(hub.config.stall_timeout);
    let mut session = Session {
        hub,
        reader,
        writer,
        handle: None,
        remote,
        pending: VecDeque::new(),
        deferred: None,
        slot,
        login_by,
        challenge,
        channel,
        role: Role::Reader,
        quota: None,
        ended,
        entered: None,
        active: false,
    };
    let first = match session.reader.recv().await {
        Ok(first) => first,
        Err(e) => {
            session.close_on_bad_frame(e).await?;
            return Ok(None);
        }
    };
    match first {
        Some(Request::Hello { agent, .. }) if agent.len() > MAX_TEXT_LEN => {
            let message = format!("the agent string is limited to {MAX_TEXT_LEN} bytes");
            session
                .refuse(Refusal::new(ErrorCode::TooLarge, message))
                .await?;
            Ok(None)
        }
        Some(Request::Hello { version, .. }) if version == PROTOCOL_VERSION => {
            let agent = format!("ferry-hub {}", env!("CARGO_PKG_VERSION"));
            session
                .writer
                .send(&Response::Welcome {
                    version: PROTOCOL_VERSION,
                    agent,
                    challenge: session.challenge,
                })
                .await?;
            Ok(Some(session))
        }
        Some(Request::Hello { version, .. }) => {
            let message =
                format!("this hub speaks protocol {PROTOCOL_VERSION}, the client {version}");
            session
                .refuse(Refusal::new(ErrorCode::VersionMismatch, message))
                .await?;
            Ok(None)
        }
        Some(_) => {
            let message = "the first message must be Hello";
            session
                .refuse(Refusal::new(ErrorCode::BadRequest, message))
                .await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

impl Session {
    async fn run(mut self, shutdown: CancellationToken) -> Result<(), HubError> {
        let idle = self.hub.config.idle_timeout;
        loop {
            let wake = if let Some(deferred) = self.deferred.take() {
                Wake::Request(Ok(deferred.map(Some)))
            } else {
                // Before login the wait is short: a connection that proves
                // nothing must not keep its slot long.
                let until = match self.handle {
                    Some(_) => Instant::now() + idle,
                    None => self.login_by,
                };
                let (pending, reader) = (&mut self.pending, &mut self.reader);
                let waiting = !pending.is_empty();
                tokio::select! {
                    // Shutdown or revocation first: nothing more is served.
                    biased;
                    () = shutdown.cancelled() => Wake::Shutdown,
                    done = oldest(pending), if waiting => Wake::Committed(done),
                    next = timeout_at(until, reader.recv()) => Wake::Request(next),
                }
            };
            let next = match wake {
                Wake::Shutdown => break,
                Wake::Committed(done) => {
                    self.pending.pop_front();
                    self.reply_published(done).await?;
                    continue;
                }
                Wake::Request(next) => next,
            };
            let request = match next {
                Err(_) if self.handle.is_none() => {
                    let limit = self.hub.config.login_timeout;
                    let message = format!("closing the connection: no login within {limit:?}");
                    self.refuse(Refusal::new(ErrorCode::Timeout, message))
                        .await?;
                    break;
                }
                Err(_) => {
                    let message = format!("closing the connection after {}s idle", idle.as_secs());
                    self.refuse(Refusal::new(ErrorCode::Timeout, message))
                        .await?;
                    break;
                }
                Ok(Ok(Some(request))) => request,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return self.close_on_bad_frame(e).await,
            };
            match self.dispatch(request, &shutdown).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => break,
                Err(e) => {
                    // Tell the client what kind of failure, not the details.
                    let refusal = Refusal::new(e.code(), e.client_message());
                    let _ = self.refuse(refusal).await;
                    return Err(e);
                }
            }
        }
        self.settle().await?;
        let _ = self.writer.shutdown().await;
        Ok(())
    }

    /// Sends the replies of every grouped upload still waiting, in order.
    pub(crate) async fn settle(&mut self) -> Result<(), HubError> {
        self.settle_to(0).await
    }

    /// Sends replies, oldest first, until at most `left` uploads wait.
    pub(crate) async fn settle_to(&mut self, left: usize) -> Result<(), HubError> {
        if self.pending.len() <= left {
            return Ok(()); // nothing to send: every other request passes here
        }
        while self.pending.len() > left {
            let task = self.pending.pop_front().expect("more than `left` wait");
            self.reply_published(task.await).await?;
        }
        Ok(self.writer.flush().await.map_err(FrameError::from)?)
    }

    /// Replies to one grouped upload (popped off `pending`), flushing
    /// unless the next one is done too. An upload the store could not make
    /// durable (a failing disk) is refused, saying so; the connection, whose
    /// frames are all in order, goes on.
    pub(crate) async fn reply_published(
        &mut self,
        done: Result<Result<Published, HubError>, tokio::task::JoinError>,
    ) -> Result<(), HubError> {
        let published = done
            .map_err(|e| {
                HubError::io(
                    "publishing",
                    std::path::Path::new("store"),
                    std::io::Error::other(e),
                )
            })
            .and_then(|published| published);
        let response = match published {
            Ok(Outcome::Done((entry, deduplicated))) => Response::Stored {
                entry: self.hub.publisher.accounts.spell(entry),
                deduplicated,
            },
            Ok(Outcome::Refused(Refusal { code, message })) => Response::Error { code, message },
            Err(e) => {
                tracing::warn!("an upload was not stored: {e}");
                Response::Error {
                    code: e.code(),
                    message: e.client_message().to_owned(),
                }
            }
        };
        self.writer.queue(&response).await?;
        // A group answers many uploads at once: their replies leave together.
        if !self.pending.front().is_some_and(JoinHandle::is_finished) {
            self.writer.flush().await.map_err(FrameError::from)?;
        }
        Ok(())
    }

    pub(crate) async fn close_on_bad_frame(&mut self, error: FrameError) -> Result<(), HubError> {
        let code = match error {
            FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::BadRequest,
        };
        let _ = self.refuse(Refusal::new(code, error.to_string())).await;
        Err(error.into())
    }

    /// Parses a name from the client; an invalid one is refused (and `None`
    /// returned) so the caller just moves on to the next request.
    pub(crate) async fn name_or_refuse(&mut self, raw: &str) -> Result<Option<FileName>, HubError> {
        match FileName::parse(raw) {
            Ok(name) => Ok(Some(name)),
            Err(e) => {
                self.refuse(Refusal::new(ErrorCode::InvalidName, e.to_string()))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Refuses `request` as a whole: an eager upload's body, which follows
    /// its header anyway, is read past so the next frame is found.
    async fn refuse_request(
        &mut self,
        request: &Request,
        refusal: Refusal,
    ) -> Result<Flow, HubError> {
        match request {
            Request::Upload {
                size,
                mode: UploadMode::Eager,
                ..
            } if *size <= ferry_protocol::EAGER_UPLOAD_MAX => {
                self.refuse_upload(true, *size, refusal).await
            }
            Request::Upload {
                mode: UploadMode::Eager,
                ..
            } => {
                // Too large a body to read past: the stream is lost.
                self.refuse(refusal).await?;
                Ok(Flow::Close)
            }
            _ => {
                self.refuse(refusal).await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Sends a refusal; the session goes on.
    pub(crate) async fn refuse(&mut self, refusal: Refusal) -> Result<(), HubError> {
        self.settle().await?;
        let Refusal { code, message } = refusal;
        Ok(self.writer.send(&Response::Error { code, message }).await?)
    }

    async fn dispatch(
        &mut self,
        request: Request,
        shutdown: &CancellationToken,
    ) -> Result<Flow, HubError> {
        if !matches!(
            request,
            Request::Upload {
                mode: UploadMode::Eager,
                ..
            }
        ) {
            self.settle().await?;
        }
        let handle = match (&request, &self.handle) {
            (Request::Login { .. }, _) => None,
            (Request::Hello { .. }, _) => {
                let refusal = Refusal::new(ErrorCode::BadRequest, "Hello was already received");
                self.refuse(refusal).await?;
                return Ok(Flow::Continue);
            }
            (_, Some(handle)) => {
                if let Err(refusal) = policy::check(handle.as_str(), self.role, &request) {
                    self.audit("refused", "-", Some(&refusal));
                    return self.refuse_request(&request, refusal).await;
                }
                Some(handle.clone())
            }
            (_, None) => {
                let message = "register a handle first (/register HANDLE, or --name HANDLE)";
                let refusal = Refusal::new(ErrorCode::LoginRequired, message);
                return self.refuse_request(&request, refusal).await;
            }
        };
        match request {
            Request::Hello { .. } => unreachable!("answered above"),
            Request::Login {
                handle,
                key,
                proof,
                claim,
                legacy,
            } => {
                self.login(LoginRequest {
                    handle,
                    key,
                    proof,
                    claim,
                    legacy,
                })
                .await
            }
            Request::Subscribe => self.subscribe(shutdown).await,
            Request::List {
                prefix,
                after,
                limit,
            } => self.list(prefix, after, limit).await,
            Request::Upload {
                name,
                size,
                hash,
                policy,
                mode,
            } => {
                let owner = handle.expect("checked above");
                self.upload(owner, &name, size, hash, policy, mode).await
            }
            Request::Download { name, offset } => self.download(name, offset).await,
            Request::Delete { name } => self.delete(&handle.expect("checked above"), &name).await,
            Request::Share {
                peer_port,
                fingerprint,
                copies,
            } => {
                self.record_activity().await?;
                let handle = handle.expect("checked above");
                let peer = crate::peer::Sharing {
                    peer_port,
                    fingerprint,
                    copies,
                };
                self.share(&handle, peer, shutdown).await
            }
            Request::Search { term, limit } => self.search(&term, limit).await,
            Request::RequestPeer {
                owner,
                name,
                fingerprint,
            } => {
                self.request_peer(&handle.expect("checked above"), &owner, &name, fingerprint)
                    .await
            }
            Request::Relay { token, offset } => {
                self.relay(&handle.expect("checked above"), token, offset)
                    .await
            }
            Request::Push { token } => self.push(&handle.expect("checked above"), token).await,
            Request::Offer { .. }
            | Request::Withdraw { .. }
            | Request::Heartbeat
            | Request::GrantReady { .. }
            | Request::GrantUsed { .. } => {
                let message =
                    "offers, heartbeats and grant answers need a sharing connection (Share first)";
                self.refuse(Refusal::new(ErrorCode::BadRequest, message))
                    .await?;
                Ok(Flow::Continue)
            }
            Request::CreateInvite { terms } => self.create_invite(terms).await,
            Request::ListInvites => self.list_invites().await,
            Request::RemoveInvite { id } => self.remove_invite(&id).await,
            Request::ListUsers => self.list_users().await,
            Request::ChangeUser { handle, change } => self.change_user(&handle, change).await,
            Request::Usage => self.usage().await,
            Request::Allow { handle, folder } => self.allow(&handle, &folder).await,
            Request::Audit { limit } => self.audit_lines(limit).await,
            Request::CreateToken { label, expires_at } => {
                self.create_token(label, expires_at).await
            }
            Request::ListTokens => self.list_tokens().await,
            Request::RemoveToken { id } => self.remove_token(&id).await,
            Request::CreateWebLink => self.create_web_link().await,
            Request::Proof { .. } => {
                let message = "a proof of possession answers a Prove, and none was asked";
                self.refuse(Refusal::new(ErrorCode::BadRequest, message))
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn list(
        &mut self,
        prefix: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<Flow, HubError> {
        let prefix = match prefix {
            None => None,
            Some(raw) => match self.name_or_refuse(&raw).await? {
                Some(name) => Some(name),
                None => return Ok(Flow::Continue),
            },
        };
        if after.as_ref().is_some_and(|a| a.len() > MAX_NAME_LEN) {
            self.refuse(Refusal::new(
                ErrorCode::TooLarge,
                "pagination cursor too long",
            ))
            .await?;
            return Ok(Flow::Continue);
        }
        let limit = limit.clamp(1, MAX_LIST_PAGE);
        let (entries, more) = self
            .hub
            .catalog
            .list(prefix.as_ref(), after.as_deref(), limit)
            .await?;
        let accounts = &self.hub.publisher.accounts;
        let entries = entries.into_iter().map(|e| accounts.spell(e)).collect();
        self.writer
            .send(&Response::Listing { entries, more })
            .await?;
        Ok(Flow::Continue)
    }

    async fn delete(&mut self, handle: &Handle, raw: &str) -> Result<Flow, HubError> {
        let Some(name) = self.name_or_refuse(raw).await? else {
            return Ok(Flow::Continue);
        };
        if let Some(refusal) = self.hub.dav.lock_refusal(&name, true).await {
            self.refuse(refusal).await?;
            return Ok(Flow::Continue);
        }
        let admin = policy::allows(self.role, policy::Permission::Manage);
        match self.hub.publisher.remove(&name, handle, admin).await? {
            Outcome::Done(entry) => {
                self.writer
                    .send(&Response::Deleted { name: entry.name })
                    .await?
            }
            Outcome::Refused(refusal) => self.refuse(refusal).await?,
        }
        Ok(Flow::Continue)
    }

    /// Turns the connection into an event feed until either side leaves.
    async fn subscribe(&mut self, shutdown: &CancellationToken) -> Result<Flow, HubError> {
        let mut events = self.hub.subscribe();
        self.writer.send(&Response::Subscribed).await?;
        let stall = self.hub.config.stall_timeout;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Flow::Close),
                event = events.recv() => match event {
                    Ok(event) => {
                        let sent = timeout(stall, self.writer.send(&Response::Event(event))).await;
                        sent.map_err(|_| ferry_io::body::BodyError::Stalled(stall))??;
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "slow subscriber missed events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(Flow::Close),
                },
                incoming = self.reader.recv() => {
                    if let Ok(Some(_)) = incoming {
                        let message = "a subscribed connection accepts no requests";
                        self.refuse(Refusal::new(ErrorCode::BadRequest, message)).await?;
                    }
                    return Ok(Flow::Close);
                }
            }
        }
    }
}

/// The oldest grouped upload's outcome (cancel-safe: the task runs on).
async fn oldest(
    pending: &mut VecDeque<JoinHandle<Result<Published, HubError>>>,
) -> Result<Result<Published, HubError>, tokio::task::JoinError> {
    match pending.front_mut() {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
