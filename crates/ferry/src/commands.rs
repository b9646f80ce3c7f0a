//! The client commands, shared by one-shot use and the shell.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ferry_client::{ClientError, FileResult, collect_uploads, prepare_each};
use ferry_protocol::{ConflictPolicy, ErrorCode, FileEntry, FileName};
use serde_json::json;

use crate::cli::ClientCommand;
use crate::output::{entry_json, listing_table, shown};
use crate::progress::{Bar, Direction};
use crate::session::Session;

/// Some files of a batch failed; the others went through.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} files failed")]
pub(crate) struct BatchFailed {
    /// How many failed.
    pub(crate) failed: usize,
    /// How many were tried.
    pub(crate) total: usize,
    /// The first failure, which picks the exit code.
    pub(crate) first: ClientError,
}

/// Runs one client command.
pub(crate) async fn run(session: &mut Session, command: ClientCommand) -> Result<()> {
    match command {
        ClientCommand::Put { files, conflict } => put(session, &files, conflict.policy()).await,
        ClientCommand::Get {
            mut names,
            out,
            conflict,
            from,
        } => {
            if names.is_empty() {
                ls(session, None).await?;
                names.push(chosen(read_answer("Which file? ").await)?);
            }
            get(session, &names, &out, conflict.policy(), from.as_deref()).await
        }
        ClientCommand::Request { file, client } => {
            get(
                session,
                &[file],
                Path::new("."),
                ConflictPolicy::Refuse,
                Some(&client),
            )
            .await
        }
        ClientCommand::Search { term } => crate::peers::search(session, &term).await,
        ClientCommand::List => crate::peers::search(session, "").await,
        ClientCommand::Share {
            dir,
            peer_port,
            advertise_port,
            copies,
            no_copies,
        } => {
            let copies = (copies || no_copies).then_some(copies);
            crate::share::run(session, &dir, peer_port, advertise_port, copies).await
        }
        ClientCommand::Ls { prefix } => ls(session, prefix.as_deref()).await,
        ClientCommand::Rm { names } => rm(session, &names).await,
        ClientCommand::Register { handle } => register(session, &handle).await,
        ClientCommand::Forget { hub } => forget(session, &hub),
        ClientCommand::Invite(args) => crate::manage::invite(session, args).await,
        ClientCommand::Users { action } => crate::manage::users(session, action).await,
        ClientCommand::Quota => crate::manage::quota(session).await,
        ClientCommand::Token { action } => crate::tokens::token(session, action).await,
        ClientCommand::Web => crate::tokens::web_link(session).await,
        ClientCommand::Status => crate::status::status(session).await,
        ClientCommand::Discover {
            wait,
            port,
            reply_port,
        } => crate::status::discover(session, port, reply_port, wait)
            .await
            .map(|_| ()),
        ClientCommand::Allow { handle, folder } => {
            crate::manage::allow(session, &handle, &folder).await
        }
        ClientCommand::Audit { verify, lines } => {
            crate::manage::audit(session, verify.as_deref(), lines).await
        }
    }
}

async fn put(session: &mut Session, files: &[PathBuf], policy: ConflictPolicy) -> Result<()> {
    let found = collect_uploads(files)?;
    if found.is_empty() {
        bail!("nothing to upload: no regular files in {}", files.len());
    }
    let json = session.settings.json;
    // Log in while the files are hashed.
    let (prepared, hub) = tokio::join!(prepare_each(found), session.ready());
    let (prepared, _) = (prepared?, hub?);
    // A file that cannot be read (or changed while hashed) fails alone.
    let mut unread = Vec::new();
    let mut items = Vec::new();
    for item in prepared {
        match item {
            Ok(item) => items.push(item),
            Err(e) => {
                if !json {
                    eprintln!("error: {}", shown(&e.to_string()));
                }
                unread.push(e);
            }
        }
    }
    let direction = Direction::Upload {
        me: session.handle().unwrap_or_default().to_owned(),
    };
    let hub = session.ready().await?;
    let bar = Bar::new(items.iter().map(|i| i.size).sum(), direction, json);
    let result = hub.upload(&items, policy, &bar).await;
    bar.finish();
    let results = session.check(result)?;
    if json {
        print_results_json(&results, items.iter().map(|i| i.name.as_str()));
    }
    summarize(unread.into_iter().map(Err).chain(results).collect())
}

async fn get(
    session: &mut Session,
    names: &[String],
    out: &Path,
    policy: ConflictPolicy,
    from: Option<&str>,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| ClientError::local("creating", out, e))?;
    let (mut wanted, mut from_peers, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for raw in names {
        let name = FileName::parse(raw).map_err(|reason| ClientError::InvalidName {
            name: raw.clone(),
            reason,
        })?;
        if from.is_none() {
            let found = session.ready().await?.list(Some(&name)).await;
            let entries = session.check(found)?;
            let owners: std::collections::BTreeSet<&str> =
                entries.iter().map(|e| e.owner.as_str()).collect();
            if owners.len() > 1 && entries.iter().any(|e| e.name != name.as_str()) {
                let owners: Vec<&str> = owners.into_iter().collect();
                eprintln!(
                    "note: '{}' holds files from {} people: {}",
                    shown(raw),
                    owners.len(),
                    shown(&owners.join(", "))
                );
            }
            if !entries.is_empty() {
                wanted.extend(entries.into_iter().map(|entry| {
                    let relative = relative_target(&name, &entry);
                    (entry, relative)
                }));
                continue;
            }
        }
        match crate::peers::find_offer(session, &name, from).await? {
            Some(owner) => from_peers.push((name, owner)),
            None => missing.push(raw.clone()),
        }
    }
    for name in &missing {
        eprintln!(
            "error: no file or folder '{}' on the hub or any online peer",
            shown(name)
        );
    }
    let json = session.settings.json;
    let mut names_done: Vec<String> = wanted.iter().map(|(e, _)| e.name.clone()).collect();
    let mut results = Vec::new();
    if !wanted.is_empty() {
        let bar = Bar::new(
            wanted.iter().map(|(e, _)| e.size).sum(),
            Direction::Download("hub".into()),
            json,
        );
        let result = session
            .ready()
            .await?
            .download(&wanted, out, policy, &bar)
            .await;
        bar.finish();
        results = session.check(result)?;
    }
    for (name, owner) in from_peers {
        results.push(crate::peers::fetch(session, &owner, &name, out, policy).await?);
        names_done.push(name.to_string());
    }
    if json {
        print_results_json(&results, names_done.iter().map(String::as_str));
    }
    if !missing.is_empty() && results.iter().all(Result::is_ok) {
        let message = format!("no file or folder '{}'", missing[0]);
        let first = ClientError::Hub {
            code: ErrorCode::NotFound,
            message,
        };
        return Err(BatchFailed {
            failed: missing.len(),
            total: names.len(),
            first,
        }
        .into());
    }
    summarize(results)
}

