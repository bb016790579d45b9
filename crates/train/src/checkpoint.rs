//! Checkpoints: written to a temporary directory and renamed into place,
//! then pointed to by `latest` (also replaced atomically), so a crash never
//! leaves a half-written checkpoint behind the pointer.

use std::path::{Path, PathBuf};

use flowrl_model::Model;
use flowrl_optim::{Optimizer, OptimizerState};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// What a checkpoint records besides weights and optimizer state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// RL steps completed (the next step to run).
    pub step: usize,
    /// Whether the supervised warm-up is done.
    pub warmup_done: bool,
    /// The run's seed (task sampling and rollouts derive from seed and step).
    pub seed: u64,
    /// Held-out reward measured before RL, when known.
    pub eval_before: Option<f64>,
}

fn ckpt_err(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Saves a checkpoint under `root/step-<step>` (weights, LoRA adapters when
/// attached, the frozen KL reference when it is a copy of the weights (in
/// LoRA mode it is the base in `model.safetensors`), optimizer state,
/// run state) and points
/// `root/latest` to it.
///
/// # Errors
/// I/O, model and optimizer errors.
pub fn save(
    root: &Path,
    model: &Model<f32>,
    reference: Option<&Model<f32>>,
    optimizer: &dyn Optimizer,
    state: &CheckpointState,
) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(root).map_err(|e| TrainError::io(root, e))?;
    let name = format!("step-{:06}", state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    let dst = root.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    model.save_safetensors(&tmp.join("model.safetensors"))?;
    if !model.lora_params().is_empty() {
        model.save_lora(&tmp.join("adapter.safetensors"))?;
    }
    if let Some(r) = reference {
        r.save_safetensors(&tmp.join("reference.safetensors"))?;
    }
    optimizer.state().save(tmp.join("optim.bin"))?;
    let json = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(tmp.join("state.json"), json)
        .map_err(|e| TrainError::io(tmp.join("state.json"), e))?;
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(|e| TrainError::io(&dst, e))?;
    }
    std::fs::rename(&tmp, &dst).map_err(|e| TrainError::io(&dst, e))?;
    let latest_tmp = root.join(".latest.tmp");
    std::fs::write(&latest_tmp, &name).map_err(|e| TrainError::io(&latest_tmp, e))?;
    std::fs::rename(&latest_tmp, root.join("latest"))
        .map_err(|e| TrainError::io(root.join("latest"), e))?;
    Ok(dst)
}

/// A loaded checkpoint.
pub struct Loaded {
    /// Its directory.
    pub dir: PathBuf,
    /// Its state.
    pub state: CheckpointState,
    /// The optimizer state.
    pub optimizer: OptimizerState,
    /// Path of the weights.
    pub weights: PathBuf,
    /// Path of the KL reference weights, when saved.
    pub reference: Option<PathBuf>,
    /// Path of the LoRA adapters, when the policy trained adapters.
    pub adapter: Option<PathBuf>,
}

/// Loads the checkpoint `root/latest` points to; `None` when there is none.
///
/// # Errors
/// [`TrainError::Checkpoint`] for a dangling pointer or damaged files.
pub fn load_latest(root: &Path) -> Result<Option<Loaded>, TrainError> {
    let pointer = root.join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(|e| TrainError::io(&pointer, e))?;
    let dir = root.join(name.trim());
    if !dir.is_dir() {
        return Err(ckpt_err(&dir, "`latest` points to a missing checkpoint"));
    }
    let text = std::fs::read_to_string(dir.join("state.json"))
        .map_err(|e| TrainError::io(dir.join("state.json"), e))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| ckpt_err(&dir, format!("state.json: {e}")))?;
    let optimizer = OptimizerState::load(dir.join("optim.bin"))
        .map_err(|e| ckpt_err(&dir, format!("optim.bin: {e}")))?;
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        return Err(ckpt_err(&dir, "model.safetensors is missing"));
    }
    let reference = Some(dir.join("reference.safetensors")).filter(|p| p.is_file());
    let adapter = Some(dir.join("adapter.safetensors")).filter(|p| p.is_file());
    Ok(Some(Loaded {
        dir,
        state,
        optimizer,
        weights,
        reference,
        adapter,
    }))
}
