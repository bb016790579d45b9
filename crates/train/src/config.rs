//! The run configuration: serde + JSON Schema, with presets and the
//! embedded default.

use std::path::PathBuf;

use flowrl_data::{SuiteConfig, TaskFamily};
use flowrl_envs::{CanvasConfig, ThinkActionConfig};
use flowrl_llm_sim::SimConfig;
use flowrl_model::{LoraConfig, ModelConfig, Support};
use flowrl_objectives::{AlgorithmConfig, Preset};
use flowrl_operators::OperatorsConfig;
use flowrl_optim::{AdamWConfig, OptimConfig, OptimizerConfig, ScheduleConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Which environment the policy acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvKind {
    /// Workflow-R1's think-action protocol.
    ThinkAction,
    /// FlowSteer's workflow canvas.
    Canvas,
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// A randomly initialised model of this shape with the built-in
    /// byte-level tokenizer (vocabulary ≥ 259).
    Random {
        /// The architecture.
        config: ModelConfig,
    },
    /// A Hugging Face directory (`config.json`, `*.safetensors`,
    /// `tokenizer.json`).
    HfDir {
        /// The directory.
        path: PathBuf,
    },
    /// A GGUF file (dequantised to f32 at load) and its `tokenizer.json`.
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// The Hugging Face tokenizer file.
        tokenizer: PathBuf,
    },
}

/// The executor LLM operators call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecutorSpec {
    /// The simulated executor (deterministic, calibrated skills).
    Sim {
        /// Its settings.
        #[serde(default)]
        config: SimConfig,
    },
    /// An OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama…).
    Openai {
        /// Its settings (base URL, model, key, timeouts, retries).
        config: flowrl_llm_openai::OpenAiConfig,
    },
}

/// Where tasks come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSpec {
    /// The built-in procedurally generated suite (train and held-out splits).
    Suite {
        /// Its settings.
        #[serde(default)]
        config: SuiteConfig,
    },
    /// Dataset files (any format `flowrl-data` loads); a seeded
    /// `heldout_fraction` of the tasks is held out.
    Files {
        /// The files.
        files: Vec<DataFile>,
        /// Fraction held out for evaluation, in (0, 1).
        heldout_fraction: f64,
    },
}

/// One dataset file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// The JSONL file.
    pub path: PathBuf,
    /// Its format: qa, squad_v2, gsm8k, math, mathqa, humaneval or mbpp.
    pub format: String,
}

/// Supervised warm-up on demonstration episodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WarmupConfig {
    /// Optimizer steps (0 disables the warm-up).
    pub steps: usize,
    /// Demonstration episodes per step.
    pub batch_size: usize,
    /// Demonstrations generated per training task.
    pub demos_per_task: usize,
    /// Peak learning rate (constant after a 10% linear warm-up).
    pub lr: f32,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        WarmupConfig {
            steps: 150,
            batch_size: 16,
            demos_per_task: 2,
            lr: 3e-3,
        }
    }
}

