//! Optimizers for flowrl's trainer.
//!
//! * [`AdamW`] — Adam with bias correction and decoupled weight decay;
//!   [`Sgd`] — SGD with optional heavy-ball or Nesterov momentum.
//! * [`clip_grad_norm`] — global-norm gradient clipping (`f64` accumulation)
//!   returning the pre-clip norm; [`check_finite_grads`] names the parameter
//!   holding a NaN or infinity.
//! * [`ScheduleConfig`] — constant, linear and cosine learning-rate schedules
//!   with linear warm-up ([`ScheduleConfig::flowsteer`]: cosine, 10 warm-up
//!   updates).
//! * [`ParamGroups`] — per-group learning-rate multiplier and weight decay,
//!   selected by name rules, predicates or explicit assignment.
//! * [`OptimizerState`] — a snapshot of an optimizer, saved in a compact
//!   binary file (JSON header + little-endian `f32` buffers + checksum).
//!
//! Parameters are plain `f32` slices, passed each step as [`ParamMut`]s
//! (name, values, gradient); the optimizer keeps its buffers per name. The
//! crate knows nothing about models.
//!
//! ```
//! use flowrl_optim::{AdamW, AdamWConfig, Optimizer, ParamMut, ScheduleConfig};
//!
//! let mut opt = AdamW::new(AdamWConfig { lr: 1e-2, ..AdamWConfig::default() })?;
//! let schedule = ScheduleConfig::flowsteer(100);
//! let mut w = vec![1.0f32, -2.0];
//! for step in 0..3 {
//!     let grad: Vec<f32> = w.iter().map(|x| 2.0 * x).collect(); // d/dw of |w|²
//!     let lr = schedule.lr_at(opt.peak_lr(), step);
//!     opt.step(&mut [ParamMut::new("w", &mut w, &grad)], lr)?;
//! }
//! assert!(w[0] < 1.0 && w[1] > -2.0);
//! # Ok::<(), flowrl_optim::OptimError>(())
//! ```

pub mod adamw;
pub mod clip;
pub mod config;
pub mod error;
pub mod group;
mod kernels;
pub mod param;
pub mod schedule;
pub mod sgd;
pub mod state;

pub use adamw::AdamW;
pub use clip::{clip_grad_norm, clip_grad_norm_named, grad_norm};
pub use config::{AdamWConfig, OptimConfig, OptimizerConfig, SgdConfig, optim_config_schema_json};
pub use error::OptimError;
pub use group::{DEFAULT_GROUP, GroupConfig, GroupSettings, NameMatch, NamePredicate, ParamGroups};
pub use kernels::{AdamScalars, adamw as adamw_update};
pub use param::{ParamMut, check_finite, check_finite_grads, validate_params};
pub use schedule::ScheduleConfig;
pub use sgd::Sgd;
pub use state::{OptimizerState, ParamState};

/// An optimizer: updates named `f32` parameters in place from their
/// gradients and keeps per-parameter state between steps.
pub trait Optimizer: Send + std::fmt::Debug {
    /// The `kind` tag (`adamw`, `sgd`).
    fn kind(&self) -> &'static str;

    /// Applies one update to every parameter with learning rate `lr` (the
    /// scheduled value; each group scales it by its `lr_scale`).
    ///
    /// Every check runs before anything is modified.
    ///
    /// # Errors
    /// [`OptimError::InvalidConfig`] for a negative or non-finite `lr`;
    /// [`OptimError::LengthMismatch`], [`OptimError::DuplicateParam`] or
    /// [`OptimError::StateLengthMismatch`] for inconsistent parameters.
    fn step(&mut self, params: &mut [ParamMut<'_>], lr: f32) -> Result<(), OptimError>;

    /// Number of successful [`Self::step`] calls (restored by
    /// [`Self::load_state`]).
    fn step_count(&self) -> u64;

    /// The configured peak learning rate that schedules scale.
    fn peak_lr(&self) -> f32;

    /// The hyper-parameters, tagged by kind.
    fn optimizer_config(&self) -> OptimizerConfig;

    /// The parameter groups.
    fn groups(&self) -> &ParamGroups;

    /// The parameter groups, for adding groups or assignments.
    fn groups_mut(&mut self) -> &mut ParamGroups;

    /// A complete copy of the state (hyper-parameters, groups, step counts,
    /// buffers).
    fn state(&self) -> OptimizerState;

    /// Replaces this optimizer's state with `state`: hyper-parameters,
    /// group rules and assignments (predicates of groups whose names survive
    /// are kept), step counts and buffers. On error nothing changes.
    ///
    /// # Errors
    /// [`OptimError::KindMismatch`] for another optimizer's state,
    /// [`OptimError::BadBuffers`] for missing or inconsistent buffers,
    /// [`OptimError::InvalidConfig`] for out-of-range hyper-parameters.
    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError>;

    /// Drops all buffers and sets the step count to 0 (hyper-parameters and
    /// groups stay).
    fn reset(&mut self);
}
