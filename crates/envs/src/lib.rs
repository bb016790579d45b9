//! The environments of flowrl.
//!
//! * [`think_action`] — Workflow-R1's protocol: the policy thinks in
//!   `<think>…</think>`, calls an operator as `<tool>Name: input</tool>`, reads
//!   the result in `<info>…</info>`, and ends with `<answer>…</answer>`.
//! * [`canvas`] — FlowSteer's workflow canvas: the policy edits an executable
//!   workflow graph one XML action per turn.
//!
//! Both implement [`Env`]: they run operators from a `flowrl-operators`
//! registry against the executor in [`Services`], score the final answer and
//! compute the reward; [`plugin`] serves them through the plugin ABI. The
//! turn and action parsers never panic on any input; a malformed turn is a
//! typed error the environment turns into an explanatory observation, and
//! the episode goes on. `examples/workflow-by-hand` plays one episode of each.

pub mod canvas;
pub mod env;
pub mod plugin;
pub mod tags;
pub mod think_action;

pub use canvas::env::{CanvasConfig, CanvasEnv};
pub use env::{
    Env, EnvError, EpisodeSummary, Observation, Prompt, Services, StepOutcome, task_context,
};
pub use think_action::env::{ThinkActionConfig, ThinkActionEnv};
