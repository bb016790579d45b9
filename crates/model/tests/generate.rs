//! Generation: agreement with teacher-forced scoring, determinism, batching,
//! greedy decoding, filters and stop conditions.

use flowrl_model::{
    GenerateConfig, Model, ModelConfig, ModelError, Packed, StopReason, Support, generate,
};

fn model() -> Model<f32> {
    let cfg = ModelConfig {
        tie_word_embeddings: false,
        ..ModelConfig::tiny()
    };
    let mut m = Model::<f32>::random(&cfg, 21).unwrap();
    // Logits of a few units: peaked enough for the filters to matter,
    // flat enough for samples to vary.
    for p in m.lm_head.iter_mut() {
        p.value.iter_mut().for_each(|v| *v *= 30.0);
    }
    m
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        b"Hello, ".iter().map(|&b| b as u32).collect(),
        vec![7],
        b"The workflow".iter().map(|&b| b as u32).collect(),
    ]
}

/// Teacher-forced raw log-probs of `gen` after `prompt`.
fn rescore(m: &Model<f32>, prompt: &[u32], generated: &[u32]) -> Vec<f32> {
    let seq: Vec<u32> = prompt.iter().chain(generated).copied().collect();
    let inputs = &seq[..seq.len() - 1];
    let targets = &seq[1..];
    let pos: Vec<u32> = (0..inputs.len() as u32).collect();
    let lp = m
        .token_logprobs(&Packed::new(inputs, &pos, &[0, inputs.len()]), targets)
        .unwrap();
    lp[prompt.len() - 1..].to_vec()
}

#[test]
fn sampler_raw_logprobs_equal_teacher_forced_logprobs() {
    let m = model();
    let cfg = GenerateConfig {
        max_new_tokens: 24,
        temperature: 0.8,
        top_k: 50,
        top_p: 0.95,
        seed: 3,
        ..GenerateConfig::default()
    };
    let ps = prompts();
    let out = generate(&m, &ps, &cfg, None).unwrap();
    for (p, g) in ps.iter().zip(&out) {
        assert_eq!(g.tokens.len(), 24);
        assert_eq!(g.stop, StopReason::MaxTokens);
        let mut distinct = g.tokens.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 3, "samples barely vary: {:?}", g.tokens);
        let want = rescore(&m, p, &g.tokens);
        for (a, b) in g.raw_logprobs.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
        }
        // Sampling log-probs are valid log-probabilities.
        assert!(
            g.sample_logprobs
                .iter()
                .all(|&x| x <= 1e-6 && x.is_finite())
        );
    }
}

/// At temperature 1 with top-p, the sampler's own log-probs are those of
/// the nucleus distribution that `token_logprobs_over` scores.
#[test]
fn nucleus_sampling_logprobs_equal_teacher_forced_nucleus_logprobs() {
    let m = model();
    let top_p = 0.8;
    let cfg = GenerateConfig {
        max_new_tokens: 24,
        top_p,
        seed: 4,
        ..GenerateConfig::default()
    };
    let ps = prompts();
    let out = generate(&m, &ps, &cfg, None).unwrap();
    let mut truncated = 0;
    for (p, g) in ps.iter().zip(&out) {
        let seq: Vec<u32> = p.iter().chain(&g.tokens).copied().collect();
        let (inputs, targets) = (&seq[..seq.len() - 1], &seq[1..]);
        let pos: Vec<u32> = (0..inputs.len() as u32).collect();
        let offsets = [0, inputs.len()];
        let input = Packed::new(inputs, &pos, &offsets);
        let lp = m
            .token_logprobs_over(&input, targets, Support::Nucleus { top_p })
            .unwrap();
        for ((a, b), raw) in g
            .sample_logprobs
            .iter()
            .zip(&lp[p.len() - 1..])
            .zip(&g.raw_logprobs)
        {
            assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
            truncated += usize::from(b - raw > 1e-3);
        }
    }
    assert!(
        truncated > 5,
        "the nucleus rarely differs from the full softmax"
    );
}

#[test]
fn seeded_generation_is_deterministic_and_independent_of_the_batch() {
    let m = model();
    let cfg = GenerateConfig {
        max_new_tokens: 16,
        seed: 5,
        ..GenerateConfig::default()
    };
    let ps = prompts();
    let a = generate(&m, &ps, &cfg, None).unwrap();
    let b = generate(&m, &ps, &cfg, None).unwrap();
    assert_eq!(a, b);
    // Prompt 0 alone gives the same result as in the batch.
    let single = generate(&m, &ps[..1], &cfg, None).unwrap();
    assert_eq!(single[0].tokens, a[0].tokens);
    for (x, y) in single[0].raw_logprobs.iter().zip(&a[0].raw_logprobs) {
        assert!((x - y).abs() < 1e-5);
    }
    let other = generate(&m, &ps, &GenerateConfig { seed: 6, ..cfg }, None).unwrap();
    assert_ne!(other, a);
}

