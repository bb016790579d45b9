//! `flowrl generate` and `flowrl logprobs` on a tiny random model directory.

use std::process::Command;

use flowrl_model::{Model, ModelConfig};

const CONFIG: &str = r#"{"model_type": "qwen2", "vocab_size": 259, "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 10000.0,
  "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "max_position_embeddings": 512}"#;

fn tiny_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
    let cfg = ModelConfig::from_hf_json(CONFIG).unwrap();
    Model::<f32>::random(&cfg, 7)
        .unwrap()
        .save_safetensors(&dir.path().join("model.safetensors"))
        .unwrap();
    dir
}

fn flowrl(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generated_log_probs_match_teacher_forced_scoring() {
    let dir = tiny_dir();
    let m = dir.path().to_str().unwrap();
    let g = flowrl(&[
        "generate",
        "--model",
        m,
        "--tokenizer",
        "bytes",
        "--prompt",
        "def add(a, b):",
        "--max-tokens",
        "12",
        "--temperature",
        "1",
        "--seed",
        "3",
        "--top-logprobs",
        "3",
        "--json",
    ]);
    let prompt: Vec<u64> = g["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(prompt.len(), "def add(a, b):".len());
    let toks = g["tokens"].as_array().unwrap();
    assert!(!toks.is_empty());
    for t in toks {
        let (lp, s) = (
            t["logprob"].as_f64().unwrap(),
            t["sampler_logprob"].as_f64().unwrap(),
        );
        assert!((lp - s).abs() < 1e-4, "forward {lp} vs sampler {s}");
        let top = t["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top[0]["logprob"].as_f64().unwrap() >= lp - 1e-6);
    }
    // The same sequence scored by `flowrl logprobs` gives the same numbers.
    let mut ids: Vec<u64> = prompt.clone();
    ids.extend(toks.iter().map(|t| t["id"].as_u64().unwrap()));
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let s = flowrl(&[
        "logprobs",
        "--model",
        m,
        "--tokenizer",
        "bytes",
        "--ids",
        &list,
        "--json",
    ]);
    let scored = s["tokens"].as_array().unwrap();
    assert_eq!(scored.len(), ids.len() - 1);
    for (t, g) in scored[prompt.len() - 1..].iter().zip(toks) {
        assert_eq!(t["id"], g["id"]);
        assert!((t["logprob"].as_f64().unwrap() - g["logprob"].as_f64().unwrap()).abs() < 1e-5);
    }
}

#[test]
fn a_missing_model_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args([
            "generate",
            "--model",
            "/nonexistent/m.gguf",
            "--prompt",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/m.gguf"));
}
