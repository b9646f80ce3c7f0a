//! The store as a WebDAV file system, for one request's [`Caller`]: the
//! catalog's names as a tree, with the same policy, publisher and quotas
//! as every other way in. A PUT over another user's file is refused (403)
//! before its body, and again by the publisher at commit.

use std::sync::Arc;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError, FsFuture, FsResult, FsStream,
    GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use ferry_protocol::FileName;
use futures_util::FutureExt;
use http::StatusCode;

use super::file::{Download, Upload};
use super::meta::{Entry, Meta};
use super::{fs_error, refusal_error};
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::catalog::dav::DeadProp;
use crate::outcome::Outcome;
use crate::publish::copies::Mover;
use crate::state::Hub;

/// Most entries one folder listing shows.
const MAX_LISTED: usize = 100_000;
/// Most files one folder MOVE takes along.
const MAX_MOVED: usize = 10_000;

/// The hub's store, seen through WebDAV.
#[derive(Clone)]
pub(crate) struct StoreFs {
    pub(crate) hub: Arc<Hub>,
}

/// The catalog name a path stands for (`""`: the root).
pub(super) fn raw_name(path: &DavPath) -> FsResult<String> {
    let text = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    Ok(text.trim_matches('/').to_owned())
}

/// A path that must name a file or folder (not the root), as a valid name.
fn file_name(path: &DavPath) -> FsResult<FileName> {
    let raw = raw_name(path)?;
    if raw.is_empty() {
        return Err(FsError::Forbidden);
    }
    FileName::parse(&raw).map_err(|_| FsError::Forbidden)
}

fn allowed(caller: &Caller, permission: Permission) -> FsResult<()> {
    caller.may(permission).map_err(|_| FsError::Forbidden)
}

impl StoreFs {
    async fn meta(&self, raw: &str) -> FsResult<Meta> {
        if raw.is_empty() {
            return Ok(Meta::Folder);
        }
        let name = FileName::parse(raw).map_err(|_| FsError::NotFound)?;
        let catalog = &self.hub.catalog;
        if let Some(entry) = catalog.get(&name).await.map_err(|e| fs_error(&e))? {
            return Ok(Meta::File(self.hub.publisher.accounts.spell(entry)));
        }
        match catalog.is_folder(raw).await.map_err(|e| fs_error(&e))? {
            true => Ok(Meta::Folder),
            false => Err(FsError::NotFound),
        }
    }

    /// Whether the folder a new name goes in exists (else 409 Conflict).
    async fn parent_exists(&self, name: &FileName) -> FsResult<()> {
        let parent = name.as_str().rsplit_once('/').map_or("", |(p, _)| p);
        match self.meta(parent).await {
            Ok(Meta::Folder) => Ok(()),
            _ => Err(FsError::NotFound),
        }
    }

