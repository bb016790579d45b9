//! The training loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use flowrl_data::{DatasetFormat, ScoreConfig, Scorer, Task, generate_suite, load_file};
use flowrl_envs::{CanvasEnv, Env, Services, ThinkActionEnv};
use flowrl_llm_sim::SimBackend;
use flowrl_model::{GradMode, Model, Support};
use flowrl_objectives::{AlgorithmConfig, ObjectiveError, TokenBatch, advantages_by_key, compute};
use flowrl_operators::Registry;
use flowrl_optim::{AdamWConfig, Optimizer, OptimizerConfig, ParamMut, clip_grad_norm};
use flowrl_tokenizer::{ByteTokenizer, HfTokenizer, Tokenizer};
use flowrl_trajectory::{PackedBatch, Trajectory, flatten_packed};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointState};
use crate::config::{DataSpec, EnvKind, ExecutorSpec, ModelSpec, TrainConfig};
use crate::demos;
use crate::error::TrainError;
use crate::metrics::{EpisodeStats, MetricsWriter, read_metrics, truncate_metrics};
use crate::plot::{Series, svg};
use crate::policy::{Policy, logprobs_of};
use crate::rollout::{Episode, RolloutSettings, rollout};

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Held-out mean reward before RL (after the warm-up).
    pub eval_before: f64,
    /// Held-out mean reward after RL.
    pub eval_after: f64,
    /// Held-out accuracy before RL.
    pub accuracy_before: f64,
    /// Held-out accuracy after RL.
    pub accuracy_after: f64,
    /// RL steps completed.
    pub steps: usize,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
}

fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The frozen policy of the KL term.
enum Reference {
    /// A copy of the weights RL started from.
    Copy(Box<Model<f32>>),
    /// The policy's own base weights with its adapters switched off: in
    /// LoRA mode the base is frozen at the weights RL started from, so no
    /// copy is kept.
    Base,
}

/// A configured run: policy, optimizer, services and data.
pub struct Trainer {
    config: TrainConfig,
    algo: AlgorithmConfig,
    policy: Policy,
    reference: Option<Reference>,
    optimizer: Box<dyn Optimizer>,
    services: Services,
    train: Vec<Task>,
    heldout: Vec<Task>,
    state: CheckpointState,
    updates: u64,
    bad_steps: usize,
    progress: bool,
}

