//! Finite-difference checks, in f64, of the hand-written backward pass for
//! the whole model (every parameter tensor: embedding, norms, attention
//! projections through RoPE and softmax, q/k norms, SwiGLU MLP, LM head)
//! and for LoRA adapters.

use flowrl_model::{Architecture, GradMode, LoraConfig, Model, ModelConfig, Packed, Support};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn small(arch: Architecture, tied: bool) -> ModelConfig {
    let mut c = if arch == Architecture::Qwen2 {
        ModelConfig::tiny()
    } else {
        ModelConfig::tiny_qwen3()
    };
    c.vocab_size = 23;
    c.hidden_size = 12;
    c.intermediate_size = 20;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 6;
    c.tie_word_embeddings = tied;
    c.rope_theta = 50.0;
    c
}

/// A model with weights large enough that every path matters, including
/// non-unit norm weights.
fn model(config: &ModelConfig, seed: u64) -> Model<f64> {
    let mut m = Model::<f64>::random(config, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed + 1);
    for p in m.trainable_mut(GradMode::Full) {
        let is_norm = p.name.contains("norm");
        for v in &mut p.value {
            *v = if is_norm {
                1.0 + 0.3 * (rng.random::<f64>() - 0.5)
            } else {
                0.4 * (rng.random::<f64>() - 0.5)
            };
        }
    }
    m
}

struct Batch {
    tokens: Vec<u32>,
    positions: Vec<u32>,
    offsets: Vec<usize>,
    targets: Vec<u32>,
    coef: Vec<f64>,
}

fn batch(vocab: u32, rows: &[usize], seed: u64) -> Batch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = Batch {
        tokens: vec![],
        positions: vec![],
        offsets: vec![0],
        targets: vec![],
        coef: vec![],
    };
    for &len in rows {
        for p in 0..len {
            b.tokens.push(rng.random_range(0..vocab));
            b.positions.push(p as u32);
            b.targets.push(rng.random_range(0..vocab));
            // Some positions carry no gradient (env tokens).
            b.coef.push(if rng.random::<f64>() < 0.25 {
                0.0
            } else {
                rng.random::<f64>() - 0.5
            });
        }
        b.offsets.push(b.tokens.len());
    }
    b
}

fn objective(m: &Model<f64>, b: &Batch, support: Support) -> f64 {
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let lp = m.token_logprobs_over(&input, &b.targets, support).unwrap();
    lp.iter().zip(&b.coef).map(|(l, c)| l * c).sum()
}

/// Compares analytic gradients with central differences on a sample of
/// entries of every parameter of `mode`. Returns how many were checked.
fn check(m: &mut Model<f64>, b: &Batch, mode: GradMode, per_tensor: usize) -> usize {
    check_over(m, b, mode, per_tensor, Support::Full)
}

