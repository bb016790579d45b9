//! Properties of the built-in byte tokenizer.

use flowrl_tokenizer::{ByteTokenizer, ChatMessage, Tokenizer, encode_chatml, render_chatml};
use proptest::prelude::*;

#[test]
fn chatml_ids_are_bytes_and_specials() {
    let t = ByteTokenizer::new();
    let msgs = [ChatMessage::system("s"), ChatMessage::user("hé")];
    let ids = encode_chatml(&t, &msgs, true).unwrap();
    let text = render_chatml(&msgs, true);
    assert_eq!(t.decode(&ids).unwrap(), text);
    assert_eq!(ids.iter().filter(|&&i| i == 257).count(), 3);
    assert_eq!(ids.iter().filter(|&&i| i == 258).count(), 2);
    assert_eq!(
        ids.len(),
        text.len() - 3 * ("<|im_start|>".len() - 1) - 2 * ("<|im_end|>".len() - 1)
    );
}

#[test]
fn chatml_needs_the_specials() {
    let t = ByteTokenizer::with_specials(vec!["<|endoftext|>".into()]).unwrap();
    assert!(encode_chatml(&t, &[ChatMessage::user("x")], false).is_err());
}

proptest! {
    #[test]
    fn text_round_trips(text in "(\\PC|<\\|im_start\\|>|<\\|im_end\\|>){0,60}") {
        let t = ByteTokenizer::new();
        let ids = t.encode(&text).unwrap();
        prop_assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
        prop_assert_eq!(t.decode(&ids).unwrap(), text);
    }

    #[test]
    fn any_ids_decode_without_panicking(ids in proptest::collection::vec(0u32..259, 0..64)) {
        let t = ByteTokenizer::new();
        let text = t.decode(&ids).unwrap();
        // Decoding cut multi-byte characters is lossy, never an error.
        prop_assert!(text.len() <= ids.len() * 13);
    }
}
