//! Client commands of the peer network: search, list, and fetching a file
//! from a peer (directly, else relayed by the hub).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use ferry_client::identity::PeerIdentity;
use ferry_client::peer::fetch::fetch_direct;
use ferry_client::{ClientError, FileResult};
use ferry_protocol::{ConflictPolicy, FileName, Hit, MAX_SEARCH_HITS, Source};
use serde_json::json;

use crate::output::{human_size, shown};
use crate::progress::{Bar, Direction, failure_line};
use crate::session::Session;

/// How long a direct connection to a peer may take before the relay is tried.
const DIRECT_CONNECT: Duration = Duration::from_secs(3);

/// `search TERM` and `list` (the empty term).
pub(crate) async fn search(session: &mut Session, term: &str) -> Result<()> {
    let found = session.ready().await?.search(term, MAX_SEARCH_HITS).await;
    let (hits, truncated) = session.check(found)?;
    if session.settings.json {
        println!(
            "{}",
            serde_json::Value::Array(hits.iter().map(hit_json).collect())
        );
        return Ok(());
    }
    if hits.is_empty() {
        println!(
            "Nothing matches '{}' on the hub or any online peer.",
            shown(term)
        );
        return Ok(());
    }
    let width = hits
        .iter()
        .map(|h| shown(&h.file.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:>10}  {:<12}  WHERE", "NAME", "SIZE", "HASH");
    for hit in &hits {
        let size = human_size(hit.file.size);
        println!(
            "{:<width$}  {size:>10}  {:<12}  {}",
            shown(&hit.file.name),
            hit.file.hash.short(),
            location(&hit.source)
        );
    }
    if truncated {
        println!("(more matches exist; narrow the search)");
    }
    Ok(())
}

/// Where a hit is, in the older tracker's `[name ip port]` style for peers.
fn location(source: &Source) -> String {
    match source {
        Source::Store { owner } => format!("hub store (uploaded by {})", shown(owner)),
        Source::Peer { handle, addr } => {
            let (ip, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
            format!("[{} {} {}]", shown(handle), shown(ip), shown(port))
        }
    }
}

fn hit_json(hit: &Hit) -> serde_json::Value {
    let mut row =
        json!({ "name": hit.file.name, "size": hit.file.size, "hash": hit.file.hash.to_hex() });
    match &hit.source {
        Source::Store { owner } => {
            row["source"] = json!("store");
            row["owner"] = json!(owner);
        }
        Source::Peer { handle, addr } => {
            row["source"] = json!("peer");
            row["owner"] = json!(handle);
            row["addr"] = json!(addr);
        }
    }
    row
}

/// The online peer offering exactly `name` (`from`, if given).
pub(crate) async fn find_offer(
    session: &mut Session,
    name: &FileName,
    from: Option<&str>,
) -> Result<Option<String>> {
    let found = session
        .ready()
        .await?
        .search(name.as_str(), MAX_SEARCH_HITS)
        .await;
    let (hits, _) = session.check(found)?;
    Ok(hits.into_iter().find_map(|hit| match hit.source {
        Source::Peer { handle, .. }
            if hit.file.name == name.as_str()
                && from.is_none_or(|f| f.eq_ignore_ascii_case(&handle)) =>
        {
            Some(handle)
        }
        _ => None,
    }))
}

/// Fetches `name` from `owner`: directly if its port answers within a few
/// seconds, else through the hub. Says which path it took, or why it failed.
pub(crate) async fn fetch(
    session: &mut Session,
    owner: &str,
    name: &FileName,
    out: &Path,
    policy: ConflictPolicy,
) -> Result<FileResult> {
    let result = fetch_either_way(session, owner, name, out, policy).await?;
    if let Err(error) = &result {
        // The library reports successes only: a failed direct attempt may
        // still be rescued by the relay, so only here is a failure final.
        eprintln!("{}", failure_line(name.as_str(), error));
    }
    Ok(result)
}

async fn fetch_either_way(
    session: &mut Session,
    owner: &str,
    name: &FileName,
    out: &Path,
    policy: ConflictPolicy,
) -> Result<FileResult> {
    let identity = PeerIdentity::load_or_create(&session.settings.state_dir)?;
    let json = session.settings.json;
    let granted = session
        .ready()
        .await?
        .request_peer(owner, name.as_str(), identity.fingerprint)
        .await;
    let grant = match granted {
        Ok(grant) => grant,
        Err(e) if e.connection_usable() => return Ok(Err(e)),
        Err(e) => return session.check(Err(e)),
    };
    let relative = PathBuf::from(name.file_name());
    let target = (out, relative.as_path());
    let bar = Bar::new(
        grant.file.size,
        Direction::Download(format!("{} (direct)", shown(owner))),
        json,
    );
    let direct = fetch_direct(
        &grant,
        &identity,
        target,
        policy,
        &bar,
        (DIRECT_CONNECT, Duration::from_secs(60)),
    )
    .await;
    bar.finish();
    match direct {
        Err(
            e @ (ClientError::Connect { .. } | ClientError::Tls { .. } | ClientError::Timeout(_)),
        ) => {
            if !json {
                eprintln!(
                    "Cannot reach {} directly ({}); relaying through the hub.",
                    shown(owner),
                    shown(&e.to_string())
                );
            }
            let source = format!("{} (relayed through the hub)", shown(owner));
            let bar = Bar::new(grant.file.size, Direction::Download(source), json);
            let relayed = session
                .ready()
                .await?
                .fetch_relayed(&grant, target, policy, &bar)
                .await;
            bar.finish();
            match relayed {
                Err(e) if !e.connection_usable() => session.check(Err(e)),
                other => Ok(other),
            }
        }
        other => Ok(other),
    }
}
