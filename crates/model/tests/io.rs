//! safetensors loading and saving, Hugging Face config parsing, typed errors.

use std::collections::HashMap;
use std::path::PathBuf;

use flowrl_model::io::SafetensorsSource;
use flowrl_model::{Architecture, GradMode, LoraConfig, Model, ModelConfig, ModelError, Packed};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

const QWEN25_CONFIG: &str = r#"{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 21,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
}"#;

#[test]
fn hf_configs_parse() {
    let c = ModelConfig::from_hf_json(QWEN25_CONFIG).unwrap();
    assert_eq!(c, ModelConfig::qwen2_5_0_5b());
    assert_eq!(c.num_parameters(), 494_032_768);
    let q3 = r#"{"model_type":"qwen3","vocab_size":100,"hidden_size":32,"intermediate_size":64,
        "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
        "rope_theta":1000000,"rms_norm_eps":1e-6,"tie_word_embeddings":false,"attention_bias":false}"#;
    let c = ModelConfig::from_hf_json(q3).unwrap();
    assert_eq!(c.architecture, Architecture::Qwen3);
    assert!(c.qk_norm && !c.attention_bias);
    assert_eq!(c.q_dim(), 64);
    let bad = QWEN25_CONFIG.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
    assert!(matches!(
        ModelConfig::from_hf_json(&bad),
        Err(ModelError::InvalidConfig {
            field: "num_key_value_heads",
            ..
        })
    ));
    let llama = QWEN25_CONFIG.replace("\"qwen2\"", "\"llama\"");
    assert!(ModelConfig::from_hf_json(&llama).is_err());
    assert!(matches!(
        ModelConfig::from_hf_json("{"),
        Err(ModelError::Json(_))
    ));
    assert!(flowrl_model::model_config_schema_json().contains("rope_theta"));
}

fn lp(m: &Model<f32>) -> Vec<f32> {
    let tokens = [3u32, 9, 27, 81, 243, 1];
    let pos = [0u32, 1, 2, 3, 4, 5];
    m.token_logprobs(
        &Packed::new(&tokens, &pos, &[0, 6]),
        &[9, 27, 81, 243, 1, 2],
    )
    .unwrap()
}

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for cfg in [ModelConfig::tiny(), ModelConfig::tiny_qwen3()] {
        let m = Model::<f32>::random(&cfg, 3).unwrap();
        let path = dir.path().join("model.safetensors");
        m.save_safetensors(&path).unwrap();
        let back = Model::<f32>::from_safetensors(&cfg, std::slice::from_ref(&path)).unwrap();
        assert_eq!(back, m);
        assert_eq!(lp(&back), lp(&m));
        let src = SafetensorsSource::open(&[path]).unwrap();
        assert_eq!(
            src.names().contains(&"lm_head.weight"),
            !cfg.tie_word_embeddings
        );
    }
}

