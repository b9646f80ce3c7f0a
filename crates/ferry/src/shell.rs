//! `ferry shell`: an interactive prompt (line editing and history on a
//! terminal; plain lines from a pipe) that speaks Ferry's commands and the
//! dialects of the designs it replaces. Lines are parsed by the same clap
//! grammar as the one-shot commands. Hub events print live.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Parser;
use ferry_client::peer::agent::share;
use ferry_client::peer::shelf::{HashCache, Shelf};
use ferry_client::{EventFeed, HubClient};
use ferry_protocol::Event;
use ferry_protocol::FileName;
use rustyline::ExternalPrinter;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::{ClientCommand, ShellCommand, ShellLine};
use crate::output::{announcement, shown};
use crate::session::Session;
use crate::settings::{ClientSettings, normalize_addr};

const HELP: &str = "\
Commands (older dialects in brackets are accepted as written; `help COMMAND` for its usage):
  join HOST PORT | join HOST:PORT    connect to a hub            [/join ip port]
  join                               pick a hub on the local network (UDP discovery)
  discover                           list the hubs on the local network
  join LINK --name HANDLE            join a hub with an invite link (ferry://...)
  leave                              disconnect                  [/leave]
  register HANDLE                    claim your handle (open hubs) [/register h]
  put FILE|DIR... [--overwrite|--rename]
                                     upload                      [/store f, upload f, UPLOAD@f]
  get NAME... [-o DIR] [--overwrite|--rename] [--from PEER]
                                     download                    [/get f, download f, DOWNLOAD@f]
  ls [FOLDER]                        list the hub's store        [/dir, dir]
  rm NAME...                         delete your files           [delete f, DELETE@f]
  search TERM                        the store and online peers  [search term, 2 term]
  list                               everything available        [list]
  request FILE PEER                  fetch FILE from PEER        [request f client]
  setdir DIR                         the folder `offer` takes files from [setdir d]
  offer FILE... [--peer-port N]      offer files to other peers  [offer f..., 1 PORT f1,f2]
  share DIR                          offer every file under DIR
  dereg                              withdraw offers, leave      [dereg]
  status                             hub, handle, certificate, whether the hub answers
  quota                              how much of your quota you use
  allow HANDLE FOLDER                let HANDLE add to your FOLDER
  invite [ls|rm ID] [--role R]       invites (admins)
  users [set HANDLE|revoke HANDLE]   users (admins)
  audit                              the audit log (admins)
  forget HOST:PORT                   drop a hub's pinned certificate
  help [COMMAND]                     this text                   [/?]
  quit                               leave the shell             [exit, Ctrl-D]";

/// The usage of one shell command, from the same grammar that parses it.
fn usage_of(name: &str) -> Result<String> {
    let mut grammar = <crate::cli::ShellLine as clap::CommandFactory>::command();
    let command = grammar
        .find_subcommand_mut(name)
        .with_context(|| format!("no command '{}'; `help` lists them", shown(name)))?;
    Ok(command.render_help().to_string())
}

/// Where asynchronous lines (hub events) go: above the prompt on a terminal.
type Printer = Arc<Mutex<Option<Box<dyn ExternalPrinter + Send>>>>;

/// Runs the shell until `quit` or end of input.
pub(crate) async fn run(settings: ClientSettings, peer_port: u16, udp_port: u16) -> Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let input = Input::start(interactive, settings.state_dir.join("history"));
    if interactive {
        println!("Ferry shell. Type help (or /?) for commands, quit to leave.");
    }
    let mut shell = Shell {
        session: Session::new(settings),
        events: None,
        printer: input.printer.clone(),
        sharing: ShellSharing::new(peer_port, udp_port),
    };
    while let Some(line) = input.read("ferry> ").await {
        match shell.handle(&line, &input).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => eprintln!("error: {}", Session::describe(&error)),
        }
    }
    shell.sharing.stop().await;
    shell.stop_events();
    shell.session.close().await;
    Ok(())
}

struct Shell {
    session: Session,
    events: Option<(String, JoinHandle<()>)>,
    printer: Printer,
    sharing: ShellSharing,
}

/// The shell's own sharing (`setdir`, `offer`, `dereg`).
struct ShellSharing {
    /// The port other peers fetch from (0: any free one).
    peer_port: u16,
    /// The UDP port discovery answers come back to (0: any free one).
    udp_port: u16,
    shelf: Shelf,
    rescan: Arc<Notify>,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl ShellSharing {
    fn new(peer_port: u16, udp_port: u16) -> Self {
        Self {
            peer_port,
            udp_port,
            shelf: Shelf::picked(),
            rescan: Arc::new(Notify::new()),
            running: None,
        }
    }

    fn running(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|(_, task)| !task.is_finished())
    }

