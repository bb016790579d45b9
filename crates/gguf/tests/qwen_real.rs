//! Checks against the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M file fetched by
//! `scripts/fetch-qwen-0.5b.sh`. Skipped (with a message) when the file is
//! absent. Path: `$FLOWRL_QWEN_GGUF`, else
//! `${FLOWRL_CACHE:-$HOME/.cache/flowrl}/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use flowrl_gguf::{ArchInfo, GgmlType, GgufFile, gguf_to_hf_name};

fn model_path() -> Option<PathBuf> {
    let path = match std::env::var_os("FLOWRL_QWEN_GGUF") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("FLOWRL_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/flowrl"))
                })?;
            cache.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
        }
    };
    if path.is_file() {
        Some(path)
    } else {
        println!(
            "skipped: {} not found (run scripts/fetch-qwen-0.5b.sh or set FLOWRL_QWEN_GGUF)",
            path.display()
        );
        None
    }
}

#[test]
fn real_qwen_file_parses_with_expected_architecture() {
    let Some(path) = model_path() else { return };
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.len(), 491_400_064);
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture").unwrap(), "qwen2");
    let info = ArchInfo::from_gguf(&file).unwrap();
    println!("{info:?}");
    assert_eq!(info.block_count, 24);
    assert_eq!(info.embedding_length, 896);
    assert_eq!(info.head_count, 14);
    assert_eq!(info.head_count_kv, 2);
    assert_eq!(info.head_dim, 64);
    assert_eq!(info.feed_forward_length, 4864);
    assert_eq!(info.vocab_size, 151_936);
    assert_eq!(info.rope_freq_base, 1_000_000.0);
    assert!((info.rms_norm_eps - 1e-6).abs() < 1e-9);
    assert!(info.context_length >= 32_768);
    // The HF checkpoint ties embeddings, but this file carries a separate
    // (differently quantised) `output.weight`.
    assert!(!info.tied_embeddings);

    let tokens = file
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .and_then(|a| a.as_strings())
        .unwrap();
    assert_eq!(tokens.len(), 151_936);
    assert_eq!(tokens[151_644], "<|im_start|>");
    assert_eq!(tokens[151_645], "<|im_end|>");
    assert_eq!(tokens[151_643], "<|endoftext|>");

    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for t in file.tensors() {
        *by_type.entry(t.ggml_type.to_string()).or_default() += 1;
        assert!(gguf_to_hf_name(&t.name).is_some(), "unmapped {}", t.name);
    }
    println!("tensor types: {by_type:?}");
    assert_eq!(file.tensors().len(), 24 * 12 + 3);
    for ty in [GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K] {
        assert!(by_type.contains_key(ty.name()), "{ty} missing");
    }
}

fn expected_shape(name: &str) -> Vec<usize> {
    let (d, kv, ff, vocab) = (896, 128, 4864, 151_936);
    let part = name.split('.').rev().nth(1).unwrap_or("");
    let is_bias = name.ends_with(".bias");
    match (part, is_bias) {
        ("token_embd", _) | ("output", _) => vec![vocab, d],
        ("attn_q", false) | ("attn_output", false) => vec![d, d],
        ("attn_q", true) => vec![d],
        ("attn_k", false) | ("attn_v", false) => vec![kv, d],
        ("attn_k", true) | ("attn_v", true) => vec![kv],
        ("ffn_gate", _) | ("ffn_up", _) => vec![ff, d],
        ("ffn_down", _) => vec![d, ff],
        ("attn_norm", _) | ("ffn_norm", _) | ("output_norm", _) => vec![d],
        _ => panic!("unexpected tensor {name}"),
    }
}

