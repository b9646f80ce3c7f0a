//! The client side of a session: at most one hub connection, logged in on
//! demand, shared by one-shot commands and the shell.

use anyhow::{Context, Result, bail};
use ferry_client::{ClientError, HubClient, HubInfo, LoggedIn};
use ferry_protocol::{Claim, ErrorCode, InviteLink};

use crate::output::shown;
use crate::remembered::{HubMemory, Remembered};
use crate::settings::ClientSettings;

/// Connection state.
pub(crate) struct Session {
    /// Resolved settings.
    pub(crate) settings: ClientSettings,
    hub: Option<HubClient>,
    addr: Option<String>,
    handle: Option<String>,
    logged_in: bool,
}

impl Session {
    /// A session that has not connected yet.
    pub(crate) fn new(settings: ClientSettings) -> Self {
        let (addr, handle) = (settings.hub.clone(), settings.name.clone());
        Self {
            settings,
            hub: None,
            addr,
            handle,
            logged_in: false,
        }
    }

    /// The hub this session talks (or will talk) to.
    pub(crate) fn addr(&self) -> Option<&str> {
        self.addr.as_deref()
    }

    /// The handle in use, once logged in.
    pub(crate) fn handle(&self) -> Option<&str> {
        self.logged_in.then_some(()).and(self.handle.as_deref())
    }

    /// The handle in use, or the configured one.
    pub(crate) fn handle_or_name(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    /// Whether a connection is open.
    pub(crate) fn connected(&self) -> bool {
        self.hub.is_some()
    }

    /// Connects to `addr`, replacing any current connection.
    pub(crate) async fn join(&mut self, addr: &str) -> Result<HubInfo> {
        self.connect(addr, None).await
    }

    /// Connects to `addr`, accepting only the certificate `expect` if
    /// given (and pinning it).
    pub(crate) async fn join_expecting(
        &mut self,
        addr: &str,
        expect: Option<ferry_protocol::Fingerprint>,
    ) -> Result<HubInfo> {
        self.connect(addr, expect).await
    }

    /// Connects to `addr` accepting only the certificate `expect` if given.
    async fn connect(
        &mut self,
        addr: &str,
        expect: Option<ferry_protocol::Fingerprint>,
    ) -> Result<HubInfo> {
        self.leave();
        let mut options = self.settings.connect_options(addr);
        options.expect = expect;
        let client = HubClient::connect(&options).await?;
        let info = client.info().clone();
        if info.first_use
            && let Some(fp) = info.fingerprint
        {
            eprintln!("Pinned the certificate of {addr} on first use: {fp}");
        }
        self.addr = Some(addr.to_owned());
        self.hub = Some(client);
        Ok(info)
    }

    /// Drops the connection; returns whether there was one.
    pub(crate) fn leave(&mut self) -> bool {
        self.logged_in = false;
        self.hub.take().is_some()
    }

    /// Closes the connection politely, if there is one.
    pub(crate) async fn close(&mut self) {
        self.logged_in = false;
        if let Some(hub) = self.hub.take() {
            hub.close().await;
        }
    }

    /// Claims `handle` (or logs in, if this client already owns it).
    pub(crate) async fn register(&mut self, handle: &str) -> Result<LoggedIn> {
        self.log_in(handle, Claim::Register).await
    }

    /// Joins the hub of an invite link as `handle`: the TLS handshake
    /// accepts only the link's certificate, so nothing is sent to an
    /// impostor; then the invite is redeemed, the certificate pinned, and
    /// hub and handle remembered as this client's defaults.
    pub(crate) async fn join_invite(
        &mut self,
        link: &InviteLink,
        handle: &str,
    ) -> Result<LoggedIn> {
        // A link never overrides what this client already trusts: neither
        // another certificate nor plaintext for a hub it knows by its pin.
        if let Some(pinned) = self.settings.known_hubs().get(&link.addr)
            && link.fingerprint != Some(pinned)
        {
            let what = link.fingerprint.map_or_else(
                || "no certificate (plaintext)".to_owned(),
                |fp| fp.to_string(),
            );
            bail!(
                "this invite names {what} for {}, but this client pinned {pinned} there; \
                 if the hub's certificate really changed, run `ferry forget {}` first",
                link.addr,
                link.addr
            );
        }
        self.settings.tls = link.fingerprint.is_some();
        self.connect(&link.addr, link.fingerprint).await?;
        self.log_in(handle, Claim::Invite(link.secret)).await
    }

    async fn log_in(&mut self, handle: &str, claim: Claim) -> Result<LoggedIn> {
        let reused = self.hub.is_some();
        self.connection().await?;
        let credentials = self.settings.credentials()?;
        let hub = self.hub.as_mut().expect("connected above");
        let mut result = hub.authenticate(handle, &credentials, claim).await;
        // A connection opened by /join and left without a login is closed
        // by the hub after its login deadline: connect again, once.
        let closed =
            |e: &ClientError| !e.connection_usable() || e.hub_code() == Some(ErrorCode::Timeout);
        if reused && result.as_ref().is_err_and(closed) {
            self.leave();
            self.connection().await?;
            let hub = self.hub.as_mut().expect("connected above");
            result = hub.authenticate(handle, &credentials, claim).await;
        }
        let reply = self.check(result)?;
        self.handle = Some(reply.handle.clone());
        self.logged_in = true;
        if let Some(addr) = &self.addr {
            let memory = HubMemory {
                handle: Some(reply.handle.clone()),
                plaintext: !self.settings.tls,
            };
            if let Err(e) = Remembered::remember(&self.settings.state_dir, addr, memory) {
                eprintln!("warning: could not remember this hub: {e:#}");
            }
        }
        Ok(reply)
    }

    /// A connected, logged-in client, connecting and registering the
    /// configured handle on first use.
    pub(crate) async fn ready(&mut self) -> Result<&mut HubClient> {
        if !self.logged_in {
            let Some(handle) = self.handle.clone() else {
                bail!(ClientError::Hub {
                    code: ErrorCode::LoginRequired,
                    message: "no handle yet: register one (/register HANDLE) or pass --name HANDLE"
                        .into(),
                });
            };
            self.register(&handle).await?;
        }
        Ok(self.hub.as_mut().expect("logged in implies connected"))
    }

    async fn connection(&mut self) -> Result<()> {
        if self.hub.is_none() {
            let addr = self.addr.clone().context(
                "no hub configured: use --hub HOST:PORT, /join HOST PORT, or set FERRY_HUB",
            )?;
            self.join(&addr).await?;
        }
        Ok(())
    }

    /// Passes a library result through, dropping the connection if the
    /// error left it unusable (so the next command reconnects).
    pub(crate) fn check<T>(&mut self, result: Result<T, ClientError>) -> Result<T> {
        result.map_err(|e| {
            if !e.connection_usable() {
                self.leave();
            }
            anyhow::Error::new(e)
        })
    }

    /// An error chain as terminal-safe text (remote parts may hold anything).
    pub(crate) fn describe(error: &anyhow::Error) -> String {
        let text = format!("{error:#}");
        text.lines()
            .map(|line| shown(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
