//! What a sender sends from: a small file read whole, or a file to stream.
//!
//! Opening and reading a file may wait for the disk, so it normally runs on
//! a blocking thread. A file the page cache already holds (a blob just
//! written or read, the common case when many clients fetch the same few
//! files) can be opened and read without waiting: [`open_source_cached`]
//! tries that on the calling thread and gives up, rather than block, the
//! moment the kernel would have to go to the disk.

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat2};
use rustix::io::{Errno, ReadWriteFlags, preadv2};
use serde::Serialize;
use tokio::io::AsyncWrite;

use crate::body::{BodyError, write_within};
use crate::disk::{open_from, send_from_file};
use crate::framed::FrameWriter;

/// A body to send: read whole (small), or an open file to stream.
#[derive(Debug)]
pub enum Source {
    /// The bytes themselves.
    Bytes(Vec<u8>),
    /// A file positioned at the first byte to send.
    File(File),
}

impl Source {
    /// Skips the first `n` bytes (a resumed transfer).
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        match self {
            Self::Bytes(bytes) => {
                bytes.drain(..usize::try_from(n).map_or(bytes.len(), |n| n.min(bytes.len())));
            }
            Self::File(file) => {
                let n = i64::try_from(n).map_err(io::Error::other)?;
                file.seek(SeekFrom::Current(n))?;
            }
        }
        Ok(())
    }
}

/// Opens `path` to send its `len` bytes from `offset`: read whole if
/// `whole` (one blocking call instead of a read-ahead thread; the file must
/// hold exactly that many), else left open to stream. Blocking.
pub fn open_source(path: &Path, offset: u64, len: u64, whole: bool) -> io::Result<Source> {
    source_from(open_from(path, offset)?, len, whole)
}

/// [`open_source`] for a file already open and positioned at the first
/// byte to send.
pub fn source_from(file: File, len: u64, whole: bool) -> io::Result<Source> {
    if !whole {
        return Ok(Source::File(file));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len.saturating_add(1)).read_to_end(&mut bytes)?;
    whole_read(bytes, len)
}

/// Sends the `len` bytes of `source` to `writer` (see [`send_from_file`]
/// for a file). Does not flush.
pub async fn send_source<W, E>(
    source: Source,
    len: u64,
    writer: &mut FrameWriter<W, E>,
    stall: Duration,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), BodyError>
where
    W: AsyncWrite + Unpin,
    E: Serialize,
{
    match source {
        Source::File(file) => send_from_file(file, len, writer, stall, progress).await,
        Source::Bytes(bytes) => {
            if bytes.len() as u64 != len {
                let sent = bytes.len() as u64;
                return Err(BodyError::SourceChanged {
                    expected: len,
                    sent,
                });
            }
            write_within(writer, &bytes, stall).await?;
            progress(len);
            Ok(())
        }
    }
}

/// [`open_source`] without waiting for the disk: `None` when the path's
/// lookup or any byte read whole is not already cached in memory (or the
/// kernel cannot tell), and the caller should call [`open_source`] on a
/// blocking thread instead.
pub fn open_source_cached(
    path: &Path,
    offset: u64,
    len: u64,
    whole: bool,
) -> Option<io::Result<Source>> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = match openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED) {
        Ok(fd) => fd,
        Err(e) if would_wait(e) => return None,
        Err(e) => return Some(Err(e.into())),
    };
    let mut file = File::from(fd);
    if !whole {
        let positioned = file.seek(SeekFrom::Start(offset));
        return Some(positioned.map(|_| Source::File(file)));
    }
    // One byte more than expected shows a file that grew.
    let mut bytes = vec![0; usize::try_from(len.saturating_add(1)).ok()?];
    let mut filled = 0;
    while filled < bytes.len() {
        let at = offset + filled as u64;
        match preadv2(
            &file,
            &mut [IoSliceMut::new(&mut bytes[filled..])],
            at,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) if would_wait(e) => return None,
            Err(e) => return Some(Err(e.into())),
        }
    }
    bytes.truncate(filled);
    Some(whole_read(bytes, len))
}

/// The errors that mean "this would have waited for the disk".
fn would_wait(e: Errno) -> bool {
    matches!(
        e,
        Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL
    )
}

/// `bytes` read whole, if they are the `len` expected.
fn whole_read(bytes: Vec<u8>, len: u64) -> io::Result<Source> {
    if bytes.len() as u64 != len {
        let message = format!(
            "the file changed size: {} bytes to send where {len} were expected",
            bytes.len()
        );
        return Err(io::Error::other(message));
    }
    Ok(Source::Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::Request;

    #[tokio::test]
    async fn a_source_read_whole_or_opened_sends_the_same_bytes_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        for whole in [true, false] {
            let mut source = open_source(&path, 2, 8, whole).unwrap();
            assert_eq!(matches!(source, Source::Bytes(_)), whole);
            source.skip(3).unwrap();
            let (a, mut b) = tokio::io::duplex(64);
            let mut writer = FrameWriter::<_, Request>::new(a);
            let mut sent = 0;
            send_source(source, 5, &mut writer, Duration::from_secs(1), &mut |n| {
                sent += n;
            })
            .await
            .unwrap();
            writer.flush().await.unwrap();
            drop(writer);
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            assert_eq!((got.as_slice(), sent), (&b"56789"[..], 5), "whole: {whole}");
        }
        let err = open_source(&path, 0, 4, true).unwrap_err();
        assert!(err.to_string().contains("changed size"), "{err}");
    }

    /// A cached file: the lookup and the bytes were just written, so both
    /// are in memory and the result matches the blocking open.
    #[test]
    fn a_cached_file_opens_without_waiting_and_checks_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        match open_source_cached(&path, 2, 8, true) {
            Some(Ok(Source::Bytes(bytes))) => assert_eq!(bytes, b"23456789"),
            other => panic!("expected the cached bytes, got {other:?}"),
        }
        assert!(matches!(
            open_source_cached(&path, 0, 10, false),
            Some(Ok(Source::File(_)))
        ));
        let grown = open_source_cached(&path, 0, 4, true).unwrap().unwrap_err();
        assert!(grown.to_string().contains("changed size"), "{grown}");
        // A name never looked up has no cached lookup to fail from: the
        // blocking open answers it.
        match open_source_cached(&dir.path().join("absent"), 0, 1, true) {
            None => {}
            Some(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            Some(Ok(source)) => panic!("opened a missing file: {source:?}"),
        }
    }
}
