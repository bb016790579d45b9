//! A hand-built byte-level BPE `tokenizer.json` (the structure of Qwen's,
//! with a vocabulary small enough to reason about) through [`HfTokenizer`].

use flowrl_tokenizer::{
    ChatMessage, HfTokenizer, Tokenizer, TokenizerError, encode_chatml, render_chatml,
};
use proptest::prelude::*;
use serde_json::json;

/// GPT-2's reversible byte → printable character map used by byte-level BPE.
fn byte_char(b: u8) -> char {
    let printable = |c: u32| {
        (0x21..=0x7e).contains(&c) || (0xa1..=0xac).contains(&c) || (0xae..=0xff).contains(&c)
    };
    if printable(u32::from(b)) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(u32::from(x))).count() as u32;
    char::from_u32(256 + rank).unwrap()
}

const HELLO: u32 = 259;
const G_W: u32 = 260;
const EOT: u32 = 261;
const IM_START: u32 = 262;
const IM_END: u32 = 263;

fn tiny_json() -> Vec<u8> {
    let mut vocab = serde_json::Map::new();
    for b in 0..=255u8 {
        vocab.insert(byte_char(b).to_string(), json!(b));
    }
    for (piece, id) in [
        ("he", 256),
        ("ll", 257),
        ("hell", 258),
        ("hello", HELLO),
        ("Ġw", G_W),
    ] {
        vocab.insert(piece.into(), json!(id));
    }
    let added: Vec<_> = [
        (EOT, "<|endoftext|>"),
        (IM_START, "<|im_start|>"),
        (IM_END, "<|im_end|>"),
    ]
    .iter()
    .map(|(id, content)| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
    })
    .collect();
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab,
            "merges": ["h e", "l l", "he ll", "hell o", "Ġ w"]
        }
    });
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn huge_ids_are_rejected() {
    let mut doc: serde_json::Value = serde_json::from_slice(&tiny_json()).unwrap();
    doc["model"]["vocab"]["zzz"] = json!(u32::MAX - 1);
    let bytes = serde_json::to_vec(&doc).unwrap();
    match HfTokenizer::from_bytes(&bytes) {
        Err(TokenizerError::Load { message, .. }) => {
            assert!(message.contains("exceeds"), "{message}")
        }
        other => panic!("expected a load error, got {other:?}"),
    }
}

fn tiny() -> HfTokenizer {
    HfTokenizer::from_bytes(&tiny_json()).unwrap()
}

#[test]
fn encodes_with_merges_and_specials() {
    let t = tiny();
    assert_eq!(t.vocab_size(), 264);
    assert_eq!(t.encode("hello").unwrap(), vec![HELLO]);
    assert_eq!(
        t.encode("hello world").unwrap(),
        vec![
            HELLO,
            G_W,
            u32::from(b'o'),
            u32::from(b'r'),
            u32::from(b'l'),
            u32::from(b'd')
        ]
    );
    let s = t.special_tokens();
    assert_eq!(
        (s.endoftext, s.im_start, s.im_end),
        (Some(EOT), Some(IM_START), Some(IM_END))
    );
    assert_eq!(s.stop_ids(), vec![IM_END, EOT]);
    assert_eq!(t.id_to_token(G_W).as_deref(), Some("Ġw"));
    assert_eq!(t.token_to_id("<|im_end|>"), Some(IM_END));
}

#[test]
fn chatml_prompt_encodes_to_special_ids() {
    let t = tiny();
    let msgs = [ChatMessage::user("hello")];
    let ids = encode_chatml(&t, &msgs, true).unwrap();
    let mut want = vec![IM_START];
    want.extend(b"user\n".iter().map(|&b| u32::from(b)));
    want.extend([HELLO, IM_END, 10, IM_START]);
    want.extend(b"assistant\n".iter().map(|&b| u32::from(b)));
    assert_eq!(ids, want);
    assert_eq!(t.decode(&ids).unwrap(), render_chatml(&msgs, true));
}

#[test]
fn errors_are_typed() {
    let t = tiny();
    assert!(matches!(
        t.decode(&[HELLO, 5000]),
        Err(TokenizerError::UnknownId {
            id: 5000,
            vocab_size: 264
        })
    ));
    assert!(matches!(
        HfTokenizer::from_bytes(b"{not json"),
        Err(TokenizerError::Load { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        HfTokenizer::from_file(dir.path().join("missing.json")),
        Err(TokenizerError::Io { .. })
    ));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"[]").unwrap();
    match HfTokenizer::from_file(&bad) {
        Err(e @ TokenizerError::Load { .. }) => assert!(e.to_string().contains("bad.json"), "{e}"),
        other => panic!("expected a load error, got {other:?}"),
    }
    let good = dir.path().join("tokenizer.json");
    std::fs::write(&good, tiny_json()).unwrap();
    assert_eq!(
        HfTokenizer::from_file(&good)
            .unwrap()
            .encode("hello")
            .unwrap(),
        vec![HELLO]
    );
}

proptest! {
    #[test]
    fn any_text_round_trips(text in "\\PC{0,40}") {
        let t = tiny();
        let ids = t.encode(&text).unwrap();
        prop_assert_eq!(t.decode(&ids).unwrap(), text);
    }
}
