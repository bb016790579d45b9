//! flowrl: train LLM agents with reinforcement learning to build workflows.
//!
//! This umbrella crate re-exports the workspace's crates under short names
//! and hosts the `flowrl` command-line binary.

pub use flowrl_data as data;
pub use flowrl_envs as envs;
pub use flowrl_gguf as gguf;
pub use flowrl_llm_openai as llm_openai;
pub use flowrl_model as model;
pub use flowrl_objectives as objectives;
pub use flowrl_optim as optim;
pub use flowrl_plugin_host as plugins;
pub use flowrl_rewards as rewards;
pub use flowrl_tokenizer as tokenizer;
pub use flowrl_train as train;
pub use flowrl_trajectory as trajectory;
