//! Serialisable configurations of the optimizers and of a whole optimization
//! setup (optimizer, schedule, clipping, groups).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Optimizer;
use crate::adamw::AdamW;
use crate::error::{OptimError, invalid};
use crate::group::{GroupConfig, ParamGroups};
use crate::schedule::ScheduleConfig;
use crate::sgd::Sgd;

fn check_lr(lr: f32) -> Result<(), OptimError> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(invalid("lr", format!("{lr} is not a finite value ≥ 0")))
    }
}

fn check_weight_decay(wd: f32) -> Result<(), OptimError> {
    if wd.is_finite() && wd >= 0.0 {
        Ok(())
    } else {
        Err(invalid(
            "weight_decay",
            format!("{wd} is not a finite value ≥ 0"),
        ))
    }
}

/// Hyper-parameters of [`AdamW`] (Loshchilov & Hutter: Adam with bias
/// correction and weight decay decoupled from the gradient).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Peak learning rate; the schedule scales it and passes the result to
    /// [`Optimizer::step`]. Default 1e-3.
    #[serde(default = "AdamWConfig::default_lr")]
    pub lr: f32,
    /// Decay rates (β₁, β₂) of the first and second moment averages, each in
    /// `[0, 1)`. Default (0.9, 0.999).
    #[serde(default = "AdamWConfig::default_betas")]
    pub betas: [f32; 2],
    /// Added to the root of the second moment, > 0. Default 1e-8.
    #[serde(default = "AdamWConfig::default_eps")]
    pub eps: f32,
    /// Decoupled weight decay: each update first multiplies the weights by
    /// `1 − lr·weight_decay`. Default 0.01.
    #[serde(default = "AdamWConfig::default_weight_decay")]
    pub weight_decay: f32,
}

impl AdamWConfig {
    fn default_lr() -> f32 {
        1e-3
    }
    fn default_betas() -> [f32; 2] {
        [0.9, 0.999]
    }
    fn default_eps() -> f32 {
        1e-8
    }
    fn default_weight_decay() -> f32 {
        0.01
    }

    /// Checks every field's range.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.lr)?;
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                let field = if i == 0 { "betas[0]" } else { "betas[1]" };
                return Err(invalid(field, format!("{b} is not in [0, 1)")));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(
                "eps",
                format!("{} is not a finite value > 0", self.eps),
            ));
        }
        check_weight_decay(self.weight_decay)
    }
}

impl Default for AdamWConfig {
    /// lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig {
            lr: Self::default_lr(),
            betas: Self::default_betas(),
            eps: Self::default_eps(),
            weight_decay: Self::default_weight_decay(),
        }
    }
}

/// Hyper-parameters of [`Sgd`]: stochastic gradient descent with optional
/// heavy-ball or Nesterov momentum and coupled L2 weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// Peak learning rate (see [`AdamWConfig::lr`]). Default 1e-2.
    #[serde(default = "SgdConfig::default_lr")]
    pub lr: f32,
    /// Momentum factor μ in `[0, 1)`; 0 disables the buffer. Default 0.
    #[serde(default)]
    pub momentum: f32,
    /// Dampening τ in `[0, 1]` of new gradients entering the buffer. Default 0.
    #[serde(default)]
    pub dampening: f32,
    /// Nesterov momentum (needs momentum > 0 and dampening 0). Default false.
    #[serde(default)]
    pub nesterov: bool,
    /// L2 coefficient added to the gradient (`g + λ·w`). Default 0.
    #[serde(default)]
    pub weight_decay: f32,
}

impl SgdConfig {
    fn default_lr() -> f32 {
        1e-2
    }

    /// Checks every field's range.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(self.lr)?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(invalid(
                "momentum",
                format!("{} is not in [0, 1)", self.momentum),
            ));
        }
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(invalid(
                "dampening",
                format!("{} is not in [0, 1]", self.dampening),
            ));
        }
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                "nesterov",
                "Nesterov momentum needs momentum > 0 and dampening 0",
            ));
        }
        check_weight_decay(self.weight_decay)
    }
}

