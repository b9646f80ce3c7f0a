//! Validated names: file names (relative paths) and user handles.
//!
//! Everything that arrives from the network as a name goes through
//! [`FileName::parse`] or [`Handle::parse`] before any logic sees it. The hub
//! never uses a file name as a filesystem path; clients join validated
//! components under their download folder only.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_COMPONENT_LEN, MAX_HANDLE_LEN, MAX_NAME_LEN};

/// Why a file name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("name is empty")]
    Empty,
    /// The whole name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("name is {len} bytes long; the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// Length of the refused name.
        len: usize,
    },
    /// The name starts with `/`.
    #[error("name must be relative, not absolute")]
    Absolute,
    /// A component between slashes is empty (`a//b`, trailing `/`).
    #[error("name has an empty path component")]
    EmptyComponent,
    /// A component is `.` or `..`.
    #[error("name has a '.' or '..' component")]
    DotComponent,
    /// A component holds a backslash.
    #[error("name contains a backslash")]
    Backslash,
    /// A component holds NUL, a control character, an escape, or an
    /// invisible format or separator character (Unicode Cf, Zl, Zp: zero
    /// width spaces, direction marks and overrides, line separators) that
    /// would let it look like another name.
    #[error("name contains a control, escape or invisible character")]
    ControlCharacter,
    /// A local name is not valid UTF-8, so it cannot travel as a name.
    #[error("name is not valid UTF-8")]
    NotUtf8,
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("a path component is {len} bytes long; the limit is {MAX_COMPONENT_LEN}")]
    ComponentTooLong {
        /// Length of the refused component.
        len: usize,
    },
}

/// A file name in the store or in a peer's offer: a relative path of one or
/// more `/`-separated components, each of which is a plain, printable name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

impl FileName {
    /// Validates `name` and puts it in Unicode NFC, so that one name has one
    /// spelling (`é` typed as one character or as `e` and an accent are the
    /// same file). Parsing a parsed name gives it back unchanged. See
    /// [`NameError`] for what is refused.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: name.len() });
        }
        let name = nfc(name);
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: name.len() });
        }
        if name.starts_with('/') {
            return Err(NameError::Absolute);
        }
        name.split('/').try_for_each(check_component)?;
        Ok(Self(name.into_owned()))
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components, each already validated.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0
            .rsplit('/')
            .next()
            .expect("split yields at least one item")
    }

    /// The name as a relative path, built component by component so no
    /// separator can hide inside one.
    pub fn to_relative_path(&self) -> PathBuf {
        self.components().collect()
    }

    /// Whether this name lies inside folder `dir` (`dir/...`).
    pub fn is_inside(&self, dir: &Self) -> bool {
        self.0
            .strip_prefix(dir.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The name with ` (n)` inserted before the last extension:
    /// `photos/a.jpg` becomes `photos/a (1).jpg`.
    pub fn numbered(&self, n: u32) -> Result<Self, NameError> {
        let file = self.file_name();
        let dir = &self.0[..self.0.len() - file.len()];
        let (stem, ext) = match file.rfind('.') {
            Some(dot) if dot > 0 => file.split_at(dot),
            _ => (file, ""),
        };
        Self::parse(&format!("{dir}{stem} ({n}){ext}"))
    }
}

fn check_component(component: &str) -> Result<(), NameError> {
    if component.is_empty() {
        return Err(NameError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(NameError::DotComponent);
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(NameError::ComponentTooLong {
            len: component.len(),
        });
    }
    if component.contains('\\') {
        return Err(NameError::Backslash);
    }
    if component
        .char_indices()
        .any(|(at, c)| is_forbidden_at(component, at, c))
    {
        return Err(NameError::ControlCharacter);
    }
    Ok(())
}

/// `text` in Unicode NFC; not copied when it already is (nearly always).
fn nfc(text: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => std::borrow::Cow::Borrowed(text),
        _ => std::borrow::Cow::Owned(text.nfc().collect()),
    }
}

/// Whether names refuse the character `c` at byte `at` of `text`: see
/// [`is_forbidden_char`], except that the zero-width non-joiner and joiner
/// (U+200C, U+200D) are allowed between two visible non-ASCII characters,
/// where scripts such as Persian and Devanagari, and emoji sequences, need
/// them; beside ASCII (`tips\u{200D}.sh`) they only hide.
pub fn is_forbidden_at(text: &str, at: usize, c: char) -> bool {
    if !matches!(c, '\u{200C}' | '\u{200D}') {
        return is_forbidden_char(c);
    }
    let joins = |n: Option<char>| {
        n.is_some_and(|n| !n.is_ascii() && !n.is_whitespace() && !is_forbidden_char(n))
    };
    let before = text[..at].chars().next_back();
    let after = text[at + c.len_utf8()..].chars().next();
    !(joins(before) && joins(after))
}

/// Whether names refuse `c` (and terminals should see it escaped):
/// control characters (C0, DEL, C1, so NUL and ESC too), and the Unicode
/// format and separator characters (Cf, Zl, Zp) that display as nothing or
/// as a line break: with them, `tips\u{200B}.sh`, `tips.sh\u{200E}` or a
/// name with a bidi override look like another name.
pub fn is_forbidden_char(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

impl TryFrom<String> for FileName {
    type Error = NameError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name)
    }
}

impl From<FileName> for String {
    fn from(name: FileName) -> Self {
        name.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Why a handle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "handle must be 1 to {MAX_HANDLE_LEN} characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
)]
pub struct HandleError;

/// A user's handle: normalised to lowercase ASCII, allow-listed characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Handle(String);

