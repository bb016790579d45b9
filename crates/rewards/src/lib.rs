//! Rewards for workflow-building agents.
//!
//! * [`qa`] — SQuAD-normalised exact match and token F1 (with FlowSteer's 0.9
//!   substring rule as an option);
//! * [`math`] — final-answer extraction (`\boxed{…}`, `#### n`, last number)
//!   and `math_equal` (normalised strings, exact rational arithmetic, numeric
//!   tolerance, percentages, simple LaTeX);
//! * [`sandbox`] and [`code`] — Python code run under bubblewrap with rlimits
//!   and a timeout, and pass/fail rewards for HumanEval/MBPP-style tests;
//! * [`format`] — Workflow-R1's think-action format automaton and R = F + A;
//! * [`diversity`] — FlowSteer's diversity-constrained reward with
//!   conditional release (CWRPO).
//!
//! Scoring functions are total: any input string gets a score, none panics.

pub mod code;
pub mod diversity;
pub mod error;
pub mod format;
pub mod math;
pub mod qa;
pub mod sandbox;

pub use code::{CodeReward, CodeTests, Harness, build_program, code_reward};
pub use diversity::{CwrpoReward, DiversityConfig, WorkflowSummary, cwrpo_reward};
pub use error::RewardsError;
pub use format::{ThinkActionReward, ThinkActionRewardConfig, check_format, think_action_reward};
pub use math::{extract_answer, math_equal};
pub use qa::{F1Config, exact_match, exact_match_any, f1_reward, normalize_answer, token_f1};
pub use sandbox::{ExecOutcome, ExecResult, Fallback, Isolation, Sandbox, SandboxConfig};
