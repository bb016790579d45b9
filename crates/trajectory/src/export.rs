//! Export to the prompt/response layout that Python RL trainers read.
//!
//! Each context window (row) of a trajectory becomes one [`TrainerRecord`]:
//! the prompt is the row's leading prompt span, the response is everything
//! after it, and `response_mask` marks the response tokens the policy
//! generated (1) versus environment tokens inside the response (0). A
//! think-action trajectory is one row; a canvas trajectory (prompt rebuilt
//! every turn) is one row per turn, each carrying the episode reward.

use serde::{Deserialize, Serialize};

use crate::error::TrajectoryError;
use crate::types::{Role, Trajectory};

/// One line of the exported layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerRecord {
    /// Trajectory id.
    pub id: String,
    /// Group key (advantage grouping; `uid` in verl's terms).
    pub uid: String,
    /// Data source of the task.
    pub data_source: String,
    /// Index of the context window inside the trajectory.
    pub turn: usize,
    /// Prompt text.
    pub prompt: String,
    /// Response text (policy and environment text, in order).
    pub response: String,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Response token ids.
    pub response_ids: Vec<u32>,
    /// 1 for policy tokens of the response, 0 for environment tokens.
    pub response_mask: Vec<u8>,
    /// Episode reward.
    pub reward: f64,
}

/// Splits a trajectory into trainer records, one per context window.
///
/// # Errors
/// As [`Trajectory::validate`].
pub fn to_trainer_records(t: &Trajectory) -> Result<Vec<TrainerRecord>, TrajectoryError> {
    t.validate()?;
    let mut out: Vec<TrainerRecord> = Vec::new();
    for span in &t.spans {
        if span.role == Role::Prompt {
            out.push(TrainerRecord {
                id: t.id.clone(),
                uid: t.group().to_string(),
                data_source: t.data_source.clone(),
                turn: out.len(),
                prompt: span.text.clone(),
                response: String::new(),
                prompt_ids: span.tokens.clone(),
                response_ids: Vec::new(),
                response_mask: Vec::new(),
                reward: t.reward,
            });
            continue;
        }
        // validate() guarantees a leading prompt span.
        let Some(rec) = out.last_mut() else { continue };
        rec.response.push_str(&span.text);
        rec.response_ids.extend_from_slice(&span.tokens);
        let m = u8::from(span.role == Role::Policy);
        rec.response_mask
            .extend(std::iter::repeat_n(m, span.tokens.len()));
    }
    Ok(out)
}