/// The RL phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RlConfig {
    /// RL steps (rollout batches).
    pub steps: usize,
    /// Tasks sampled per step.
    pub tasks_per_step: usize,
    /// Rollouts per task (G).
    pub group_size: usize,
    /// Passes over each rollout batch.
    pub ppo_epochs: usize,
    /// Mini-batches per pass (by trajectory).
    pub minibatches: usize,
    /// Sampling temperature of rollouts.
    pub temperature: f64,
    /// Nucleus mass of rollouts.
    pub top_p: f64,
    /// Take the log-probs of updates (old, current and reference) from the
    /// distribution rollouts sample: the softmax renormalised over the
    /// `top_p` nucleus (plus the sampled token), at temperature 1. With
    /// `false` they come from the full softmax, whose gradient raises every
    /// token outside the nucleus whenever a sampled token is pushed down —
    /// tokens that are never sampled, so nothing pushes them back. No effect
    /// when `top_p` is 1.
    pub nucleus_logprobs: bool,
    /// Top-k of rollouts (0 disables).
    pub top_k: usize,
    /// Most tokens the policy generates in one turn.
    pub max_turn_tokens: usize,
    /// Keep the policy RL starts from, frozen, as the reference of the KL
    /// term; its KL is reported in the metrics (`kl`) even when the
    /// objective's `kl_coef` is 0, at the cost of one more forward pass per
    /// mini-batch. Required when `kl_coef > 0`. With `lora` the frozen base
    /// weights serve and no copy is made. `false` drops it (the `kl` metric
    /// is then the approximate KL between the old and the current policy).
    pub reference: bool,
    /// Train only low-rank adapters during RL: they are attached to the
    /// warmed-up weights when RL starts (B = 0, so the policy is unchanged
    /// at first) and the base weights stay frozen; the KL reference is that
    /// base, read with the adapters switched off (no copy of the weights is
    /// kept or checkpointed). Checkpoints hold the adapters in
    /// `adapter.safetensors` beside the base weights. `null` (the default)
    /// trains every weight.
    pub lora: Option<LoraConfig>,
}

impl RlConfig {
    /// The distribution update log-probs are taken over:
    /// [`Support::Nucleus`] of `top_p` when `nucleus_logprobs` is set and
    /// `top_p < 1`, the full softmax otherwise. The nucleus is taken at
    /// temperature 1 and without `top_k`, so it is exactly the sampler's
    /// distribution only when `temperature` is 1 and `top_k` is 0 (the
    /// defaults).
    pub fn logprob_support(&self) -> Support {
        if self.nucleus_logprobs && self.top_p < 1.0 {
            Support::Nucleus { top_p: self.top_p }
        } else {
            Support::Full
        }
    }
}

impl Default for RlConfig {
    fn default() -> Self {
        RlConfig {
            steps: 40,
            tasks_per_step: 8,
            group_size: 8,
            ppo_epochs: 2,
            minibatches: 2,
            temperature: 1.0,
            // A tiny byte-level policy puts a little mass on stray bytes at
            // every position; over a 150-token episode plain sampling breaks
            // the protocol in about half the rollouts. The nucleus keeps the
            // workflow choices (first tokens with 10–50% mass) and drops the
            // stray bytes.
            top_p: 0.9,
            nucleus_logprobs: true,
            top_k: 0,
            max_turn_tokens: 96,
            reference: true,
            lora: None,
        }
    }
}

/// Held-out evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Held-out tasks evaluated (the first ones; all when larger).
    pub tasks: usize,
    /// Evaluate every this many RL steps (0: only before and after).
    pub every: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            tasks: 48,
            every: 10,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run name: outputs go to `<out_dir>/<name>/`.
    pub name: String,
    /// Parent directory of runs.
    pub out_dir: PathBuf,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// The algorithm preset (advantages + objective).
    pub preset: Preset,
    /// Overrides of the preset's algorithm, when set.
    pub algorithm: Option<AlgorithmConfig>,
    /// The environment.
    pub env: EnvKind,
    /// Think-action settings.
    pub think_action: ThinkActionConfig,
    /// Canvas settings.
    pub canvas: CanvasConfig,
    /// Operator settings (executor call limits, output length, sandbox).
    pub operators: OperatorsConfig,
    /// The policy.
    pub model: ModelSpec,
    /// The executor.
    pub executor: ExecutorSpec,
    /// The tasks.
    pub data: DataSpec,
    /// The RL optimizer and schedule.
    pub optim: OptimConfig,
    /// Supervised warm-up.
    pub warmup: WarmupConfig,
    /// RL.
    pub rl: RlConfig,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Write a checkpoint every this many RL steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Consecutive updates (mini-batch optimizer steps) with a non-finite
    /// loss or log-prob that are skipped before the run stops; each skip is
    /// logged and counted in the step's `skipped_updates`.
    pub max_bad_steps: usize,
    /// Write every RL step's trajectories to `rollouts/step-<n>.jsonl`.
    pub save_rollouts: bool,
}

