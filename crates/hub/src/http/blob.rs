//! A stored file's bytes as a response body, read off the async threads
//! one chunk ahead of the network (a slow client holds no thread, only
//! two chunks of memory). A response of the whole file is hashed as it
//! goes and its last chunk held back until the hash is the entry's: a
//! rotten blob ends the response as an error (the connection is cut short
//! of its `Content-Length`), never as a good file.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use ferry_protocol::ContentHash;
use futures_util::stream;
use tokio::task::JoinHandle;

use super::hot::HotBlobs;

/// Bytes read per step.
const CHUNK: u64 = 256 << 10;

/// Files up to this size are read (and checked) whole before the answer.
pub(crate) const READ_WHOLE_MAX: u64 = 64 << 10;

/// One piece of a response body.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    /// Bytes of our own (a multipart header).
    Text(Bytes),
    /// `len` bytes of the file from `start`.
    File { start: u64, len: u64 },
}

/// The small blob at `path` (of `len` bytes), whole and checked against
/// `hash`: from `hot` if it is kept there, else read on this thread when
/// the page cache holds it (no hop to a blocking thread, which cost a
/// small GET half its time), else on a blocking thread, and then kept.
pub(crate) async fn read_whole(
    hot: &HotBlobs,
    path: PathBuf,
    len: u64,
    hash: ContentHash,
) -> io::Result<Bytes> {
    if let Some(bytes) = hot.get(&hash) {
        return Ok(bytes);
    }
    let read = match ferry_io::source::open_source_cached(&path, 0, len, true) {
        Some(read) => read,
        None => {
            let opened = path.clone();
            blocking(move || ferry_io::source::open_source(&opened, 0, len, true)).await
        }
    };
    let ferry_io::source::Source::Bytes(bytes) = read? else {
        return Err(io::Error::other("a whole read gave a file"));
    };
    if ContentHash::from(blake3::hash(&bytes)) != hash {
        return Err(rotten(&path));
    }
    let bytes = Bytes::from(bytes);
    hot.keep(hash, bytes.clone());
    Ok(bytes)
}

/// A body of `pieces` of the blob at `path`. With `whole`, the pieces are
/// the whole file and it must hash to that.
pub(crate) async fn body(
    path: PathBuf,
    pieces: Vec<Piece>,
    whole: Option<ContentHash>,
) -> io::Result<Body> {
    let opened = path.clone();
    let file = Arc::new(blocking(move || File::open(&opened)).await?);
    let mut reading = Reading {
        file,
        path,
        pieces: pieces.into_iter().rev().collect(),
        check: whole.map(|hash| (blake3::Hasher::new(), hash)),
        ahead: None,
    };
    reading.read_ahead();
    let chunks = stream::unfold(reading, |mut reading| async move {
        let chunk = reading.next().await?;
        Some((chunk, reading))
    });
    Ok(Body::from_stream(chunks))
}

struct Reading {
    file: Arc<File>,
    path: PathBuf,
    /// What is left to send, last first.
    pieces: Vec<Piece>,
    check: Option<(blake3::Hasher, ContentHash)>,
    ahead: Option<Ahead>,
}

/// A read under way, and whether it is the file's last.
enum Ahead {
    Text(Bytes),
    File {
        read: JoinHandle<io::Result<(Bytes, Option<blake3::Hasher>)>>,
        last: bool,
    },
}

impl Reading {
    /// Starts reading the next chunk, if any.
    fn read_ahead(&mut self) {
        self.ahead = match self.pieces.pop() {
            None => None,
            Some(Piece::Text(text)) => Some(Ahead::Text(text)),
            Some(Piece::File { start, len }) => {
                let n = len.min(CHUNK);
                if n < len {
                    self.pieces.push(Piece::File {
                        start: start + n,
                        len: len - n,
                    });
                }
                let last = self.pieces.is_empty();
                let file = Arc::clone(&self.file);
                let mut hasher = self.check.as_mut().map(|(h, _)| std::mem::take(h));
                let read = tokio::task::spawn_blocking(move || {
                    let buf = read_chunk(&file, start, n)?;
                    if let Some(hasher) = &mut hasher {
                        hasher.update(&buf);
                    }
                    Ok((Bytes::from(buf), hasher))
                });
                Some(Ahead::File { read, last })
            }
        };
    }

    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        let chunk = match self.ahead.take()? {
            Ahead::Text(text) => text,
            Ahead::File { read, last } => {
                let read = read.await.map_err(io::Error::other).and_then(|r| r);
                let (chunk, hasher) = match read {
                    Ok(read) => read,
                    Err(e) => return Some(Err(e)),
                };
                if let (Some(hasher), Some((slot, expected))) = (hasher, self.check.as_mut()) {
                    if last && ContentHash::from(hasher.finalize()) != *expected {
                        self.pieces.clear();
                        return Some(Err(rotten(&self.path)));
                    }
                    *slot = hasher;
                }
                chunk
            }
        };
        self.read_ahead();
        Some(Ok(chunk))
    }
}

/// `len` bytes of `file` from `start`, read into a buffer that was never
/// zeroed (zeroing 256 KiB a chunk was 5% of a large GET's CPU).
fn read_chunk(file: &File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).expect("a chunk fits memory");
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = start + buf.len() as u64;
        let want = len - buf.len();
        let read = match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Err(rustix::io::Errno::INTR) => continue,
            read => read?,
        };
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the blob ended {want} bytes short of its entry's size"),
            ));
        }
    }
    // The allocator may have given more room than asked, and pread filled it.
    buf.truncate(len);
    Ok(buf)
}

fn rotten(path: &std::path::Path) -> io::Error {
    tracing::error!(
        blob = %path.display(),
        "a stored file does not hash to its entry (its disk may be failing); the download was cut off"
    );
    io::Error::new(io::ErrorKind::InvalidData, "the stored bytes are damaged")
}

async fn blocking<T: Send + 'static>(
    operation: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(operation)
        .await
        .map_err(io::Error::other)?
}