    async fn start(&mut self, session: &Session) -> Result<()> {
        let listener = TcpListener::bind((session.settings.peer_bind, self.peer_port))
            .await
            .with_context(|| format!("opening peer port {}", self.peer_port))?;
        let config = crate::share::share_config(session, listener.local_addr()?.port())?;
        let stop = CancellationToken::new();
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let cache = Arc::new(HashCache::load(
            session.settings.state_dir.join("hash-cache.tsv"),
        ));
        let (shelf, rescan, token) = (self.shelf.clone(), Arc::clone(&self.rescan), stop.clone());
        let task = tokio::spawn(async move {
            let printer = tokio::spawn(crate::share::print_events(events));
            if let Err(e) = share(config, listener, shelf, cache, rescan, token, events_tx).await {
                eprintln!("sharing stopped: {}", shown(&e.to_string()));
            }
            let _ = printer.await;
        });
        self.running = Some((stop, task));
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let _ = task.await;
        }
    }
}

impl Shell {
    /// Runs one line; `Ok(false)` means quit.
    async fn handle(&mut self, line: &str, input: &Input) -> Result<bool> {
        let words = translate(line)?;
        if words.is_empty() {
            return Ok(true);
        }
        let parsed = match ShellLine::try_parse_from(&words) {
            Ok(parsed) => parsed,
            Err(e) => {
                let text = e.render().to_string();
                eprintln!(
                    "{}",
                    text.lines().next().unwrap_or("invalid command").trim_end()
                );
                eprintln!("Type help for the list of commands.");
                return Ok(true);
            }
        };
        match parsed.command {
            ShellCommand::Quit => return Ok(false),
            ShellCommand::Help { command: None } => println!("{HELP}"),
            ShellCommand::Help {
                command: Some(name),
            } => println!("{}", usage_of(&name)?),
            ShellCommand::Leave => {
                self.stop_events();
                let was_connected = self.session.connected();
                self.session.close().await;
                if was_connected {
                    println!("Connection closed. Thank you!");
                } else {
                    println!("Not connected.");
                }
            }
            ShellCommand::Setdir { dir } => {
                let dir = std::fs::canonicalize(&dir)
                    .map_err(|e| anyhow::anyhow!("cannot use {}: {e}", dir.display()))?;
                anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
                println!("Shared folder: {}", dir.display());
                self.sharing.shelf.set_dir(dir);
                self.sharing.rescan.notify_one();
            }
            ShellCommand::Offer { files, peer_port } => {
                if let Some(port) = peer_port {
                    if self.sharing.running() && port != self.sharing.peer_port {
                        println!(
                            "Already sharing on another peer port; the files join those offers there."
                        );
                    }
                    self.sharing.peer_port = port;
                }
                self.offer(files, input).await?;
            }
            ShellCommand::Dereg => {
                self.sharing.stop().await;
                self.stop_events();
                self.session.close().await;
                println!("Deregistered: offers withdrawn. Goodbye!");
                return Ok(false);
            }
            ShellCommand::Join { host: None, .. } => self.join_discovered(input).await?,
            ShellCommand::Join {
                host: Some(host),
                name,
                ..
            } if host.starts_with(ferry_protocol::access::INVITE_SCHEME) => {
                crate::manage::join(&mut self.session, &host, name.as_deref()).await?;
                self.ensure_events().await;
            }
            ShellCommand::Join {
                host: Some(host),
                port,
                ..
            } => {
                let addr = match port {
                    Some(port) => normalize_addr(&format!("{host}:{port}"))?,
                    None => normalize_addr(&host)?,
                };
                self.join(&addr).await?;
            }
            ShellCommand::Client(mut command) => {
                if !matches!(command, ClientCommand::Forget { .. })
                    && !self.session.connected()
                    && self.session.addr().is_none()
                {
                    let Some(answer) = input.ask("Hub address (HOST:PORT): ").await else {
                        return Ok(false);
                    };
                    self.join(&normalize_addr(&answer)?).await?;
                }
                if let ClientCommand::Discover { reply_port, .. } = &mut command
                    && *reply_port == 0
                {
                    *reply_port = self.sharing.udp_port;
                }
                if let ClientCommand::Get { names, .. } = &mut command
                    && names.is_empty()
                {
                    // The simple server's flow: list, then ask for one.
                    let listing = ClientCommand::Ls { prefix: None };
                    crate::commands::run(&mut self.session, listing).await?;
                    let answer = input.ask("Which file? ").await;
                    names.push(crate::commands::chosen(answer)?);
                }
                let result = crate::commands::run(&mut self.session, command).await;
                self.ensure_events().await;
                result?;
            }
        }
        Ok(true)
    }

