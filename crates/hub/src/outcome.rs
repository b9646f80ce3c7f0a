//! What a request comes to: done, or refused with a code and a line for
//! the client (an internal failure is a `HubError` instead).

use ferry_protocol::{ErrorCode, FileName};

/// A request-level refusal: sent to the client, the session goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// One line for a human.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Either a refusal for the client or an internal failure.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It worked.
    Done(T),
    /// The client asked for something it may not have.
    Refused(Refusal),
}

/// The refusal for a missing file.
pub(crate) fn not_found(name: &FileName) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("no file '{name}' on the hub"))
}
