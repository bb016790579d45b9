//! Truncated and corrupted files give errors, never panics or out-of-bounds
//! reads.

use flowrl_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, MetaArray, MetaValue};
use proptest::prelude::*;

fn sample_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", MetaValue::String("qwen2".into()))
        .unwrap();
    w.metadata("a.u32", MetaValue::U32(7)).unwrap();
    w.metadata("a.f64", MetaValue::F64(0.5)).unwrap();
    w.metadata("a.bool", MetaValue::Bool(false)).unwrap();
    w.metadata(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::String(vec![
            "<a>".into(),
            "Ġb".into(),
            "".into(),
        ])),
    )
    .unwrap();
    w.metadata(
        "nested",
        MetaValue::Array(MetaArray::Array(vec![
            MetaArray::I16(vec![-1, 2]),
            MetaArray::U8(vec![]),
        ])),
    )
    .unwrap();
    w.alignment(16).unwrap();
    let v: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
    w.tensor_f32("token_embd.weight", &[2, 32], &v, GgmlType::Q8_0)
        .unwrap();
    w.tensor_f32("blk.0.attn_norm.weight", &[5], &v[..5], GgmlType::F32)
        .unwrap();
    w.tensor_f32("blk.0.attn_q.weight", &[3, 4], &v[..12], GgmlType::F16)
        .unwrap();
    w.to_bytes()
}

#[test]
fn every_strict_prefix_is_rejected() {
    let full = sample_file();
    let file = GgufFile::from_bytes(full.clone()).unwrap();
    for t in file.tensors() {
        file.dequantize(&t.name).unwrap();
    }
    for cut in 0..full.len() {
        match GgufFile::from_bytes(full[..cut].to_vec()) {
            Err(GgufError::Truncated { .. } | GgufError::TensorOutOfBounds { .. }) => {}
            Err(other) => panic!("cut at {cut}: unexpected error kind {other}"),
            Ok(_) => panic!("cut at {cut} of {} parsed", full.len()),
        }
    }
}

#[test]
fn truncated_file_on_disk_is_rejected() {
    let full = sample_file();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    std::fs::write(&path, &full[..full.len() - 3]).unwrap();
    let err = GgufFile::open(&path).unwrap_err();
    assert!(err.to_string().contains("blk.0.attn_q.weight"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_cuts_error(cut in 0usize..10_000) {
        let full = sample_file();
        let cut = cut % full.len();
        prop_assert!(GgufFile::from_bytes(full[..cut].to_vec()).is_err());
    }

    #[test]
    fn corrupted_bytes_never_panic(edits in proptest::collection::vec((0usize..10_000, any::<u8>()), 1..8)) {
        let mut bytes = sample_file();
        let len = bytes.len();
        for (at, value) in edits {
            bytes[at % len] = value;
        }
        if let Ok(file) = GgufFile::from_bytes(bytes) {
            let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
            for name in names {
                // Either values or a typed error; never a panic.
                if let Ok(t) = file.dequantize(&name) {
                    prop_assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut with_magic = b"GGUF\x03\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = GgufFile::from_bytes(bytes);
        let _ = GgufFile::from_bytes(with_magic);
    }

    #[test]
    fn metadata_round_trips(
        ints in proptest::collection::vec(any::<i64>(), 0..20),
        floats in proptest::collection::vec(any::<f32>().prop_filter("not NaN", |f| !f.is_nan()), 0..20),
        strings in proptest::collection::vec(".{0,12}", 0..10),
        flag in any::<bool>(),
    ) {
        let mut w = GgufWriter::new();
        let values = vec![
            ("i", MetaValue::Array(MetaArray::I64(ints.clone()))),
            ("f", MetaValue::Array(MetaArray::F32(floats.clone()))),
            ("s", MetaValue::Array(MetaArray::String(strings.clone()))),
            ("b", MetaValue::Bool(flag)),
            ("first", MetaValue::I64(ints.first().copied().unwrap_or(0))),
        ];
        for (k, v) in &values {
            w.metadata(*k, v.clone()).unwrap();
        }
        let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
        for (k, v) in &values {
            prop_assert_eq!(file.get(k), Some(v));
        }
    }
}
