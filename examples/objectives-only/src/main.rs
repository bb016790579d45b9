//! Builds a small token batch by hand, computes GRPO group advantages from
//! rewards and evaluates the GSsPO loss (Workflow-R1 preset) with its
//! gradient — using nothing but `flowrl-objectives`.

use flowrl_objectives::{ObjectiveError, Preset, TokenBatch, compute, group_advantages};

fn main() -> Result<(), ObjectiveError> {
    // Two rollouts of one task. Positions: prompt (mask 0), policy turn 0,
    // a tool result (mask 0), policy turn 1; then the second trajectory.
    let mask: Vec<u8> = vec![0, 1, 1, 1, 0, 0, 1, 1, /* traj 1 */ 0, 1, 1, 0, 1];
    let subseq: Vec<i32> = vec![-1, 0, 0, 0, -1, -1, 1, 1, /* */ -1, 2, 2, -1, 3];
    let traj: Vec<i32> = vec![0, 0, 0, 0, 0, 0, 0, 0, /* */ 1, 1, 1, 1, 1];
    // Log-probs of the sampling policy and of the policy being trained.
    let old: Vec<f32> = vec![
        0.0, -1.2, -0.4, -2.0, 0.0, 0.0, -0.7, -0.3, 0.0, -1.5, -0.9, 0.0, -0.2,
    ];
    let lp: Vec<f32> = vec![
        0.0, -1.1, -0.45, -1.9, 0.0, 0.0, -0.6, -0.35, 0.0, -1.6, -0.8, 0.0, -0.25,
    ];
    let reference = old.clone();

    // Rewards → advantages (GRPO: group mean, unbiased std, ε = 1e-6).
    let preset = Preset::WorkflowR1.config();
    let rewards = [1.0f32, -0.5];
    let groups = ["task-17", "task-17"];
    let advantages = group_advantages(&rewards, &groups, &preset.advantage)?;
    println!("advantages: {advantages:?}");

    let batch = TokenBatch::new(&lp, &old, &mask, &subseq, &traj, &advantages).with_ref(&reference);
    let out = compute(&batch, &preset.objective)?;
    println!("loss: {:.6}", out.loss);
    println!("grad: {:?}", out.grad);
    println!(
        "ratio mean {:.4} (per {:?}), clipped sub-sequences {}/{}, approx KL {:.5}",
        out.stats.ratio_mean,
        out.stats.ratio_unit,
        out.stats.num_clipped_subseqs,
        out.stats.num_subseqs,
        out.stats.approx_kl
    );
    Ok(())
}
