//! Hand-built GGUF files: writer → reader round trips, metadata of every
//! type, alignment, names, architecture info, and structural errors.

use flowrl_gguf::{
    ArchInfo, GgmlType, GgufError, GgufFile, GgufWriter, MetaArray, MetaValue, gguf_to_hf_name,
};

fn sample_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (x as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn every_metadata_type() -> Vec<(&'static str, MetaValue)> {
    vec![
        ("t.u8", MetaValue::U8(250)),
        ("t.i8", MetaValue::I8(-100)),
        ("t.u16", MetaValue::U16(65_000)),
        ("t.i16", MetaValue::I16(-30_000)),
        ("t.u32", MetaValue::U32(4_000_000_000)),
        ("t.i32", MetaValue::I32(-2_000_000_000)),
        ("t.f32", MetaValue::F32(-1.25e-6)),
        ("t.bool", MetaValue::Bool(true)),
        ("t.string", MetaValue::String("héllo ✓".into())),
        ("t.u64", MetaValue::U64(u64::MAX - 1)),
        ("t.i64", MetaValue::I64(i64::MIN + 3)),
        ("t.f64", MetaValue::F64(std::f64::consts::PI)),
        ("t.arr.u8", MetaValue::Array(MetaArray::U8(vec![1, 2, 255]))),
        ("t.arr.i8", MetaValue::Array(MetaArray::I8(vec![-1, 0, 1]))),
        (
            "t.arr.u16",
            MetaValue::Array(MetaArray::U16(vec![7, 65_535])),
        ),
        ("t.arr.i16", MetaValue::Array(MetaArray::I16(vec![-7, 300]))),
        ("t.arr.u32", MetaValue::Array(MetaArray::U32(vec![1, 2, 3]))),
        ("t.arr.i32", MetaValue::Array(MetaArray::I32(vec![-5, 5]))),
        (
            "t.arr.f32",
            MetaValue::Array(MetaArray::F32(vec![0.5, -0.25])),
        ),
        (
            "t.arr.bool",
            MetaValue::Array(MetaArray::Bool(vec![true, false, true])),
        ),
        (
            "t.arr.string",
            MetaValue::Array(MetaArray::String(vec![
                "a".into(),
                "".into(),
                "Ġhello".into(),
            ])),
        ),
        (
            "t.arr.u64",
            MetaValue::Array(MetaArray::U64(vec![u64::MAX])),
        ),
        (
            "t.arr.i64",
            MetaValue::Array(MetaArray::I64(vec![i64::MIN, 0])),
        ),
        (
            "t.arr.f64",
            MetaValue::Array(MetaArray::F64(vec![1e300, -2.5])),
        ),
        ("t.arr.empty", MetaValue::Array(MetaArray::U32(vec![]))),
        (
            "t.arr.nested",
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::I32(vec![1, 2]),
                MetaArray::String(vec!["x".into()]),
                MetaArray::Array(vec![MetaArray::F32(vec![3.0])]),
            ])),
        ),
    ]
}

/// Name, shape (Hugging Face order), original values, stored type.
type Written = (String, Vec<usize>, Vec<f32>, GgmlType);

