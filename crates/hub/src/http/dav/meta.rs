//! What WebDAV clients see of a stored file or a folder: its size, time,
//! and an `ETag` that is the file's hash (so it changes exactly when the
//! bytes do, as the API's does).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::fs::{DavDirEntry, DavMetaData, FsFuture, FsResult};
use ferry_protocol::FileEntry;
use futures_util::FutureExt;

/// A file's or a folder's metadata.
#[derive(Debug, Clone)]
pub(crate) enum Meta {
    File(FileEntry),
    Folder,
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        match self {
            Self::File(entry) => entry.size,
            Self::Folder => 0,
        }
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(match self {
            Self::File(entry) => {
                UNIX_EPOCH + Duration::from_secs(u64::try_from(entry.modified).unwrap_or(0))
            }
            // Folders have no time of their own in the store.
            Self::Folder => UNIX_EPOCH,
        })
    }

    fn is_dir(&self) -> bool {
        matches!(self, Self::Folder)
    }

    fn etag(&self) -> Option<String> {
        match self {
            Self::File(entry) => Some(crate::http::conditions::tag(entry)),
            Self::Folder => None,
        }
    }
}

/// One entry of a folder listing.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        futures_util::future::ready(Ok(meta)).boxed()
    }
}