/// The operators the embedded default offers the policy.
pub const DEFAULT_OPERATORS: [&str; 7] = [
    "AnswerGenerate",
    "MultiAnswerGenerate",
    "ScEnsemble",
    "Review",
    "Revise",
    "Programmer",
    "Test",
];

impl Default for TrainConfig {
    /// The embedded default: a tiny byte-level Qwen2 policy, the built-in
    /// suite, the simulated executor, think-action with compact prompts,
    /// supervised warm-up then GSsPO.
    fn default() -> Self {
        let think_action = ThinkActionConfig {
            max_calls: 4,
            max_turns: 6,
            max_response_tokens: 768,
            info_half_chars: 48,
            operators: DEFAULT_OPERATORS.iter().map(|s| s.to_string()).collect(),
            prompt_style: flowrl_envs::think_action::env::PromptStyle::Compact,
            ..ThinkActionConfig::default()
        };
        let operators = OperatorsConfig {
            output_chars: 96,
            ..OperatorsConfig::default()
        };
        let model = ModelConfig {
            hidden_size: 96,
            intermediate_size: 192,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 24,
            num_hidden_layers: 2,
            ..ModelConfig::tiny()
        };
        TrainConfig {
            name: "default".into(),
            out_dir: PathBuf::from("runs"),
            seed: 0,
            preset: Preset::WorkflowR1,
            algorithm: None,
            env: EnvKind::ThinkAction,
            think_action,
            canvas: CanvasConfig::default(),
            operators,
            model: ModelSpec::Random { config: model },
            executor: ExecutorSpec::Sim {
                config: SimConfig::default(),
            },
            data: DataSpec::Suite {
                config: SuiteConfig {
                    seed: 0,
                    train_per_family: 64,
                    heldout_per_family: 16,
                    families: vec![TaskFamily::Math, TaskFamily::Qa, TaskFamily::Code],
                },
            },
            optim: OptimConfig {
                optimizer: OptimizerConfig::AdamW(AdamWConfig {
                    lr: 5e-5,
                    weight_decay: 0.0,
                    ..AdamWConfig::default()
                }),
                schedule: ScheduleConfig::Constant { warmup_steps: 0 },
                max_grad_norm: Some(1.0),
                groups: Vec::new(),
            },
            warmup: WarmupConfig::default(),
            rl: RlConfig::default(),
            eval: EvalConfig::default(),
            checkpoint_every: 10,
            max_bad_steps: 3,
            save_rollouts: false,
        }
    }
}

impl TrainConfig {
    /// The algorithm: the override when set, else the preset's.
    pub fn algorithm(&self) -> AlgorithmConfig {
        self.algorithm
            .clone()
            .unwrap_or_else(|| self.preset.config())
    }

    /// The run directory `<out_dir>/<name>`.
    pub fn run_dir(&self) -> PathBuf {
        self.out_dir.join(&self.name)
    }

