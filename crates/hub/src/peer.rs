//! The hub's side of the peer network, for a [`Session`]: sharing
//! connections (offers, heartbeats, hub commands), search, grants, and
//! relays (a requester waiting on one connection, the owner pushing on
//! another, chunks handed between the two sessions through a small channel).

use std::net::SocketAddr;

use bytes::BytesMut;
use ferry_protocol::{
    CHUNK_LEN, ErrorCode, Event, FileEntry, Fingerprint, Grant, Handle, Hit, MAX_SEARCH_HITS,
    MAX_SEARCH_TERM, Request, Response, Source, Token,
};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::error::HubError;
use crate::grants::{Issued, RelayChunks};
use crate::index::PeerInfo;
use crate::outcome::Refusal;
use crate::publish::unix_now;
use crate::relay_copy::RelayCopy;
use crate::session::{Flow, Session};
use crate::state::Hub;

/// Chunks buffered between a pushing owner and a relaying requester.
const RELAY_CHUNKS: usize = 4;

/// What a `Share` request asks for.
pub(crate) struct Sharing {
    pub(crate) peer_port: u16,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) copies: Option<bool>,
}

impl Session {
    /// Makes this connection `handle`'s sharing connection until it closes.
    pub(crate) async fn share(
        &mut self,
        handle: &Handle,
        sharing: Sharing,
        shutdown: &CancellationToken,
    ) -> Result<Flow, HubError> {
        let Sharing {
            peer_port,
            fingerprint,
            copies,
        } = sharing;
        let addr = SocketAddr::new(self.remote.ip(), peer_port);
        // Copies of what is relayed are kept only with the peer's consent,
        // and never against the operator's `keep_relayed = false`.
        let config = &self.hub.config;
        let open = self.hub.access.admission == crate::access::Admission::Open;
        let default = config.keep_relayed.unwrap_or(open);
        let copies = config.keep_relayed != Some(false) && copies.unwrap_or(default);
        let (outbox, mut inbox) = mpsc::channel(64);
        let session = self.hub.next_session_id();
        self.hub.index.join(
            handle.as_str(),
            session,
            PeerInfo {
                addr,
                fingerprint,
                outbox,
                copies,
            },
        );
        self.hub.announce(Event::PeerJoined {
            handle: handle.to_string(),
        });
        let result = self.sharing_loop(handle, &mut inbox, shutdown, addr).await;
        if self.hub.index.leave(handle.as_str(), session) {
            self.hub.announce(Event::PeerLeft {
                handle: handle.to_string(),
            });
        }
        result
    }

