//! Typed errors, advantage estimators and configs.

mod common;

use common::{Layout, assert_close};
use flowrl_objectives::{
    AdvantageConfig, Aggregation, Algorithm, Baseline, GroupKey, KlEstimator, LossRequest,
    ObjectiveConfig, ObjectiveError, Preset, StdScaling, TokenBatch, advantages_by_key, compute,
    group_advantages,
};

fn cfg() -> ObjectiveConfig {
    ObjectiveConfig {
        kl_coef: 0.0,
        ..Preset::WorkflowR1.config().objective
    }
}

#[test]
fn layout_errors_are_typed() {
    let lp = [-1.0f64, -1.0, -1.0];
    let adv = [1.0f64];
    let ok_mask = [0u8, 1, 1];
    let ok_sub = [-1, 0, 0];
    let traj = [0, 0, 0];
    let run = |mask: &[u8], sub: &[i32], traj: &[i32], adv: &[f64], lp: &[f64]| {
        compute(
            &TokenBatch::new(lp, &[-1.0, -1.0, -1.0], mask, sub, traj, adv),
            &cfg(),
        )
        .err()
    };
    assert!(run(&ok_mask, &ok_sub, &traj, &adv, &lp).is_none());
    assert_eq!(
        run(&ok_mask, &[-1, 0], &traj, &adv, &lp),
        Some(ObjectiveError::LengthMismatch {
            field: "subseq",
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        run(&[1, 1, 1], &[-1, 0, 0], &traj, &adv, &lp),
        Some(ObjectiveError::MissingSubseq {
            index: 0,
            subseq: -1
        })
    );
    assert_eq!(
        run(&ok_mask, &[0, 0, 0], &traj, &adv, &lp),
        Some(ObjectiveError::SubseqOnMaskedToken {
            index: 0,
            subseq: 0
        })
    );
    assert_eq!(
        run(&ok_mask, &[-1, 0, 7], &traj, &adv, &lp),
        Some(ObjectiveError::SubseqOutOfRange {
            index: 2,
            subseq: 7,
            len: 3
        })
    );
    assert_eq!(
        run(&ok_mask, &ok_sub, &[0, 0, 1], &adv, &lp),
        Some(ObjectiveError::MissingAdvantage {
            index: 2,
            traj: 1,
            available: 1
        })
    );
    assert_eq!(
        run(&ok_mask, &ok_sub, &[0, 0, 1], &[1.0, 2.0], &lp),
        Some(ObjectiveError::SubseqInTwoTrajectories {
            subseq: 0,
            first: 0,
            second: 1
        })
    );
    assert_eq!(
        run(&[0, 0, 0], &[-1, -1, -1], &traj, &adv, &lp),
        Some(ObjectiveError::EmptyBatch(
            "no policy token (mask is all 0)"
        ))
    );
    assert!(matches!(
        run(&[], &[], &[], &adv, &[]),
        Some(ObjectiveError::EmptyBatch(_))
    ));
    assert!(matches!(
        run(&ok_mask, &ok_sub, &traj, &adv, &[-1.0, f64::NAN, -1.0]),
        Some(ObjectiveError::NonFinite {
            field: "logprobs",
            index: 1,
            ..
        })
    ));
    // NaN at a masked-out position is never read.
    assert!(run(&ok_mask, &ok_sub, &traj, &adv, &[f64::NAN, -1.0, -1.0]).is_none());
    assert!(matches!(
        run(&ok_mask, &ok_sub, &traj, &[f64::INFINITY], &lp),
        Some(ObjectiveError::NonFinite {
            field: "advantages",
            index: 0,
            ..
        })
    ));
}

#[test]
fn missing_inputs_and_bad_configs_are_typed() {
    let l = Layout::new(&[vec![2]], 0);
    let lp = [-1.0f64, -2.0];
    let b = TokenBatch::new(&lp, &lp, &l.mask, &l.subseq, &l.traj, &[1.0]);
    let with_kl = Preset::WorkflowR1.config().objective;
    assert!(matches!(
        compute(&b, &with_kl),
        Err(ObjectiveError::MissingInput {
            field: "ref_logprobs",
            ..
        })
    ));
    let ent = ObjectiveConfig {
        entropy_coef: 0.01,
        ..cfg()
    };
    assert!(matches!(
        compute(&b, &ent),
        Err(ObjectiveError::MissingInput {
            field: "entropy",
            ..
        })
    ));
    for (bad, field) in [
        (
            ObjectiveConfig {
                clip_low: 1.0,
                ..cfg()
            },
            "clip_low",
        ),
        (
            ObjectiveConfig {
                clip_high: -0.1,
                ..cfg()
            },
            "clip_high",
        ),
        (
            ObjectiveConfig {
                dual_clip: Some(0.5),
                ..cfg()
            },
            "dual_clip",
        ),
        (
            ObjectiveConfig {
                kl_coef: f64::NAN,
                ..cfg()
            },
            "kl_coef",
        ),
        (
            ObjectiveConfig {
                loss_agg_horizon: Some(0),
                ..cfg()
            },
            "loss_agg_horizon",
        ),
    ] {
        match compute(&b, &bad) {
            Err(ObjectiveError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn grpo_advantages() {
    let r = [1.0f64, 0.0, 0.0, 1.0, 0.5];
    let g = ["a", "a", "a", "a", "b"];
    let a = group_advantages(&r, &g, &AdvantageConfig::grpo()).unwrap();
    let std = (1.0f64 / 3.0).sqrt();
    assert_close(a[0], 0.5 / (std + 1e-6), 1e-12, 0.0, "a0");
    assert_close(a[1], -0.5 / (std + 1e-6), 1e-12, 0.0, "a1");
    assert_eq!(a[4], 0.0, "a group of one gets 0");
    let dr = AdvantageConfig {
        scaling: StdScaling::None,
        ..AdvantageConfig::grpo()
    };
    let a = group_advantages(&r, &g, &dr).unwrap();
    assert_eq!(&a[..4], &[0.5, -0.5, -0.5, 0.5]);
    // All equal: zero advantages, no division by zero.
    let a = group_advantages(&[0.3f32, 0.3], &[1, 1], &AdvantageConfig::grpo()).unwrap();
    assert_eq!(a, vec![0.0, 0.0]);
}

#[test]
fn per_source_and_rloo_advantages() {
    let r = [1.0f64, 0.0, 0.2, 0.2000001];
    let sources = ["gsm8k", "gsm8k", "hotpotqa", "hotpotqa"];
    let tasks = ["t1", "t2", "t3", "t4"];
    let a = advantages_by_key(&r, &tasks, &sources, &AdvantageConfig::per_source()).unwrap();
    // Population std of {1, 0} is 0.5.
    assert_close(a[0], 1.0, 1e-12, 0.0, "gsm8k hi");
    assert_close(a[1], -1.0, 1e-12, 0.0, "gsm8k lo");
    // σ = 5e-8 < floor 0.01.
    assert_close(a[2], -0.5e-7 / 0.01, 1e-12, 1e-6, "floored");
    // Grouped by task, every group is a singleton.
    let by_task = AdvantageConfig {
        group_key: GroupKey::Task,
        ..AdvantageConfig::per_source()
    };
    assert!(
        advantages_by_key(&r, &tasks, &sources, &by_task)
            .unwrap()
            .iter()
            .all(|&x| x == 0.0)
    );
    let both = AdvantageConfig {
        group_key: GroupKey::TaskAndSource,
        ..AdvantageConfig::per_source()
    };
    let tasks2 = ["t", "t", "t", "u"];
    let a = advantages_by_key(&r, &tasks2, &sources, &both).unwrap();
    assert_close(a[0], 1.0, 1e-12, 0.0, "both");
    assert_eq!(a[2], 0.0);
    assert_eq!(a[3], 0.0);
    // RLOO: R − mean of the others.
    let a = group_advantages(&[1.0f64, 0.0, 0.5], &[0, 0, 0], &AdvantageConfig::rloo()).unwrap();
    assert_close(a[0], 1.0 - 0.25, 1e-15, 0.0, "rloo 0");
    assert_close(a[1], 0.0 - 0.75, 1e-15, 0.0, "rloo 1");
    assert_eq!(AdvantageConfig::rloo().baseline, Baseline::LeaveOneOut);
    assert!(matches!(
        group_advantages(&[1.0f64, f64::NAN], &[0, 0], &AdvantageConfig::grpo()),
        Err(ObjectiveError::NonFinite {
            field: "rewards",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        group_advantages(&[1.0f64], &[0, 0], &AdvantageConfig::grpo()),
        Err(ObjectiveError::LengthMismatch {
            field: "groups",
            ..
        })
    ));
}

#[test]
fn presets_and_names() {
    let w = Preset::WorkflowR1.config();
    assert_eq!(w.objective.algorithm, Algorithm::Gsspo);
    assert_eq!(w.objective.aggregation, Aggregation::TrajMeanSubseqMean);
    assert_eq!((w.objective.clip_low, w.objective.clip_high), (0.2, 0.2));
    assert_eq!(
        (w.objective.kl_coef, w.objective.kl_estimator),
        (0.001, KlEstimator::K3)
    );
    let f = Preset::Flowsteer.config();
    assert_eq!(f.objective.algorithm, Algorithm::Cwrpo);
    assert_eq!(f.objective.kl_coef, 0.005);
    assert_eq!(f.advantage.scaling, StdScaling::Population);
    assert_eq!(f.advantage.std_floor, 0.01);
    assert_eq!(f.advantage.group_key, GroupKey::Source);
    let g = Preset::Gspo.config().objective;
    assert_eq!((g.clip_low, g.clip_high), (3e-4, 4e-4));
    assert_eq!(Preset::Grpo.config().objective.dual_clip, Some(3.0));
    assert_eq!(
        Algorithm::Reinforce.default_config().objective.algorithm,
        Algorithm::Reinforce
    );
    for p in Preset::ALL {
        let c = p.config();
        c.objective.validate().unwrap();
        let text = serde_json::to_string(&c).unwrap();
        let back: flowrl_objectives::AlgorithmConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(p.as_str().parse::<Preset>().unwrap(), *p);
    }
    for a in Aggregation::ALL {
        let json = serde_json::to_string(a).unwrap();
        assert_eq!(json, format!("\"{}\"", a.as_str()));
    }
    let e = "token-sum".parse::<Aggregation>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "`aggregation`: unknown value `token-sum`, expected one of: token-mean, \
         seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm, \
         traj-mean-subseq-mean, subseq-mean"
    );
    let schema = schemars::schema_for!(flowrl_objectives::AlgorithmConfig);
    let text = serde_json::to_string(&schema).unwrap();
    assert!(text.contains("traj-mean-subseq-mean") && text.contains("clip_high"));
}

#[test]
fn request_defaults_and_rewards() {
    let req: LossRequest = serde_json::from_str(
        r#"{"algorithm": "gsspo", "config": {"kl_coef": 0.0, "aggregation": "subseq-mean"},
            "logprobs": [0, -1.0, -1.1, -0.9], "old_logprobs": [0, -1.0, -1.0, -1.0],
            "mask": [0, 1, 1, 1], "subseq": [-1, 0, 0, 1], "traj": [0, 0, 0, 1],
            "rewards": [1.0, 0.0], "groups": ["q", "q"]}"#,
    )
    .unwrap();
    let c = req.objective_config().unwrap();
    assert_eq!(c.aggregation, Aggregation::SubseqMean);
    assert_eq!(c.clip_low, 0.2);
    let out = req.evaluate().unwrap();
    let a = 0.5 / ((0.5f64).sqrt() + 1e-6);
    assert_close(out.advantages[0], a, 1e-12, 0.0, "adv");
    assert_eq!(out.grad.len(), 4);
    let bad = LossRequest {
        algorithm: "ppo".into(),
        ..req.clone()
    };
    let e = bad.evaluate().unwrap_err().to_string();
    assert!(
        e.contains("`algorithm`") && e.contains("grpo, gspo, gsspo, cwrpo, reinforce"),
        "{e}"
    );
    let no_adv = LossRequest {
        rewards: None,
        groups: None,
        ..req
    };
    assert!(matches!(
        no_adv.evaluate(),
        Err(ObjectiveError::MissingInput {
            field: "advantages",
            ..
        })
    ));
}