#[test]
fn a_hugging_face_directory_loads_with_half_precision_and_shards() {
    let cfg = ModelConfig::tiny();
    let m = Model::<f32>::random(&cfg, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let params = m.base_params();
    // Two shards, one BF16 and one F16.
    let (first, second) = params.split_at(params.len() / 2);
    let enc = |ps: &[&flowrl_model::Param<f32>], bf: bool| -> Vec<(String, Vec<u8>, Vec<usize>)> {
        ps.iter()
            .map(|p| {
                let bytes = p
                    .value
                    .iter()
                    .flat_map(|&v| {
                        if bf {
                            half::bf16::from_f32(v).to_le_bytes()
                        } else {
                            half::f16::from_f32(v).to_le_bytes()
                        }
                    })
                    .collect();
                (p.name.clone(), bytes, p.shape.clone())
            })
            .collect()
    };
    for (i, (ps, bf)) in [(first, true), (second, false)].into_iter().enumerate() {
        let data = enc(ps, bf);
        let views: Vec<(String, TensorView<'_>)> = data
            .iter()
            .map(|(n, b, s)| {
                let dt = if bf { Dtype::BF16 } else { Dtype::F16 };
                (n.clone(), TensorView::new(dt, s.clone(), b).unwrap())
            })
            .collect();
        let path = dir
            .path()
            .join(format!("model-0000{}-of-00002.safetensors", i + 1));
        safetensors::serialize_to_file(views, None, &path).unwrap();
    }
    let hf = format!(
        r#"{{"model_type":"qwen2","vocab_size":{},"hidden_size":{},"intermediate_size":{},
        "num_hidden_layers":{},"num_attention_heads":{},"num_key_value_heads":{},
        "rope_theta":10000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":true}}"#,
        cfg.vocab_size,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads
    );
    std::fs::write(dir.path().join("config.json"), hf).unwrap();
    let back = Model::<f32>::from_hf_dir(dir.path()).unwrap();
    assert_eq!(back.config.head_dim, cfg.head_dim);
    for (a, b) in back.base_params().iter().zip(m.base_params()) {
        assert_eq!(a.name, b.name);
        for (x, y) in a.value.iter().zip(&b.value) {
            assert!(
                (x - y).abs() <= 1e-2 * y.abs().max(1e-3),
                "{}: {x} vs {y}",
                a.name
            );
        }
    }
}

#[test]
fn missing_misshapen_and_unsupported_tensors_are_typed_errors() {
    let cfg = ModelConfig::tiny();
    let m = Model::<f32>::random(&cfg, 5).unwrap();
    let mut map: HashMap<String, (Vec<usize>, Vec<f32>)> = m
        .base_params()
        .iter()
        .map(|p| (p.name.clone(), (p.shape.clone(), p.value.clone())))
        .collect();
    assert_eq!(Model::<f32>::from_tensor_map(&cfg, &map).unwrap(), m);
    let name = "model.layers.1.self_attn.k_proj.bias".to_owned();
    let kept = map.remove(&name).unwrap();
    assert!(matches!(
        Model::<f32>::from_tensor_map(&cfg, &map),
        Err(ModelError::MissingTensor(n)) if n == name
    ));
    map.insert(name.clone(), (vec![kept.1.len() - 1], kept.1[1..].to_vec()));
    assert!(matches!(
        Model::<f32>::from_tensor_map(&cfg, &map),
        Err(ModelError::ShapeMismatch { name: n, .. }) if n == name
    ));
    // An integer tensor in a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ints.safetensors");
    let bytes: Vec<u8> = [1i32, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::I32, vec![3], &bytes).unwrap();
    safetensors::serialize_to_file(vec![("model.norm.weight", view)], None, &path).unwrap();
    let src = SafetensorsSource::open(std::slice::from_ref(&path)).unwrap();
    assert!(matches!(
        src.get("model.norm.weight"),
        Err(ModelError::UnsupportedDtype { .. })
    ));
    assert!(src.get("nope").unwrap().is_none());
    // Garbage and missing files.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    assert!(matches!(
        SafetensorsSource::open(&[junk]),
        Err(ModelError::Safetensors(_))
    ));
    assert!(matches!(
        SafetensorsSource::open(&[PathBuf::from("/nonexistent/x.safetensors")]),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn lora_adapters_save_load_and_merge() {
    let cfg = ModelConfig::tiny();
    let base = Model::<f32>::random(&cfg, 6).unwrap();
    let lcfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v".into(), "down".into()],
        seed: 2,
    };
    let mut m = base.clone();
    m.attach_lora(&lcfg).unwrap();
    // Fresh adapters (B = 0) leave the model unchanged.
    assert_eq!(lp(&m), lp(&base));
    for p in m.trainable_mut(GradMode::Lora) {
        for (i, v) in p.value.iter_mut().enumerate() {
            *v += 0.01 * ((i % 7) as f32 - 3.0);
        }
    }
    let adapted = lp(&m);
    assert_ne!(adapted, lp(&base));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adapter_model.safetensors");
    m.save_lora(&path).unwrap();
    let names = SafetensorsSource::open(std::slice::from_ref(&path)).unwrap();
    assert!(
        names
            .names()
            .contains(&"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
    );
    assert_eq!(names.names().len(), 2 * 3 * cfg.num_hidden_layers);
    let mut loaded = base.clone();
    loaded.load_lora(&lcfg, &path).unwrap();
    assert_eq!(lp(&loaded), adapted);
    loaded.merge_lora().unwrap();
    assert!(loaded.lora_params().is_empty());
    for (a, b) in lp(&loaded).iter().zip(&adapted) {
        assert!((a - b).abs() < 1e-4);
    }
    // Mismatched rank is a shape error; nothing changes on failure.
    let mut other = base.clone();
    let wrong = LoraConfig {
        rank: 2,
        ..lcfg.clone()
    };
    assert!(matches!(
        other.load_lora(&wrong, &path),
        Err(ModelError::ShapeMismatch { .. })
    ));
    assert_eq!(other, base);
    assert!(matches!(
        base.save_lora(&path),
        Err(ModelError::NothingToTrain(_))
    ));
    let bad = LoraConfig {
        targets: vec!["embed".into()],
        ..lcfg
    };
    assert!(matches!(
        other.attach_lora(&bad),
        Err(ModelError::InvalidConfig {
            field: "targets",
            ..
        })
    ));
}
