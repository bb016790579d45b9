//! The local backend on a tiny random model (byte-level tokenizer).

use flowrl_llm_local::{LocalBackend, LocalConfig, LocalPlugin};
use flowrl_model::{Model, ModelConfig};
use flowrl_plugin_abi::{ChatRequest, LlmBackendImpl, Plugin};

const CONFIG: &str = r#"{"model_type": "qwen2", "vocab_size": 259, "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": true}"#;

fn backend() -> (tempfile::TempDir, LocalBackend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
    let cfg = ModelConfig::from_hf_json(CONFIG).unwrap();
    Model::<f32>::random(&cfg, 1)
        .unwrap()
        .save_safetensors(&dir.path().join("model.safetensors"))
        .unwrap();
    let b = LocalBackend::new(&LocalConfig {
        model: dir.path().to_path_buf(),
        tokenizer: Some("bytes".into()),
    })
    .unwrap();
    (dir, b)
}

#[test]
fn chat_completions_follow_the_request() {
    let (_dir, b) = backend();
    let mut req = ChatRequest::user("hello");
    req.sampling.temperature = 0.0;
    req.max_tokens = 16;
    req.logprobs = true;
    let r1 = b.chat(&req).unwrap();
    let r2 = b.chat(&req).unwrap();
    assert_eq!(r1, r2, "greedy decoding is deterministic");
    assert!(r1.usage.prompt_tokens > 5);
    assert!(r1.usage.completion_tokens >= 1 && r1.usage.completion_tokens <= 16);
    let lps = r1.logprobs.as_ref().unwrap();
    assert_eq!(lps.len(), r1.usage.completion_tokens as usize);
    assert!(lps.iter().all(|l| l.is_finite() && *l <= 0.0));
    assert!(["stop", "length"].contains(&r1.finish_reason.as_str()));

    // A stop string taken from the greedy output cuts the text before it.
    if let Some(c) = r1.text.chars().nth(2) {
        let mut req2 = req.clone();
        req2.stop = vec![c.to_string()];
        let r3 = b.chat(&req2).unwrap();
        assert!(!r3.text.contains(c), "{:?} still contains {c:?}", r3.text);
        assert_eq!(r3.finish_reason, "stop");
    }
    assert!(b.describe().contains("\"backend\":\"local\""));
}

#[test]
fn bad_configurations_are_errors_naming_the_file() {
    let e = LocalPlugin::llm_backend("local", r#"{"model": "/nonexistent/q.gguf"}"#)
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent/q.gguf"), "{e}");
    assert!(LocalPlugin::llm_backend("local", "{").is_err());
    assert!(LocalPlugin::llm_backend("other", "{}").is_err());
}

#[test]
fn a_batch_gives_each_request_its_own_greedy_answer() {
    let (_dir, b) = backend();
    let greedy = |text: &str, max_tokens: u32| {
        let mut r = ChatRequest::user(text);
        r.sampling.temperature = 0.0;
        r.max_tokens = max_tokens;
        r.logprobs = true;
        r
    };
    // The first two share their settings (one batched generation of
    // prompts of different lengths); the third runs on its own.
    let requests = vec![
        greedy("hello", 12),
        greedy("a much longer prompt than the first one", 12),
        greedy("third", 5),
    ];
    let batch = b.chat_batch(&requests);
    assert_eq!(batch.len(), 3);
    for (r, got) in requests.iter().zip(&batch) {
        let alone = b.chat(r).unwrap();
        let got = got.as_ref().unwrap();
        assert_eq!(got.text, alone.text, "batched answer differs for {r:?}");
        assert_eq!(got.usage, alone.usage);
        for (x, y) in got
            .logprobs
            .as_ref()
            .unwrap()
            .iter()
            .zip(alone.logprobs.as_ref().unwrap())
        {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
}
