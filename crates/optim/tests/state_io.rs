//! Saving and restoring optimizer state: exact resumption and typed errors
//! on damaged files.

use std::collections::BTreeMap;

use flowrl_optim::state::{FORMAT_VERSION, MAGIC};
use flowrl_optim::{
    AdamW, AdamWConfig, GroupConfig, OptimError, Optimizer, OptimizerConfig, OptimizerState,
    ParamGroups, ParamMut, ParamState, ScheduleConfig, Sgd, SgdConfig,
};
use proptest::prelude::*;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// A two-parameter model trained for `steps` updates from `start`.
struct Model {
    emb: Vec<f32>,
    norm: Vec<f32>,
}

impl Model {
    fn new() -> Self {
        Model {
            emb: values(70_000, 1),
            norm: values(33, 2),
        }
    }

    fn train(
        &mut self,
        opt: &mut dyn Optimizer,
        schedule: &ScheduleConfig,
        steps: std::ops::Range<u64>,
    ) {
        for s in steps {
            let ge = values(self.emb.len(), 1000 + s);
            let gn = values(self.norm.len(), 2000 + s);
            let lr = schedule.lr_at(opt.peak_lr(), s);
            opt.step(
                &mut [
                    ParamMut::new("model.embed.weight", &mut self.emb, &ge),
                    ParamMut::new("model.norm.weight", &mut self.norm, &gn),
                ],
                lr,
            )
            .unwrap();
        }
    }

    fn bits(&self) -> Vec<u32> {
        self.emb
            .iter()
            .chain(&self.norm)
            .map(|x| x.to_bits())
            .collect()
    }
}

fn groups() -> ParamGroups {
    ParamGroups::from_configs([GroupConfig::no_decay_norms_and_biases()]).unwrap()
}

fn resume_is_exact(make: &dyn Fn() -> Box<dyn Optimizer>) {
    let schedule = ScheduleConfig::flowsteer(20);
    let mut straight = Model::new();
    let mut opt = make();
    straight.train(opt.as_mut(), &schedule, 0..12);

    let mut resumed = Model::new();
    let mut first = make();
    resumed.train(first.as_mut(), &schedule, 0..5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optim.state");
    first.state().save(&path).unwrap();
    drop(first);

    // A fresh optimizer picks up exactly where the first one stopped.
    let mut second = make();
    second.reset();
    second
        .load_state(OptimizerState::load(&path).unwrap())
        .unwrap();
    assert_eq!(second.step_count(), 5);
    resumed.train(second.as_mut(), &schedule, 5..12);
    assert_eq!(straight.bits(), resumed.bits());
    assert_eq!(opt.state(), second.state());
}

#[test]
fn adamw_save_load_continues_identically() {
    resume_is_exact(&|| {
        Box::new(
            AdamW::with_groups(
                AdamWConfig {
                    lr: 1e-2,
                    weight_decay: 0.1,
                    ..AdamWConfig::default()
                },
                groups(),
            )
            .unwrap(),
        )
    });
}

#[test]
fn sgd_save_load_continues_identically() {
    for nesterov in [false, true] {
        resume_is_exact(&|| {
            Box::new(
                Sgd::with_groups(
                    SgdConfig {
                        lr: 0.05,
                        momentum: 0.9,
                        nesterov,
                        weight_decay: 0.01,
                        ..SgdConfig::default()
                    },
                    groups(),
                )
                .unwrap(),
            )
        });
    }
}

#[test]
fn load_restores_hyper_parameters_and_keeps_predicates() {
    let mut a = AdamW::new(AdamWConfig {
        lr: 0.5,
        betas: [0.5, 0.6],
        eps: 1e-3,
        weight_decay: 0.2,
    })
    .unwrap();
    a.groups_mut().add(GroupConfig::new("special")).unwrap();
    a.groups_mut().assign("x", "special").unwrap();
    let mut w = vec![1.0f32; 3];
    a.step(&mut [ParamMut::new("x", &mut w, &[1.0, 2.0, 3.0])], 0.5)
        .unwrap();
    let saved = OptimizerState::from_bytes(&a.state().to_bytes().unwrap()).unwrap();
    assert_eq!(saved, a.state());

    let mut b = AdamW::new(AdamWConfig::default()).unwrap();
    b.groups_mut()
        .add_with_predicate(GroupConfig::new("special"), |n| n.starts_with("y"))
        .unwrap();
    b.load_state(saved).unwrap();
    assert_eq!(b.config(), a.config());
    assert_eq!(b.groups().group_name("x"), "special");
    assert_eq!(b.groups().group_name("yz"), "special");

    // An SGD state does not load into AdamW, and the failed load changes nothing.
    let before = b.state();
    let sgd = Sgd::new(SgdConfig::default()).unwrap().state();
    assert_eq!(
        b.load_state(sgd),
        Err(OptimError::KindMismatch {
            expected: "adamw".into(),
            found: "sgd".into()
        })
    );
    assert_eq!(b.state(), before);
}

fn sample_state() -> OptimizerState {
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    let mut a = values(100, 5);
    let mut b = values(7, 6);
    let ga = values(100, 7);
    let gb = values(7, 8);
    for _ in 0..2 {
        opt.step(
            &mut [
                ParamMut::new("a", &mut a, &ga),
                ParamMut::new("b", &mut b, &gb),
            ],
            1e-3,
        )
        .unwrap();
    }
    opt.state()
}

fn header_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize
}