    async fn sharing_loop(
        &mut self,
        handle: &Handle,
        inbox: &mut mpsc::Receiver<Response>,
        shutdown: &CancellationToken,
        addr: SocketAddr,
    ) -> Result<Flow, HubError> {
        self.writer
            .send(&Response::Sharing {
                addr: addr.to_string(),
            })
            .await?;
        let (silence, stall) = (self.hub.config.peer_timeout, self.hub.config.stall_timeout);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Flow::Close),
                Some(command) = inbox.recv() => {
                    let sent = timeout(stall, self.writer.send(&command)).await;
                    sent.map_err(|_| ferry_io::body::BodyError::Stalled(stall))??;
                }
                next = timeout(silence, self.reader.recv()) => match next {
                    Err(_) => {
                        let message = format!("no heartbeat for {}s; you are offline", silence.as_secs());
                        self.refuse(Refusal::new(ErrorCode::Timeout, message)).await?;
                        return Ok(Flow::Close);
                    }
                    Ok(Ok(None)) => return Ok(Flow::Close),
                    Ok(Err(e)) => return self.close_on_bad_frame(e).await.map(|()| Flow::Close),
                    Ok(Ok(Some(request))) => self.sharing_request(handle, request).await?,
                },
            }
        }
    }

    async fn sharing_request(&mut self, handle: &Handle, request: Request) -> Result<(), HubError> {
        match request {
            Request::Offer { files, replace_all } => {
                let (total, refused) = self.hub.index.offer(handle.as_str(), files, replace_all);
                self.writer
                    .send(&Response::Offered { total, refused })
                    .await?;
            }
            Request::Withdraw { names } => {
                let total = self.hub.index.withdraw(handle.as_str(), &names);
                self.writer.send(&Response::Withdrawn { total }).await?;
            }
            Request::GrantReady { token } => self.hub.grants.ack(&token),
            Request::GrantUsed { token } => self.hub.grants.used(&token, handle.as_str()),
            Request::Heartbeat => {}
            _ => {
                let message = "a sharing connection takes only offers, withdrawals, heartbeats and grant answers";
                self.refuse(Refusal::new(ErrorCode::BadRequest, message))
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn search(&mut self, term: &str, limit: u32) -> Result<Flow, HubError> {
        match find(&self.hub, term, limit).await? {
            Ok((hits, truncated)) => {
                self.writer
                    .send(&Response::SearchResults { hits, truncated })
                    .await?;
            }
            Err(refusal) => self.refuse(refusal).await?,
        }
        Ok(Flow::Continue)
    }

    /// Introduces `requester` to `owner` for one file: tells the owner to
    /// expect a token, waits for its answer, hands the token over.
    pub(crate) async fn request_peer(
        &mut self,
        requester: &Handle,
        owner: &str,
        name: &str,
        fingerprint: Fingerprint,
    ) -> Result<Flow, HubError> {
        let introduced = crate::broker::introduce(&self.hub, requester, owner, name, fingerprint);
        let introduced = match introduced.await? {
            Ok(introduced) => introduced,
            Err(refusal) => {
                self.refuse(refusal).await?;
                return Ok(Flow::Continue);
            }
        };
        let grant = Grant {
            token: introduced.token,
            owner: self.hub.publisher.accounts.spelled(&introduced.owner),
            addr: introduced.peer.addr.to_string(),
            fingerprint: introduced.peer.fingerprint,
            file: introduced.file,
        };
        self.writer.send(&Response::Granted { grant }).await?;
        Ok(Flow::Continue)
    }

    /// Streams a granted file from its owner through the hub.
    pub(crate) async fn relay(
        &mut self,
        requester: &Handle,
        token: Token,
        offset: u64,
    ) -> Result<Flow, HubError> {
        let Some(grant) = self.hub.grants.take_for_relay(&token, requester.as_str()) else {
            let message = "no usable grant for this relay (unknown, expired, used, or not yours)";
            self.refuse(Refusal::new(ErrorCode::NotFound, message))
                .await?;
            return Ok(Flow::Continue);
        };
        if offset > grant.file.size {
            self.refuse(Refusal::new(
                ErrorCode::BadRequest,
                "offset past the end of the file",
            ))
            .await?;
            return Ok(Flow::Continue);
        }
        match crate::broker::pushed(&self.hub, &grant, token, offset).await {
            Some(chunks) => self.forward_relay(grant, offset, chunks).await,
            None => {
                let wait = self.hub.config.relay_timeout.as_secs();
                let message = format!(
                    "'{}' did not send '{}' within {wait}s",
                    grant.owner, grant.file.name
                );
                self.refuse(Refusal::new(ErrorCode::Timeout, message))
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn forward_relay(
        &mut self,
        grant: Issued,
        offset: u64,
        chunks: RelayChunks,
    ) -> Result<Flow, HubError> {
        let entry = FileEntry {
            name: grant.file.name.clone(),
            size: grant.file.size,
            hash: grant.file.hash,
            owner: self.hub.publisher.accounts.spelled(&grant.owner),
            modified: unix_now(),
        };
        self.writer
            .queue(&Response::Sending { entry, offset })
            .await?;
        let mut copy = RelayCopy::start(self, &grant, offset).await;
        match self.relay_bytes(&grant, offset, chunks, &mut copy).await {
            Ok(()) => {
                copy.finish(self, &grant).await;
                Ok(Flow::Continue)
            }
            Err(e) => {
                copy.discard().await;
                Err(e)
            }
        }
    }

    /// Forwards the owner's bytes from `offset` on to the requester, and to
    /// `copy`.
    async fn relay_bytes(
        &mut self,
        grant: &Issued,
        offset: u64,
        mut chunks: RelayChunks,
        copy: &mut RelayCopy,
    ) -> Result<(), HubError> {
        let stall = self.hub.config.stall_timeout;
        let mut remaining = grant.file.size - offset;
        while remaining > 0 {
            let Ok(Some(chunk)) = timeout(stall, chunks.recv()).await else {
                return Err(HubError::Relay(format!(
                    "'{}' stopped sending '{}'",
                    grant.owner, grant.file.name
                )));
            };
            if chunk.len() as u64 > remaining {
                return Err(HubError::Relay("the owner sent more than announced".into()));
            }
            copy.write(&chunk).await;
            ferry_io::body::write_within(&mut self.writer, &chunk, stall).await?;
            remaining -= chunk.len() as u64;
        }
        Ok(ferry_io::body::flush_within(&mut self.writer, stall).await?)
    }

    /// The owner's side of a relay: its bytes, handed to the waiting requester.
    pub(crate) async fn push(&mut self, pusher: &Handle, token: Token) -> Result<Flow, HubError> {
        let Some(slot) = self.hub.grants.claim_push(&token, pusher.as_str()) else {
            self.refuse(Refusal::new(
                ErrorCode::NotFound,
                "no relay is waiting for this token",
            ))
            .await?;
            return Ok(Flow::Continue);
        };
        let (tx, rx) = mpsc::channel(RELAY_CHUNKS);
        if slot.deliver.send(rx).is_err() {
            self.refuse(Refusal::new(ErrorCode::Timeout, "the requester is gone"))
                .await?;
            return Ok(Flow::Continue);
        }
        self.writer
            .send(&Response::UploadReady {
                offset: slot.offset,
            })
            .await?;
        let stall = self.hub.config.stall_timeout;
        let mut remaining = slot.size - slot.offset;
        while remaining > 0 {
            let mut chunk =
                BytesMut::zeroed(CHUNK_LEN.min(usize::try_from(remaining).unwrap_or(CHUNK_LEN)));
            let n = timeout(stall, self.reader.read_raw(&mut chunk))
                .await
                .map_err(|_| ferry_io::body::BodyError::Stalled(stall))?
                .map_err(ferry_io::body::BodyError::Network)?;
            if n == 0 {
                return Err(HubError::Relay(
                    "the owner closed the connection mid-push".into(),
                ));
            }
            chunk.truncate(n);
            if tx.send(chunk.freeze()).await.is_err() {
                return Err(HubError::Relay("the requester left mid-relay".into()));
            }
            remaining -= n as u64;
        }
        self.writer.send(&Response::Pushed).await?;
        Ok(Flow::Continue)
    }
}

/// What a search for `term` finds, in the store and among online peers
/// (at most `limit`, spelled for display), and whether there was more;
/// or why it is refused. Every way in searches through this.
pub(crate) async fn find(
    hub: &Hub,
    term: &str,
    limit: u32,
) -> Result<Result<(Vec<Hit>, bool), Refusal>, HubError> {
    if term.len() > MAX_SEARCH_TERM {
        let message = format!("search terms are limited to {MAX_SEARCH_TERM} bytes");
        return Ok(Err(Refusal::new(ErrorCode::TooLarge, message)));
    }
    let limit = limit.clamp(1, MAX_SEARCH_HITS);
    let lower = term.to_lowercase();
    let (stored, more_stored) = hub.catalog.search(&lower, limit).await?;
    let mut hits: Vec<Hit> = stored
        .into_iter()
        .map(|e| Hit {
            file: ferry_protocol::Offered {
                name: e.name,
                size: e.size,
                hash: e.hash,
            },
            source: Source::Store { owner: e.owner },
        })
        .collect();
    let (peer_hits, more_peers) = hub.index.search(&lower, limit as usize - hits.len());
    hits.extend(peer_hits);
    let accounts = &hub.publisher.accounts;
    let hits = hits.into_iter().map(|h| accounts.spell_hit(h)).collect();
    Ok(Ok((hits, more_stored || more_peers)))
}
