//! Checks against the real Qwen tokenizer.json fetched by
//! `scripts/fetch-qwen-0.5b.sh`. Skipped (with a message) when absent. Path:
//! `$FLOWRL_QWEN_TOKENIZER`, else
//! `${FLOWRL_CACHE:-$HOME/.cache/flowrl}/qwen2.5-tokenizer.json`.

use std::path::PathBuf;

use flowrl_tokenizer::{ChatMessage, HfTokenizer, Tokenizer, encode_chatml, render_chatml};

fn tokenizer() -> Option<HfTokenizer> {
    let path = match std::env::var_os("FLOWRL_QWEN_TOKENIZER") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("FLOWRL_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/flowrl")))?
            .join("qwen2.5-tokenizer.json"),
    };
    if !path.is_file() {
        println!(
            "skipped: {} not found (run scripts/fetch-qwen-0.5b.sh or set FLOWRL_QWEN_TOKENIZER)",
            path.display()
        );
        return None;
    }
    Some(HfTokenizer::from_file(&path).unwrap())
}

#[test]
fn special_tokens_have_their_known_ids() {
    let Some(t) = tokenizer() else { return };
    let s = t.special_tokens();
    assert_eq!(s.endoftext, Some(151_643));
    assert_eq!(s.im_start, Some(151_644));
    assert_eq!(s.im_end, Some(151_645));
    assert_eq!(t.id_to_token(151_645).as_deref(), Some("<|im_end|>"));
    // 151643 BPE pieces + 26 added tokens (Qwen3 appends <think> etc.).
    assert_eq!(t.vocab_size(), 151_669);
}

#[test]
fn chatml_prompt_round_trips() {
    let Some(t) = tokenizer() else { return };
    let msgs = [
        ChatMessage::system("You are a helpful coding assistant."),
        ChatMessage::user("Write a function that reverses a list."),
    ];
    let ids = encode_chatml(&t, &msgs, true).unwrap();
    assert_eq!(ids[0], 151_644);
    assert_eq!(ids.iter().filter(|&&i| i == 151_644).count(), 3);
    assert_eq!(ids.iter().filter(|&&i| i == 151_645).count(), 2);
    // "system" is a single token directly after <|im_start|>, then "\n" (Ċ).
    assert_eq!(t.id_to_token(ids[1]).as_deref(), Some("system"));
    assert_eq!(t.id_to_token(ids[2]).as_deref(), Some("Ċ"));
    assert_eq!(t.decode(&ids).unwrap(), render_chatml(&msgs, true));
    // Much shorter than the byte count: real BPE merges happened.
    assert!(ids.len() < render_chatml(&msgs, true).len() / 2);
}

#[test]
fn python_snippet_round_trips() {
    let Some(t) = tokenizer() else { return };
    let code = "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint([fib(i) for i in range(10)])  # 0 1 1 2 3 5 …\n";
    let ids = t.encode(code).unwrap();
    assert_eq!(t.decode(&ids).unwrap(), code);
    assert!(ids.len() < code.len() / 2, "{} tokens", ids.len());
    // Qwen pre-tokenisation splits digits one by one.
    let digits = t.encode("12345").unwrap();
    assert_eq!(digits.len(), 5);
    let text = "中文注释 and émojis 🦀";
    assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
}