/// Replaces the header by `edit(header)`, fixing the length field.
fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let h = header_len(bytes);
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[16..16 + h]).unwrap();
    edit(&mut header);
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[16 + h..]);
    out
}

#[test]
fn truncation_is_reported_by_section() {
    let bytes = sample_state().to_bytes().unwrap();
    let h = header_len(&bytes);
    let data = (bytes.len() - 16 - h) as u64;
    assert_eq!(data, 4 * 2 * 107);
    let cases: [(usize, &str, u64, u64); 5] = [
        (0, "magic", 8, 0),
        (5, "magic", 8, 5),
        (12, "header length", 8, 4),
        (16 + h / 2, "header", h as u64, (h / 2) as u64),
        (bytes.len() - 1, "data", data, data - 1),
    ];
    for (cut, section, expected, got) in cases {
        let err = OptimizerState::from_bytes(&bytes[..cut]).unwrap_err();
        assert_eq!(
            err,
            OptimError::Truncated {
                section,
                expected,
                got
            },
            "cut at {cut}"
        );
    }
    // Every possible cut is an error, never a panic or a silent success.
    for cut in 0..bytes.len() {
        assert!(OptimizerState::from_bytes(&bytes[..cut]).is_err());
    }
}

#[test]
fn damaged_files_give_typed_errors() {
    let state = sample_state();
    let bytes = state.to_bytes().unwrap();

    let mut junk = bytes.clone();
    junk[0] = b'X';
    assert!(matches!(
        OptimizerState::from_bytes(&junk),
        Err(OptimError::BadMagic { .. })
    ));

    let mut flipped = bytes.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    assert!(matches!(
        OptimizerState::from_bytes(&flipped),
        Err(OptimError::ChecksumMismatch { .. })
    ));

    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0]);
    assert_eq!(
        OptimizerState::from_bytes(&longer),
        Err(OptimError::TrailingData { extra: 2 })
    );

    let newer = edit_header(&bytes, |h| h["version"] = (FORMAT_VERSION + 1).into());
    assert_eq!(
        OptimizerState::from_bytes(&newer),
        Err(OptimError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        })
    );

    let resized = edit_header(&bytes, |h| h["params"][0]["len"] = 99.into());
    assert!(matches!(
        OptimizerState::from_bytes(&resized),
        Err(OptimError::Header(_))
    ));

    let huge = edit_header(&bytes, |h| {
        h["params"][0]["len"] = (u64::MAX / 2).into();
        h["data_bytes"] = 0.into();
    });
    assert!(matches!(
        OptimizerState::from_bytes(&huge),
        Err(OptimError::Header(_))
    ));

    let mut bad_json = bytes.clone();
    bad_json[16] = b'[';
    assert!(matches!(
        OptimizerState::from_bytes(&bad_json),
        Err(OptimError::Header(_))
    ));

    let wrong_kind = edit_header(&bytes, |h| h["config"]["kind"] = "lion".into());
    assert!(matches!(
        OptimizerState::from_bytes(&wrong_kind),
        Err(OptimError::Header(_))
    ));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    std::fs::write(&path, &longer).unwrap();
    assert!(matches!(
        OptimizerState::load(&path),
        Err(OptimError::TrailingData { .. })
    ));
    assert!(matches!(
        OptimizerState::load(dir.path().join("missing")),
        Err(OptimError::Io { .. })
    ));
}

