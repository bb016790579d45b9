//! Per-step metrics, appended to `metrics.jsonl`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::rollout::Episode;

/// Statistics of a set of episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    /// Episodes.
    pub episodes: usize,
    /// Mean reward.
    pub reward_mean: f64,
    /// Population std of the reward.
    pub reward_std: f64,
    /// Fraction answered correctly.
    pub accuracy: f64,
    /// Fraction following the protocol's format.
    pub format_rate: f64,
    /// Mean policy turns per episode.
    pub turns_mean: f64,
    /// Mean policy tokens per episode.
    pub policy_tokens_mean: f64,
    /// Operator calls per operator.
    pub operator_usage: BTreeMap<String, usize>,
    /// Mean reward per task family.
    pub reward_by_family: BTreeMap<String, f64>,
}

impl EpisodeStats {
    /// Summarises episodes.
    pub fn of(eps: &[Episode]) -> Self {
        let n = eps.len().max(1) as f64;
        let rewards: Vec<f64> = eps.iter().map(|e| e.trajectory.reward).collect();
        let mean = rewards.iter().sum::<f64>() / n;
        let var = rewards.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
        let mut usage = BTreeMap::new();
        let mut fam: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for e in eps {
            for op in &e.summary.operators {
                *usage.entry(op.clone()).or_insert(0) += 1;
            }
            let f = e
                .trajectory
                .metadata
                .get("family")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let entry = fam.entry(f).or_insert((0.0, 0));
            entry.0 += e.trajectory.reward;
            entry.1 += 1;
        }
        EpisodeStats {
            episodes: eps.len(),
            reward_mean: mean,
            reward_std: var.sqrt(),
            accuracy: eps.iter().filter(|e| e.summary.correct).count() as f64 / n,
            format_rate: eps.iter().filter(|e| e.summary.well_formed).count() as f64 / n,
            turns_mean: eps.iter().map(|e| e.summary.turns as f64).sum::<f64>() / n,
            policy_tokens_mean: eps
                .iter()
                .map(|e| e.trajectory.tokens_of(flowrl_trajectory::Role::Policy) as f64)
                .sum::<f64>()
                / n,
            operator_usage: usage,
            reward_by_family: fam
                .into_iter()
                .map(|(k, (s, c))| (k, s / c as f64))
                .collect(),
        }
    }
}

/// Appends JSON lines to a metrics file.
pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Opens (appending) `path`.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the path.
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
        })
    }

    /// Writes one record and flushes.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the path.
    pub fn write(&mut self, record: &serde_json::Value) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).unwrap_or_default();
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Reads the records of a metrics file (bad lines are skipped).
///
/// # Errors
/// [`TrainError::Io`] when the file cannot be read.
pub fn read_metrics(path: &Path) -> Result<Vec<serde_json::Value>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Keeps only records before RL step `step` (and every non-RL record
/// before the first one at or past it): what a resumed run continues from.
pub fn truncate_metrics(path: &Path, step: usize) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let keep: Vec<String> = read_metrics(path)?
        .into_iter()
        .filter(|r| {
            r["step"].as_u64().is_none_or(|s| (s as usize) < step) || r["phase"] == "warmup"
        })
        .map(|r| r.to_string())
        .collect();
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(
        &tmp,
        keep.join("\n") + if keep.is_empty() { "" } else { "\n" },
    )
    .map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}
