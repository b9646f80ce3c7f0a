//! What the hub checks at start, beside the catalog's own `quick_check`:
//! that every entry's blob is in the store with the entry's size. An entry
//! whose bytes are gone would be listed and then fail every download, so
//! the hub refuses to start and says which, or, when asked to repair,
//! drops those entries and says so. Blobs no entry refers to are counted
//! and reported: a crash before a commit leaves some, and so does a catalog
//! that lost entries.

use std::collections::HashMap;

use ferry_protocol::{ContentHash, MAX_LIST_PAGE};

use crate::catalog::Catalog;
use crate::error::HubError;
use crate::store::Store;

/// Entries named in the refusal; the rest are counted.
const NAMED: usize = 5;

/// Cross-checks `catalog` against `store`; with `repair`, entries without
/// their bytes are removed (each logged) instead of refused.
pub(crate) async fn check(catalog: &Catalog, store: &Store, repair: bool) -> Result<(), HubError> {
    // One walk of the store: each blob's size, and whether an entry uses it.
    let mut blobs: HashMap<ContentHash, (u64, bool)> = store
        .blob_sizes()
        .map(|(hash, size)| (hash, (size, false)))
        .collect();
    let mut broken = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (entries, more) = catalog.list(None, after.as_deref(), MAX_LIST_PAGE).await?;
        for entry in &entries {
            match blobs.get_mut(&entry.hash) {
                Some((size, used)) if *size == entry.size => *used = true,
                _ => broken.push(entry.name.clone()),
            }
        }
        after = entries.last().map(|e| e.name.clone());
        if !more || after.is_none() {
            break;
        }
    }
    let unreferenced = blobs.values().filter(|(_, used)| !used).count();
    report_unreferenced(unreferenced);
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
        // Every stored name is canonical by now (see `respell`).
        let Ok(parsed) = ferry_protocol::FileName::parse(name) else {
            tracing::warn!(name = %name.escape_default(), "repair: an entry without bytes has no valid name; left");
            continue;
        };
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
fn report_unreferenced(unreferenced: usize) {
    if unreferenced > 0 {
        tracing::warn!(
            unreferenced,
            "blobs in the store that no entry refers to: left by a crash before their commit, \
             or entries the catalog lost; they are never served, and new uploads of the same \
             bytes replace them"
        );
    }
}
