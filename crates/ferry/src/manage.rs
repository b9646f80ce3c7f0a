//! Joining a hub and managing it: `join`, `invite`, `users`, `quota`,
//! `allow`, `audit`. The hub decides who may do what; these ask and print.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::DateTime;
use ferry_protocol::{Handle, InviteInfo, InviteLink, InviteTerms, UserChange, UserInfo};
use serde_json::json;

use crate::cli::{InviteAction, InviteArgs, UsersAction};
use crate::output::shown;
use crate::session::Session;

/// `ferry join LINK [--name HANDLE]`.
pub(crate) async fn join(session: &mut Session, invite: &str, name: Option<&str>) -> Result<()> {
    let link = InviteLink::parse(invite)?;
    let handle = match name.or(session.handle_or_name()) {
        Some(handle) => handle.to_owned(),
        None => pick_handle()?,
    };
    if link.fingerprint.is_none() {
        eprintln!(
            "warning: this invite is for a plaintext hub: the network can read and change what you send"
        );
    }
    let joined = session.join_invite(&link, &handle).await?;
    let verb = if joined.registered {
        "Joined"
    } else {
        "Rejoined"
    };
    println!(
        "{verb} {} as {} ({}). Later commands use this hub and handle by default.",
        link.addr,
        shown(&joined.handle),
        joined.role
    );
    Ok(())
}

/// A handle for `join` without `--name`: asked for on a terminal, else the
/// login name (never a prompt in a script).
fn pick_handle() -> Result<String> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    let valid_user = user.filter(|u| Handle::parse(u).is_ok());
    if std::io::stdin().is_terminal() {
        let default = valid_user.as_deref().unwrap_or("");
        eprint!("Your handle on this hub [{default}]: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let answer = line.trim();
        return match (answer.is_empty(), valid_user) {
            (false, _) => Ok(answer.to_owned()),
            (true, Some(user)) => Ok(user),
            (true, None) => bail!("a handle is needed: pass --name HANDLE"),
        };
    }
    valid_user.context("a handle is needed: pass --name HANDLE")
}

/// `ferry invite …`.
pub(crate) async fn invite(session: &mut Session, args: InviteArgs) -> Result<()> {
    let json = session.settings.json;
    match args.action {
        Some(InviteAction::Ls) => {
            let invites = session.ready().await?.invites().await;
            let invites = session.check(invites)?;
            if json {
                let rows: Vec<_> = invites.iter().map(invite_json).collect();
                println!("{}", serde_json::Value::Array(rows));
            } else if invites.is_empty() {
                println!("No outstanding invites.");
            } else {
                println!(
                    "{:<10}  {:<7}  {:>4}  {:<16}  {:>10}  by",
                    "id", "role", "uses", "expires", "quota"
                );
                for invite in &invites {
                    println!("{}", invite_row(invite));
                }
            }
        }
        Some(InviteAction::Rm { id }) => {
            let removed = session.ready().await?.remove_invite(&id).await;
            session.check(removed)?;
            println!("Withdrew invite {}.", shown(&id));
        }
        None => {
            let expires_at = chrono::Utc::now()
                .timestamp()
                .saturating_add(i64::try_from(args.expires).unwrap_or(i64::MAX));
            let terms = InviteTerms {
                role: args.role.into(),
                uses: args.uses,
                expires_at: Some(expires_at),
                quota: args.quota,
            };
            let fingerprint = {
                let hub = session.ready().await?;
                hub.info().fingerprint
            };
            let created = session.ready().await?.create_invite(terms).await;
            let (info, secret) = session.check(created)?;
            let addr = match &args.addr {
                Some(addr) => crate::settings::normalize_addr(addr)?,
                None => session.addr().context("no hub address")?.to_owned(),
            };
            if args.addr.is_none() && is_loopback(&addr) {
                eprintln!(
                    "note: this link names {addr}, which works only on the hub's own machine; \
                     pass --addr HOST:PORT to name the hub as others reach it"
                );
            }
            let link = InviteLink {
                addr,
                fingerprint,
                secret,
            };
            if json {
                let mut row = invite_json(&info);
                row["link"] = json!(link.to_string());
                println!("{row}");
            } else {
                println!(
                    "Invite {} for one {} ({} use{}, until {}). Send this link to whoever should join; they run `ferry join LINK`:",
                    info.id,
                    terms.role,
                    terms.uses,
                    if terms.uses == 1 { "" } else { "s" },
                    when(Some(expires_at))
                );
                println!("{link}");
            }
        }
    }
    Ok(())
}