/// A file asked for by name lands under its file name; files of a folder
/// keep their path from the folder's parent.
fn relative_target(asked: &FileName, entry: &FileEntry) -> PathBuf {
    let name = FileName::parse(&entry.name)
        .map_or_else(|_| PathBuf::from("invalid"), |n| n.to_relative_path());
    if entry.name == asked.as_str() {
        return PathBuf::from(asked.file_name());
    }
    let parent_depth = asked.components().count() - 1;
    name.components().skip(parent_depth).collect()
}

async fn ls(session: &mut Session, prefix: Option<&str>) -> Result<()> {
    let prefix = prefix
        .map(|p| {
            FileName::parse(p).map_err(|reason| ClientError::InvalidName {
                name: p.into(),
                reason,
            })
        })
        .transpose()?;
    let hub = session.ready().await?;
    let listed = hub.list(prefix.as_ref()).await;
    let entries = session.check(listed)?;
    if session.settings.json {
        println!(
            "{}",
            serde_json::Value::Array(entries.iter().map(entry_json).collect())
        );
    } else {
        println!("{}", listing_table(&entries));
    }
    Ok(())
}

async fn rm(session: &mut Session, names: &[String]) -> Result<()> {
    let mut results = Vec::new();
    for raw in names {
        let result = match FileName::parse(raw) {
            Ok(name) => {
                let hub = session.ready().await?;
                let deleted = hub.delete(&name).await;
                match deleted {
                    Err(e) if !e.connection_usable() => {
                        return Err(session.check::<()>(Err(e)).unwrap_err());
                    }
                    other => other,
                }
            }
            Err(reason) => Err(ClientError::InvalidName {
                name: raw.clone(),
                reason,
            }),
        };
        match &result {
            Ok(()) if !session.settings.json => println!("Deleted {}", shown(raw)),
            Ok(()) => {}
            Err(e) => eprintln!("error: {}: {}", shown(raw), shown(&e.to_string())),
        }
        results.push(result);
    }
    if session.settings.json {
        let rows: Vec<_> = names
            .iter()
            .zip(&results)
            .map(|(name, r)| json!({ "name": name, "ok": r.is_ok(), "error": r.as_ref().err().map(ToString::to_string) }))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    }
    summarize(results)
}

async fn register(session: &mut Session, handle: &str) -> Result<()> {
    let reply = session.register(handle).await?;
    if reply.registered {
        println!("Welcome {}!", shown(&reply.handle));
    } else {
        println!("Welcome back {}!", shown(&reply.handle));
    }
    Ok(())
}

fn forget(session: &Session, hub: &str) -> Result<()> {
    let addr = crate::settings::normalize_addr(hub)?;
    if session.settings.known_hubs().forget(&addr)? {
        println!(
            "Forgot the certificate pinned for {addr}; the next connection pins the one it presents."
        );
    } else {
        println!("No certificate was pinned for {addr}.");
    }
    Ok(())
}

fn print_results_json<'a>(results: &[FileResult], names: impl Iterator<Item = &'a str>) {
    let rows: Vec<_> = results
        .iter()
        .zip(names)
        .map(|(result, name)| match result {
            Ok(done) => {
                let mut row = entry_json(&done.entry);
                row["ok"] = json!(true);
                row["resumed_from"] = json!(done.resumed_from);
                row["deduplicated"] = json!(done.deduplicated);
                if let Some(path) = &done.path {
                    row["path"] = json!(path.display().to_string());
                }
                row
            }
            Err(e) => json!({ "name": name, "ok": false, "error": e.to_string() }),
        })
        .collect();
    println!("{}", serde_json::Value::Array(rows));
}

/// `Ok` if every file went through, else the batch failure.
fn summarize<T>(results: Vec<Result<T, ClientError>>) -> Result<()> {
    let total = results.len();
    let mut errors = results.into_iter().filter_map(Result::err);
    match errors.next() {
        None => Ok(()),
        Some(first) => Err(BatchFailed {
            failed: 1 + errors.count(),
            total,
            first,
        }
        .into()),
    }
}

/// The name a user typed when asked which file they want.
pub(crate) fn chosen(answer: Option<String>) -> Result<String> {
    answer
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .context("no file chosen; name one: get NAME")
}

/// Asks `question` on a terminal (on stderr, so output stays clean), or
/// takes the next line of input in a script; `None` at end of input.
async fn read_answer(question: &'static str) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, IsTerminal, Write};
        if std::io::stdin().is_terminal() {
            eprint!("{question}");
            let _ = std::io::stderr().flush();
        }
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await
    .ok()
    .flatten()
}
