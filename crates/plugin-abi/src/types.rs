//! Plain `#[repr(C)]` values that cross the plugin boundary.
//!
//! Their layouts are frozen for a given [`crate::INTERFACE_VERSION`]: adding a
//! field to any of them is a breaking change (see `docs/plugins.md`).

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// Which kind of component a plugin library provides.
///
/// A transparent `u32` (not an enum) so that new kinds can be added later
/// without changing the checked layout; hosts skip kinds they do not know.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ComponentKind(pub u32);

impl ComponentKind {
    /// A library of workflow operators ([`crate::OperatorLibrary`]).
    pub const OPERATOR_LIBRARY: Self = Self(1);
    /// An LLM chat-completion backend ([`crate::LlmBackend`]).
    pub const LLM_BACKEND: Self = Self(2);
    /// A reinforcement-learning environment ([`crate::Environment`]).
    pub const ENVIRONMENT: Self = Self(3);

    /// Lowercase name: `operator library`, `llm backend`, `environment`, or `kind N`.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::OPERATOR_LIBRARY => "operator library".into(),
            Self::LLM_BACKEND => "llm backend".into(),
            Self::ENVIRONMENT => "environment".into(),
            Self(code) => format!("kind {code}").into(),
        }
    }
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// One component a plugin library provides: its kind, the name the host
/// passes to the matching constructor, and a description.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Kind of component.
    pub kind: ComponentKind,
    /// Name, unique within its kind in this library.
    pub name: RString,
    /// One-line description for people.
    pub description: RString,
}

/// Who a plugin library is and what it provides.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginMetadata {
    /// Library name, unique among the plugins a host loads (e.g. `"text-tools"`).
    pub name: RString,
    /// The library's own version (semver text, e.g. `"0.3.1"`), for people.
    pub version: RString,
    /// One-line description.
    pub description: RString,
    /// Components that can be constructed from this library.
    pub provides: RVec<ComponentInfo>,
}

/// One operator of an [`crate::OperatorLibrary`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct OperatorInfo {
    /// Operator name, unique within its library (e.g. `"WordCount"`).
    pub name: RString,
    /// What it does, for people and for prompts.
    pub description: RString,
    /// JSON Schema (draft 2020-12 text) of the operator's JSON input.
    pub input_schema: RString,
    /// JSON Schema (draft 2020-12 text) of the operator's JSON output.
    pub output_schema: RString,
}

/// What [`crate::Environment::step`] returns.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct StepResult {
    /// Observation text shown to the policy next.
    pub observation: RString,
    /// Reward of this step (dimensionless; 0 for intermediate steps of
    /// sparse-reward environments).
    pub reward: f64,
    /// Whether the episode has ended.
    pub done: bool,
    /// Extra information as a JSON object text (`"{}"` when none).
    pub info: RString,
}
