//! The error type of this crate.

use thiserror::Error;

/// Errors of reward computation and of the code sandbox.
///
/// Scoring functions themselves never fail on bad *text* (a malformed answer
/// simply scores low); errors are about configuration and the machine.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RewardsError {
    /// The sandbox is configured to use bubblewrap but no usable `bwrap`
    /// binary was found.
    #[error(
        "bubblewrap (`bwrap`) was not found{searched}; install it (Debian/Ubuntu: `apt-get install bubblewrap`) \
         or set `fallback = \"plain\"` in the sandbox configuration to run code without namespace isolation"
    )]
    BwrapMissing {
        /// Where it was looked for, already formatted (` at /usr/bin/bwrap` or empty).
        searched: String,
    },
    /// The interpreter or another program could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Preparing the sandbox's files (temporary directory, program file) failed.
    #[error("cannot prepare the sandbox files: {0}")]
    Io(#[from] std::io::Error),
    /// A sandbox configuration value is out of range.
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
}
