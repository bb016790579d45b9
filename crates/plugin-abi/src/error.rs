//! The error that crosses the plugin boundary.

use std::fmt;

use abi_stable::{StableAbi, std_types::RString};

/// What went wrong in a plugin call, as a stable numeric code.
///
/// This is a transparent `u32` rather than a Rust enum so that new kinds can
/// be added without changing the layout that `abi_stable` checks: a host that
/// receives a code it does not know displays it as `kind N` and treats it
/// like [`PluginErrorKind::OTHER`].
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PluginErrorKind(pub u32);

impl PluginErrorKind {
    /// Anything not covered by another kind.
    pub const OTHER: Self = Self(0);
    /// The JSON payload given to the plugin is malformed or violates its schema.
    pub const INVALID_INPUT: Self = Self(1);
    /// The operator, backend or environment name is not provided by this plugin.
    pub const NOT_FOUND: Self = Self(2);
    /// The plugin does not implement this kind of component or call.
    pub const UNSUPPORTED: Self = Self(3);
    /// The call ran but failed (a model error, an I/O error, …).
    pub const EXECUTION: Self = Self(4);
    /// The plugin panicked; the panic was caught at the boundary.
    pub const PANIC: Self = Self(5);
    /// The call did not finish within its time limit.
    pub const TIMEOUT: Self = Self(6);
    /// A resource the call needs (such as an LLM executor) is not configured.
    pub const UNAVAILABLE: Self = Self(7);
    /// The plugin produced output that is malformed or violates its schema.
    pub const INVALID_OUTPUT: Self = Self(8);
    /// An environment was stepped before `reset` or after the episode ended.
    pub const INVALID_STATE: Self = Self(9);

    /// Short lowercase name of the kind, e.g. `"invalid input"`.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        let name = match self {
            Self::OTHER => "error",
            Self::INVALID_INPUT => "invalid input",
            Self::NOT_FOUND => "not found",
            Self::UNSUPPORTED => "unsupported",
            Self::EXECUTION => "execution failed",
            Self::PANIC => "panic",
            Self::TIMEOUT => "timeout",
            Self::UNAVAILABLE => "unavailable",
            Self::INVALID_OUTPUT => "invalid output",
            Self::INVALID_STATE => "invalid state",
            Self(code) => return format!("kind {code}").into(),
        };
        name.into()
    }
}

impl fmt::Display for PluginErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// An error returned by a plugin function: a [`PluginErrorKind`] and a
/// human-readable message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure this is.
    pub kind: PluginErrorKind,
    /// What happened, for people.
    pub message: RString,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: PluginErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: RString::from(message.into()),
        }
    }

    /// A [`PluginErrorKind::INVALID_INPUT`] error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::INVALID_INPUT, message)
    }

    /// A [`PluginErrorKind::NOT_FOUND`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::NOT_FOUND, message)
    }

    /// A [`PluginErrorKind::UNSUPPORTED`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::UNSUPPORTED, message)
    }

    /// A [`PluginErrorKind::EXECUTION`] error.
    pub fn execution(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::EXECUTION, message)
    }

    /// A [`PluginErrorKind::UNAVAILABLE`] error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::UNAVAILABLE, message)
    }

    /// A [`PluginErrorKind::INVALID_OUTPUT`] error.
    pub fn invalid_output(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::INVALID_OUTPUT, message)
    }

    /// A [`PluginErrorKind::INVALID_STATE`] error.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(PluginErrorKind::INVALID_STATE, message)
    }

    /// The message as a `&str`.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}