    /// Checks every field that can be wrong, naming it and what is allowed.
    ///
    /// # Errors
    /// [`TrainError::Config`] for the first invalid field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(TrainError::config(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return Err(TrainError::config(
                "name",
                "must be a non-empty file name without slashes",
            ));
        }
        positive("rl.tasks_per_step", self.rl.tasks_per_step)?;
        let kl_coef = self.algorithm().objective.kl_coef;
        if kl_coef != 0.0 && !self.rl.reference {
            return Err(TrainError::config(
                "rl.reference",
                format!(
                    "false, but the objective's KL term (algorithm.objective.kl_coef = {kl_coef}) \
                     needs the reference policy: set it to true, or the coefficient to 0"
                ),
            ));
        }
        positive("rl.group_size", self.rl.group_size)?;
        positive("rl.ppo_epochs", self.rl.ppo_epochs)?;
        if let Some(lora) = &self.rl.lora {
            lora.modules()
                .map_err(|e| TrainError::config("rl.lora", e.to_string()))?;
        }
        positive("rl.minibatches", self.rl.minibatches)?;
        positive("rl.max_turn_tokens", self.rl.max_turn_tokens)?;
        positive("max_bad_steps", self.max_bad_steps)?;
        if self.rl.minibatches > self.rl.tasks_per_step * self.rl.group_size {
            return Err(TrainError::config(
                "rl.minibatches",
                "must not exceed tasks_per_step × group_size",
            ));
        }
        if !(self.rl.temperature.is_finite() && self.rl.temperature > 0.0) {
            return Err(TrainError::config(
                "rl.temperature",
                "must be a finite value > 0 for rollouts",
            ));
        }
        if !(self.rl.top_p > 0.0 && self.rl.top_p <= 1.0) {
            return Err(TrainError::config("rl.top_p", "must be in (0, 1]"));
        }
        if self.warmup.steps > 0 {
            positive("warmup.batch_size", self.warmup.batch_size)?;
            positive("warmup.demos_per_task", self.warmup.demos_per_task)?;
            if !(self.warmup.lr.is_finite() && self.warmup.lr > 0.0) {
                return Err(TrainError::config(
                    "warmup.lr",
                    "must be a finite value > 0",
                ));
            }
        }
        if let DataSpec::Files {
            files,
            heldout_fraction,
        } = &self.data
        {
            if files.is_empty() {
                return Err(TrainError::config(
                    "data.files",
                    "name at least one dataset file",
                ));
            }
            for (i, f) in files.iter().enumerate() {
                flowrl_data::DatasetFormat::parse(&f.format).map_err(|e| {
                    TrainError::config(format!("data.files[{i}].format"), e.to_string())
                })?;
            }
            if !(*heldout_fraction > 0.0 && *heldout_fraction < 1.0) {
                return Err(TrainError::config(
                    "data.heldout_fraction",
                    "must be in (0, 1)",
                ));
            }
        }
        self.algorithm()
            .objective
            .validate()
            .map_err(|e| TrainError::config("algorithm.objective", e.to_string()))?;
        self.optim
            .validate()
            .map_err(|e| TrainError::config("optim", e.to_string()))?;
        Ok(())
    }

    /// A named preset: `workflow-r1` (the embedded default: GSsPO on the
    /// think-action env), `flowsteer` (CWRPO on the canvas env), `grpo` and
    /// `gspo` (baselines on the think-action env).
    ///
    /// # Errors
    /// [`TrainError::Config`] for an unknown name, listing the allowed ones.
    pub fn preset(name: &str) -> Result<Self, TrainError> {
        let base = TrainConfig::default();
        match name {
            "workflow-r1" => Ok(base),
            "grpo" => Ok(TrainConfig {
                preset: Preset::Grpo,
                name: "grpo".into(),
                ..base
            }),
            "gspo" => Ok(TrainConfig {
                preset: Preset::Gspo,
                name: "gspo".into(),
                ..base
            }),
            "flowsteer" => {
                let canvas = CanvasConfig {
                    prompt_style: flowrl_envs::think_action::env::PromptStyle::Compact,
                    operators: [
                        "AnswerGenerate",
                        "Programmer",
                        "Test",
                        "Review",
                        "Verify",
                        "Revise",
                        "ScEnsemble",
                        "Format",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    ..CanvasConfig::default()
                };
                Ok(TrainConfig {
                    preset: Preset::Flowsteer,
                    env: EnvKind::Canvas,
                    canvas,
                    name: "flowsteer".into(),
                    ..base
                })
            }
            other => Err(TrainError::config(
                "preset",
                format!("unknown preset `{other}`; allowed: workflow-r1, flowsteer, grpo, gspo"),
            )),
        }
    }
}

/// The JSON Schema of [`TrainConfig`], pretty-printed.
pub fn train_config_schema_json() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(TrainConfig)).unwrap_or_default()
}
