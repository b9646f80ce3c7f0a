//! `ferry serve`: open the hub's state, print how to reach it, serve until
//! Ctrl-C or SIGTERM, then shut down gracefully.

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use ferry_hub::access::Admission;

/// `println!` that never panics: a hub whose output was piped into a
/// program that exited (`ferry serve | head`) keeps serving.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use crate::cli::ServeArgs;
use crate::settings::ServeSettings;

/// Runs a hub until a signal asks it to stop.
pub(crate) async fn run(args: &ServeArgs) -> Result<()> {
    // Everything the hub creates (catalog, blobs, keys, logs) is its own:
    // other users of this machine read nothing of it.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let mut settings = ServeSettings::resolve(args)?;
    // A new certificate names where clients reach the hub too.
    if !settings.listen.ip().is_unspecified() {
        settings
            .hub
            .tls_names
            .push(settings.listen.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        && !host.trim().is_empty()
    {
        settings.hub.tls_names.push(host.trim().to_owned());
    }
    let data_dir = settings.hub.data_dir.clone();
    let own_certificate = settings.hub.tls_files.is_some();
    let hub = ferry_hub::Hub::open(settings.hub)
        .await
        .with_context(|| format!("opening hub data in {}", data_dir.display()))?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    say!("Ferry hub listening on {addr}");
    say!("  data:        {}", data_dir.display());
    match hub.fingerprint() {
        Some(fp) if own_certificate => say!(
            "  fingerprint: {fp}\n  (the certificate of tls_cert; clients pin it on first connect)"
        ),
        Some(fp) => say!(
            "  fingerprint: {fp}\n  (clients pin it on first connect and refuse a different one later;\n  \
             curl and rclone can verify the hub with {})",
            data_dir.join("tls/cert.pem").display()
        ),
        None => say!(
            "  WARNING: --plaintext: traffic is NOT encrypted and the hub is NOT authenticated.\n  \
             Use it only on a network you trust; clients must pass --plaintext too."
        ),
    }
    print_admission(&hub, addr).await?;
    let scheme = if hub.fingerprint().is_some() {
        "https"
    } else {
        "http"
    };
    let web = reachable_addr(addr);
    say!(
        "  HTTP on the same port: {scheme}://{web}/api/v1/ (API), {scheme}://{web}/dav/ (WebDAV);
           users make a token for them with `ferry token create`."
    );
    tracing::info!(
        %addr,
        data = %data_dir.display(),
        admission = ?hub.access.admission,
        tls = hub.fingerprint().is_some(),
        "hub serving"
    );
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(shutdown.clone()));
    let reloads = tokio::spawn(reload_on_hangup(std::sync::Arc::clone(&hub)));
    ferry_hub::serve(hub, listener, shutdown).await;
    signals.abort();
    reloads.abort();
    tracing::info!("hub stopped");
    say!("Hub stopped.");
    Ok(())
}

/// Says who may join, loudly for an open hub, and prints the owner invite
/// while no one owns an invite-only hub.
async fn print_admission(hub: &ferry_hub::Hub, addr: std::net::SocketAddr) -> Result<()> {
    let access = &hub.access;
    match access.admission {
        Admission::Open => say!(
            "  admission:   OPEN ({}): ANYONE who can reach this port may register a handle,\n  \
             read every file and upload. Start with --admission invite to admit by invite only.",
            access.admission_reason
        ),
        Admission::Invite => say!("  admission:   by invite ({})", access.admission_reason),
    }
    let link_addr = reachable_addr(addr);
    let kept_in = hub.config.data_dir.join("owner-invite");
    match hub.owner_invite(&link_addr).await? {
        // Printed once: logs are read by more people than the data dir.
        Some((link, true)) => say!(
            "\nNo one owns this hub yet. The owner joins with this one-time invite\n\
             (also in {}, until it is used; if clients reach this machine by\n\
             another name than {link_addr}, put that name in the link):\n\n  ferry join {link}\n",
            kept_in.display()
        ),
        Some((_, false)) => say!(
            "  No one owns this hub yet: the one-time owner invite is in {} (ferry join LINK).",
            kept_in.display()
        ),
        None => {}
    }
    if access.admission == Admission::Invite {
        say!("  Admins make invites with `ferry invite`; newcomers run `ferry join LINK`.");
    } else {
        let plaintext = if hub.fingerprint().is_none() {
            " --plaintext"
        } else {
            ""
        };
        say!("  Clients connect with:  ferry --hub {link_addr}{plaintext} --name YOURNAME ls");
    }
    Ok(())
}

/// The address to put in links: the listening one, or this machine's name
/// when listening on every interface.
fn reachable_addr(addr: std::net::SocketAddr) -> String {
    if !addr.ip().is_unspecified() {
        return addr.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", addr.port())
}

/// Reads the operator's certificate and key again on SIGHUP (after a
/// renewal); the old ones stay if the new ones do not load.
async fn reload_on_hangup(hub: std::sync::Arc<ferry_hub::Hub>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return tracing::warn!("cannot watch SIGHUP: certificates are read at start only");
    };
    while hangup.recv().await.is_some() {
        let Some(tls) = hub.tls() else { continue };
        match tls.reload() {
            Ok(Some(fingerprint)) => tracing::info!(%fingerprint, "reloaded the TLS certificate"),
            Ok(None) => {
                tracing::info!("SIGHUP: the hub's certificate is its own; nothing to reload")
            }
            Err(e) => tracing::warn!("SIGHUP: kept the old certificate: {e}"),
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    say!("Stopping: no new connections; running transfers get time to finish.");
    shutdown.cancel();
}
