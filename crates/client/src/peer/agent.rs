//! The sharing connection: registers as a peer, keeps the hub's view of our
//! offers current, heartbeats, and answers the hub's commands (expect a
//! requester, push a file for a relay). The peer server runs beside it.

use std::sync::Arc;
use std::time::Duration;

use ferry_io::body::flush_within;
use ferry_io::disk::send_from_file;
use ferry_protocol::{HEARTBEAT_INTERVAL, MAX_OFFERS_PER_FRAME, Offered, Request, Response, Token};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::ClientError;
use crate::hub_client::{ConnectOptions, HubClient, unexpected};
use crate::identity::PeerIdentity;
use crate::peer::Expectations;
use crate::peer::serve::{PeerServer, Served};
use crate::peer::shelf::{HashCache, Shelf, ShelfFile};

/// How to share.
#[derive(Clone)]
pub struct ShareConfig {
    /// The hub.
    pub connect: ConnectOptions,
    /// Our handle (registered on first use).
    pub handle: String,
    /// What we log in with.
    pub credentials: std::sync::Arc<crate::identity::Credentials>,
    /// Our peer certificate.
    pub identity: PeerIdentity,
    /// The port other peers are told to use (normally the listener's).
    pub advertise_port: u16,
    /// How often to look for new, changed or vanished files.
    pub rescan_every: Duration,
    /// Whether the hub may keep copies of what it relays from us (`None`:
    /// the hub's default).
    pub copies: Option<bool>,
}

/// What happened while sharing, for the user to see.
#[derive(Debug, Clone)]
pub enum ShareEvent {
    /// The hub lists us; peers reach us at `addr`.
    Online {
        /// Our peer address as the hub sees it.
        addr: String,
    },
    /// The hub's answer to an offer.
    Offered {
        /// Files offered in total.
        total: u32,
        /// Offers the hub refused.
        refused: Vec<String>,
    },
    /// The peer server did something.
    Served(Served),
    /// A file went out through the hub's relay.
    Pushed {
        /// The file.
        name: String,
    },
    /// Something failed; sharing goes on.
    Problem(String),
}

/// Shares `shelf` until `shutdown`. Returns `Err` if the hub connection is
/// lost (the caller may reconnect). `rescan` forces a rescan at once.
pub async fn share(
    config: ShareConfig,
    listener: TcpListener,
    shelf: Shelf,
    cache: Arc<HashCache>,
    rescan: Arc<Notify>,
    shutdown: CancellationToken,
    events: mpsc::UnboundedSender<ShareEvent>,
) -> Result<(), ClientError> {
    let mut hub = HubClient::connect(&config.connect).await?;
    let claim = ferry_protocol::Claim::Register;
    hub.authenticate(&config.handle, &config.credentials, claim)
        .await?;
    let expectations = Expectations::default();
    let server_stop = shutdown.child_token();
    let server = PeerServer {
        shelf: shelf.clone(),
        expectations: expectations.clone(),
        stall: config.connect.stall_timeout,
    };
    let (identity, report) = (config.identity.clone(), events.clone());
    // Grants used up by a direct fetch, for the hub to stop counting.
    let (used_tx, used) = mpsc::unbounded_channel();
    let server_task = tokio::spawn({
        let stop = server_stop.clone();
        async move {
            server
                .run(listener, &identity, stop, move |served| {
                    if let Served::Sent { token, .. } = &served {
                        let _ = used_tx.send(*token);
                    }
                    drop(report.send(ShareEvent::Served(served)))
                })
                .await
        }
    });
    let share = Request::Share {
        peer_port: config.advertise_port,
        fingerprint: config.identity.fingerprint,
        copies: config.copies,
    };
    let result = match hub.call(&share).await {
        Ok(Response::Sharing { addr }) => {
            let _ = events.send(ShareEvent::Online { addr });
            let mut agent = Agent {
                hub,
                config,
                shelf,
                cache,
                expectations,
                events,
                used,
            };
            agent.run(&rescan, &shutdown).await
        }
        Ok(other) => Err(unexpected(&other)),
        Err(e) => Err(e),
    };
    server_stop.cancel();
    let _ = server_task.await;
    result
}

struct Agent {
    hub: HubClient,
    config: ShareConfig,
    shelf: Shelf,
    cache: Arc<HashCache>,
    expectations: Expectations,
    events: mpsc::UnboundedSender<ShareEvent>,
    /// Grants a direct fetch used up.
    used: mpsc::UnboundedReceiver<Token>,
}

