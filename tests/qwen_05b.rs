//! Checks with the real Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M) fetched by
//! `scripts/fetch-qwen-0.5b.sh`; skipped with a message when the files are
//! absent. Paths: `FLOWRL_QWEN_GGUF` / `FLOWRL_QWEN_TOKENIZER`, else the
//! script's cache folder.

use std::path::PathBuf;

use flowrl_model::{GenerateConfig, Model, Packed, generate};
use flowrl_rewards::{CodeTests, Sandbox, SandboxConfig, code_reward};
use flowrl_tokenizer::{ChatMessage, HfTokenizer, Tokenizer, encode_chatml};

fn files() -> Option<(PathBuf, PathBuf)> {
    let cache = std::env::var_os("FLOWRL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/flowrl")))?;
    let gguf = std::env::var_os("FLOWRL_QWEN_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"));
    let tok = std::env::var_os("FLOWRL_QWEN_TOKENIZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("qwen2.5-tokenizer.json"));
    (gguf.is_file() && tok.is_file()).then_some((gguf, tok))
}

/// The code inside the first ``` fence, or the whole text.
fn code_of(text: &str) -> String {
    match text.split("```").nth(1) {
        Some(block) => block.trim_start_matches("python").trim().to_string(),
        None => text.trim().to_string(),
    }
}

#[test]
fn greedy_code_passes_its_test_and_sampler_log_probs_match_a_forward_pass() {
    let Some((gguf, tok_path)) = files() else {
        eprintln!("skipped: the Qwen2.5 0.5B files are absent (run scripts/fetch-qwen-0.5b.sh)");
        return;
    };
    let sandbox = match Sandbox::new(SandboxConfig::default()) {
        Ok(s) => s,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: no sandbox: {e}");
            return;
        }
        Err(e) => panic!("no sandbox under CI: {e}"),
    };
    let model: Model<f32> = Model::from_gguf(&gguf).unwrap();
    let tok = HfTokenizer::from_file(&tok_path).unwrap();
    let prompt = encode_chatml(
        &tok,
        &[ChatMessage::user(
            "Write a Python function add(a, b) that returns the sum of a and b. Reply with only the code.",
        )],
        true,
    )
    .unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: 60,
        temperature: 0.0,
        stop_tokens: tok.special_tokens().stop_ids(),
        ..GenerateConfig::default()
    };
    let g = generate(&model, std::slice::from_ref(&prompt), &cfg, None)
        .unwrap()
        .remove(0);
    let visible: Vec<u32> = g
        .tokens
        .iter()
        .copied()
        .filter(|t| !cfg.stop_tokens.contains(t))
        .collect();
    let text = tok.decode(&visible).unwrap();
    let tests = CodeTests {
        asserts: vec![
            "assert add(2, 3) == 5".into(),
            "assert add(-4, 4) == 0".into(),
            "assert add(1.5, 2) == 3.5".into(),
        ],
        ..CodeTests::default()
    };
    let r = code_reward(&sandbox, &code_of(&text), &tests).unwrap();
    assert_eq!(r.reward, 1, "generated:\n{text}\nrun: {:?}", r.result);

    // Teacher-forced log-probs of the generated tokens equal the sampler's.
    let mut all = prompt.clone();
    all.extend_from_slice(&g.tokens);
    let inputs = &all[..all.len() - 1];
    let positions: Vec<u32> = (0..inputs.len() as u32).collect();
    let lp = model
        .token_logprobs(
            &Packed::new(inputs, &positions, &[0, inputs.len()]),
            &all[1..],
        )
        .unwrap();
    for (i, (&s, &f)) in g
        .raw_logprobs
        .iter()
        .zip(&lp[prompt.len() - 1..])
        .enumerate()
    {
        assert!(
            (s - f).abs() <= 1e-3,
            "token {i}: sampler {s} vs forward {f}"
        );
    }
}