    /// `offer f…`: picks files of the shared folder and starts sharing.
    async fn offer(&mut self, files: Vec<String>, input: &Input) -> Result<()> {
        let dir = match self.sharing.shelf.dir() {
            Some(dir) => dir,
            None => {
                let here = std::env::current_dir().context("finding the current folder")?;
                println!(
                    "Shared folder: {} (setdir DIR picks another)",
                    here.display()
                );
                self.sharing.shelf.set_dir(here.clone());
                here
            }
        };
        for name in &files {
            let valid = FileName::parse(name)
                .map_err(|e| anyhow::anyhow!("cannot offer '{}': {e}", shown(name)))?;
            let path = dir.join(valid.to_relative_path());
            anyhow::ensure!(
                path.is_file(),
                "cannot offer '{}': no such file in {}",
                shown(name),
                dir.display()
            );
        }
        self.sharing.shelf.pick(files.iter().cloned());
        if self.sharing.running() {
            self.sharing.rescan.notify_one();
        } else {
            if !self.session.connected() && self.session.addr().is_none() {
                let Some(answer) = input.ask("Hub address (HOST:PORT): ").await else {
                    return Ok(());
                };
                self.join(&normalize_addr(&answer)?).await?;
            }
            self.session.ready().await?;
            self.ensure_events().await;
            self.sharing.start(&self.session).await?;
        }
        println!(
            "Offered: {}",
            files
                .iter()
                .map(|f| shown(f).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    }

    /// `/join` alone: lists the hubs discovery finds and joins the one the
    /// user picks. Its fingerprint is pinned then, unless one is pinned for
    /// that address already (which then decides, as always).
    async fn join_discovered(&mut self, input: &Input) -> Result<()> {
        let port = ferry_protocol::discovery::DISCOVERY_PORT;
        let wait = std::time::Duration::from_secs(2);
        let found =
            crate::status::discover(&self.session, port, self.sharing.udp_port, wait).await?;
        if found.is_empty() {
            return Ok(());
        }
        let Some(answer) = input.ask("Join which (number)? ").await else {
            return Ok(());
        };
        let picked = answer
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| found.get(n.checked_sub(1)?))
            .with_context(|| {
                format!("'{}' is not one of the numbers above", shown(answer.trim()))
            })?;
        let addr = picked.addr.to_string();
        let tls = self.session.settings.tls;
        anyhow::ensure!(
            picked.fingerprint.is_some() == tls,
            "{addr} {}; start the shell {} to join it",
            if tls {
                "is a plaintext hub"
            } else {
                "speaks TLS"
            },
            if tls {
                "with --plaintext"
            } else {
                "without --plaintext"
            }
        );
        self.stop_events();
        let pinned = self.session.settings.known_hubs().get(&addr).is_some();
        let expect = if pinned { None } else { picked.fingerprint };
        let info = self.session.join_expecting(&addr, expect).await?;
        println!(
            "Connection to the hub at {addr} is successful! ({})",
            shown(&info.agent)
        );
        Ok(())
    }

    async fn join(&mut self, addr: &str) -> Result<()> {
        self.stop_events();
        let info = self.session.join(addr).await?;
        println!(
            "Connection to the hub at {addr} is successful! ({})",
            shown(&info.agent)
        );
        Ok(())
    }

    /// Starts the live event feed once a handle is established. Returns
    /// once the feed is subscribed, so no later event is missed.
    async fn ensure_events(&mut self) {
        let (Some(addr), Some(handle)) = (self.session.addr(), self.session.handle()) else {
            return;
        };
        let (addr, handle) = (addr.to_owned(), handle.to_owned());
        let key = format!("{handle}@{addr}");
        if self
            .events
            .as_ref()
            .is_some_and(|(running, task)| *running == key && !task.is_finished())
        {
            return;
        }
        self.stop_events();
        let options = self.session.settings.connect_options(&addr);
        let credentials = match self.session.settings.credentials() {
            Ok(credentials) => credentials,
            Err(e) => return tracing::warn!("live events unavailable: {e:#}"),
        };
        let feed = match subscribe(&options, &handle, &credentials).await {
            Ok(feed) => feed,
            Err(e) => return tracing::warn!("live events unavailable: {e:#}"),
        };
        let printer = Arc::clone(&self.printer);
        let task = tokio::spawn(async move {
            if let Err(e) = print_events(feed, &handle, &printer).await {
                tracing::debug!("event feed ended: {e}");
            }
        });
        self.events = Some((key, task));
    }

    fn stop_events(&mut self) {
        if let Some((_, task)) = self.events.take() {
            task.abort();
        }
    }
}

/// Opens a second connection that receives hub events.
async fn subscribe(
    options: &ferry_client::ConnectOptions,
    handle: &str,
    credentials: &ferry_client::identity::Credentials,
) -> Result<EventFeed> {
    let mut client = HubClient::connect(options).await?;
    client
        .authenticate(handle, credentials, ferry_protocol::Claim::Existing)
        .await?;
    Ok(client.subscribe().await?)
}

/// Prints other users' uploads and deletions as they happen.
async fn print_events(mut feed: EventFeed, own: &str, printer: &Printer) -> Result<()> {
    while let Some(event) = feed.next().await? {
        let line = match &event {
            Event::Uploaded { handle, name, at } if !handle.eq_ignore_ascii_case(own) => {
                announcement(handle, *at, "Uploaded", name)
            }
            Event::Deleted { handle, name, at } if !handle.eq_ignore_ascii_case(own) => {
                announcement(handle, *at, "Deleted", name)
            }
            _ => continue,
        };
        let mut guard = printer.lock().expect("printer lock is never poisoned");
        match guard.as_mut() {
            Some(external) => {
                let _ = external.print(format!("{line}\n"));
            }
            None => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
        }
    }
    Ok(())
}

/// Splits a line into words, accepting the older dialects: a leading `/`
/// (`/store f`), `VERB@name` (`UPLOAD@f`, where the name is the rest of
/// the line, spaces included), and the tracker's numbered requests
/// (`1 PORT f1,f2`: offer those files on that peer port; `2 TERM`: search).
fn translate(line: &str) -> Result<Vec<String>> {
    let line = line.trim();
    if let Some(words) = tracker_request(line) {
        return Ok(words);
    }
    if let Some((verb, rest)) = line.split_once('@') {
        let verb = verb.to_ascii_lowercase();
        if matches!(verb.as_str(), "upload" | "download" | "delete") {
            return Ok(vec![verb, rest.trim().to_owned()]);
        }
    }
    let mut words =
        shell_words::split(line).map_err(|e| anyhow::anyhow!("cannot split the line: {e}"))?;
    if let Some(first) = words.first_mut() {
        *first = first
            .strip_prefix('/')
            .unwrap_or(first)
            .to_ascii_lowercase();
    }
    Ok(words)
}

/// The tracker design's numbered requests as shell words, if `line` is one.
fn tracker_request(line: &str) -> Option<Vec<String>> {
    let (number, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    match number {
        "1" => {
            let (port, files) = rest.split_once(char::is_whitespace)?;
            port.parse::<u16>().ok()?;
            let mut words = vec![
                "offer".to_owned(),
                "--peer-port".to_owned(),
                port.to_owned(),
                "--".to_owned(),
            ];
            words.extend(
                files
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
            );
            Some(words)
        }
        "2" if !rest.is_empty() => Some(vec!["search".to_owned(), rest.to_owned()]),
        _ => None,
    }
}

/// Lines from the user, read on a dedicated thread (the line editor blocks).
/// What the input thread shows before reading a line.
enum Prompt {
    /// The command prompt (not echoed when input is piped).
    Command(String),
    /// A question the user must see in any case.
    Question(String),
}

impl Prompt {
    fn text(&self) -> &str {
        match self {
            Self::Command(text) | Self::Question(text) => text,
        }
    }
}

struct Input {
    requests: std::sync::mpsc::Sender<(Prompt, oneshot::Sender<Option<String>>)>,
    printer: Printer,
}

impl Input {
    fn start(interactive: bool, history: PathBuf) -> Self {
        let (requests, inbox) =
            std::sync::mpsc::channel::<(Prompt, oneshot::Sender<Option<String>>)>();
        let printer: Printer = Arc::new(Mutex::new(None));
        let thread_printer = Arc::clone(&printer);
        std::thread::spawn(move || {
            if interactive {
                edit_lines(&inbox, &history, &thread_printer);
            } else {
                pipe_lines(&inbox);
            }
        });
        Self { requests, printer }
    }

    /// The next command line; `None` at end of input.
    async fn read(&self, prompt: &str) -> Option<String> {
        self.request(Prompt::Command(prompt.to_owned())).await
    }

    /// Asks a question (shown even when input is piped) and returns the answer.
    async fn ask(&self, question: &str) -> Option<String> {
        self.request(Prompt::Question(question.to_owned())).await
    }

    async fn request(&self, prompt: Prompt) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((prompt, reply)).ok()?;
        answer.await.ok().flatten()
    }
}

type Inbox = std::sync::mpsc::Receiver<(Prompt, oneshot::Sender<Option<String>>)>;

fn pipe_lines(inbox: &Inbox) {
    let mut lines = std::io::stdin().lock().lines();
    while let Ok((prompt, reply)) = inbox.recv() {
        if let Prompt::Question(question) = &prompt {
            println!("{question}");
        }
        let _ = reply.send(lines.next().and_then(Result::ok));
    }
}

fn edit_lines(inbox: &Inbox, history: &PathBuf, printer: &Printer) {
    let Ok(mut editor) = rustyline::DefaultEditor::new() else {
        return pipe_lines(inbox);
    };
    let _ = editor.load_history(history);
    if let Ok(external) = editor.create_external_printer() {
        *printer.lock().expect("printer lock is never poisoned") = Some(Box::new(external));
    }
    while let Ok((prompt, reply)) = inbox.recv() {
        let line = match editor.readline(prompt.text()) {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                Some(line)
            }
            Err(rustyline::error::ReadlineError::Interrupted) => Some(String::new()),
            Err(_) => None,
        };
        let _ = reply.send(line);
    }
    let _ = editor.save_history(history);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> ShellCommand {
        ShellLine::try_parse_from(translate(line).unwrap())
            .unwrap()
            .command
    }

