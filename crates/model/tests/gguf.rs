//! Loading from GGUF files written with `flowrl-gguf`'s writer.

use flowrl_gguf::{GgmlType, GgufWriter, MetaValue, hf_to_gguf_name};
use flowrl_model::{Model, ModelConfig, ModelError, Packed};

fn write_gguf(m: &Model<f32>, arch: &str, quant: GgmlType, path: &std::path::Path) {
    let c = &m.config;
    let mut w = GgufWriter::new();
    let u = |v: usize| MetaValue::U32(v as u32);
    w.metadata("general.architecture", MetaValue::String(arch.into()))
        .unwrap()
        .metadata(format!("{arch}.block_count"), u(c.num_hidden_layers))
        .unwrap()
        .metadata(format!("{arch}.embedding_length"), u(c.hidden_size))
        .unwrap()
        .metadata(
            format!("{arch}.feed_forward_length"),
            u(c.intermediate_size),
        )
        .unwrap()
        .metadata(
            format!("{arch}.attention.head_count"),
            u(c.num_attention_heads),
        )
        .unwrap()
        .metadata(
            format!("{arch}.attention.head_count_kv"),
            u(c.num_key_value_heads),
        )
        .unwrap()
        .metadata(format!("{arch}.attention.key_length"), u(c.head_dim))
        .unwrap()
        .metadata(
            format!("{arch}.rope.freq_base"),
            MetaValue::F32(c.rope_theta as f32),
        )
        .unwrap()
        .metadata(
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            MetaValue::F32(c.rms_norm_eps as f32),
        )
        .unwrap()
        .metadata(format!("{arch}.context_length"), u(4096))
        .unwrap();
    for p in m.base_params() {
        let name = hf_to_gguf_name(&p.name).unwrap();
        let ty = if p.shape.len() == 2 {
            quant
        } else {
            GgmlType::F32
        };
        w.tensor_f32(name, &p.shape, &p.value, ty).unwrap();
    }
    w.write(path).unwrap();
}

fn lp(m: &Model<f32>) -> Vec<f32> {
    let tokens = [5u32, 50, 150, 250, 7, 77];
    let pos = [0u32, 1, 2, 3, 0, 1];
    m.token_logprobs(
        &Packed::new(&tokens, &pos, &[0, 4, 6]),
        &[50, 150, 250, 1, 77, 2],
    )
    .unwrap()
}

#[test]
fn f32_and_q8_gguf_files_load() {
    let dir = tempfile::tempdir().unwrap();
    for (cfg, arch) in [
        (ModelConfig::tiny(), "qwen2"),
        (ModelConfig::tiny_qwen3(), "qwen3"),
    ] {
        let m = Model::<f32>::random(&cfg, 9).unwrap();
        let path = dir.path().join(format!("{arch}.gguf"));
        write_gguf(&m, arch, GgmlType::F32, &path);
        let back = Model::<f32>::from_gguf(&path).unwrap();
        assert_eq!(back.config.architecture, cfg.architecture);
        assert_eq!(back.config.tie_word_embeddings, cfg.tie_word_embeddings);
        assert_eq!(back.config.attention_bias, cfg.attention_bias);
        assert_eq!(back.base_params(), m.base_params());
        assert_eq!(lp(&back), lp(&m));
        let q8 = dir.path().join(format!("{arch}-q8.gguf"));
        write_gguf(&m, arch, GgmlType::Q8_0, &q8);
        let back = Model::<f32>::from_gguf(&q8).unwrap();
        for (a, b) in lp(&back).iter().zip(lp(&m)) {
            assert!((a - b).abs() < 2e-2, "{a} vs {b}");
        }
    }
}

#[test]
fn unsupported_architecture_and_missing_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = Model::<f32>::random(&ModelConfig::tiny(), 9).unwrap();
    let path = dir.path().join("llama.gguf");
    write_gguf(&m, "llama", GgmlType::F32, &path);
    assert!(matches!(
        Model::<f32>::from_gguf(&path),
        Err(ModelError::InvalidConfig {
            field: "architecture",
            ..
        })
    ));
    assert!(matches!(
        Model::<f32>::from_gguf(&dir.path().join("none.gguf")),
        Err(ModelError::Gguf(_))
    ));
}