fn tiny_model(version: u32) -> (GgufWriter, Vec<Written>) {
    let mut w = GgufWriter::new();
    w.version(version).unwrap();
    for (k, v) in every_metadata_type() {
        w.metadata(k, v).unwrap();
    }
    let meta = [
        ("general.architecture", MetaValue::String("qwen2".into())),
        ("qwen2.block_count", MetaValue::U32(2)),
        ("qwen2.embedding_length", MetaValue::U32(64)),
        ("qwen2.feed_forward_length", MetaValue::U32(96)),
        ("qwen2.attention.head_count", MetaValue::U32(4)),
        ("qwen2.attention.head_count_kv", MetaValue::U32(2)),
        ("qwen2.rope.freq_base", MetaValue::F32(1_000_000.0)),
        (
            "qwen2.attention.layer_norm_rms_epsilon",
            MetaValue::F32(1e-6),
        ),
        ("qwen2.context_length", MetaValue::U32(2048)),
    ];
    for (k, v) in meta {
        w.metadata(k, v).unwrap();
    }
    let mut tensors = Vec::new();
    let mut add = |name: &str, shape: Vec<usize>, ty: GgmlType, seed: u32| {
        let n = shape.iter().product();
        let values = sample_values(n, seed);
        w.tensor_f32(name, &shape, &values, ty).unwrap();
        tensors.push((name.to_string(), shape, values, ty));
    };
    add("token_embd.weight", vec![40, 64], GgmlType::Q8_0, 1);
    add("output_norm.weight", vec![64], GgmlType::F32, 2);
    for l in 0..2 {
        add(
            &format!("blk.{l}.attn_norm.weight"),
            vec![64],
            GgmlType::F32,
            10 + l,
        );
        add(
            &format!("blk.{l}.attn_q.weight"),
            vec![64, 64],
            GgmlType::F16,
            20 + l,
        );
        add(
            &format!("blk.{l}.attn_q.bias"),
            vec![64],
            GgmlType::F32,
            30 + l,
        );
        add(
            &format!("blk.{l}.attn_k.weight"),
            vec![32, 64],
            GgmlType::Q8_0,
            40 + l,
        );
        add(
            &format!("blk.{l}.ffn_down.weight"),
            vec![64, 96],
            GgmlType::BF16,
            50 + l,
        );
    }
    (w, tensors)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn writer_output_reads_back_for_both_versions() {
    for version in [2, 3] {
        let (w, tensors) = tiny_model(version);
        let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
        assert_eq!(file.version(), version);
        assert_eq!(file.alignment(), 32);
        assert_eq!(file.data_offset() % 32, 0);
        for (k, v) in every_metadata_type() {
            assert_eq!(file.get(k), Some(&v), "{k}");
        }
        assert_eq!(file.tensors().len(), tensors.len());
        for (name, shape, values, ty) in &tensors {
            let info = file.tensor_info(name).unwrap();
            assert_eq!(info.ggml_type, *ty);
            assert_eq!(&info.shape(), shape);
            let reversed: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
            assert_eq!(info.dims, reversed, "GGUF ne order is the reverse");
            assert_eq!(info.offset % 32, 0);
            let t = file.dequantize(name).unwrap();
            assert_eq!(&t.shape, shape);
            assert_eq!(t.data.len(), values.len());
            let tol = match ty {
                GgmlType::F32 => 0.0,
                GgmlType::F16 => 1e-3,
                GgmlType::BF16 => 4e-3,
                // |x| <= 1, so d <= 1/127 and the error is at most d/2.
                _ => 0.5 / 127.0 * 1.001,
            };
            let err = max_abs_diff(&t.data, values);
            assert!(err <= tol, "{name} {ty}: error {err} > {tol}");
        }
    }
}

#[test]
fn custom_alignment_is_honoured() {
    let mut w = GgufWriter::new();
    w.alignment(64).unwrap();
    w.tensor_f32("a.weight", &[3], &[1.0, 2.0, 3.0], GgmlType::F32)
        .unwrap();
    w.tensor_f32("b.weight", &[5], &[4.0; 5], GgmlType::F16)
        .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_offset() % 64, 0);
    assert_eq!(file.tensor_info("b.weight").unwrap().offset, 64);
    assert_eq!(
        file.dequantize("a.weight").unwrap().data,
        vec![1.0, 2.0, 3.0]
    );
    assert_eq!(file.dequantize("b.weight").unwrap().data, vec![4.0; 5]);
    assert!(w.alignment(48).is_err());
}

#[test]
fn files_on_disk_are_memory_mapped() {
    let (w, tensors) = tiny_model(3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    w.write(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let (name, _, values, _) = &tensors[1];
    assert_eq!(&file.dequantize(name).unwrap().data, values);
    assert_eq!(file.len() as u64, std::fs::metadata(&path).unwrap().len());

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        GgufFile::open(&empty),
        Err(GgufError::Truncated { .. })
    ));
    assert!(matches!(
        GgufFile::open(dir.path().join("missing.gguf")),
        Err(GgufError::Io { .. })
    ));
}

#[test]
fn arch_info_reads_the_qwen2_keys() {
    let (w, _) = tiny_model(3);
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let info = ArchInfo::from_gguf(&file).unwrap();
    assert_eq!(
        info,
        ArchInfo {
            architecture: "qwen2".into(),
            block_count: 2,
            embedding_length: 64,
            feed_forward_length: 96,
            head_count: 4,
            head_count_kv: 2,
            head_dim: 16,
            rope_freq_base: 1_000_000.0,
            rms_norm_eps: 1e-6,
            context_length: 2048,
            vocab_size: 40,
            tied_embeddings: true,
        }
    );
    let json = serde_json::to_string(&info).unwrap();
    let back: ArchInfo = serde_json::from_str(&json).unwrap();
    assert_eq!(back, info);
}

