//! The flowrl trainer.
//!
//! One RL step: sample tasks → roll out G episodes per task with the policy
//! in an environment (episodes step together; the policy samples one turn
//! for every live episode at once, environments run their operators in
//! parallel) → rewards → advantages → old log-probs (one forward) → for each
//! epoch and mini-batch: log-probs → objective (GSsPO, CWRPO, GRPO, GSPO) →
//! backward → clipped AdamW step. Before RL, a supervised warm-up imitates
//! demonstration episodes. Held-out evaluation is greedy. Every step appends
//! a line to `metrics.jsonl`; checkpoints are written atomically and resume
//! the same curve; the run ends with `curve.svg`.

pub mod checkpoint;
pub mod config;
pub mod demos;
pub mod error;
pub mod metrics;
pub mod plot;
pub mod policy;
pub mod rollout;
pub mod trainer;

pub use config::{EnvKind, TrainConfig};
pub use error::TrainError;
pub use policy::Policy;
pub use trainer::{RunSummary, Trainer};
