//! Property tests of the trajectory model and its batch layouts.

use std::collections::BTreeMap;

use flowrl_trajectory::{PackedBatch, Role, Span, Trajectory, flatten_packed};
use proptest::prelude::*;

/// A policy span with 1..6 tokens and valid log-probs (or none).
fn policy_span(with_lp: bool) -> impl Strategy<Value = Span> {
    prop::collection::vec((0u32..50_000, -30.0f32..=0.0), 1..6).prop_map(move |v| {
        let (tokens, lps): (Vec<u32>, Vec<f32>) = v.into_iter().unzip();
        Span::policy(
            format!("turn {}", tokens.len()),
            tokens,
            with_lp.then_some(lps),
        )
    })
}

fn context_span(role: Role, min: usize) -> impl Strategy<Value = Span> {
    (
        prop::collection::vec(0u32..50_000, min..5),
        "[a-z <>/]{0,12}",
    )
        .prop_map(move |(tokens, text)| Span {
            role,
            text,
            tokens,
            logprobs: None,
        })
}

/// A window: a prompt (≥1 token) then 1..4 policy turns, environment spans between some.
fn window(with_lp: bool) -> impl Strategy<Value = Vec<Span>> {
    (
        context_span(Role::Prompt, 1),
        prop::collection::vec(
            (
                policy_span(with_lp),
                prop::option::of(context_span(Role::Environment, 0)),
            ),
            1..4,
        ),
    )
        .prop_map(|(p, turns)| {
            let mut v = vec![p];
            for (pol, env) in turns {
                v.push(pol);
                v.extend(env);
            }
            v
        })
}

prop_compose! {
    fn trajectory()(with_lp in any::<bool>())(
        windows in prop::collection::vec(window(with_lp), 1..3),
        id in "[a-z0-9]{1,8}",
        task in "[a-z]{1,4}",
        source in prop::sample::select(vec!["gsm8k", "hotpotqa", "mbpp", ""]),
        group in prop::option::of("[a-z]{1,3}"),
        reward in -1.0f64..1.0,
        meta in prop::option::of(any::<i32>()),
    ) -> Trajectory {
        let mut metadata = BTreeMap::new();
        if let Some(m) = meta {
            metadata.insert("calls".to_string(), serde_json::json!({"n": m, "ops": ["Review"]}));
        }
        Trajectory {
            id,
            task_id: task,
            data_source: source.to_string(),
            group_key: group,
            spans: windows.into_iter().flatten().collect(),
            reward,
            metadata,
        }
    }
}

fn batch() -> impl Strategy<Value = Vec<Trajectory>> {
    prop::collection::vec(trajectory(), 1..6)
}