#[test]
fn every_real_tensor_dequantises_with_plausible_values() {
    let Some(path) = model_path() else { return };
    let file = GgufFile::open(&path).unwrap();
    for info in file.tensors() {
        let t = file.dequantize(&info.name).unwrap();
        assert_eq!(t.shape, expected_shape(&info.name), "{}", info.name);
        assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        assert!(
            t.data.iter().all(|v| v.is_finite()),
            "{} has non-finite values",
            info.name
        );
        let n = t.data.len() as f64;
        let mean = t.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let rms = (t.data.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n).sqrt();
        if info.name.ends_with("_norm.weight") {
            // RMSNorm gains: positive on average and bounded (Qwen2.5's
            // range from ~0.03 mean in layer 0 to ~7 in the final norm).
            assert!(mean > 0.0 && mean < 20.0, "{}: mean {mean}", info.name);
            assert!(t.data.iter().all(|v| v.abs() < 100.0), "{}", info.name);
        } else if info.name.ends_with(".weight") {
            // Projections and embeddings: centred, small.
            assert!(mean.abs() < 0.01, "{}: mean {mean}", info.name);
            assert!(rms > 1e-3 && rms < 0.5, "{}: rms {rms}", info.name);
        } else {
            assert!(rms < 50.0, "{}: rms {rms}", info.name);
        }
    }
}

/// Reference statistics of whole tensors, computed once with the `gguf`
/// Python package's NumPy dequantiser (an independent implementation of the
/// ggml block formats): first four values, sum, sum of squares, max |x|.
/// Name, type, first four values, sum, sum of squares, max |x|.
type Reference = (&'static str, GgmlType, [f64; 4], f64, f64, f64);

const REFERENCE: [Reference; 5] = [
    (
        "output.weight",
        GgmlType::Q8_0,
        [-0.016516685, 0.025134087, 0.022979736, 0.012207985],
        -14999.29969239235,
        40842.32612665876,
        0.248046875,
    ),
    (
        "token_embd.weight",
        GgmlType::Q5_0,
        [-0.017097473, 0.02469635, 0.022796631, 0.011398315],
        -14988.69034576416,
        40875.56054658248,
        0.248046875,
    ),
    (
        "blk.0.ffn_down.weight",
        GgmlType::Q6K,
        [-0.0018410683, -0.0018410683, 0.029457092, 0.009205341],
        27.406931698322296,
        728.4772084336848,
        0.544921875,
    ),
    (
        "blk.11.ffn_down.weight",
        GgmlType::Q4K,
        [0.001052022, -0.0018393993, -0.0008755922, 0.006834865],
        -21.5957590341568,
        421.5221139403617,
        0.849454402923584,
    ),
    (
        "output_norm.weight",
        GgmlType::F32,
        [7.0625, 7.125, 7.0, 7.0625],
        6479.43408203125,
        48099.293407678604,
        17.125,
    ),
];

#[test]
fn real_tensors_match_an_independent_dequantiser() {
    let Some(path) = model_path() else { return };
    let file = GgufFile::open(&path).unwrap();
    for (name, ty, first, sum, sumsq, max_abs) in REFERENCE {
        assert_eq!(file.tensor_info(name).unwrap().ggml_type, ty, "{name}");
        let t = file.dequantize(name).unwrap();
        for (i, (got, want)) in t.data.iter().zip(first).enumerate() {
            let got = f64::from(*got);
            assert!(
                (got - want).abs() <= want.abs() * 1e-6,
                "{name}[{i}]: {got} vs {want}"
            );
        }
        let s: f64 = t.data.iter().map(|&v| f64::from(v)).sum();
        let s2: f64 = t.data.iter().map(|&v| f64::from(v).powi(2)).sum();
        let m = t.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            (s - sum).abs() <= 1e-6 * sum.abs().max(1.0),
            "{name}: sum {s} vs {sum}"
        );
        assert!(
            (s2 - sumsq).abs() <= 1e-9 * sumsq,
            "{name}: sum of squares {s2} vs {sumsq}"
        );
        assert_eq!(f64::from(m), max_abs, "{name}: max |x|");
    }
}
