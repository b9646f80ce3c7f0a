//! `ferry status`: which hub and handle commands will use, whether the
//! hub's certificate is pinned, and whether the hub answers (and takes the
//! handle). It pins nothing and registers nothing. `ferry discover`: the
//! hubs on the local network, found by a UDP probe; it pins nothing either.

use std::time::Instant;

use anyhow::{Result, bail};
use ferry_client::{HubClient, KnownHubs};
use ferry_protocol::Claim;

use crate::output::shown;
use crate::session::Session;

/// Prints the status; fails (exit code 6) if the hub does not answer.
pub(crate) async fn status(session: &Session) -> Result<()> {
    let settings = &session.settings;
    let Some(addr) = settings.hub.clone() else {
        println!("hub:         none yet: `ferry join LINK`, or --hub HOST:PORT");
        return Ok(());
    };
    println!("hub:         {addr}");
    let handle = settings.name.clone();
    println!(
        "handle:      {}",
        handle
            .as_deref()
            .map_or("none yet (--name HANDLE)".into(), |h| shown(h).into_owned())
    );
    let pinned = settings.known_hubs().get(&addr);
    match (settings.tls, pinned) {
        (false, _) => {
            println!("certificate: none: plaintext (the network can read and change traffic)")
        }
        (true, Some(fp)) => println!("certificate: pinned {fp}"),
        (true, None) => println!("certificate: not pinned yet: the next connection pins it"),
    }
    // A copy of the pins, so that asking does not pin anything.
    let scratch = tempfile::tempdir()?;
    let copy = scratch.path().join("known_hubs");
    if let Some(fp) = pinned {
        KnownHubs::new(&copy).add(&addr, fp)?;
    }
    let mut options = settings.connect_options(&addr);
    options.known_hubs = KnownHubs::new(&copy);
    let started = Instant::now();
    let connected = HubClient::connect(&options).await;
    let mut client = match connected {
        Ok(client) => client,
        Err(e) => {
            println!("hub answers: no: {}", shown(&e.to_string()));
            bail!(e);
        }
    };
    let info = client.info().clone();
    println!(
        "hub answers: yes, {} in {} ms",
        shown(&info.agent),
        started.elapsed().as_millis()
    );
    if let Some(handle) = handle {
        let credentials = settings.credentials()?;
        match client
            .authenticate(&handle, &credentials, Claim::Existing)
            .await
        {
            Ok(logged_in) => println!(
                "logged in:   as {} ({})",
                shown(&logged_in.handle),
                logged_in.role
            ),
            Err(e) => println!("logged in:   no: {}", shown(&e.to_string())),
        }
    }
    client.close().await;
    Ok(())
}

/// Lists the hubs that answer a discovery probe within `wait`, numbered;
/// returns them (the shell's `/join` lets the user pick one).
pub(crate) async fn discover(
    session: &Session,
    port: u16,
    reply_port: u16,
    wait: std::time::Duration,
) -> Result<Vec<ferry_client::discovery::Discovered>> {
    let found = ferry_client::discovery::discover(port, reply_port, wait).await?;
    if session.settings.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|hub| {
                serde_json::json!({
                    "addr": hub.addr.to_string(),
                    "fingerprint": hub.fingerprint.map(|fp| fp.to_string()),
                    "tls": hub.fingerprint.is_some(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(found);
    }
    if found.is_empty() {
        println!(
            "No hub answered on UDP port {port} within {} ms (hubs with discovery = false stay quiet).",
            wait.as_millis()
        );
        return Ok(found);
    }
    println!("Hubs on the local network (compare each fingerprint with its hub's banner):");
    let pins = session.settings.known_hubs();
    for (number, hub) in found.iter().enumerate() {
        let addr = hub.addr.to_string();
        let certificate = match (hub.fingerprint, pins.get(&addr)) {
            (None, _) => "plaintext".to_owned(),
            (Some(fp), Some(pinned)) if pinned == fp => format!("{fp} (pinned)"),
            (Some(fp), Some(_)) => format!("{fp} (NOT the one pinned for it!)"),
            (Some(fp), None) => fp.to_string(),
        };
        println!("  {}. {addr}  {certificate}", number + 1);
    }
    Ok(found)
}