#[test]
fn arch_info_reports_missing_and_bad_keys() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", MetaValue::String("qwen2".into()))
        .unwrap();
    w.metadata("qwen2.block_count", MetaValue::U32(2)).unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    match ArchInfo::from_gguf(&file) {
        Err(GgufError::MissingKey { key }) => assert_eq!(key, "qwen2.embedding_length"),
        other => panic!("expected a missing key, got {other:?}"),
    }

    let mut w = GgufWriter::new();
    w.metadata("general.architecture", MetaValue::String("qwen2".into()))
        .unwrap();
    w.metadata("qwen2.block_count", MetaValue::String("two".into()))
        .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert!(matches!(
        ArchInfo::from_gguf(&file),
        Err(GgufError::WrongType { .. })
    ));
}

#[test]
fn tensor_names_map_to_hugging_face() {
    let (w, tensors) = tiny_model(3);
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    for (name, ..) in &tensors {
        assert!(gguf_to_hf_name(name).is_some(), "{name}");
    }
    assert_eq!(
        gguf_to_hf_name(&file.tensors()[0].name).as_deref(),
        Some("model.embed_tokens.weight")
    );
    let by_hf = file
        .dequantize_hf("model.layers.1.self_attn.q_proj.bias")
        .unwrap();
    let by_gguf = file.dequantize("blk.1.attn_q.bias").unwrap();
    assert_eq!(by_hf.name, "model.layers.1.self_attn.q_proj.bias");
    assert_eq!((by_hf.shape, by_hf.data), (by_gguf.shape, by_gguf.data));
    assert!(matches!(
        file.dequantize_hf("lm_head.weight"),
        Err(GgufError::TensorNotFound { .. })
    ));
    assert!(matches!(
        file.dequantize_hf("model.rotary.inv_freq"),
        Err(GgufError::TensorNotFound { .. })
    ));
}

fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&tensors.to_le_bytes());
    b.extend_from_slice(&kvs.to_le_bytes());
    b
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn tensor_info(b: &mut Vec<u8>, name: &str, dims: &[u64], ty: u32, offset: u64) {
    put_str(b, name);
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
}

fn pad_to(b: &mut Vec<u8>, align: usize) {
    b.resize(b.len().div_ceil(align) * align, 0);
}

#[test]
fn structural_errors_are_typed() {
    let err = GgufFile::from_bytes(b"GGML\x03\0\0\0".to_vec()).unwrap_err();
    assert!(matches!(err, GgufError::BadMagic { found } if &found == b"GGML"));

    for version in [1u32, 4, 0x0300_0000] {
        let err = GgufFile::from_bytes(header(version, 0, 0)).unwrap_err();
        assert!(matches!(err, GgufError::UnsupportedVersion { version: v } if v == version));
    }

    // A count far larger than the file is rejected before allocating.
    let err = GgufFile::from_bytes(header(3, 0, u64::MAX)).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    let err = GgufFile::from_bytes(header(3, u64::MAX / 2, 0)).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");

    // Unknown metadata value type.
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    b.extend_from_slice(&13u32.to_le_bytes());
    let err = GgufFile::from_bytes(b).unwrap_err();
    assert!(matches!(
        err,
        GgufError::InvalidValueType { type_id: 13, .. }
    ));

    // Invalid UTF-8 in a key.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&2u64.to_le_bytes());
    b.extend_from_slice(&[0xff, 0xfe]);
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes(b),
        Err(GgufError::InvalidUtf8 { .. })
    ));

    // Duplicate keys.
    let mut b = header(3, 0, 2);
    for _ in 0..2 {
        put_str(&mut b, "dup");
        b.extend_from_slice(&7u32.to_le_bytes());
        b.push(1);
    }
    assert!(matches!(
        GgufFile::from_bytes(b),
        Err(GgufError::DuplicateKey { .. })
    ));

    // Alignment that is not a power of two.
    let mut b = header(3, 0, 1);
    put_str(&mut b, "general.alignment");
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&24u32.to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes(b),
        Err(GgufError::InvalidAlignment { value: 24 })
    ));

    // Arrays nested too deep.
    let mut b = header(3, 0, 1);
    put_str(&mut b, "deep");
    b.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..20 {
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
    }
    b.extend_from_slice(&[0u8; 64]);
    assert!(matches!(
        GgufFile::from_bytes(b),
        Err(GgufError::NestingTooDeep { .. })
    ));
}