impl Default for SgdConfig {
    /// lr 1e-2, no momentum, no weight decay.
    fn default() -> Self {
        SgdConfig {
            lr: Self::default_lr(),
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Which optimizer, with its hyper-parameters; tagged by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum OptimizerConfig {
    /// [`AdamW`].
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
    /// [`Sgd`].
    #[serde(rename = "sgd")]
    Sgd(SgdConfig),
}

impl Default for OptimizerConfig {
    /// AdamW with its defaults.
    fn default() -> Self {
        OptimizerConfig::AdamW(AdamWConfig::default())
    }
}

impl OptimizerConfig {
    /// The `kind` tag: `adamw` or `sgd`.
    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerConfig::AdamW(_) => AdamW::KIND,
            OptimizerConfig::Sgd(_) => Sgd::KIND,
        }
    }

    /// The peak learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::AdamW(c) => c.lr,
            OptimizerConfig::Sgd(c) => c.lr,
        }
    }

    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), OptimError> {
        match self {
            OptimizerConfig::AdamW(c) => c.validate(),
            OptimizerConfig::Sgd(c) => c.validate(),
        }
    }

    /// A fresh optimizer with these hyper-parameters and groups.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`].
    pub fn build(&self, groups: ParamGroups) -> Result<Box<dyn Optimizer>, OptimError> {
        Ok(match *self {
            OptimizerConfig::AdamW(c) => Box::new(AdamW::with_groups(c, groups)?),
            OptimizerConfig::Sgd(c) => Box::new(Sgd::with_groups(c, groups)?),
        })
    }
}

/// Everything the trainer needs to configure optimization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// The optimizer and its hyper-parameters.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule applied to the optimizer's `lr`.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Clip the global gradient L2 norm to this value (> 0) before each
    /// update; `None` disables clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Parameter groups, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupConfig>,
}

impl OptimConfig {
    /// FlowSteer's published setting: AdamW lr 1e-5, weight decay 0.01,
    /// cosine schedule with 10 warm-up updates over `total_steps`, gradient
    /// clipping at 1.0, no decay on norms and biases.
    pub fn flowsteer(total_steps: u64) -> Self {
        OptimConfig {
            optimizer: OptimizerConfig::AdamW(AdamWConfig {
                lr: 1e-5,
                weight_decay: 0.01,
                ..AdamWConfig::default()
            }),
            schedule: ScheduleConfig::flowsteer(total_steps),
            max_grad_norm: Some(1.0),
            groups: vec![GroupConfig::no_decay_norms_and_biases()],
        }
    }

    /// Checks the optimizer, the schedule, the clipping norm and the groups.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`] or [`OptimError::DuplicateGroup`].
    pub fn validate(&self) -> Result<(), OptimError> {
        self.optimizer.validate()?;
        self.schedule.validate()?;
        if let Some(n) = self.max_grad_norm
            && !(n.is_finite() && n > 0.0)
        {
            return Err(invalid(
                "max_grad_norm",
                format!("{n} is not a finite value > 0"),
            ));
        }
        ParamGroups::from_configs(self.groups.iter().cloned()).map(|_| ())
    }

    /// A fresh optimizer with the configured groups.
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn build_optimizer(&self) -> Result<Box<dyn Optimizer>, OptimError> {
        self.validate()?;
        self.optimizer
            .build(ParamGroups::from_configs(self.groups.iter().cloned())?)
    }

    /// The scheduled learning rate of update `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f32 {
        self.schedule.lr_at(self.optimizer.lr(), step)
    }
}

/// The JSON Schema (draft 2020-12) of [`OptimConfig`], pretty-printed with a
/// trailing newline.
pub fn optim_config_schema_json() -> String {
    let schema = schemars::schema_for!(OptimConfig);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_defaults() {
        let cfg = OptimConfig::flowsteer(300);
        cfg.validate().unwrap();
        let text = serde_json::to_string(&cfg).unwrap();
        let back: OptimConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let minimal: OptimConfig =
            serde_json::from_str(r#"{"optimizer":{"kind":"sgd","momentum":0.9,"nesterov":true}}"#)
                .unwrap();
        minimal.validate().unwrap();
        assert_eq!(minimal.optimizer.kind(), "sgd");
        assert_eq!(minimal.optimizer.lr(), 1e-2);
        assert!(serde_json::from_str::<OptimConfig>(r#"{"optimiser":{}}"#).is_err());
        let schema = optim_config_schema_json();
        assert!(schema.contains("\"adamw\"") && schema.contains("warmup_steps"));
    }

    #[test]
    fn rejects_out_of_range_settings() {
        let bad = |c: AdamWConfig| c.validate().is_err();
        let d = AdamWConfig::default();
        assert!(bad(AdamWConfig {
            betas: [1.0, 0.999],
            ..d
        }));
        assert!(bad(AdamWConfig {
            betas: [0.9, -0.1],
            ..d
        }));
        assert!(bad(AdamWConfig { eps: 0.0, ..d }));
        assert!(bad(AdamWConfig { lr: f32::NAN, ..d }));
        assert!(bad(AdamWConfig {
            weight_decay: -1.0,
            ..d
        }));
        let s = SgdConfig {
            nesterov: true,
            ..SgdConfig::default()
        };
        assert!(s.validate().is_err());
        let mut cfg = OptimConfig::flowsteer(300);
        cfg.max_grad_norm = Some(0.0);
        assert!(cfg.validate().is_err());
    }
}