    #[test]
    fn every_older_dialect_parses_to_a_ferry_command() {
        assert!(matches!(
            parse("/join 127.0.0.1 7878"),
            ShellCommand::Join {
                port: Some(7878),
                ..
            }
        ));
        assert!(matches!(parse("/leave"), ShellCommand::Leave));
        assert!(matches!(
            parse("/register alice"),
            ShellCommand::Client(ClientCommand::Register { .. })
        ));
        assert!(matches!(
            parse("/store a.txt"),
            ShellCommand::Client(ClientCommand::Put { .. })
        ));
        assert!(matches!(
            parse("/dir"),
            ShellCommand::Client(ClientCommand::Ls { .. })
        ));
        assert!(matches!(
            parse("/get a.txt"),
            ShellCommand::Client(ClientCommand::Get { .. })
        ));
        assert!(matches!(parse("/?"), ShellCommand::Help { command: None }));
        assert!(matches!(
            parse("upload a.txt"),
            ShellCommand::Client(ClientCommand::Put { .. })
        ));
        assert!(matches!(
            parse("download a.txt"),
            ShellCommand::Client(ClientCommand::Get { .. })
        ));
        assert!(matches!(
            parse("delete a.txt"),
            ShellCommand::Client(ClientCommand::Rm { .. })
        ));
        assert!(matches!(parse("exit"), ShellCommand::Quit));
    }

