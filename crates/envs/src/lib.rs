//! The environments of flowrl.
//!
//! * [`think_action`] — Workflow-R1's protocol: the policy thinks in
//!   `<think>…</think>`, calls an operator as `<tool>Name: input</tool>`, reads
//!   the result in `<info>…</info>`, and ends with `<answer>…</answer>`.
//! * [`canvas`] — FlowSteer's workflow canvas: the policy edits an executable
//!   workflow graph one XML action per turn.
//!
//! This release holds the protocol layer of both: the turn and action
//! parsers, the workflow graph with its DSL printer and parser, and the
//! structural statistics the diversity reward reads. The parsers never panic
//! on any input; malformed input is a typed error the environment turns into
//! an explanatory observation.

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