#[test]
fn greedy_picks_the_argmax_and_top_k_one_agrees() {
    let m = model();
    let ps = prompts();
    let greedy = GenerateConfig {
        max_new_tokens: 10,
        temperature: 0.0,
        ..GenerateConfig::default()
    };
    let out = generate(&m, &ps, &greedy, None).unwrap();
    for (p, g) in ps.iter().zip(&out) {
        assert!(g.sample_logprobs.iter().all(|&x| x == 0.0));
        // Each token is the argmax of the teacher-forced logits.
        let seq: Vec<u32> = p.iter().chain(&g.tokens).copied().collect();
        let n = seq.len() - 1;
        let pos: Vec<u32> = (0..n as u32).collect();
        let logits = m
            .forward_logits(&Packed::new(&seq[..n], &pos, &[0, n]))
            .unwrap();
        let v = m.config.vocab_size;
        for (i, &tok) in g.tokens.iter().enumerate() {
            let row = &logits[(p.len() - 1 + i) * v..(p.len() + i) * v];
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, &x)| if x > row[b] { j } else { b });
            assert_eq!(tok as usize, best);
        }
    }
    let top1 = GenerateConfig {
        max_new_tokens: 10,
        temperature: 1.3,
        top_k: 1,
        seed: 9,
        ..GenerateConfig::default()
    };
    let out1 = generate(&m, &ps, &top1, None).unwrap();
    for (a, b) in out.iter().zip(&out1) {
        assert_eq!(a.tokens, b.tokens);
        assert!(b.sample_logprobs.iter().all(|&x| x.abs() < 1e-6));
    }
}

#[test]
fn stop_tokens_sequences_and_strings() {
    let m = model();
    let ps = prompts();
    let free = GenerateConfig {
        max_new_tokens: 12,
        temperature: 0.0,
        ..GenerateConfig::default()
    };
    let base = generate(&m, &ps[..1], &free, None).unwrap().remove(0);
    let t = &base.tokens;
    // Stop token: the first occurrence of the 4th token ends generation.
    let cut = t.iter().position(|&x| x == t[3]).unwrap();
    let g = generate(
        &m,
        &ps[..1],
        &GenerateConfig {
            stop_tokens: vec![t[3]],
            ..free.clone()
        },
        None,
    )
    .unwrap()
    .remove(0);
    assert_eq!(g.stop, StopReason::StopToken);
    assert_eq!(&g.tokens[..], &t[..=cut]);
    // Stop sequence of two tokens.
    let seq = vec![t[4], t[5]];
    let end = (1..t.len()).find(|&i| t[i - 1..=i] == seq[..]).unwrap();
    let g = generate(
        &m,
        &ps[..1],
        &GenerateConfig {
            stop_sequences: vec![seq],
            ..free.clone()
        },
        None,
    )
    .unwrap()
    .remove(0);
    assert_eq!(g.stop, StopReason::StopSequence);
    assert_eq!(&g.tokens[..], &t[..=end]);
    // Stop string through a decode callback (bytes as hex pairs).
    let decode = |ids: &[u32]| ids.iter().map(|i| format!("{i:02x}")).collect::<String>();
    let needle = format!("{:02x}{:02x}", t[6], t[7]);
    let g = generate(
        &m,
        &ps[..1],
        &GenerateConfig {
            stop_strings: vec![needle.clone()],
            ..free.clone()
        },
        Some(&decode),
    )
    .unwrap()
    .remove(0);
    assert_eq!(g.stop, StopReason::StopString);
    assert!(decode(&g.tokens).contains(&needle));
    assert!(!decode(&g.tokens[..g.tokens.len() - 1]).contains(&needle));
    // Stop strings without a decoder are refused.
    assert!(matches!(
        generate(
            &m,
            &ps,
            &GenerateConfig {
                stop_strings: vec!["x".into()],
                ..free
            },
            None
        ),
        Err(ModelError::InvalidSampling { .. })
    ));
}

#[test]
fn bad_settings_and_prompts_are_errors() {
    let m = model();
    let bad_t = GenerateConfig {
        temperature: -1.0,
        ..GenerateConfig::default()
    };
    assert!(matches!(
        generate(&m, &prompts(), &bad_t, None),
        Err(ModelError::InvalidSampling {
            field: "temperature",
            ..
        })
    ));
    let bad_p = GenerateConfig {
        top_p: 0.0,
        ..GenerateConfig::default()
    };
    assert!(generate(&m, &prompts(), &bad_p, None).is_err());
    assert!(matches!(
        generate(&m, &[vec![]], &GenerateConfig::default(), None),
        Err(ModelError::InvalidInput(_))
    ));
    assert!(matches!(
        generate(&m, &[vec![1, 5000]], &GenerateConfig::default(), None),
        Err(ModelError::TokenOutOfRange { token: 5000, .. })
    ));
    let none = GenerateConfig {
        max_new_tokens: 0,
        ..GenerateConfig::default()
    };
    assert!(
        generate(&m, &prompts(), &none, None).unwrap()[0]
            .tokens
            .is_empty()
    );
}

#[test]
fn kv_cache_prefill_in_pieces_matches_one_pass() {
    let m = Model::<f32>::random(&ModelConfig::tiny_qwen3(), 4).unwrap();
    let seq: Vec<u32> = (0..12).map(|i| (i * 17 % 250) as u32).collect();
    let pos: Vec<u32> = (0..12).collect();
    let full = m
        .forward_logits(&Packed::new(&seq, &pos, &[0, 12]))
        .unwrap();
    let v = m.config.vocab_size;
    let mut cache = vec![flowrl_model::KvCache::new(&m)];
    let a = m.decode_step(&mut cache, &[seq[..5].to_vec()]).unwrap();
    let b = m.decode_step(&mut cache, &[seq[5..11].to_vec()]).unwrap();
    let c = m.decode_step(&mut cache, &[seq[11..].to_vec()]).unwrap();
    assert_eq!(cache[0].len, 12);
    for (got, row) in [(a, 4), (b, 10), (c, 11)] {
        for (x, y) in got.iter().zip(&full[row * v..(row + 1) * v]) {
            assert!((x - y).abs() < 1e-4);
        }
    }
}