impl Agent {
    async fn run(
        &mut self,
        rescan: &Notify,
        shutdown: &CancellationToken,
    ) -> Result<(), ClientError> {
        self.rescan(true).await?;
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        let mut rescan_tick =
            tokio::time::interval(self.config.rescan_every.max(Duration::from_millis(100)));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // An empty replacement withdraws everything in one small frame.
                    self.hub.writer.send(&Request::Offer { files: Vec::new(), replace_all: true }).await?;
                    let _ = self.hub.writer.shutdown().await;
                    return Ok(());
                }
                _ = heartbeat.tick() => self.hub.writer.send(&Request::Heartbeat).await?,
                _ = rescan_tick.tick(), if !self.config.rescan_every.is_zero() => self.rescan(false).await?,
                () = rescan.notified() => self.rescan(false).await?,
                Some(token) = self.used.recv() => {
                    self.hub.writer.send(&Request::GrantUsed { token }).await?;
                }
                message = self.hub.reader.recv() => match message? {
                    Some(message) => self.handle(message).await?,
                    None => return Err(ClientError::Closed),
                },
            }
        }
    }

    /// Looks at the shelf again and tells the hub what changed.
    async fn rescan(&mut self, everything: bool) -> Result<(), ClientError> {
        let changes = match self.shelf.rescan(&self.cache, &()).await {
            Ok(changes) => changes,
            Err(e) => {
                let _ = self.events.send(ShareEvent::Problem(e.to_string()));
                return Ok(());
            }
        };
        self.cache.save();
        let offered = if everything {
            self.shelf.offers()
        } else {
            changes.offered
        };
        self.offer(offered, everything).await?;
        if !everything {
            for names in changes.withdrawn.chunks(MAX_OFFERS_PER_FRAME) {
                let names = names.to_vec();
                self.hub.writer.send(&Request::Withdraw { names }).await?;
            }
        }
        Ok(())
    }

    async fn offer(&mut self, files: Vec<Offered>, replace_all: bool) -> Result<(), ClientError> {
        if files.is_empty() && !replace_all {
            return Ok(());
        }
        let mut chunks = files.chunks(MAX_OFFERS_PER_FRAME).peekable();
        if chunks.peek().is_none() {
            return Ok(self
                .hub
                .writer
                .send(&Request::Offer {
                    files: Vec::new(),
                    replace_all,
                })
                .await?);
        }
        for (i, chunk) in chunks.enumerate() {
            let request = Request::Offer {
                files: chunk.to_vec(),
                replace_all: replace_all && i == 0,
            };
            self.hub.writer.send(&request).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, message: Response) -> Result<(), ClientError> {
        match message {
            Response::Expect {
                token,
                name,
                requester,
                fingerprint,
            } => {
                // Unanswered, the hub tells the requester we did not answer.
                if self.shelf.get(&name).is_some()
                    && self
                        .expectations
                        .insert(token, name, requester, fingerprint)
                {
                    self.hub.writer.send(&Request::GrantReady { token }).await?;
                }
            }
            // The hub repeats the offset in its `UploadReady` on the push connection.
            Response::PushRequest { token, name, .. } => self.start_push(token, &name),
            Response::Offered { total, refused } => {
                let _ = self.events.send(ShareEvent::Offered { total, refused });
            }
            Response::Withdrawn { .. } => {}
            Response::Error { message, .. } => {
                let _ = self.events.send(ShareEvent::Problem(message));
            }
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    /// Pushes a granted file through the hub on a connection of its own.
    fn start_push(&self, token: Token, name: &str) {
        let grant = self.expectations.take(&token).filter(|g| g.name == name);
        let Some(file) = grant.and_then(|g| self.shelf.get(&g.name)) else {
            let _ = self.events.send(ShareEvent::Problem(format!(
                "refused a relay of '{name}': no such grant"
            )));
            return;
        };
        let (config, events, name) = (self.config.clone(), self.events.clone(), name.to_owned());
        tokio::spawn(async move {
            let event = match push(&config, token, &file).await {
                Ok(()) => ShareEvent::Pushed { name },
                Err(e) => ShareEvent::Problem(format!("relaying '{name}' failed: {e}")),
            };
            let _ = events.send(event);
        });
    }
}

async fn push(config: &ShareConfig, token: Token, file: &ShelfFile) -> Result<(), ClientError> {
    let mut hub = HubClient::connect(&config.connect).await?;
    let claim = ferry_protocol::Claim::Existing;
    hub.authenticate(&config.handle, &config.credentials, claim)
        .await?;
    let offset = match hub.call(&Request::Push { token }).await? {
        Response::UploadReady { offset } if offset <= file.size() => offset,
        other => return Err(unexpected(&other)),
    };
    let source = file.open_at(offset).await?;
    send_from_file(
        source,
        file.size() - offset,
        &mut hub.writer,
        hub.stall,
        &mut |_| {},
    )
    .await?;
    flush_within(&mut hub.writer, hub.stall).await?;
    match hub.reply().await? {
        Response::Pushed => {
            hub.close().await;
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}
