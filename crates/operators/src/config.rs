//! Settings of the built-in operators.

use std::path::PathBuf;
use std::sync::OnceLock;

use flowrl_rewards::{Sandbox, SandboxConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OperatorsError;
use crate::executor::CallSettings;
use crate::search::SearchIndex;

/// Settings shared by the built-in operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    /// Executor sampling temperature (§5: 0, greedy).
    pub temperature: f64,
    /// Executor generation limit per call, in tokens (§5: 1,024).
    pub max_tokens: u32,
    /// Retries after an unparseable executor reply (§5: 3), each with a hint.
    pub max_retries: u32,
    /// Operator output text is cut to this many characters, keeping both
    /// ends (§5: 2,048); 0 disables the cut.
    pub output_chars: usize,
    /// Rounds in which `Programmer` and `Test` show a failing run's error to
    /// the executor and ask for corrected code.
    pub code_fix_rounds: u32,
    /// Results returned by `Search`.
    pub search_top_k: usize,
    /// Characters of each document's text shown by `Search`.
    pub snippet_chars: usize,
    /// JSONL corpus (`{ "title", "text" }` per line) for `Search`; without
    /// one `Search` reports that no corpus is configured.
    pub search_corpus: Option<PathBuf>,
    /// Sandbox for `Programmer` and `Test` (created on first use).
    pub sandbox: SandboxConfig,
}

impl Default for OperatorsConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            max_tokens: 1024,
            max_retries: 3,
            output_chars: 2048,
            code_fix_rounds: 1,
            search_top_k: 5,
            snippet_chars: 300,
            search_corpus: None,
            sandbox: SandboxConfig::default(),
        }
    }
}

impl OperatorsConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`OperatorsError::InvalidConfig`] for a zero token limit, a negative
    /// or non-finite temperature, more than 10 retries, or `search_top_k = 0`.
    pub fn validate(&self) -> Result<(), OperatorsError> {
        if self.max_tokens == 0 {
            return Err(OperatorsError::InvalidConfig(
                "max_tokens must be positive".into(),
            ));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(OperatorsError::InvalidConfig(
                "temperature must be finite and ≥ 0".into(),
            ));
        }
        if self.max_retries > 10 {
            return Err(OperatorsError::InvalidConfig(
                "max_retries must be at most 10".into(),
            ));
        }
        if self.search_top_k == 0 {
            return Err(OperatorsError::InvalidConfig(
                "search_top_k must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Everything the built-in operators share: settings, the lazily created
/// sandbox and the search index.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: OperatorsConfig,
    pub settings: CallSettings,
    sandbox: OnceLock<Result<Sandbox, String>>,
    pub search: Option<SearchIndex>,
}

impl Shared {
    pub fn new(config: OperatorsConfig, search: Option<SearchIndex>) -> Self {
        let settings = CallSettings {
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            max_retries: config.max_retries,
        };
        Self {
            config,
            settings,
            sandbox: OnceLock::new(),
            search,
        }
    }

    /// The sandbox, created on first use.
    pub fn sandbox(&self) -> Result<&Sandbox, String> {
        self.sandbox
            .get_or_init(|| Sandbox::new(self.config.sandbox.clone()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}