#[test]
fn tensor_info_errors_are_typed() {
    let with = |infos: &dyn Fn(&mut Vec<u8>), n: u64, data: usize| {
        let mut b = header(3, n, 0);
        infos(&mut b);
        pad_to(&mut b, 32);
        b.extend(std::iter::repeat_n(0u8, data));
        GgufFile::from_bytes(b)
    };
    // Unknown ggml type.
    let err = with(&|b| tensor_info(b, "t", &[4], 99, 0), 1, 16).unwrap_err();
    assert!(matches!(err, GgufError::UnknownType { type_id: 99, .. }));
    // Too many dimensions, zero dimensions.
    let err = with(&|b| tensor_info(b, "t", &[1, 1, 1, 1, 1], 0, 0), 1, 4).unwrap_err();
    assert!(matches!(err, GgufError::InvalidTensor { .. }), "{err}");
    let err = with(&|b| tensor_info(b, "t", &[], 0, 0), 1, 4).unwrap_err();
    assert!(matches!(err, GgufError::InvalidTensor { .. }), "{err}");
    // A row that is not a whole number of Q8_0 blocks.
    let err = with(&|b| tensor_info(b, "t", &[16, 2], 8, 0), 1, 68).unwrap_err();
    assert!(matches!(err, GgufError::InvalidTensor { .. }), "{err}");
    // Element count overflow.
    let err = with(&|b| tensor_info(b, "t", &[u64::MAX, 4], 0, 0), 1, 4).unwrap_err();
    assert!(matches!(err, GgufError::InvalidTensor { .. }), "{err}");
    // Misaligned offset.
    let err = with(&|b| tensor_info(b, "t", &[4], 0, 8), 1, 64).unwrap_err();
    assert!(matches!(err, GgufError::InvalidTensor { .. }), "{err}");
    // Data beyond the end of the file, and an offset that overflows.
    let err = with(&|b| tensor_info(b, "t", &[8], 0, 0), 1, 31).unwrap_err();
    assert!(matches!(err, GgufError::TensorOutOfBounds { .. }), "{err}");
    let err = with(&|b| tensor_info(b, "t", &[8], 0, u64::MAX - 31), 1, 32).unwrap_err();
    assert!(matches!(err, GgufError::TensorOutOfBounds { .. }), "{err}");
    // Overlapping and duplicate tensors.
    let err = with(
        &|b| {
            tensor_info(b, "a", &[16], 0, 0);
            tensor_info(b, "b", &[16], 0, 32);
        },
        2,
        96,
    )
    .unwrap_err();
    assert!(matches!(err, GgufError::OverlappingTensors { .. }), "{err}");
    let err = with(
        &|b| {
            tensor_info(b, "a", &[4], 0, 0);
            tensor_info(b, "a", &[4], 0, 32);
        },
        2,
        64,
    )
    .unwrap_err();
    assert!(matches!(err, GgufError::DuplicateTensor { .. }), "{err}");
    // Unsupported dequantisation is an error, not a panic.
    let file = with(&|b| tensor_info(b, "q2", &[256], 10, 0), 1, 84).unwrap();
    assert!(matches!(
        file.dequantize("q2"),
        Err(GgufError::UnsupportedType { .. })
    ));
    assert_eq!(file.tensor_bytes("q2").unwrap().len(), 84);
    assert!(matches!(
        file.dequantize("nope"),
        Err(GgufError::TensorNotFound { .. })
    ));
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = GgufWriter::new();
    assert!(w.version(1).is_err());
    assert!(
        w.tensor_f32("a", &[2, 3], &[0.0; 5], GgmlType::F32)
            .is_err()
    );
    assert!(
        w.tensor_f32("a", &[2, 30], &[0.0; 60], GgmlType::Q8_0)
            .is_err()
    );
    assert!(w.tensor_f32("a", &[], &[], GgmlType::F32).is_err());
    assert!(w.tensor_f32("a", &[32], &[0.0; 32], GgmlType::Q4K).is_err());
    assert!(
        w.tensor_raw("a", &[32], GgmlType::Q4_0, vec![0; 17])
            .is_err()
    );
    w.tensor_f32("a", &[1], &[0.0], GgmlType::F32).unwrap();
    assert!(w.tensor_f32("a", &[1], &[0.0], GgmlType::F32).is_err());
    w.metadata("k", MetaValue::U8(1)).unwrap();
    assert!(w.metadata("k", MetaValue::U8(2)).is_err());
    assert!(w.metadata("general.alignment", MetaValue::U32(64)).is_err());
}