    async fn open_upload(
        &self,
        name: FileName,
        options: &OpenOptions,
        caller: &Caller,
    ) -> FsResult<Box<dyn DavFile>> {
        allowed(caller, Permission::Write)?;
        let hub = &self.hub;
        let current = match self.meta(name.as_str()).await {
            Ok(Meta::Folder) => return Err(FsError::Forbidden),
            Ok(Meta::File(entry)) => Some(entry),
            Err(_) => None,
        };
        match &current {
            Some(_) if options.create_new => return Err(FsError::Exists),
            None if !options.create => return Err(FsError::NotFound),
            None => self.parent_exists(&name).await?,
            Some(entry) => {
                let owner = hub.catalog.get(&name).await.map_err(|e| fs_error(&e))?;
                let theirs = owner.is_some_and(|o| o.owner != caller.handle.as_str());
                if theirs && !caller.admin() {
                    tracing::debug!(name = %entry.name, "WebDAV PUT over another user's file refused");
                    return Err(FsError::Forbidden);
                }
            }
        }
        let accounts = &hub.publisher.accounts;
        accounts
            .may_store(&name, &caller.handle, caller.admin(), false)
            .map_err(|r| refusal_error(&r))?;
        let reservation = match options.size {
            Some(size) if size > hub.config.max_file_size => return Err(FsError::TooLarge),
            Some(size) => Some(
                accounts
                    .reserve(&caller.handle, size, caller.quota)
                    .map_err(|r| refusal_error(&r))?,
            ),
            None => None,
        };
        let needed = options.size.unwrap_or(0);
        let dir = &hub.config.data_dir;
        let room = crate::space::check_room(dir, needed, hub.config.min_free_space)
            .map_err(|e| fs_error(&crate::error::HubError::io("checking free space", dir, e)))?;
        if room.is_err() {
            return Err(FsError::InsufficientStorage);
        }
        let path = hub.store.temp_path();
        let created = path.clone();
        let file = tokio::task::spawn_blocking(move || std::fs::File::create_new(&created))
            .await
            .map_err(|_| FsError::GeneralFailure)?
            .map_err(|e| fs_error(&crate::error::HubError::io("creating an upload", &path, e)))?;
        Ok(Box::new(Upload {
            hub: Arc::clone(hub),
            caller: caller.clone(),
            name,
            path,
            file: Some(file),
            buffer: Vec::new(),
            written: 0,
            expected: options.size,
            hasher: blake3::Hasher::new(),
            reservation,
            published: None,
        }))
    }

    async fn open_download(&self, name: &FileName, caller: &Caller) -> FsResult<Box<dyn DavFile>> {
        allowed(caller, Permission::Read)?;
        let Meta::File(entry) = self.meta(name.as_str()).await? else {
            return Err(FsError::Forbidden);
        };
        let path = self.hub.store.blob_path(&entry.hash);
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
            .await
            .map_err(|_| FsError::GeneralFailure)?
            .map_err(|_| FsError::GeneralFailure)?;
        Ok(Box::new(Download {
            file: Arc::new(file),
            entry,
            position: 0,
            hasher: Some(blake3::Hasher::new()),
        }))
    }

    async fn list(&self, raw: &str, caller: &Caller) -> FsResult<Vec<Box<dyn DavDirEntry>>> {
        allowed(caller, Permission::Read)?;
        if !matches!(self.meta(raw).await?, Meta::Folder) {
            return Err(FsError::Forbidden);
        }
        let children = self
            .hub
            .catalog
            .children(raw, MAX_LISTED)
            .await
            .map_err(|e| fs_error(&e))?;
        let last = |name: &str| name.rsplit('/').next().unwrap_or(name).to_owned();
        let accounts = &self.hub.publisher.accounts;
        let mut entries: Vec<Box<dyn DavDirEntry>> = Vec::new();
        for folder in children.folders {
            entries.push(Box::new(Entry {
                name: last(&folder),
                meta: Meta::Folder,
            }));
        }
        for file in children.files {
            let name = last(&file.name);
            entries.push(Box::new(Entry {
                name,
                meta: Meta::File(accounts.spell(file)),
            }));
        }
        Ok(entries)
    }

    fn mover(caller: &Caller) -> Mover {
        Mover {
            by: caller.handle.clone(),
            admin: caller.admin(),
            quota: caller.quota,
            overwrite: true,
        }
    }