    #[test]
    fn at_dialect_keeps_the_whole_name() {
        let words = translate("UPLOAD@my file.txt").unwrap();
        assert_eq!(words, ["upload", "my file.txt"]);
        assert!(matches!(
            parse("DOWNLOAD@x"),
            ShellCommand::Client(ClientCommand::Get { .. })
        ));
        assert!(matches!(
            parse("DELETE@x"),
            ShellCommand::Client(ClientCommand::Rm { .. })
        ));
    }

    #[test]
    fn quoting_and_blank_lines_work() {
        assert_eq!(
            translate("put 'a b.txt' c").unwrap(),
            ["put", "a b.txt", "c"]
        );
        assert!(translate("   ").unwrap().is_empty());
        assert!(translate("put 'unterminated").is_err());
    }

    #[test]
    fn the_trackers_numbered_requests_are_understood() {
        assert_eq!(
            translate("1 9002 a.txt, b.txt").unwrap(),
            ["offer", "--peer-port", "9002", "--", "a.txt", "b.txt"]
        );
        assert!(matches!(
            parse("1 9002 a.txt,b.txt"),
            ShellCommand::Offer {
                peer_port: Some(9002),
                ..
            }
        ));
        assert_eq!(translate("2 part of").unwrap(), ["search", "part of"]);
        assert_eq!(translate("1 notaport f").unwrap(), ["1", "notaport", "f"]);
    }
}
