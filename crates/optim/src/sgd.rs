//! Stochastic gradient descent with optional (Nesterov) momentum.

use std::collections::{BTreeMap, HashMap};

use crate::Optimizer;
use crate::adamw::check_step_lr;
use crate::config::{OptimizerConfig, SgdConfig};
use crate::error::OptimError;
use crate::group::ParamGroups;
use crate::kernels::{self, SgdScalars};
use crate::param::{ParamMut, validate_params};
use crate::state::{OptimizerState, ParamState};

const MOMENTUM_BUFFER: &str = "momentum_buffer";

#[derive(Debug, Clone)]
struct Slot {
    step: u64,
    /// Present iff momentum > 0 and the parameter has been updated.
    buf: Option<Vec<f32>>,
    /// Parameter length; unknown for a slot restored without a buffer
    /// until its next update.
    len: Option<usize>,
}

/// SGD. With learning rate `η`, L2 coefficient `λ`, momentum `μ` and
/// dampening `τ`, each update computes `d = g + λ·w`, then
///
/// ```text
/// b ← d                       (first update)
/// b ← μ·b + (1 − τ)·d         (later updates)
/// w ← w − η·(d + μ·b)         (Nesterov)   or   w ← w − η·b
/// ```
///
/// and without momentum simply `w ← w − η·d` (PyTorch's `SGD` arithmetic).
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    groups: ParamGroups,
    step: u64,
    state: HashMap<String, Slot>,
}

impl Sgd {
    /// The `kind` tag of this optimizer in configs and state files.
    pub const KIND: &'static str = "sgd";

    /// An SGD with no parameter groups.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn new(config: SgdConfig) -> Result<Self, OptimError> {
        Self::with_groups(config, ParamGroups::new())
    }

    /// An SGD with parameter groups.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn with_groups(config: SgdConfig, groups: ParamGroups) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Sgd {
            config,
            groups,
            step: 0,
            state: HashMap::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// The momentum buffer of a parameter, if it has one.
    pub fn momentum_buffer(&self, name: &str) -> Option<&[f32]> {
        self.state.get(name).and_then(|s| s.buf.as_deref())
    }
}

impl Optimizer for Sgd {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn step(&mut self, params: &mut [ParamMut<'_>], lr: f32) -> Result<(), OptimError> {
        check_step_lr(lr)?;
        validate_params(params)?;
        for p in params.iter() {
            if let Some(expected) = self.state.get(p.name).and_then(|s| s.len)
                && expected != p.value.len()
            {
                return Err(OptimError::StateLengthMismatch {
                    param: p.name.to_owned(),
                    expected,
                    got: p.value.len(),
                });
            }
        }
        let c = self.config;
        let use_momentum = c.momentum != 0.0;
        for p in params.iter_mut() {
            let settings = self.groups.settings(p.name, c.weight_decay);
            let len = p.value.len();
            let slot = match self.state.get_mut(p.name) {
                Some(s) => s,
                None => self.state.entry(p.name.to_owned()).or_insert(Slot {
                    step: 0,
                    buf: None,
                    len: Some(len),
                }),
            };
            slot.len = Some(len);
            let first = slot.buf.is_none();
            if use_momentum && first {
                slot.buf = Some(vec![0.0; len]);
            }
            slot.step += 1;
            let scalars = SgdScalars {
                lr: (f64::from(lr) * settings.lr_scale) as f32,
                weight_decay: settings.weight_decay as f32,
                momentum: c.momentum,
                one_minus_dampening: 1.0 - c.dampening,
                nesterov: c.nesterov,
                first,
            };
            let buf = if use_momentum {
                slot.buf.as_deref_mut()
            } else {
                None
            };
            kernels::sgd(p.value, p.grad, buf, &scalars);
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
        OptimizerConfig::Sgd(self.config)
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
                let buffers = s
                    .buf
                    .iter()
                    .map(|b| (MOMENTUM_BUFFER.to_owned(), b.clone()))
                    .collect::<BTreeMap<_, _>>();
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
        let OptimizerConfig::Sgd(config) = state.config else {
            return Err(OptimError::KindMismatch {
                expected: Self::KIND.into(),
                found: state.config.kind().into(),
            });
        };
        config.validate()?;
        let mut slots = HashMap::with_capacity(state.params.len());
        for (name, mut p) in state.params {
            let buf = p.buffers.remove(MOMENTUM_BUFFER);
            if !p.buffers.is_empty() {
                return Err(OptimError::BadBuffers {
                    param: name,
                    reason: format!(
                        "unexpected buffers {:?} (SGD keeps only `{MOMENTUM_BUFFER}`)",
                        p.buffers.keys().collect::<Vec<_>>()
                    ),
                });
            }
            let Some(buf) = buf else {
                if config.momentum != 0.0 && p.step > 0 {
                    return Err(OptimError::BadBuffers {
                        param: name,
                        reason: format!("momentum is on but `{MOMENTUM_BUFFER}` is missing"),
                    });
                }
                slots.insert(
                    name,
                    Slot {
                        step: p.step,
                        buf: None,
                        len: None,
                    },
                );
                continue;
            };
            if config.momentum == 0.0 {
                return Err(OptimError::BadBuffers {
                    param: name,
                    reason: format!("momentum is 0 but the state has a `{MOMENTUM_BUFFER}`"),
                });
            }
            let len = buf.len();
            slots.insert(
                name,
                Slot {
                    step: p.step,
                    buf: Some(buf),
                    len: Some(len),
                },
            );
        }
        self.groups.restore(&state.groups, &state.assignments)?;
        self.config = config;
        self.step = state.step;
        self.state = slots;
        Ok(())
    }

    fn reset(&mut self) {
        self.state.clear();
        self.step = 0;
    }
}
