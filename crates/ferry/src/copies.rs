//! Steering glibc's `memcpy` away from `rep movsb` for mid-sized copies.
//!
//! glibc 2.36 (Debian 12) copies blocks between 4 KiB and the L2 size with
//! `rep movsb`. On AMD EPYC that instruction runs several times slower than
//! glibc's own vector loop when source and destination are misaligned to
//! each other, and rustls copies every received TLS record's plaintext
//! (16 KiB, starting 5 bytes into its buffer) exactly that way. perf of a
//! 1 GiB TLS download: that one copy was 16% of the client's CPU, against 3%
//! for a later copy of the same bytes. glibc reads the threshold only from
//! the environment, at start-up, so the process sets it and re-executes
//! itself, once, before anything else runs. That costs about 2.7 ms per
//! start (`ferry --version`: 5.8 ms against 3.1 ms with the variable set).

/// Copies smaller than this use glibc's vector loop; larger ones still take
/// its non-temporal path. Every copy Ferry makes is smaller.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold=4194304";

/// Re-executes the running binary with [`TUNABLE`] added to
/// `GLIBC_TUNABLES`, unless that variable already sets the threshold (the
/// user's choice, or this process after its re-execution). Returns only if
/// nothing needed doing or the re-execution failed; either way the process
/// carries on, correct but slower.
pub(crate) fn prefer_vector_copies() {
    #[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let (name, _) = TUNABLE.split_once('=').expect("a name=value pair");
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.contains(name) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let tunables = match current.as_str() {
            "" => TUNABLE.to_owned(),
            other => format!("{other}:{TUNABLE}"),
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        // `exec` replaces this process (same PID) and only returns on failure.
        let _failed = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
    }
}