    async fn rename_any(&self, from: &DavPath, to: &DavPath, caller: &Caller) -> FsResult<()> {
        allowed(caller, Permission::Write)?;
        let (from, to) = (file_name(from)?, file_name(to)?);
        self.parent_exists(&to).await?;
        let mover = Self::mover(caller);
        let catalog = &self.hub.catalog;
        let moves: Vec<(FileName, FileName)> = match self.meta(from.as_str()).await? {
            Meta::File(_) => vec![(from.clone(), to.clone())],
            Meta::Folder => {
                let inside = catalog.files_inside(from.as_str(), MAX_MOVED).await;
                let inside = inside
                    .map_err(|e| fs_error(&e))?
                    .ok_or(FsError::Forbidden)?;
                let mut moves = Vec::with_capacity(inside.len());
                for entry in inside {
                    let rest = &entry.name[from.as_str().len()..];
                    let target =
                        FileName::parse(&format!("{to}{rest}")).map_err(|_| FsError::Forbidden)?;
                    let source =
                        FileName::parse(&entry.name).map_err(|_| FsError::GeneralFailure)?;
                    moves.push((source, target));
                }
                moves
            }
        };
        for (source, target) in &moves {
            let moved = self.hub.publisher.rename(source, target, &mover).await;
            if let Outcome::Refused(refusal) = moved.map_err(|e| fs_error(&e))? {
                return Err(refusal_error(&refusal));
            }
        }
        catalog
            .move_collections(from.as_str(), to.as_str())
            .await
            .map_err(|e| fs_error(&e))
    }

    async fn existing(&self, path: &DavPath) -> FsResult<String> {
        let raw = raw_name(path)?;
        self.meta(&raw).await?;
        Ok(raw)
    }
}

