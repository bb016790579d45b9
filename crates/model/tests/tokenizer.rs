//! Generation wired to `flowrl-tokenizer`: a ChatML prompt from the byte
//! tokenizer, its end-of-turn ids as stop tokens, and stop strings through
//! its decoder, on a tiny model taught one answer.

use flowrl_model::{GenerateConfig, GradMode, Model, ModelConfig, Packed, StopReason, generate};
use flowrl_optim::{AdamW, AdamWConfig, Optimizer};
use flowrl_tokenizer::{ByteTokenizer, ChatMessage, Tokenizer, encode_chatml};

#[test]
fn chatml_generation_stops_on_end_of_turn_and_on_strings() {
    let tok = ByteTokenizer::new();
    let prompt = encode_chatml(&tok, &[ChatMessage::user("Plan?")], true).unwrap();
    let answer = tok.encode("<tool>Review</tool><|im_end|>").unwrap();
    let seq: Vec<u32> = prompt.iter().chain(&answer).copied().collect();
    let cfg = ModelConfig::tiny();
    assert!(tok.vocab_size() <= cfg.vocab_size);

    // Teach the answer (loss on the answer tokens only).
    let mut m = Model::<f32>::random(&cfg, 3).unwrap();
    let n = seq.len() - 1;
    let pos: Vec<u32> = (0..n as u32).collect();
    let offsets = [0, n];
    let input = Packed::new(&seq[..n], &pos, &offsets);
    let dlp: Vec<f32> = (0..n)
        .map(|t| {
            if t + 1 >= prompt.len() {
                -1.0 / answer.len() as f32
            } else {
                0.0
            }
        })
        .collect();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 1e-2,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    })
    .unwrap();
    for _ in 0..60 {
        let (_, acts) = m.forward_train(&input, &seq[1..]).unwrap();
        m.zero_grad(GradMode::Full);
        m.backward(&acts, &dlp, GradMode::Full).unwrap();
        opt.step(&mut m.optim_params(GradMode::Full), 1e-2).unwrap();
    }

    let greedy = GenerateConfig {
        max_new_tokens: 40,
        temperature: 0.0,
        stop_tokens: tok.special_tokens().stop_ids(),
        ..GenerateConfig::default()
    };
    let out = generate(&m, std::slice::from_ref(&prompt), &greedy, None)
        .unwrap()
        .remove(0);
    assert_eq!(out.stop, StopReason::StopToken);
    assert_eq!(out.tokens, answer);

    let decode = |ids: &[u32]| tok.decode(ids).unwrap_or_default();
    let by_string = GenerateConfig {
        stop_strings: vec!["</tool>".into()],
        ..greedy
    };
    let out = generate(&m, &[prompt], &by_string, Some(&decode))
        .unwrap()
        .remove(0);
    assert_eq!(out.stop, StopReason::StopString);
    assert_eq!(decode(&out.tokens), "<tool>Review</tool>");
}
