//! Both environments behind the plugin ABI's environment interface.

use flowrl_data::Task;
use flowrl_plugin_abi::{EnvironmentImpl, PluginError, Step};

use crate::env::{Env, Observation};

/// Serves an [`Env`] through [`EnvironmentImpl`]: tasks are JSON
/// [`Task`] objects; the step observation is the appended text, or the new
/// prompt rendered as `system\n\nuser` for a new context window.
pub struct EnvPlugin<E: Env + 'static> {
    name: String,
    env: E,
}

impl<E: Env + 'static> EnvPlugin<E> {
    /// Wraps an environment under a name.
    pub fn new(name: impl Into<String>, env: E) -> Self {
        EnvPlugin {
            name: name.into(),
            env,
        }
    }
}

impl<E: Env + 'static> EnvironmentImpl for EnvPlugin<E> {
    fn describe(&self) -> String {
        serde_json::json!({
            "name": self.name,
            "stop": self.env.stop_strings(),
            "task_schema": serde_json::from_str::<serde_json::Value>(&flowrl_data::task_schema_json()).unwrap_or_default(),
        })
        .to_string()
    }

    fn reset(&mut self, task: &str) -> Result<String, PluginError> {
        let task: Task = serde_json::from_str(task)
            .map_err(|e| PluginError::invalid_input(format!("task: {e}")))?;
        let p = self
            .env
            .reset(&task)
            .map_err(|e| PluginError::invalid_input(e.to_string()))?;
        Ok(p.text())
    }

    fn step(&mut self, action: &str) -> Result<Step, PluginError> {
        let out = self
            .env
            .step(action)
            .map_err(|e| PluginError::execution(e.to_string()))?;
        let observation = match &out.observation {
            Observation::Append(t) => t.clone(),
            Observation::NewContext(p) => p.text(),
            Observation::Nothing => String::new(),
        };
        Ok(Step {
            observation,
            reward: out.reward.unwrap_or(0.0),
            done: out.done,
            info: out.info,
        })
    }
}
