//! Names stored before names had one spelling: at start, every entry whose
//! name is not what [`FileName::parse`] makes of it now (not in NFC, or
//! holding an invisible character names now refuse) is renamed to a name
//! that is, so that it can be listed, fetched and deleted by the name shown.
//! Invisible characters become visible as `[U+200B]`; a name already taken
//! gets a number. Each rename is logged.

use ferry_protocol::{FileName, MAX_LIST_PAGE};

use crate::catalog::Catalog;
use crate::error::HubError;

/// Renames every entry whose stored name is not its canonical spelling.
pub(crate) async fn respell(catalog: &Catalog) -> Result<(), HubError> {
    let mut odd = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (entries, more) = catalog.list(None, after.as_deref(), MAX_LIST_PAGE).await?;
        odd.extend(
            entries
                .iter()
                .filter(|e| FileName::parse(&e.name).map_or(true, |n| n.as_str() != e.name))
                .map(|e| e.name.clone()),
        );
        after = entries.last().map(|e| e.name.clone());
        if !more || after.is_none() {
            break;
        }
    }
    for old in odd {
        match respelled(catalog, &old).await? {
            Some(new) => tracing::warn!(
                old = %old.escape_default(),
                %new,
                "renamed an entry stored before names had one spelling"
            ),
            None => tracing::warn!(
                old = %old.escape_default(),
                "an entry's name has no valid spelling; it stays unreachable by name"
            ),
        }
    }
    Ok(())
}

/// Renames `old` to its canonical spelling, numbered if that is taken.
async fn respelled(catalog: &Catalog, old: &str) -> Result<Option<FileName>, HubError> {
    let Ok(base) = FileName::parse(&visible(old)) else {
        return Ok(None);
    };
    for n in 0..1000 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            match base.numbered(n) {
                Ok(numbered) => numbered,
                Err(_) => return Ok(None),
            }
        };
        if catalog.rename_raw(old, &candidate).await? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// `name` with each character names refuse written out as `[U+XXXX]`.
fn visible(name: &str) -> String {
    name.char_indices()
        .map(|(at, c)| {
            if ferry_protocol::name::is_forbidden_at(name, at, c) {
                format!("[U+{:04X}]", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_written_out() {
        assert_eq!(visible("tips\u{200B}.sh"), "tips[U+200B].sh");
        assert_eq!(visible("plain"), "plain");
    }
}