impl Handle {
    /// Normalises (trim, ASCII lowercase) and validates a handle. Normalising
    /// a valid handle again gives the same handle.
    pub fn parse(raw: &str) -> Result<Self, HandleError> {
        let handle = raw.trim().to_ascii_lowercase();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        let starts_well = handle
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if !starts_well || handle.len() > MAX_HANDLE_LEN || !handle.chars().all(allowed) {
            return Err(HandleError);
        }
        Ok(Self(handle))
    }

    /// The normalised handle.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Handle {
    type Error = HandleError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Handle> for String {
    fn from(handle: Handle) -> Self {
        handle.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_nested_names_are_accepted() {
        for ok in [
            "a.txt",
            "photos/2024/a.jpg",
            "with space",
            "ünïcode.md",
            ".hidden",
            "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}.txt",
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}.jpg",
        ] {
            assert_eq!(FileName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("/etc/passwd", NameError::Absolute),
            ("a//b", NameError::EmptyComponent),
            ("a/", NameError::EmptyComponent),
            ("..", NameError::DotComponent),
            ("a/../../b", NameError::DotComponent),
            ("./a", NameError::DotComponent),
            ("a\\b", NameError::Backslash),
            ("a\0b", NameError::ControlCharacter),
            ("a\x1b[31mred", NameError::ControlCharacter),
            ("line\nbreak", NameError::ControlCharacter),
            ("del\x7f", NameError::ControlCharacter),
            ("evil\u{202E}gpj.exe", NameError::ControlCharacter),
            ("tips\u{200B}.sh", NameError::ControlCharacter),
            ("tips.sh\u{200E}", NameError::ControlCharacter),
            ("tips\u{2028}.sh", NameError::ControlCharacter),
            ("tips\u{2029}.sh", NameError::ControlCharacter),
            ("\u{FEFF}tips.sh", NameError::ControlCharacter),
            ("soft\u{AD}hyphen", NameError::ControlCharacter),
            ("tips\u{200D}.sh", NameError::ControlCharacter),
            ("\u{200C}lead", NameError::ControlCharacter),
        ];
        for (name, want) in cases {
            assert_eq!(FileName::parse(name).unwrap_err(), *want, "{name:?}");
        }
    }

    #[test]
    fn length_limits_hold_at_the_boundary() {
        assert!(FileName::parse(&"x".repeat(255)).is_ok());
        assert_eq!(
            FileName::parse(&"x".repeat(256)).unwrap_err(),
            NameError::ComponentTooLong { len: 256 }
        );
        let long = vec!["d".repeat(200); 6].join("/");
        assert!(matches!(
            FileName::parse(&long),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn numbered_inserts_before_the_extension() {
        let n = |s: &str, i| FileName::parse(s).unwrap().numbered(i).unwrap();
        assert_eq!(n("a.jpg", 1).as_str(), "a (1).jpg");
        assert_eq!(n("dir/x.tar.gz", 2).as_str(), "dir/x.tar (2).gz");
        assert_eq!(n("README", 1).as_str(), "README (1)");
        assert_eq!(n(".bashrc", 3).as_str(), ".bashrc (3)");
    }

    #[test]
    fn folder_membership_needs_a_separator() {
        let dir = FileName::parse("photos").unwrap();
        assert!(FileName::parse("photos/a.jpg").unwrap().is_inside(&dir));
        assert!(!FileName::parse("photos2/a.jpg").unwrap().is_inside(&dir));
        assert!(!dir.is_inside(&dir));
    }

    #[test]
    fn relative_path_never_escapes() {
        let path = FileName::parse("a/b/c.txt").unwrap().to_relative_path();
        assert!(path.is_relative());
        assert_eq!(path.components().count(), 3);
    }

    #[test]
    fn handles_normalise_idempotently() {
        let once = Handle::parse("  Alice_01 ").unwrap();
        assert_eq!(once.as_str(), "alice_01");
        assert_eq!(Handle::parse(once.as_str()).unwrap(), once);
    }

    #[test]
    fn bad_handles_are_refused() {
        for bad in [
            "",
            "-lead",
            "has space",
            "ünï",
            "a/b",
            &"x".repeat(33),
            "ta\tb",
        ] {
            assert!(Handle::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_name_has_one_spelling() {
        let composed = FileName::parse("caf\u{E9}.txt").unwrap();
        let decomposed = FileName::parse("cafe\u{301}.txt").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "caf\u{E9}.txt");
    }

    proptest::proptest! {
        /// NFC is applied once: accents and letters in any order parse to
        /// a name that parses to itself.
        #[test]
        fn normalising_names_is_idempotent(raw in "[a-e/\u{300}-\u{36F}\u{1100}-\u{1112}\u{1161}-\u{1175}\u{E9}]{1,60}") {
            if let Ok(name) = FileName::parse(&raw) {
                proptest::prop_assert_eq!(FileName::parse(name.as_str()), Ok(name.clone()));
            }
        }

        /// Parsing is a canonical form: what it accepts parses again to
        /// itself, so normalising twice changes nothing.
        #[test]
        fn parsing_names_and_handles_is_idempotent(raw in ".{0,80}") {
            if let Ok(name) = FileName::parse(&raw) {
                proptest::prop_assert_eq!(FileName::parse(name.as_str()), Ok(name.clone()));
            }
            if let Ok(handle) = Handle::parse(&raw) {
                proptest::prop_assert_eq!(Handle::parse(handle.as_str()), Ok(handle.clone()));
            }
        }
    }
}
