//! AdamW: Adam with bias correction and decoupled weight decay.

use std::collections::{BTreeMap, HashMap};

use crate::Optimizer;
use crate::config::{AdamWConfig, OptimizerConfig};
use crate::error::{OptimError, invalid};
use crate::group::ParamGroups;
use crate::kernels::{self, AdamScalars};
use crate::param::{ParamMut, validate_params};
use crate::state::{OptimizerState, ParamState};

const EXP_AVG: &str = "exp_avg";
const EXP_AVG_SQ: &str = "exp_avg_sq";

#[derive(Debug, Clone)]
struct Moments {
    step: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// AdamW (Loshchilov & Hutter, 2019). For a parameter's `t`-th update with
/// learning rate `η` (the step's rate times its group's `lr_scale`) and
/// weight decay `λ`:
///
/// ```text
/// w ← w·(1 − η·λ)
/// m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
/// w ← w − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// the same arithmetic as PyTorch's `AdamW`. Moments are `f32`, created
/// (zero) on a parameter's first update; `t` counts per parameter, so
/// parameters added mid-training get their own bias correction.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    groups: ParamGroups,
    step: u64,
    state: HashMap<String, Moments>,
}

impl AdamW {
    /// The `kind` tag of this optimizer in configs and state files.
    pub const KIND: &'static str = "adamw";

    /// An AdamW with no parameter groups.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn new(config: AdamWConfig) -> Result<Self, OptimError> {
        Self::with_groups(config, ParamGroups::new())
    }

    /// An AdamW with parameter groups.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn with_groups(config: AdamWConfig, groups: ParamGroups) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(AdamW {
            config,
            groups,
            step: 0,
            state: HashMap::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// The first and second moment buffers of a parameter, if it has been
    /// updated at least once.
    pub fn moments(&self, name: &str) -> Option<(&[f32], &[f32])> {
        self.state
            .get(name)
            .map(|s| (s.m.as_slice(), s.v.as_slice()))
    }
}

pub(crate) fn check_step_lr(lr: f32) -> Result<(), OptimError> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(invalid(
            "lr",
            format!("step learning rate {lr} is not a finite value ≥ 0"),
        ))
    }
}

impl Optimizer for AdamW {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn step(&mut self, params: &mut [ParamMut<'_>], lr: f32) -> Result<(), OptimError> {
        check_step_lr(lr)?;
        validate_params(params)?;
        for p in params.iter() {
            if let Some(s) = self.state.get(p.name)
                && s.m.len() != p.value.len()
            {
                return Err(OptimError::StateLengthMismatch {
                    param: p.name.to_owned(),
                    expected: s.m.len(),
                    got: p.value.len(),
                });
            }
        }
        let [beta1, beta2] = self.config.betas.map(f64::from);
        let eps = f64::from(self.config.eps);
        for p in params.iter_mut() {
            let settings = self.groups.settings(p.name, self.config.weight_decay);
            let len = p.value.len();
            let s = match self.state.get_mut(p.name) {
                Some(s) => s,
                None => self.state.entry(p.name.to_owned()).or_insert(Moments {
                    step: 0,
                    m: vec![0.0; len],
                    v: vec![0.0; len],
                }),
            };
            s.step += 1;
            let scalars = AdamScalars::new(
                f64::from(lr) * settings.lr_scale,
                beta1,
                beta2,
                eps,
                settings.weight_decay,
                s.step,
            );
            kernels::adamw(p.value, p.grad, &mut s.m, &mut s.v, &scalars);
        }
        self.step += 1;
        Ok(())
    }

    fn step_count(&self) -> u64 {
        self.step
    }

    fn peak_lr(&self) -> f32 {
        self.config.lr
    }

    fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig::AdamW(self.config)
    }

    fn groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut ParamGroups {
        &mut self.groups
    }

    fn state(&self) -> OptimizerState {
        let params = self
            .state
            .iter()
            .map(|(name, s)| {
                let buffers = BTreeMap::from([
                    (EXP_AVG.to_owned(), s.m.clone()),
                    (EXP_AVG_SQ.to_owned(), s.v.clone()),
                ]);
                (
                    name.clone(),
                    ParamState {
                        step: s.step,
                        buffers,
                    },
                )
            })
            .collect();
        OptimizerState {
            config: self.optimizer_config(),
            groups: self.groups.configs().to_vec(),
            assignments: self.groups.assignments().clone(),
            step: self.step,
            params,
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError> {
        let OptimizerConfig::AdamW(config) = state.config else {
            return Err(OptimError::KindMismatch {
                expected: Self::KIND.into(),
                found: state.config.kind().into(),
            });
        };
        config.validate()?;
        let mut moments = HashMap::with_capacity(state.params.len());
        for (name, mut p) in state.params {
            let bad = |reason: String| OptimError::BadBuffers {
                param: name.clone(),
                reason,
            };
            if p.buffers.len() != 2 {
                return Err(bad(format!(
                    "expected buffers `{EXP_AVG}` and `{EXP_AVG_SQ}`, found {:?}",
                    p.buffers.keys().collect::<Vec<_>>()
                )));
            }
            let (Some(m), Some(v)) = (p.buffers.remove(EXP_AVG), p.buffers.remove(EXP_AVG_SQ))
            else {
                return Err(bad(format!(
                    "expected buffers `{EXP_AVG}` and `{EXP_AVG_SQ}`"
                )));
            };
            if m.len() != v.len() {
                return Err(bad(format!(
                    "`{EXP_AVG}` has {} elements, `{EXP_AVG_SQ}` {}",
                    m.len(),
                    v.len()
                )));
            }
            moments.insert(name, Moments { step: p.step, m, v });
        }
        self.groups.restore(&state.groups, &state.assignments)?;
        self.config = config;
        self.step = state.step;
        self.state = moments;
        Ok(())
    }

    fn reset(&mut self) {
        self.state.clear();
        self.step = 0;
    }
}
