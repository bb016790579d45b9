//! A **simulated** executor LLM for flowrl: fast, deterministic and honest
//! about being a simulator. It is meant for algorithm development, CI and the
//! embedded default, never as a stand-in for measuring a real model.
//!
//! The simulator does not read prompts. Every request a flowrl operator sends
//! carries a [`flowrl_operators::SideChannel`] in its metadata (the operator,
//! the task family, the inputs and the task's gold answer); the simulator
//! decides from a per-family skill table ([`FamilySkills`]) whether this
//! call gets the answer right, catches an error, fixes a solution …, and
//! writes its reply in exactly the tag format the operator parses, so the
//! real parsing, retry and sandbox code runs. Code tasks get the reference
//! solution or a perturbed variant that runs and fails the tests.
//!
//! Determinism: each decision is a hash of the seed, the full request
//! (messages and metadata) and a label. The same request gives the same
//! reply regardless of call order, like a greedy (temperature 0) model;
//! requests that differ (another instruction, a retry with a hint, other
//! inputs) draw independently, and `MultiAnswerGenerate`'s three answers are
//! three independent draws — unless `task_correlation` > 0, with which
//! solving attempts on one task share the task's difficulty (see
//! [`SimConfig::task_correlation`]). With probability `malformed_rate` a reply drops
//! a closing tag and with `truncate_rate` it is cut with
//! `finish_reason = "length"`, to exercise the operators' retries.

pub mod config;
pub mod sim;

use flowrl_plugin_abi::{
    ChatRequest, ChatResponse, ComponentKind, LlmBackendImpl, Metadata, Plugin, PluginError,
};

pub use config::{FamilySkills, SimConfig};
pub use sim::{Gold, perturb_code, python_literal, stable_hash};

/// The simulated executor as an LLM backend (and, through the blanket
/// implementation, a [`flowrl_operators::Executor`]).
#[derive(Debug, Clone, Default)]
pub struct SimBackend {
    config: SimConfig,
}

impl SimBackend {
    /// A simulator with `config`.
    ///
    /// # Errors
    /// A message naming a rate or skill outside [0, 1].
    pub fn new(config: SimConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Answers one request (never fails).
    pub fn respond(&self, request: &ChatRequest) -> ChatResponse {
        sim::respond(&self.config, request)
    }
}

impl LlmBackendImpl for SimBackend {
    fn describe(&self) -> String {
        serde_json::json!({
            "backend": "sim",
            "simulated": true,
            "seed": self.config.seed,
            "call_cost": self.config.call_cost,
            "malformed_rate": self.config.malformed_rate,
            "truncate_rate": self.config.truncate_rate,
        })
        .to_string()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        Ok(self.respond(request))
    }
}

/// JSON Schema text of [`SimConfig`].
pub fn config_schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(SimConfig)).unwrap_or_default()
}

/// The plugin: one LLM backend called `sim`, configured with [`SimConfig`] JSON.
pub struct SimPlugin;

impl Plugin for SimPlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "llm-sim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Simulated executor LLM with calibrated per-operator skills (deterministic, for CI and demos)".into(),
            provides: vec![(ComponentKind::LLM_BACKEND, "sim".into(), "simulated executor; config: SimConfig JSON".into())],
        }
    }

    fn llm_backend(name: &str, config: &str) -> Result<Box<dyn LlmBackendImpl>, PluginError> {
        if name != "sim" {
            return Err(PluginError::not_found(format!(
                "no LLM backend `{name}` in llm-sim (it provides `sim`)"
            )));
        }
        let config: SimConfig = if config.trim().is_empty() {
            SimConfig::default()
        } else {
            serde_json::from_str(config)
                .map_err(|e| PluginError::invalid_input(format!("sim config: {e}")))?
        };
        Ok(Box::new(
            SimBackend::new(config).map_err(PluginError::invalid_input)?,
        ))
    }
}

flowrl_plugin_abi::export_plugin!(SimPlugin);
