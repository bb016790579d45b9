//! Errors of plugin loading and plugin calls.

use std::{fmt, path::PathBuf, time::Duration};

use flowrl_plugin_abi::PluginError;
use thiserror::Error;

/// Where a plugin library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Linked into the running binary and added with `Host::add_static`.
    Static,
    /// Loaded from this shared-library file.
    Path(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static => f.write_str("built-in"),
            Self::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Everything that can go wrong when loading or calling plugins.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum HostError {
    /// The plugin file or directory does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// A directory of the plugin path could not be read.
    #[error("{path}: cannot list directory: {reason}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not a flowrl plugin (not a shared library, or one that
    /// does not export the plugin root module).
    #[error("{path}: not a flowrl plugin: {reason}")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The plugin was built with an incompatible `abi_stable` or its root
    /// module has an incompatible layout.
    #[error("{library}: incompatible plugin ABI: {reason}")]
    IncompatibleAbi {
        /// The library.
        library: PluginSource,
        /// Details from the layout checker.
        reason: String,
    },
    /// The plugin was built against another version of the flowrl plugin
    /// interface.
    #[error(
        "{library}: incompatible plugin interface: the plugin was built against {what} {plugin}, this host implements {what} {host}"
    )]
    IncompatibleVersion {
        /// The library.
        library: PluginSource,
        /// Which version: `flowrl plugin interface` or `flowrl-plugin-abi`.
        what: String,
        /// Version the plugin was built against.
        plugin: String,
        /// Version the host implements.
        host: String,
    },
    /// The plugin's root module or metadata function failed.
    #[error("{library}: plugin initialisation failed: {reason}")]
    InitFailed {
        /// The library.
        library: PluginSource,
        /// Why.
        reason: String,
    },
    /// Two loaded libraries have the same name; the second is refused.
    #[error("{second}: duplicate plugin name `{name}` (already loaded from {first})")]
    DuplicateName {
        /// The library name.
        name: String,
        /// Where the first one came from.
        first: PluginSource,
        /// Where the refused one came from.
        second: PluginSource,
    },
    /// No loaded library provides the component.
    #[error("no loaded plugin provides {kind} `{name}`{}", list_hint(available))]
    UnknownComponent {
        /// Component kind, e.g. `operator library`.
        kind: String,
        /// Requested name.
        name: String,
        /// Names that are available.
        available: Vec<String>,
    },
    /// The operator library has no such operator.
    #[error(
        "operator library `{library}` has no operator `{name}`{}",
        list_hint(available)
    )]
    UnknownOperator {
        /// The library.
        library: String,
        /// Requested operator.
        name: String,
        /// Operators it has.
        available: Vec<String>,
    },
    /// A payload is not valid JSON.
    #[error("{context}: invalid JSON: {reason}")]
    InvalidJson {
        /// Which payload.
        context: String,
        /// Parser message.
        reason: String,
    },
    /// A published schema is not a usable JSON Schema.
    #[error("{context}: invalid JSON Schema: {reason}")]
    InvalidSchema {
        /// Which schema.
        context: String,
        /// Why.
        reason: String,
    },
    /// A payload violates its published JSON Schema.
    #[error("{context} does not match its schema: {}", errors.join("; "))]
    SchemaViolation {
        /// Which payload.
        context: String,
        /// The violations.
        errors: Vec<String>,
    },
    /// A plugin call returned an error (including caught panics).
    #[error("{context}: {error}")]
    Plugin {
        /// Which call.
        context: String,
        /// The plugin's error.
        error: PluginError,
    },
    /// A backend call did not finish in time; its worker thread is abandoned.
    #[error("{context}: no answer within {:.3} s", after.as_secs_f64())]
    Timeout {
        /// Which call.
        context: String,
        /// The time limit.
        after: Duration,
    },
    /// The host could not start a worker thread for a timed call.
    #[error("{context}: cannot start worker thread: {reason}")]
    Thread {
        /// Which call.
        context: String,
        /// The OS error.
        reason: String,
    },
}

fn list_hint(names: &[String]) -> String {
    if names.is_empty() {
        " (none available)".to_string()
    } else {
        format!(" (available: {})", names.join(", "))
    }
}