/// [`check`] for log-probs normalised over `support`.
fn check_over(
    m: &mut Model<f64>,
    b: &Batch,
    mode: GradMode,
    per_tensor: usize,
    support: Support,
) -> usize {
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    m.zero_grad(mode);
    let (_, acts) = m.forward_train_over(&input, &b.targets, support).unwrap();
    m.backward(&acts, &b.coef, mode).unwrap();
    let grads: Vec<(String, Vec<f64>)> = m
        .trainable_mut(mode)
        .into_iter()
        .map(|p| (p.name.clone(), p.grad.clone()))
        .collect();
    let mut rng = StdRng::seed_from_u64(99);
    let h = 1e-5;
    let mut checked = 0;
    for (pi, (name, grad)) in grads.iter().enumerate() {
        let len = grad.len();
        assert!(len > 0, "{name}: no gradient");
        let picks: Vec<usize> = if len <= per_tensor {
            (0..len).collect()
        } else {
            (0..per_tensor).map(|_| rng.random_range(0..len)).collect()
        };
        for j in picks {
            let orig = m.trainable_mut(mode)[pi].value[j];
            m.trainable_mut(mode)[pi].value[j] = orig + h;
            let up = objective(m, b, support);
            m.trainable_mut(mode)[pi].value[j] = orig - h;
            let down = objective(m, b, support);
            m.trainable_mut(mode)[pi].value[j] = orig;
            let fd = (up - down) / (2.0 * h);
            let err = (fd - grad[j]).abs();
            assert!(
                err <= 1e-7 + 1e-5 * fd.abs().max(grad[j].abs()),
                "{name}[{j}]: analytic {} vs finite difference {fd}",
                grad[j]
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn qwen2_tied_full_gradients_match_finite_differences() {
    let cfg = small(Architecture::Qwen2, true);
    let mut m = model(&cfg, 1);
    let b = batch(cfg.vocab_size as u32, &[5, 3, 4], 2);
    let n = check(&mut m, &b, GradMode::Full, 12);
    assert!(n > 150);
}

/// Log-probs over the top-p nucleus: the definition (checked naively in
/// f64 from the logits), the full softmax at `top_p = 1`, and gradients
/// against finite differences.
#[test]
fn nucleus_log_probs_match_their_definition_and_finite_differences() {
    let cfg = small(Architecture::Qwen2, true);
    let mut m = model(&cfg, 5);
    let vocab = cfg.vocab_size;
    let b = batch(vocab as u32, &[6, 4], 6);
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let top_p = 0.6;
    let nuc = Support::Nucleus { top_p };
    let lp = m.token_logprobs_over(&input, &b.targets, nuc).unwrap();
    let logits = m.forward_logits(&input).unwrap();
    let mut sizes = Vec::new();
    for (t, row) in logits.chunks(vocab).enumerate() {
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = row.iter().map(|z| (z - mx).exp()).collect();
        let total: f64 = p.iter().sum();
        let mut idx: Vec<usize> = (0..vocab).collect();
        idx.sort_by(|&a, &c| p[c].total_cmp(&p[a]).then(a.cmp(&c)));
        let (mut acc, mut set) = (0.0, Vec::new());
        for &i in &idx {
            set.push(i);
            acc += p[i] / total;
            if acc >= top_p {
                break;
            }
        }
        let target = b.targets[t] as usize;
        if !set.contains(&target) {
            set.push(target);
        }
        sizes.push(set.len());
        let want = (p[target] / set.iter().map(|&i| p[i]).sum::<f64>()).ln();
        assert!(
            (lp[t] - want).abs() < 1e-12,
            "position {t}: {} vs {want}",
            lp[t]
        );
    }
    // The check means something: nuclei of several sizes, none the whole
    // vocabulary.
    assert!(
        sizes.iter().any(|&k| k > 2) && sizes.iter().all(|&k| k < vocab),
        "{sizes:?}"
    );
    let full = m.token_logprobs(&input, &b.targets).unwrap();
    let one = m
        .token_logprobs_over(&input, &b.targets, Support::Nucleus { top_p: 1.0 })
        .unwrap();
    for (a, c) in full.iter().zip(&one) {
        assert!((a - c).abs() < 1e-12);
    }
    assert!(check_over(&mut m, &b, GradMode::Full, 12, nuc) > 150);
    for bad in [0.0, -0.1, 1.5, f64::NAN] {
        let r = m.token_logprobs_over(&input, &b.targets, Support::Nucleus { top_p: bad });
        assert!(r.is_err(), "top_p {bad} accepted");
    }
}

#[test]
fn qwen3_untied_full_gradients_match_finite_differences() {
    let cfg = small(Architecture::Qwen3, false);
    let mut m = model(&cfg, 3);
    let b = batch(cfg.vocab_size as u32, &[6, 4], 4);
    let names: Vec<String> = m
        .trainable_mut(GradMode::Full)
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("self_attn.q_norm.weight")));
    assert!(names.iter().any(|n| n == "lm_head.weight"));
    check(&mut m, &b, GradMode::Full, 12);
}

#[test]
fn lora_gradients_match_finite_differences_and_leave_base_frozen() {
    let cfg = small(Architecture::Qwen2, true);
    let mut m = model(&cfg, 5);
    m.attach_lora(&LoraConfig {
        rank: 3,
        alpha: 6.0,
        targets: ["q", "k", "v", "o", "gate", "up", "down"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        seed: 1,
    })
    .unwrap();
    // B starts at zero; make it non-zero so that ∂/∂A is exercised.
    let mut rng = StdRng::seed_from_u64(8);
    for p in m.trainable_mut(GradMode::Lora) {
        for v in &mut p.value {
            *v = 0.5 * (rng.random::<f64>() - 0.5);
        }
    }
    let b = batch(cfg.vocab_size as u32, &[5, 4], 6);
    let n = check(&mut m, &b, GradMode::Lora, 10);
    assert_eq!(n, 2 * 7 * 2 * 10);
    // Base weights got no gradient buffers.
    assert!(m.embed.grad.is_empty());
    assert!(m.layers[0].q_proj.weight.grad.is_empty());
}

#[test]
fn lora_mode_without_adapters_is_an_error() {
    let cfg = small(Architecture::Qwen2, true);
    let mut m = model(&cfg, 5);
    let b = batch(cfg.vocab_size as u32, &[3], 6);
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let (_, acts) = m.forward_train(&input, &b.targets).unwrap();
    assert!(matches!(
        m.backward(&acts, &b.coef, GradMode::Lora),
        Err(flowrl_model::ModelError::NothingToTrain(_))
    ));
    assert!(matches!(
        m.backward(&acts, &b.coef[..2], GradMode::Full),
        Err(flowrl_model::ModelError::InvalidInput(_))
    ));
}

#[test]
fn rows_of_a_packed_batch_do_not_see_each_other() {
    let cfg = small(Architecture::Qwen3, false);
    let m = model(&cfg, 7);
    let b = batch(cfg.vocab_size as u32, &[4, 6], 8);
    let packed = m
        .token_logprobs(
            &Packed::new(&b.tokens, &b.positions, &b.offsets),
            &b.targets,
        )
        .unwrap();
    let second = m
        .token_logprobs(
            &Packed::new(&b.tokens[4..], &b.positions[4..], &[0, 6]),
            &b.targets[4..],
        )
        .unwrap();
    for (a, c) in packed[4..].iter().zip(&second) {
        assert!((a - c).abs() < 1e-12);
    }
    // Changing a token of row 0 leaves row 1 unchanged but changes row 0 later.
    let mut tokens = b.tokens.clone();
    tokens[1] = (tokens[1] + 1) % cfg.vocab_size as u32;
    let changed = m
        .token_logprobs(&Packed::new(&tokens, &b.positions, &b.offsets), &b.targets)
        .unwrap();
    assert_eq!(changed[0], packed[0]);
    assert!((changed[2] - packed[2]).abs() > 1e-9);
    assert_eq!(&changed[4..], &packed[4..]);
}

#[test]
fn f32_and_f64_forward_agree() {
    let cfg = ModelConfig::tiny();
    let m32 = Model::<f32>::random(&cfg, 11).unwrap();
    let m64: Model<f64> = m32.cast();
    let b = batch(cfg.vocab_size as u32, &[9, 7], 12);
    let input = Packed::new(&b.tokens, &b.positions, &b.offsets);
    let a = m32.token_logprobs(&input, &b.targets).unwrap();
    let c = m64.token_logprobs(&input, &b.targets).unwrap();
    for (x, y) in a.iter().zip(&c) {
        assert!((*x as f64 - y).abs() < 1e-4, "{x} vs {y}");
    }
    let logits = m32.forward_logits(&input).unwrap();
    assert_eq!(logits.len(), b.tokens.len() * cfg.vocab_size);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let cfg = ModelConfig::tiny();
    let m = Model::<f32>::random(&cfg, 1).unwrap();
    let bad = [1u32, 300];
    let pos = [0u32, 1];
    let err = m
        .token_logprobs(&Packed::new(&bad, &pos, &[0, 2]), &[1, 2])
        .unwrap_err();
    assert!(matches!(
        err,
        flowrl_model::ModelError::TokenOutOfRange {
            token: 300,
            position: 1,
            ..
        }
    ));
    let ok = [1u32, 2];
    assert!(matches!(
        m.token_logprobs(&Packed::new(&ok, &pos, &[0, 2]), &[1, 999]),
        Err(flowrl_model::ModelError::TokenOutOfRange { token: 999, .. })
    ));
    assert!(matches!(
        m.token_logprobs(&Packed::new(&ok, &pos, &[0, 3]), &[1, 2]),
        Err(flowrl_model::ModelError::InvalidInput(_))
    ));
    assert!(matches!(
        m.token_logprobs(&Packed::new(&ok, &pos[..1], &[0, 2]), &[1, 2]),
        Err(flowrl_model::ModelError::InvalidInput(_))
    ));
    assert!(matches!(
        m.token_logprobs(&Packed::new(&ok, &pos, &[0, 2]), &[1]),
        Err(flowrl_model::ModelError::InvalidInput(_))
    ));
    // A tensor replaced by one of the wrong size, a corrupted KV cache.
    let mut broken = m.clone();
    broken.layers[1].up_proj.weight.value.pop();
    assert!(matches!(
        broken.token_logprobs(&Packed::new(&ok, &pos, &[0, 2]), &[1, 2]),
        Err(flowrl_model::ModelError::ShapeMismatch { .. })
    ));
    // Activations of a larger-vocabulary model hold ids the smaller one lacks.
    let (_, acts) = m
        .forward_train(&Packed::new(&[263, 1], &pos, &[0, 2]), &[1, 2])
        .unwrap();
    let mut smaller = Model::<f32>::random(
        &ModelConfig {
            vocab_size: 100,
            ..cfg.clone()
        },
        1,
    )
    .unwrap();
    assert!(matches!(
        smaller.backward(&acts, &[1.0, 1.0], flowrl_model::GradMode::Full),
        Err(flowrl_model::ModelError::TokenOutOfRange { token: 263, .. })
    ));
    let mut cache = vec![flowrl_model::KvCache::new(&m)];
    m.decode_step(&mut cache, &[vec![1, 2]]).unwrap();
    cache[0].k[0].pop();
    assert!(matches!(
        m.decode_step(&mut cache, &[vec![3]]),
        Err(flowrl_model::ModelError::InvalidInput(_))
    ));
}
