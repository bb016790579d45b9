//! Learning-rate schedules: constant, linear and cosine, each with linear
//! warm-up.
//!
//! A schedule maps the 0-based index `s` of the update about to be applied to
//! a factor in `[0, 1]` that multiplies the peak learning rate. With `W`
//! warm-up steps and `T` total steps:
//!
//! * warm-up, `s < W`: factor `(s + 1) / W`, so the first update already
//!   moves the weights and update `W − 1` uses the peak rate (libraries that
//!   step their scheduler after the optimizer use `s / W` and spend the first
//!   update at rate 0);
//! * afterwards, with progress `p = (s − W) / (T − W)` clamped to `[0, 1]`:
//!   constant `1`; linear `1 − (1 − f)·p`; cosine
//!   `f + (1 − f)·(1 + cos(π·p)) / 2`, where `f` is the final factor.
//!
//! Steps at or past `T` keep the final factor.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, invalid};

/// Shape of the learning rate over training, tagged by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// Peak rate after an optional warm-up.
    Constant {
        /// Updates spent ramping linearly up to the peak.
        #[serde(default)]
        warmup_steps: u64,
    },
    /// Warm-up, then a straight line down to `final_factor` at `total_steps`.
    Linear {
        /// Updates spent ramping linearly up to the peak.
        #[serde(default)]
        warmup_steps: u64,
        /// Total number of updates of the run (> `warmup_steps`).
        total_steps: u64,
        /// Factor reached at `total_steps`, in `[0, 1]` (default 0).
        #[serde(default)]
        final_factor: f64,
    },
    /// Warm-up, then half a cosine wave down to `final_factor` at `total_steps`.
    Cosine {
        /// Updates spent ramping linearly up to the peak.
        #[serde(default)]
        warmup_steps: u64,
        /// Total number of updates of the run (> `warmup_steps`).
        total_steps: u64,
        /// Factor reached at `total_steps`, in `[0, 1]` (default 0).
        #[serde(default)]
        final_factor: f64,
    },
}

impl Default for ScheduleConfig {
    /// Constant, no warm-up.
    fn default() -> Self {
        ScheduleConfig::Constant { warmup_steps: 0 }
    }
}

impl ScheduleConfig {
    /// FlowSteer's setting: cosine decay to 0 with 10 warm-up updates.
    pub fn flowsteer(total_steps: u64) -> Self {
        ScheduleConfig::Cosine {
            warmup_steps: 10,
            total_steps,
            final_factor: 0.0,
        }
    }

    /// Checks `total_steps > warmup_steps` and `final_factor ∈ [0, 1]`.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), OptimError> {
        match *self {
            ScheduleConfig::Constant { .. } => Ok(()),
            ScheduleConfig::Linear {
                warmup_steps,
                total_steps,
                final_factor,
            }
            | ScheduleConfig::Cosine {
                warmup_steps,
                total_steps,
                final_factor,
            } => {
                if total_steps <= warmup_steps {
                    return Err(invalid(
                        "total_steps",
                        format!("{total_steps} must exceed warmup_steps ({warmup_steps})"),
                    ));
                }
                if !(0.0..=1.0).contains(&final_factor) {
                    return Err(invalid(
                        "final_factor",
                        format!("{final_factor} is not in [0, 1]"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Multiplier of the peak learning rate for the update with 0-based
    /// index `step`, in `[0, 1]` for a valid configuration.
    pub fn factor(&self, step: u64) -> f64 {
        let warmup = match *self {
            ScheduleConfig::Constant { warmup_steps }
            | ScheduleConfig::Linear { warmup_steps, .. }
            | ScheduleConfig::Cosine { warmup_steps, .. } => warmup_steps,
        };
        if step < warmup {
            return (step + 1) as f64 / warmup as f64;
        }
        let progress = |total: u64| {
            let span = total.saturating_sub(warmup).max(1) as f64;
            ((step - warmup) as f64 / span).clamp(0.0, 1.0)
        };
        match *self {
            ScheduleConfig::Constant { .. } => 1.0,
            ScheduleConfig::Linear {
                total_steps,
                final_factor,
                ..
            } => 1.0 - (1.0 - final_factor) * progress(total_steps),
            ScheduleConfig::Cosine {
                total_steps,
                final_factor,
                ..
            } => {
                let p = progress(total_steps);
                final_factor + (1.0 - final_factor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }

    /// The learning rate of update `step`: `peak_lr · factor(step)`.
    pub fn lr_at(&self, peak_lr: f32, step: u64) -> f32 {
        (f64::from(peak_lr) * self.factor(step)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cosine_key_steps() {
        let s = ScheduleConfig::Cosine {
            warmup_steps: 10,
            total_steps: 110,
            final_factor: 0.0,
        };
        s.validate().unwrap();
        assert!(close(s.factor(0), 0.1));
        assert!(close(s.factor(4), 0.5));
        assert!(close(s.factor(9), 1.0));
        assert!(close(s.factor(10), 1.0));
        assert!(close(s.factor(60), 0.5));
        assert!(close(
            s.factor(35),
            0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())
        ));
        assert!(close(s.factor(110), 0.0));
        assert!(close(s.factor(10_000), 0.0));
        let floor = ScheduleConfig::Cosine {
            warmup_steps: 0,
            total_steps: 100,
            final_factor: 0.1,
        };
        assert!(close(floor.factor(0), 1.0));
        assert!(close(floor.factor(50), 0.55));
        assert!(close(floor.factor(100), 0.1));
    }

    #[test]
    fn linear_and_constant_key_steps() {
        let l = ScheduleConfig::Linear {
            warmup_steps: 4,
            total_steps: 14,
            final_factor: 0.0,
        };
        assert!(close(l.factor(0), 0.25));
        assert!(close(l.factor(3), 1.0));
        assert!(close(l.factor(4), 1.0));
        assert!(close(l.factor(9), 0.5));
        assert!(close(l.factor(14), 0.0));
        let c = ScheduleConfig::Constant { warmup_steps: 2 };
        assert!(close(c.factor(0), 0.5));
        assert!(close(c.factor(1), 1.0));
        assert!(close(c.factor(1_000_000), 1.0));
        assert!(close(ScheduleConfig::default().factor(0), 1.0));
        assert_eq!(ScheduleConfig::flowsteer(300).lr_at(1e-5, 0), 1e-6);
    }

    #[test]
    fn validation_and_json_shape() {
        let bad = ScheduleConfig::Cosine {
            warmup_steps: 10,
            total_steps: 10,
            final_factor: 0.0,
        };
        assert!(bad.validate().is_err());
        let bad = ScheduleConfig::Linear {
            warmup_steps: 0,
            total_steps: 10,
            final_factor: 1.5,
        };
        assert!(bad.validate().is_err());
        let parsed: ScheduleConfig =
            serde_json::from_str(r#"{"kind":"cosine","warmup_steps":10,"total_steps":300}"#)
                .unwrap();
        assert_eq!(parsed, ScheduleConfig::flowsteer(300));
        assert!(serde_json::from_str::<ScheduleConfig>(r#"{"kind":"cosine"}"#).is_err());
        assert!(serde_json::from_str::<ScheduleConfig>(r#"{"kind":"step"}"#).is_err());
        assert!(
            serde_json::from_str::<ScheduleConfig>(r#"{"kind":"constant","warmup":3}"#).is_err()
        );
    }
}