proptest! {
    #[test]
    fn json_round_trip_is_lossless(t in trajectory()) {
        let s = serde_json::to_string(&t).unwrap();
        let back: Trajectory = serde_json::from_str(&s).unwrap();
        prop_assert_eq!(back, t);
    }

    #[test]
    fn generated_trajectories_are_valid(t in trajectory()) {
        prop_assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn every_policy_token_lands_in_exactly_one_subseq(ts in batch()) {
        let b = flatten_packed(&ts).unwrap();
        let policy_tokens: usize = ts.iter().map(|t| t.tokens_of(Role::Policy)).sum();
        // Loss positions are exactly the policy tokens, each with one valid id.
        prop_assert_eq!(b.num_policy_tokens(), policy_tokens);
        let mut counts = vec![0usize; b.num_subseqs()];
        for (j, &s) in b.subseq.iter().enumerate() {
            prop_assert_eq!(s >= 0, b.loss_mask[j] == 1);
            if s >= 0 {
                counts[s as usize] += 1;
                prop_assert_eq!(b.subseq_traj[s as usize] as i32, b.traj[j]);
            }
        }
        prop_assert_eq!(counts, b.subseq_len.clone());
    }

    #[test]
    fn subseq_count_equals_policy_turns(ts in batch()) {
        let b = flatten_packed(&ts).unwrap();
        prop_assert_eq!(b.num_subseqs(), ts.iter().map(Trajectory::num_turns).sum::<usize>());
        for (i, t) in ts.iter().enumerate() {
            prop_assert_eq!(b.traj_subseq[i + 1] - b.traj_subseq[i], t.num_turns());
        }
    }

    #[test]
    fn flatten_then_unflatten_is_identity(ts in batch()) {
        let b = flatten_packed(&ts).unwrap();
        // Policy tokens come back per trajectory and turn.
        let tokens = b.unflatten(&b.target_ids).unwrap();
        let lps = b.sampler_logprobs.as_ref().map(|v| b.unflatten(v).unwrap());
        for (i, t) in ts.iter().enumerate() {
            let policy: Vec<&Span> = t.spans.iter().filter(|s| s.role == Role::Policy).collect();
            prop_assert_eq!(tokens[i].len(), policy.len());
            for (k, s) in policy.iter().enumerate() {
                prop_assert_eq!(&tokens[i][k], &s.tokens);
                if let Some(l) = &lps {
                    prop_assert_eq!(Some(&l[i][k]), s.logprobs.as_ref());
                }
            }
        }
        // Rows give back every context window's full token sequence.
        let mut row = 0;
        for (i, t) in ts.iter().enumerate() {
            let mut windows: Vec<Vec<u32>> = Vec::new();
            for s in &t.spans {
                if s.role == Role::Prompt {
                    windows.push(Vec::new());
                }
                windows.last_mut().unwrap().extend_from_slice(&s.tokens);
            }
            for w in windows {
                prop_assert_eq!(b.row_traj[row], i);
                prop_assert_eq!(b.row_tokens(row).unwrap(), w);
                row += 1;
            }
        }
        prop_assert_eq!(row, b.num_rows());
    }

    #[test]
    fn padded_and_packed_carry_the_same_tokens(ts in batch(), pad in any::<u32>()) {
        let b = flatten_packed(&ts).unwrap();
        let p = b.to_padded(pad).unwrap();
        prop_assert_eq!(p.rows, b.num_rows());
        let mut packed_again = PackedBatch { ..b.clone() };
        packed_again.input_ids.clear();
        for r in 0..p.rows {
            let (s, e) = (b.offsets[r], b.offsets[r + 1]);
            prop_assert_eq!(p.row_inputs(r).unwrap(), &b.input_ids[s..e]);
            let d = r * p.width;
            prop_assert_eq!(&p.target_ids[d..d + p.lengths[r]], &b.target_ids[s..e]);
            prop_assert_eq!(&p.subseq[d..d + p.lengths[r]], &b.subseq[s..e]);
            prop_assert_eq!(&p.loss_mask[d..d + p.lengths[r]], &b.loss_mask[s..e]);
            prop_assert_eq!(&p.traj[d..d + p.lengths[r]], &b.traj[s..e]);
            for j in p.lengths[r]..p.width {
                prop_assert_eq!(p.input_ids[d + j], pad);
                prop_assert_eq!(p.loss_mask[d + j], 0);
                prop_assert_eq!(p.subseq[d + j], -1);
                prop_assert_eq!(p.traj[d + j], -1);
            }
            packed_again.input_ids.extend_from_slice(p.row_inputs(r).unwrap());
        }
        prop_assert_eq!(packed_again, b);
    }

    #[test]
    fn jsonl_round_trip(ts in batch()) {
        let mut w = flowrl_trajectory::JsonlWriter::new(Vec::new());
        for t in &ts { w.write(t).unwrap(); }
        let bytes = w.finish().unwrap();
        let r = flowrl_trajectory::JsonlReport::read(&bytes[..], flowrl_trajectory::ReadMode::Strict).unwrap();
        prop_assert_eq!(r.trajectories, ts);
    }
}
