//! The three component interfaces, as `abi_stable` trait objects.
//!
//! Plugin authors normally do not implement these directly: they implement
//! the plain Rust traits of [`crate::author`], whose adapters catch panics and
//! convert JSON. Methods after `#[sabi(last_prefix_field)]` may be added in
//! later interface versions without breaking old plugins.

// `sabi_trait` generates CamelCase_TO names and impls inside a hidden module.
#![allow(non_camel_case_types, non_local_definitions)]

use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
};

use crate::{OperatorInfo, PluginError, StepResult};

/// A library of workflow operators.
#[sabi_trait]
pub trait OperatorLibrary: Send + Sync {
    /// The operators of this library with their JSON Schemas.
    fn operators(&self) -> RVec<OperatorInfo>;

    /// Runs `operator` on the JSON text `input` and returns its JSON output.
    ///
    /// `executor` is the LLM the operator may call; hosts pass a backend that
    /// answers [`crate::PluginErrorKind::UNAVAILABLE`] when none is configured.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown operator, `INVALID_INPUT` for bad input,
    /// any other kind for failures while running.
    #[sabi(last_prefix_field)]
    fn call(
        &self,
        operator: RStr<'_>,
        input: RStr<'_>,
        executor: LlmBackendRef<'_>,
    ) -> RResult<RString, PluginError>;
}

/// An LLM chat-completion backend.
///
/// Requests and responses are JSON texts of [`crate::ChatRequest`] and
/// [`crate::ChatResponse`].
#[sabi_trait]
pub trait LlmBackend: Send + Sync {
    /// A JSON object text describing the backend (model, endpoint, limits…).
    fn describe(&self) -> RString;

    /// Completes one chat request.
    ///
    /// # Errors
    /// `INVALID_INPUT` for a malformed request, `EXECUTION` or `TIMEOUT` when
    /// the model call fails, `UNAVAILABLE` when no model is configured.
    fn chat(&self, request: RStr<'_>) -> RResult<RString, PluginError>;

    /// Completes a batch of chat requests; one result per request, in order.
    #[sabi(last_prefix_field)]
    fn chat_batch(&self, requests: RSlice<'_, RString>) -> RVec<RResult<RString, PluginError>>;
}

/// A reinforcement-learning environment (one episode at a time).
#[sabi_trait]
pub trait Environment: Send {
    /// A JSON object text describing the environment. An optional
    /// `"task_schema"` member is a JSON Schema the host checks tasks against.
    fn describe(&self) -> RString;

    /// Starts an episode on the JSON task text and returns the first observation.
    ///
    /// # Errors
    /// `INVALID_INPUT` for a task the environment cannot run.
    fn reset(&mut self, task: RStr<'_>) -> RResult<RString, PluginError>;

    /// Applies one action (the policy's turn text).
    ///
    /// # Errors
    /// `INVALID_STATE` before `reset` or after the episode ended.
    #[sabi(last_prefix_field)]
    fn step(&mut self, action: RStr<'_>) -> RResult<StepResult, PluginError>;
}

/// An owned operator library trait object, as constructors return it.
pub type OperatorLibraryBox = OperatorLibrary_TO<'static, RBox<()>>;
/// An owned LLM backend trait object, as constructors return it.
pub type LlmBackendBox = LlmBackend_TO<'static, RBox<()>>;
/// A borrowed LLM backend trait object, as operators receive their executor.
pub type LlmBackendRef<'a> = LlmBackend_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>;
/// An owned environment trait object, as constructors return it.
pub type EnvironmentBox = Environment_TO<'static, RBox<()>>;
