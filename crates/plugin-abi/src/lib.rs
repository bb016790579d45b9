//! The stable ABI of flowrl plugins.
//!
//! A plugin is a dynamic library (or a statically linked crate) that exports
//! one [`PluginRoot`] module built with [`abi_stable`]: its interface version,
//! its [`PluginMetadata`], and constructors for three kinds of components,
//! each an `abi_stable` trait object:
//!
//! * [`OperatorLibrary`] — workflow operators, called with JSON input and an
//!   executor ([`LlmBackend`]) handle, returning JSON output;
//! * [`LlmBackend`] — chat completion for one request or a batch
//!   ([`ChatRequest`] → [`ChatResponse`] as JSON);
//! * [`Environment`] — `reset(task)` → observation, `step(action)` →
//!   [`StepResult`].
//!
//! Payloads are JSON strings; operators publish JSON Schemas of their input
//! and output, which the host validates. Errors are [`PluginError`]s.
//!
//! Plugin authors implement the plain traits of [`author`] and call
//! [`export_plugin!`]; the adapters there catch every panic. Hosts load
//! libraries with `flowrl-plugin-host`. Versioning rules are in
//! `docs/plugins.md`.

pub mod author;
pub mod error;
pub mod payload;
pub mod root;
pub mod traits;
pub mod types;

pub use abi_stable;
pub use author::{
    EnvironmentImpl, Executor, LlmBackendImpl, Metadata, OperatorLibraryImpl, OperatorSpec, Plugin,
    Step,
};
pub use error::{PluginError, PluginErrorKind};
pub use payload::{ChatMessage, ChatRequest, ChatResponse, SamplingParams, Usage};
pub use root::{INTERFACE_VERSION, PluginRoot, PluginRootRef, ROOT_MODULE_NAME};
pub use traits::{
    Environment, Environment_TO, EnvironmentBox, LlmBackend, LlmBackend_TO, LlmBackendBox,
    LlmBackendRef, OperatorLibrary, OperatorLibrary_TO, OperatorLibraryBox,
};
pub use types::{ComponentInfo, ComponentKind, OperatorInfo, PluginMetadata, StepResult};
