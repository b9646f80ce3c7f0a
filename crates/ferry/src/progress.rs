//! Progress bars on a terminal (rate and ETA), plain lines when piped.

use ferry_client::{Progress, TransferEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{announcement, human_size, shown};

/// What a finished file is reported as.
#[derive(Debug, Clone)]
pub(crate) enum Direction {
    /// `alice<time>: Uploaded name`, by the user `me`; a name another
    /// user already holds with these bytes says so, and whose.
    Upload {
        /// The uploader's handle.
        me: String,
    },
    /// `File received from SOURCE: name`.
    Download(String),
    /// Hashing files to offer: no per-file lines.
    Hash,
}

/// A transfer's bar and its per-file lines.
pub(crate) struct Bar {
    bar: ProgressBar,
    direction: Direction,
    quiet: bool,
}

impl Bar {
    /// A bar for `total` bytes; with `quiet` (JSON output) no lines are printed.
    pub(crate) fn new(total: u64, direction: Direction, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .expect("template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        Self {
            bar,
            direction,
            quiet,
        }
    }

    /// Prints a line above the bar (or plainly when there is no bar).
    pub(crate) fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn event(&self, event: TransferEvent<'_>) {
        match event {
            TransferEvent::Bytes(n) => self.bar.inc(n),
            TransferEvent::Resumed { name, offset } => {
                self.line(&format!(
                    "Resuming {} from {}",
                    shown(name),
                    human_size(offset)
                ));
            }
            TransferEvent::Done {
                entry,
                deduplicated,
            } => match &self.direction {
                Direction::Upload { me } => {
                    let line = if !entry.owner.eq_ignore_ascii_case(me) {
                        already_there(entry)
                    } else if deduplicated {
                        format!(
                            "{} is stored (the hub already had these bytes; nothing was sent)",
                            shown(&entry.name)
                        )
                    } else {
                        announcement(&entry.owner, entry.modified, "Uploaded", &entry.name)
                    };
                    self.line(&line);
                }
                Direction::Download(source) => {
                    self.line(&format!(
                        "File received from {source}: {}",
                        shown(&entry.name)
                    ));
                }
                Direction::Hash => {}
            },
            TransferEvent::Failed { name, error } => {
                let text = failure_line(name, error);
                if self.bar.is_hidden() {
                    eprintln!("{text}");
                } else {
                    self.bar.println(text);
                }
            }
        }
    }
}

/// A put whose name another user already holds with these bytes: nothing
/// was sent, and the file is theirs, not the uploader's new one.
fn already_there(entry: &ferry_protocol::FileEntry) -> String {
    format!(
        "{} is already there with these bytes (uploaded by {} on {}); nothing was sent",
        shown(&entry.name),
        shown(&entry.owner),
        crate::output::local_time(entry.modified)
    )
}

/// `error: NAME: REASON`, escaped, for a file that failed.
pub(crate) fn failure_line(name: &str, error: &ferry_client::ClientError) -> String {
    format!("error: {}: {}", shown(name), shown(&error.to_string()))
}
