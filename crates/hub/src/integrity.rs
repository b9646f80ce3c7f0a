//! What the hub checks at start, beside the catalog's own `quick_check`:
//! that every entry's blob is in the store with the entry's size. An entry
//! whose bytes are gone would be listed and then fail every download, so
//! the hub refuses to start and says which, or, when asked to repair,
//! drops those entries and says so. Blobs no entry refers to are counted
//! and reported: a crash before a commit leaves some, and so does a catalog
//! that lost entries.

use std::collections::HashSet;

use ferry_protocol::{ContentHash, MAX_LIST_PAGE};

use crate::catalog::Catalog;
use crate::error::HubError;
use crate::store::Store;

/// Entries named in the refusal; the rest are counted.
const NAMED: usize = 5;

/// Cross-checks `catalog` against `store`; with `repair`, entries without
/// their bytes are removed (each logged) instead of refused.
pub(crate) async fn check(catalog: &Catalog, store: &Store, repair: bool) -> Result<(), HubError> {
    let mut broken = Vec::new();
    let mut referenced = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let (entries, more) = catalog.list(None, after.as_deref(), MAX_LIST_PAGE).await?;
        for entry in &entries {
            referenced.insert(entry.hash);
            let held = std::fs::metadata(store.blob_path(&entry.hash)).map(|m| m.len());
            if held.ok() != Some(entry.size) {
                broken.push(entry.name.clone());
            }
        }
        after = entries.last().map(|e| e.name.clone());
        if !more || after.is_none() {
            break;
        }
    }
    report_unreferenced(store, &referenced);
    if broken.is_empty() {
        return Ok(());
    }
    if !repair {
        let shown: Vec<&str> = broken.iter().take(NAMED).map(String::as_str).collect();
        return Err(HubError::Damaged {
            path: store.root().to_owned(),
            detail: format!(
                "{} catalog entries have no blob of their size in the store ({}{}); \
                 start with --repair to remove those entries and serve the rest",
                broken.len(),
                shown.join(", "),
                if broken.len() > NAMED { ", …" } else { "" }
            ),
        });
    }
    for name in &broken {
        let parsed = ferry_protocol::FileName::parse(name).expect("names in the catalog are valid");
        catalog.delete(&parsed).await?;
        tracing::warn!(%name, "repair: removed an entry whose bytes are missing from the store");
    }
    tracing::warn!(
        removed = broken.len(),
        "repair: the catalog now lists only files it holds"
    );
    Ok(())
}

/// Logs how many blobs no entry refers to.
fn report_unreferenced(store: &Store, referenced: &HashSet<ContentHash>) {
    let unreferenced = store
        .blob_hashes()
        .filter(|hash| !referenced.contains(hash))
        .count();
    if unreferenced > 0 {
        tracing::warn!(
            unreferenced,
            "blobs in the store that no entry refers to: left by a crash before their commit, \
             or entries the catalog lost; they are never served, and new uploads of the same \
             bytes replace them"
        );
    }
}
