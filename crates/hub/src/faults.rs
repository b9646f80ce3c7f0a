//! Failpoints for the crash and fault tests: compiled in only with the
//! `failpoints` feature (which only the tests turn on), set at start from
//! `FAILPOINTS` (`name=return;…`). A crash point aborts the process on
//! the spot, as a kill -9 or a power cut would; a fault point makes the
//! operation fail as a dying disk would.

/// Aborts the process here when the failpoint `$name` is set to `return`.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| std::process::abort());
    };
}

/// Fails the enclosing function with an I/O error when `$name` is set to
/// `return`.
macro_rules! fault_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| Err(std::io::Error::other(concat!(
            "injected failure at ",
            $name
        ))
        .into()));
    };
}

/// Reads `FAILPOINTS` (builds with the `failpoints` feature only); keep the
/// result alive while the hub runs.
#[cfg(feature = "failpoints")]
pub fn from_env() -> Option<fail::FailScenario<'static>> {
    Some(fail::FailScenario::setup())
}

/// Without the `failpoints` feature there are none.
#[cfg(not(feature = "failpoints"))]
pub fn from_env() -> Option<()> {
    None
}