fn bar(len: usize, msg: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

impl Trainer {
    /// Builds the run; with `resume`, continues from `checkpoints/latest`
    /// when there is one.
    ///
    /// # Errors
    /// Invalid configuration, missing files (named), model or data errors.
    pub fn new(config: TrainConfig, resume: bool) -> Result<Self, TrainError> {
        config.validate()?;
        if matches!(config.rl.logprob_support(), Support::Nucleus { .. })
            && (config.rl.top_k > 0 || config.rl.temperature != 1.0)
        {
            tracing::warn!(
                top_k = config.rl.top_k,
                temperature = config.rl.temperature,
                "rl.nucleus_logprobs takes the top-p nucleus at temperature 1 without top-k; \
                 the rollouts sample another distribution"
            );
        }
        let algo = config.algorithm();
        let (model, tokenizer): (Model<f32>, Arc<dyn Tokenizer>) = match &config.model {
            ModelSpec::Random { config: mc } => {
                // The byte-level tokenizer fixes the vocabulary: a larger one
                // would let the policy sample ids nothing can decode.
                let tok = ByteTokenizer::new();
                let mc = flowrl_model::ModelConfig {
                    vocab_size: tok.vocab_size(),
                    ..mc.clone()
                };
                (Model::random(&mc, config.seed)?, Arc::new(tok))
            }
            ModelSpec::HfDir { path } => {
                if !path.is_dir() {
                    return Err(TrainError::config(
                        "model.path",
                        format!("{} is not a directory", path.display()),
                    ));
                }
                let tok = HfTokenizer::from_file(path.join("tokenizer.json"))?;
                (Model::from_hf_dir(path)?, Arc::new(tok))
            }
            ModelSpec::Gguf { path, tokenizer } => {
                for (field, p) in [("model.path", path), ("model.tokenizer", tokenizer)] {
                    if !p.is_file() {
                        return Err(TrainError::config(
                            field,
                            format!("no such file: {}", p.display()),
                        ));
                    }
                }
                (
                    Model::from_gguf(path)?,
                    Arc::new(HfTokenizer::from_file(tokenizer)?),
                )
            }
        };
        let executor: Arc<dyn flowrl_operators::Executor> = match &config.executor {
            ExecutorSpec::Sim { config: sim } => Arc::new(
                SimBackend::new(sim.clone())
                    .map_err(|e| TrainError::config("executor.config", e))?,
            ),
            ExecutorSpec::Openai { config: oc } => Arc::new(
                flowrl_llm_openai::OpenAiClient::new(oc)
                    .map_err(|e| TrainError::config("executor.config", e.to_string()))?,
            ),
        };
        let registry = Registry::all_with(&config.operators)
            .map_err(|e| TrainError::config("operators", e.to_string()))?;
        let scorer = Scorer::new(ScoreConfig {
            sandbox: config.operators.sandbox.clone(),
            ..ScoreConfig::default()
        });
        let services = Services {
            registry: Arc::new(registry),
            executor,
            scorer: Arc::new(scorer),
        };
        let (train, heldout) = load_tasks(&config)?;
        let optimizer = config.optim.build_optimizer()?;
        let mut trainer = Trainer {
            reference: None,
            policy: Policy {
                model,
                tokenizer,
                mode: GradMode::Full,
            },
            optimizer,
            services,
            train,
            heldout,
            state: CheckpointState {
                step: 0,
                warmup_done: false,
                seed: config.seed,
                eval_before: None,
            },
            updates: 0,
            bad_steps: 0,
            progress: true,
            algo,
            config,
        };
        let ckpt_root = trainer.run_dir().join("checkpoints");
        if resume && let Some(loaded) = checkpoint::load_latest(&ckpt_root)? {
            if loaded.state.seed != trainer.config.seed {
                return Err(TrainError::Checkpoint {
                    path: loaded.dir,
                    reason: format!(
                        "it was made with seed {}, this run has {}",
                        loaded.state.seed, trainer.config.seed
                    ),
                });
            }
            let mc = trainer.policy.model.config.clone();
            trainer.policy.model =
                Model::from_safetensors(&mc, std::slice::from_ref(&loaded.weights))?;
            if let Some(r) = &loaded.reference {
                trainer.reference = Some(Reference::Copy(Box::new(Model::from_safetensors(
                    &mc,
                    std::slice::from_ref(r),
                )?)));
            }
            if let Some(a) = &loaded.adapter {
                let Some(lora) = trainer.config.rl.lora.clone() else {
                    return Err(TrainError::config(
                        "rl.lora",
                        format!(
                            "the checkpoint {} holds LoRA adapters; resume it with the same rl.lora",
                            loaded.dir.display()
                        ),
                    ));
                };
                trainer.policy.model.load_lora(&lora, a)?;
                trainer.policy.mode = GradMode::Lora;
            } else if trainer.config.rl.lora.is_some() && loaded.state.step > 0 {
                return Err(TrainError::config(
                    "rl.lora",
                    format!(
                        "the checkpoint {} trained every weight; resume it without rl.lora",
                        loaded.dir.display()
                    ),
                ));
            }
            trainer.optimizer.load_state(loaded.optimizer)?;
            trainer.updates = trainer.optimizer.step_count();
            trainer.state = loaded.state;
            tracing::info!(dir = %loaded.dir.display(), step = trainer.state.step, "resuming");
        }
        Ok(trainer)
    }

    /// Shows or hides progress bars (shown by default).
    pub fn show_progress(&mut self, on: bool) {
        self.progress = on;
    }

    /// `<out_dir>/<name>`.
    pub fn run_dir(&self) -> PathBuf {
        self.config.run_dir()
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The held-out tasks.
    pub fn heldout(&self) -> &[Task] {
        &self.heldout
    }

    fn make_env(&self) -> Box<dyn Env> {
        make_env(&self.config, &self.services)
    }

    fn settings(&self, temperature: f64, seed: u64) -> RolloutSettings {
        let (max_response_tokens, max_prompt_tokens) = match self.config.env {
            EnvKind::ThinkAction => (
                self.config.think_action.max_response_tokens,
                self.config.think_action.max_prompt_tokens,
            ),
            EnvKind::Canvas => (self.config.rl.max_turn_tokens, 4096),
        };
        RolloutSettings {
            temperature,
            top_p: if temperature == 0.0 {
                1.0
            } else {
                self.config.rl.top_p
            },
            top_k: if temperature == 0.0 {
                0
            } else {
                self.config.rl.top_k
            },
            max_turn_tokens: self.config.rl.max_turn_tokens,
            max_response_tokens,
            max_prompt_tokens,
            seed,
        }
    }

    /// Runs episodes on `tasks` (one each) and returns them.
    ///
    /// # Errors
    /// As [`rollout`].
    pub fn episodes(
        &self,
        tasks: &[&Task],
        temperature: f64,
        seed: u64,
        label: &str,
    ) -> Result<Vec<Episode>, TrainError> {
        let mut envs: Vec<Box<dyn Env>> = tasks.iter().map(|_| self.make_env()).collect();
        let ids: Vec<String> = (0..tasks.len()).map(|i| format!("{label}-{i}")).collect();
        rollout(
            &self.policy,
            &mut envs,
            tasks,
            &ids,
            &self.settings(temperature, seed),
        )
    }

    /// Greedy episodes on the first `eval.tasks` held-out tasks.
    ///
    /// # Errors
    /// As [`rollout`].
    pub fn evaluate(&self) -> Result<EpisodeStats, TrainError> {
        let n = self.config.eval.tasks.min(self.heldout.len());
        let tasks: Vec<&Task> = self.heldout.iter().take(n).collect();
        let mut all = Vec::new();
        for chunk in tasks.chunks(32) {
            all.extend(self.episodes(chunk, 0.0, self.config.seed, "eval")?);
        }
        Ok(EpisodeStats::of(&all))
    }

    /// Applies the clipped optimizer step to the gradients in the model.
    fn apply_grads(&mut self, lr: f32) -> Result<f64, TrainError> {
        let norm = optimizer_step(
            &mut self.policy,
            &mut *self.optimizer,
            lr,
            self.config.optim.max_grad_norm,
        )?;
        self.updates += 1;
        Ok(norm)
    }

    /// The supervised warm-up: imitate demonstration episodes.
    ///
    /// # Errors
    /// Environment, model and optimizer failures.
    pub fn warmup(
        &mut self,
        metrics: &mut MetricsWriter,
        interrupt: &AtomicBool,
    ) -> Result<(), TrainError> {
        let cfg = self.config.warmup.clone();
        if cfg.steps == 0 {
            return Ok(());
        }
        let mut rng = StdRng::seed_from_u64(mix(self.config.seed, 0xdead));
        let kind = self.config.env;
        let mut demos: Vec<Trajectory> = Vec::new();
        let mut jobs = Vec::new();
        for (t, task) in self.train.iter().enumerate() {
            for d in 0..cfg.demos_per_task {
                jobs.push((task, demos::draw(&mut rng, kind), format!("demo-{t}-{d}")));
            }
        }
        // A large dataset needs no more demonstrations than the warm-up
        // imitates: keep a seeded sample of `steps × batch_size` of them
        // (playing one costs real executor calls).
        let needed = cfg.steps.saturating_mul(cfg.batch_size);
        if jobs.len() > needed {
            use rand::seq::SliceRandom;
            jobs.shuffle(&mut rng);
            jobs.truncate(needed);
        }
        let pb = bar(jobs.len(), "demos", self.progress);
        let choices: Vec<usize> = jobs.iter().map(|j| j.1).collect();
        {
            use rayon::prelude::*;
            let (policy, config, services) = (&self.policy, &self.config, &self.services);
            let results: Vec<Result<Trajectory, TrainError>> = jobs
                .into_par_iter()
                .map(|(task, choice, id)| {
                    let mut env = make_env(config, services);
                    let r = demos::play(policy, env.as_mut(), task, kind, choice, id);
                    pb.inc(1);
                    r
                })
                .collect();
            for r in results {
                demos.push(r?);
            }
        }
        pb.finish_and_clear();
        // The demonstrator's mean reward per family and workflow: what the
        // environment pays for each choice the policy will have to make.
        let mut table: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
        for (d, &choice) in demos.iter().zip(&choices) {
            let fam = self
                .train
                .iter()
                .find(|t| t.id == d.task_id)
                .map(|t| t.family.as_str())
                .unwrap_or("");
            let e = table.entry(format!("{fam}/{choice}")).or_insert((0.0, 0));
            e.0 += d.reward;
            e.1 += 1;
        }
        let table: std::collections::BTreeMap<String, f64> = table
            .into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect();
        tracing::info!(?table, "demonstration reward per family/workflow");
        metrics
            .write(&serde_json::json!({"phase": "demos", "reward_by_family_workflow": table}))?;
        // A warm-up optimizer of its own (constant lr after a 10% linear ramp).
        let mut opt = OptimizerConfig::AdamW(AdamWConfig {
            lr: cfg.lr,
            weight_decay: 0.0,
            ..AdamWConfig::default()
        })
        .build(Default::default())?;
        let ramp = (cfg.steps / 10).max(1);
        let pb = bar(cfg.steps, "warm-up", self.progress);
        for step in 0..cfg.steps {
            if interrupt.load(Ordering::SeqCst) {
                return Err(TrainError::Interrupted);
            }
            demos.shuffle(&mut rng);
            let batch: Vec<Trajectory> = demos.iter().take(cfg.batch_size).cloned().collect();
            let packed = flatten_packed(&batch)?;
            let n = packed.num_policy_tokens().max(1) as f32;
            let mask = packed.loss_mask.clone();
            let loss = self.policy.forward_backward(&packed, Support::Full, |lp| {
                let dlp: Vec<f32> = mask
                    .iter()
                    .map(|&m| if m == 1 { -1.0 / n } else { 0.0 })
                    .collect();
                let loss = -lp
                    .iter()
                    .zip(&mask)
                    .filter(|(_, m)| **m == 1)
                    .map(|(l, _)| *l as f64)
                    .sum::<f64>()
                    / n as f64;
                Ok((dlp, loss))
            })?;
            let lr = cfg.lr * ((step + 1) as f32 / ramp as f32).min(1.0);
            optimizer_step(&mut self.policy, &mut *opt, lr, Some(1.0))?;
            pb.inc(1);
            pb.set_message(format!("loss {loss:.3}"));
            if step % 10 == 0 || step + 1 == cfg.steps {
                metrics.write(&serde_json::json!({"phase": "warmup", "warmup_step": step, "loss": loss, "lr": lr}))?;
            }
        }
        pb.finish_and_clear();
        Ok(())
    }

    /// One RL step: rollouts, advantages, PPO-style epochs over mini-batches.
    ///
    /// # Errors
    /// Environment, model, objective and optimizer failures; too many
    /// non-finite losses in a row.
    pub fn rl_step(&mut self, step: usize) -> Result<serde_json::Value, TrainError> {
        let t0 = Instant::now();
        let rl = self.config.rl.clone();
        let seed = mix(self.config.seed, step as u64 + 1);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut picks: Vec<&Task> = self.train.iter().collect();
        picks.shuffle(&mut rng);
        picks.truncate(rl.tasks_per_step.min(self.train.len()));
        let tasks: Vec<&Task> = picks
            .iter()
            .flat_map(|t| std::iter::repeat_n(*t, rl.group_size))
            .collect();
        let episodes = self.episodes(&tasks, rl.temperature, seed, &format!("s{step}"))?;
        let t_rollout = t0.elapsed().as_secs_f64();
        let stats = EpisodeStats::of(&episodes);
        if self.config.save_rollouts {
            let dir = self.run_dir().join("rollouts");
            std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
            let path = dir.join(format!("step-{step:06}.jsonl"));
            let mut w = flowrl_trajectory::JsonlWriter::create(&path)
                .map_err(|e| TrainError::io(&path, e))?;
            for e in &episodes {
                w.write(&e.trajectory)
                    .map_err(|e| TrainError::io(&path, e))?;
            }
            w.finish().map_err(|e| TrainError::io(&path, e))?;
        }

        let rewards: Vec<f64> = episodes.iter().map(|e| e.trajectory.reward).collect();
        let task_ids: Vec<&str> = episodes
            .iter()
            .map(|e| e.trajectory.task_id.as_str())
            .collect();
        let sources: Vec<&str> = episodes
            .iter()
            .map(|e| e.trajectory.data_source.as_str())
            .collect();
        let adv: Vec<f64> = advantages_by_key(&rewards, &task_ids, &sources, &self.algo.advantage)?;

        // Mini-batches by trajectory, with old (and reference) log-probs taken
        // before any update of this step.
        let mut order: Vec<usize> = (0..episodes.len()).collect();
        order.shuffle(&mut rng);
        let per = order.len().div_ceil(rl.minibatches);
        struct Mb {
            batch: PackedBatch,
            adv: Vec<f32>,
            old: Vec<f32>,
            reference: Option<Vec<f32>>,
        }
        let support = rl.logprob_support();
        if self.algo.objective.kl_coef != 0.0 && self.reference.is_none() {
            return Err(TrainError::config(
                "algorithm.objective.kl_coef",
                "a KL term needs the reference policy, which is set when the run starts",
            ));
        }
        let mut mbs = Vec::new();
        for chunk in order.chunks(per.max(1)) {
            let trajs: Vec<Trajectory> = chunk
                .iter()
                .map(|&i| episodes[i].trajectory.clone())
                .collect();
            let batch = flatten_packed(&trajs)?;
            let old = self.policy.logprobs(&batch, support)?;
            let reference = match &self.reference {
                Some(Reference::Copy(m)) => Some(logprobs_of(m, &batch, support)?),
                Some(Reference::Base) => Some(
                    self.policy
                        .model
                        .with_lora_disabled(|m| logprobs_of(m, &batch, support))?,
                ),
                None => None,
            };
            mbs.push(Mb {
                batch,
                adv: chunk.iter().map(|&i| adv[i] as f32).collect(),
                old,
                reference,
            });
        }
        let t_old = t0.elapsed().as_secs_f64() - t_rollout;
        // Entropy of the policy on its own samples, estimated as the mean
        // negative log-prob (temperature 1) of the sampled policy tokens.
        let (nll, policy_tokens) = mbs.iter().fold((0.0f64, 0usize), |(s, n), mb| {
            mb.batch
                .loss_mask
                .iter()
                .zip(&mb.old)
                .filter(|(m, lp)| **m != 0 && lp.is_finite())
                .fold((s, n), |(s, n), (_, lp)| (s - f64::from(*lp), n + 1))
        });
        let entropy = if policy_tokens == 0 {
            f64::NAN
        } else {
            nll / policy_tokens as f64
        };

        let mut losses = Vec::new();
        let mut clip = Vec::new();
        let mut kls = Vec::new();
        let mut norms = Vec::new();
        let mut lr = 0.0;
        let mut skipped = 0usize;
        for _epoch in 0..rl.ppo_epochs {
            for mb in &mbs {
                let objective = self.algo.objective;
                // A non-finite log-prob or loss skips the update (zero
                // gradient) and counts as a bad step.
                let result = self.policy.forward_backward(&mb.batch, support, |lp| {
                    let mut tb = TokenBatch::from_packed(&mb.batch, lp, &mb.old, &mb.adv);
                    if let Some(r) = &mb.reference {
                        tb = tb.with_ref(r);
                    }
                    match compute(&tb, &objective) {
                        Ok(out) if out.loss.is_finite() => {
                            Ok((out.grad, Some((out.loss, out.stats))))
                        }
                        Ok(_) | Err(ObjectiveError::NonFinite { .. }) => {
                            Ok((vec![0.0; lp.len()], None))
                        }
                        Err(e) => Err(e.into()),
                    }
                })?;
                let Some((loss, lstats)) = result else {
                    self.bad_steps += 1;
                    skipped += 1;
                    tracing::warn!(
                        step,
                        bad = self.bad_steps,
                        "non-finite log-probs or loss; update skipped"
                    );
                    if self.bad_steps >= self.config.max_bad_steps {
                        return Err(TrainError::Diverged(self.bad_steps));
                    }
                    continue;
                };
                self.bad_steps = 0;
                lr = self.config.optim.lr_at(self.updates);
                norms.push(self.apply_grads(lr)?);
                losses.push(loss);
                clip.push(lstats.clip_frac_subseq);
                kls.push(lstats.kl.unwrap_or(lstats.approx_kl));
            }
        }
        let mean = |v: &[f64]| {
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let t_total = t0.elapsed().as_secs_f64();
        Ok(serde_json::json!({
            "phase": "rl",
            "step": step,
            "reward_mean": stats.reward_mean,
            "reward_std": stats.reward_std,
            "accuracy": stats.accuracy,
            "format_rate": stats.format_rate,
            "turns_mean": stats.turns_mean,
            "policy_tokens_mean": stats.policy_tokens_mean,
            "operator_usage": stats.operator_usage,
            "reward_by_family": stats.reward_by_family,
            "loss": mean(&losses),
            "clip_frac": mean(&clip),
            "kl": mean(&kls),
            "entropy": entropy,
            "grad_norm": mean(&norms),
            "lr": lr,
            "skipped_updates": skipped,
            "time": {"rollout": t_rollout, "old_logprobs": t_old, "update": t_total - t_rollout - t_old, "total": t_total},
        }))
    }

    fn save(&self) -> Result<(), TrainError> {
        checkpoint::save(
            &self.run_dir().join("checkpoints"),
            &self.policy.model,
            match &self.reference {
                Some(Reference::Copy(m)) => Some(&**m),
                _ => None,
            },
            &*self.optimizer,
            &self.state,
        )?;
        Ok(())
    }

    /// The whole run: warm-up, evaluation, RL steps with periodic evaluation
    /// and checkpoints, final evaluation and the curve.
    ///
    /// # Errors
    /// Any failure of the parts; on Ctrl-C (`interrupt` set) a checkpoint is
    /// saved and [`TrainError::Interrupted`] returned.
    pub fn run(&mut self, interrupt: &AtomicBool) -> Result<RunSummary, TrainError> {
        let start = Instant::now();
        let dir = self.run_dir();
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        let cfg_path = dir.join("config.json");
        std::fs::write(
            &cfg_path,
            serde_json::to_string_pretty(&self.config).unwrap_or_default(),
        )
        .map_err(|e| TrainError::io(&cfg_path, e))?;
        let metrics_path = dir.join("metrics.jsonl");
        if self.state.step == 0 && !self.state.warmup_done {
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path)
                    .map_err(|e| TrainError::io(&metrics_path, e))?;
            }
        } else {
            truncate_metrics(&metrics_path, self.state.step)?;
        }
        let mut metrics = MetricsWriter::open(&metrics_path)?;
        if !self.state.warmup_done {
            tracing::info!(steps = self.config.warmup.steps, "supervised warm-up");
            self.warmup(&mut metrics, interrupt)?;
            self.state.warmup_done = true;
        }
        if self.config.rl.reference && self.reference.is_none() {
            // The KL anchor is the policy RL starts from: in LoRA mode the
            // frozen base itself.
            self.reference = Some(if self.config.rl.lora.is_some() {
                Reference::Base
            } else {
                Reference::Copy(Box::new(self.policy.model.clone()))
            });
        }
        if let Some(lora) = &self.config.rl.lora
            && self.policy.mode == GradMode::Full
        {
            // RL trains adapters on top of the warmed-up weights.
            self.policy.model.attach_lora(lora)?;
            self.policy.mode = GradMode::Lora;
        }
        let before = match self.state.eval_before {
            Some(r) => EpisodeStats {
                reward_mean: r,
                ..EpisodeStats::default()
            },
            None => {
                let s = self.evaluate()?;
                metrics.write(&eval_record(0, &s))?;
                self.state.eval_before = Some(s.reward_mean);
                self.save()?;
                s
            }
        };
        tracing::info!(
            reward = before.reward_mean,
            accuracy = before.accuracy,
            "held-out before RL"
        );
        let steps = self.config.rl.steps;
        let pb = bar(steps, "RL", self.progress);
        pb.set_position(self.state.step as u64);
        while self.state.step < steps {
            if interrupt.load(Ordering::SeqCst) {
                self.save()?;
                pb.abandon();
                return Err(TrainError::Interrupted);
            }
            let step = self.state.step;
            let rec = self.rl_step(step)?;
            pb.set_message(format!(
                "reward {:.3}",
                rec["reward_mean"].as_f64().unwrap_or(f64::NAN)
            ));
            metrics.write(&rec)?;
            self.state.step += 1;
            pb.inc(1);
            let every = self.config.eval.every;
            if every > 0 && self.state.step.is_multiple_of(every) && self.state.step < steps {
                let s = self.evaluate()?;
                metrics.write(&eval_record(self.state.step, &s))?;
            }
            let ck = self.config.checkpoint_every;
            if ck > 0 && self.state.step.is_multiple_of(ck) {
                self.save()?;
            }
        }
        pb.finish_and_clear();
        let after = self.evaluate()?;
        metrics.write(&eval_record(steps, &after))?;
        self.save()?;
        self.write_curve()?;
        let accuracy_before = read_metrics(&metrics_path)?
            .iter()
            .find(|r| r["phase"] == "eval" && r["step"] == 0)
            .and_then(|r| r["accuracy"].as_f64())
            .unwrap_or(before.accuracy);
        Ok(RunSummary {
            run_dir: dir,
            eval_before: before.reward_mean,
            eval_after: after.reward_mean,
            accuracy_before,
            accuracy_after: after.accuracy,
            steps,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Writes `curve.svg` from `metrics.jsonl`.
    ///
    /// # Errors
    /// I/O errors naming the path.
    pub fn write_curve(&self) -> Result<(), TrainError> {
        let dir = self.run_dir();
        let recs = read_metrics(&dir.join("metrics.jsonl"))?;
        let pick = |phase: &str| -> Vec<(f64, f64)> {
            recs.iter()
                .filter(|r| r["phase"] == phase)
                .filter_map(|r| Some((r["step"].as_f64()?, r["reward_mean"].as_f64()?)))
                .collect()
        };
        let text = svg(
            &format!(
                "flowrl {} — {:?} on {:?}",
                self.config.name, self.config.preset, self.config.env
            ),
            "RL step",
            "mean reward",
            &[
                Series {
                    label: "rollout reward (train)".into(),
                    color: "#1f77b4".into(),
                    points: pick("rl"),
                    markers: false,
                },
                Series {
                    label: "held-out reward (greedy)".into(),
                    color: "#d62728".into(),
                    points: pick("eval"),
                    markers: true,
                },
            ],
        );
        let path = dir.join("curve.svg");
        std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))
    }
}

/// The metrics line of a held-out evaluation after `step` RL steps.
fn eval_record(step: usize, s: &EpisodeStats) -> serde_json::Value {
    serde_json::json!({
        "phase": "eval",
        "step": step,
        "reward_mean": s.reward_mean,
        "accuracy": s.accuracy,
        "format_rate": s.format_rate,
        "reward_by_family": s.reward_by_family,
        "operator_usage": s.operator_usage,
    })
}

/// Clips the policy's gradients to `max_norm` (when set) and applies one
/// optimizer step at `lr`; returns the gradient norm before clipping.
fn optimizer_step(
    policy: &mut Policy,
    optimizer: &mut dyn Optimizer,
    lr: f32,
    max_norm: Option<f64>,
) -> Result<f64, TrainError> {
    let mut params = policy.model.trainable_mut(policy.mode);
    let norm = match max_norm {
        Some(max) => {
            let mut grads: Vec<&mut [f32]> =
                params.iter_mut().map(|p| p.grad.as_mut_slice()).collect();
            clip_grad_norm(&mut grads, max)?
        }
        None => {
            flowrl_optim::grad_norm(&params.iter().map(|p| p.grad.as_slice()).collect::<Vec<_>>())
        }
    };
    let mut views: Vec<ParamMut<'_>> = params
        .iter_mut()
        .map(|p| {
            let (name, value, grad) = p.parts_mut();
            ParamMut::new(name, value, grad)
        })
        .collect();
    optimizer.step(&mut views, lr)?;
    Ok(norm)
}

fn make_env(config: &TrainConfig, services: &Services) -> Box<dyn Env> {
    match config.env {
        EnvKind::ThinkAction => Box::new(ThinkActionEnv::new(
            config.think_action.clone(),
            services.clone(),
        )),
        EnvKind::Canvas => Box::new(CanvasEnv::new(config.canvas.clone(), services.clone())),
    }
}

/// Loads or generates the train and held-out tasks.
///
/// # Errors
/// Data errors naming the file and line.
pub fn load_tasks(config: &TrainConfig) -> Result<(Vec<Task>, Vec<Task>), TrainError> {
    match &config.data {
        DataSpec::Suite { config: sc } => {
            let suite = generate_suite(sc)?;
            Ok((suite.train, suite.heldout))
        }
        DataSpec::Files {
            files,
            heldout_fraction,
        } => {
            let mut all = Vec::new();
            for f in files {
                if !f.path.is_file() {
                    return Err(TrainError::config(
                        "data.files",
                        format!("no such file: {}", f.path.display()),
                    ));
                }
                let format = DatasetFormat::parse(&f.format)?;
                all.extend(load_file(&f.path, format, None)?);
            }
            let mut rng = StdRng::seed_from_u64(mix(config.seed, 7));
            all.shuffle(&mut rng);
            let n_held = ((all.len() as f64) * heldout_fraction).round().max(1.0) as usize;
            let heldout = all.split_off(all.len().saturating_sub(n_held));
            if all.is_empty() {
                return Err(TrainError::config(
                    "data.files",
                    "no training tasks are left after the held-out split",
                ));
            }
            Ok((all, heldout))
        }
    }
}