impl GuardedFileSystem<Caller> for StoreFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        caller: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let name = file_name(path)?;
            if options.write || options.create || options.create_new || options.truncate {
                self.open_upload(name, &options, caller).await
            } else {
                self.open_download(&name, caller).await
            }
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        caller: &'a Caller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let entries = self.list(&raw_name(path)?, caller).await?;
            let stream: FsStream<Box<dyn DavDirEntry>> =
                Box::pin(futures_util::stream::iter(entries.into_iter().map(Ok)));
            Ok(stream)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            allowed(caller, Permission::Read)?;
            let meta: Box<dyn DavMetaData> = Box::new(self.meta(&raw_name(path)?).await?);
            Ok(meta)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            allowed(caller, Permission::Write)?;
            let raw = raw_name(path)?;
            if raw.is_empty() || self.meta(&raw).await.is_ok() {
                return Err(FsError::Exists);
            }
            let name = FileName::parse(&raw).map_err(|_| FsError::Forbidden)?;
            self.parent_exists(&name).await?;
            // A folder inside someone's top-level folder is theirs to allow.
            let probe = FileName::parse(&format!("{raw}/x")).map_err(|_| FsError::Forbidden)?;
            let accounts = &self.hub.publisher.accounts;
            accounts
                .may_store(&probe, &caller.handle, caller.admin(), false)
                .map_err(|r| refusal_error(&r))?;
            let now = crate::publish::unix_now();
            let catalog = &self.hub.catalog;
            match catalog
                .add_collection(&raw, caller.handle.as_str(), now)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(FsError::Exists),
                Err(e) => Err(fs_error(&e)),
            }
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            allowed(caller, Permission::Write)?;
            let name = file_name(path)?;
            let catalog = &self.hub.catalog;
            let inside = catalog.files_inside(name.as_str(), 0).await;
            if inside.map_err(|e| fs_error(&e))?.is_none() {
                // Files someone else owns are still in it.
                return Err(FsError::Forbidden);
            }
            catalog
                .remove_collections(name.as_str())
                .await
                .map_err(|e| fs_error(&e))
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            allowed(caller, Permission::Write)?;
            let name = file_name(path)?;
            let removed = self
                .hub
                .publisher
                .remove(&name, &caller.handle, caller.admin())
                .await;
            // The catalog drops its properties with it.
            match removed.map_err(|e| fs_error(&e))? {
                Outcome::Refused(refusal) => Err(refusal_error(&refusal)),
                Outcome::Done(_) => Ok(()),
            }
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, ()> {
        self.rename_any(from, to, caller).boxed()
    }

    fn copy<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, ()> {
        async move {
            allowed(caller, Permission::Write)?;
            let (from, to) = (file_name(from)?, file_name(to)?);
            self.parent_exists(&to).await?;
            let copied = self
                .hub
                .publisher
                .copy(&from, &to, &Self::mover(caller))
                .await;
            if let Outcome::Refused(refusal) = copied.map_err(|e| fs_error(&e))? {
                return Err(refusal_error(&refusal));
            }
            let catalog = &self.hub.catalog;
            catalog
                .copy_dead_props(from.as_str(), to.as_str())
                .await
                .map_err(|e| fs_error(&e))
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
        _caller: &'a Caller,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(std::future::ready(true))
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            allowed(caller, Permission::Write)?;
            let raw = self.existing(path).await?;
            let kept = self
                .hub
                .catalog
                .dead_props(&raw)
                .await
                .map_err(|e| fs_error(&e))?;
            if !within_prop_budget(&kept, &patch) {
                let full = StatusCode::INSUFFICIENT_STORAGE;
                return Ok(patch
                    .into_iter()
                    .map(|(_, p)| (full, DavProp { xml: None, ..p }))
                    .collect());
            }
            let changes: Vec<(DeadProp, bool)> =
                patch.iter().map(|(set, prop)| (dead(prop), *set)).collect();
            let catalog = &self.hub.catalog;
            catalog
                .patch_dead_props(&raw, &changes)
                .await
                .map_err(|e| fs_error(&e))?;
            Ok(patch
                .into_iter()
                .map(|(_, prop)| (StatusCode::OK, DavProp { xml: None, ..prop }))
                .collect())
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            allowed(caller, Permission::Read)?;
            let raw = self.existing(path).await?;
            let props = self
                .hub
                .catalog
                .dead_props(&raw)
                .await
                .map_err(|e| fs_error(&e))?;
            Ok(props
                .into_iter()
                .map(|p| DavProp {
                    name: p.local,
                    prefix: p.prefix,
                    namespace: (!p.namespace.is_empty()).then_some(p.namespace),
                    xml: if do_content { p.xml } else { None },
                })
                .collect())
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            allowed(caller, Permission::Read)?;
            let raw = self.existing(path).await?;
            let wanted = dead(&prop);
            let props = self
                .hub
                .catalog
                .dead_props(&raw)
                .await
                .map_err(|e| fs_error(&e))?;
            props
                .into_iter()
                .find(|p| p.namespace == wanted.namespace && p.local == wanted.local)
                .and_then(|p| p.xml)
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn get_quota<'a>(&'a self, caller: &'a Caller) -> FsFuture<'a, (u64, Option<u64>)> {
        let used = self.hub.publisher.accounts.used(caller.handle.as_str());
        futures_util::future::ready(Ok((used, caller.quota))).boxed()
    }
}

/// Most dead properties one file or folder keeps, and their bytes in all.
const MAX_PROPS: usize = 64;
const MAX_PROP_BYTES: usize = 64 << 10;

/// Whether `existing` with `patch` applied stays within the budget.
fn within_prop_budget(existing: &[DeadProp], patch: &[(bool, DavProp)]) -> bool {
    let mut kept: std::collections::HashMap<(String, String), usize> = existing
        .iter()
        .map(|p| {
            (
                (p.namespace.clone(), p.local.clone()),
                p.xml.as_ref().map_or(0, Vec::len),
            )
        })
        .collect();
    for (set, prop) in patch {
        let key = (
            prop.namespace.clone().unwrap_or_default(),
            prop.name.clone(),
        );
        if *set {
            kept.insert(key, prop.xml.as_ref().map_or(0, Vec::len) + prop.name.len());
        } else {
            kept.remove(&key);
        }
    }
    kept.len() <= MAX_PROPS && kept.values().sum::<usize>() <= MAX_PROP_BYTES
}

fn dead(prop: &DavProp) -> DeadProp {
    DeadProp {
        namespace: prop.namespace.clone().unwrap_or_default(),
        local: prop.name.clone(),
        prefix: prop.prefix.clone(),
        xml: prop.xml.clone(),
    }
}