#[test]
fn state_checks_against_model_parameters() {
    let state = sample_state();
    state.check_params([("a", 100), ("b", 7)]).unwrap();
    let err = state
        .check_params([("a", 101), ("c", 7)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`a` has 101 elements, state has 100"), "{err}");
    assert!(err.contains("`c` has no state"), "{err}");
    assert!(err.contains("unknown parameter `b`"), "{err}");

    // Inconsistent buffers are refused by the optimizer.
    let mut bad = state.clone();
    if let Some(p) = bad.params.get_mut("a") {
        p.buffers.insert("exp_avg".into(), vec![0.0; 3]);
    }
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    assert!(matches!(
        opt.load_state(bad.clone()),
        Err(OptimError::BadBuffers { .. })
    ));
    assert!(matches!(bad.to_bytes(), Err(OptimError::BadBuffers { .. })));
    // A restored state with another length is caught at the next step.
    opt.load_state(state).unwrap();
    let mut w = vec![0.0f32; 5];
    assert!(matches!(
        opt.step(&mut [ParamMut::new("a", &mut w, &[0.0; 5])], 1e-3),
        Err(OptimError::StateLengthMismatch {
            expected: 100,
            got: 5,
            ..
        })
    ));
}

#[test]
fn json_form_round_trips() {
    let state = sample_state();
    let text = serde_json::to_string(&state).unwrap();
    let back: OptimizerState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, state);
}

proptest! {
    #[test]
    fn binary_form_round_trips(
        params in proptest::collection::btree_map(
            "[a-z.]{1,12}",
            (0u64..5, proptest::collection::vec(proptest::num::f32::ANY, 0..40), 0usize..3),
            0..5,
        ),
        step in 0u64..1_000_000,
    ) {
        let params: BTreeMap<String, ParamState> = params
            .into_iter()
            .map(|(name, (pstep, data, nbuf))| {
                let buffers = (0..nbuf)
                    .map(|i| (format!("buf{i}"), data.iter().map(|x| x + i as f32).collect()))
                    .collect();
                (name, ParamState { step: pstep, buffers })
            })
            .collect();
        let state = OptimizerState {
            config: OptimizerConfig::Sgd(SgdConfig::default()),
            groups: vec![],
            assignments: BTreeMap::new(),
            step,
            params,
        };
        let back = OptimizerState::from_bytes(&state.to_bytes().unwrap()).unwrap();
        // Compare bit patterns: NaN payloads must survive too.
        prop_assert_eq!(back.step, state.step);
        prop_assert_eq!(back.params.len(), state.params.len());
        for (name, p) in &state.params {
            let q = &back.params[name];
            prop_assert_eq!(q.step, p.step);
            for (b, v) in &p.buffers {
                let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                let got: Vec<u32> = q.buffers[b].iter().map(|x| x.to_bits()).collect();
                prop_assert_eq!(bits, got);
            }
        }
    }
}