/// `ferry users [set|revoke]`.
pub(crate) async fn users(session: &mut Session, action: Option<UsersAction>) -> Result<()> {
    let json = session.settings.json;
    let changes: Vec<(String, UserChange)> = match action {
        None => {
            let users = session.ready().await?.users().await;
            let users = session.check(users)?;
            if json {
                let rows: Vec<_> = users.iter().map(user_json).collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<32}  {:<7}  {:>10}  {:>10}  last seen",
                    "handle", "role", "used", "quota"
                );
                for user in &users {
                    println!("{}", user_row(user));
                }
            }
            return Ok(());
        }
        Some(UsersAction::Revoke { handle }) => vec![(handle, UserChange::Revoke)],
        Some(UsersAction::Set {
            handle,
            role,
            quota,
        }) => {
            let mut changes = Vec::new();
            if let Some(role) = role {
                changes.push((handle.clone(), UserChange::Role(role.into())));
            }
            if let Some(quota) = quota {
                changes.push((handle.clone(), UserChange::Quota(quota.0)));
            }
            if changes.is_empty() {
                bail!("nothing to change: pass --role ROLE and/or --quota SIZE");
            }
            changes
        }
    };
    for (handle, change) in changes {
        let changed = session.ready().await?.change_user(&handle, change).await;
        let user = session.check(changed)?;
        if json {
            println!("{}", user_json(&user));
        } else if user.revoked {
            println!(
                "Revoked {}: its sessions are closed and it can no longer log in; its files stay.",
                shown(&user.handle)
            );
        } else {
            println!("{}", user_row(&user));
        }
    }
    Ok(())
}

/// `ferry quota`.
pub(crate) async fn quota(session: &mut Session) -> Result<()> {
    let usage = session.ready().await?.usage().await;
    let user = session.check(usage)?;
    if session.settings.json {
        println!("{}", user_json(&user));
        return Ok(());
    }
    match user.quota {
        Some(quota) => println!(
            "{} uses {} of {} ({} left).",
            shown(&user.handle),
            human(user.used),
            human(quota),
            human(quota.saturating_sub(user.used))
        ),
        None => println!(
            "{} uses {} (no quota).",
            shown(&user.handle),
            human(user.used)
        ),
    }
    Ok(())
}

/// `ferry allow HANDLE FOLDER`.
pub(crate) async fn allow(session: &mut Session, handle: &str, folder: &str) -> Result<()> {
    let allowed = session.ready().await?.allow(handle, folder).await;
    session.check(allowed)?;
    println!("{} may now add files to {}/.", shown(handle), shown(folder));
    Ok(())
}

/// `ferry audit [--verify FILE]`.
pub(crate) async fn audit(session: &mut Session, verify: Option<&Path>, lines: u32) -> Result<()> {
    if let Some(path) = verify {
        let (count, last) = ferry_hub::access::audit::verify(path)?;
        println!(
            "{}: {count} lines, chain intact; last line's hash {}",
            path.display(),
            last.to_hex()
        );
        return Ok(());
    }
    let fetched = session.ready().await?.audit(lines).await;
    for line in session.check(fetched)? {
        println!("{}", shown(&line));
    }
    Ok(())
}

/// Whether `addr` (HOST:PORT) names this machine only.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn invite_row(invite: &InviteInfo) -> String {
    let terms = &invite.terms;
    format!(
        "{:<10}  {:<7}  {:>4}  {:<16}  {:>10}  {}",
        invite.id,
        terms.role.as_str(),
        terms.uses,
        when(terms.expires_at),
        terms.quota.map_or_else(|| "-".to_owned(), human),
        shown(invite.created_by.as_deref().unwrap_or("(hub)"))
    )
}

fn invite_json(invite: &InviteInfo) -> serde_json::Value {
    json!({
        "id": invite.id,
        "role": invite.terms.role.as_str(),
        "uses": invite.terms.uses,
        "expires_at": invite.terms.expires_at,
        "quota": invite.terms.quota,
        "created_by": invite.created_by,
        "created_at": invite.created_at,
    })
}

fn user_row(user: &UserInfo) -> String {
    let role = if user.revoked {
        "revoked"
    } else {
        user.role.as_str()
    };
    format!(
        "{:<32}  {:<7}  {:>10}  {:>10}  {}",
        shown(&user.handle),
        role,
        human(user.used),
        user.quota.map_or_else(|| "-".to_owned(), human),
        when(user.last_seen)
    )
}

fn user_json(user: &UserInfo) -> serde_json::Value {
    json!({
        "handle": user.handle,
        "role": user.role.as_str(),
        "used": user.used,
        "quota": user.quota,
        "last_seen": user.last_seen,
        "revoked": user.revoked,
    })
}

pub(crate) fn when(at: Option<i64>) -> String {
    at.and_then(|t| DateTime::from_timestamp(t, 0)).map_or_else(
        || "-".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn human(bytes: u64) -> String {
    ferry_hub::publish::accounts::human(bytes)
}
