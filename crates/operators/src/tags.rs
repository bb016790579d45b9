//! Lenient extraction of `<tag>…</tag>` blocks from model output.

/// The content of the first complete `<tag>…</tag>` block, trimmed; `None`
/// when the opening or the closing tag is missing. Tag names match
/// case-insensitively.
pub fn extract(text: &str, tag: &str) -> Option<String> {
    extract_all(text, tag).into_iter().next()
}

/// The contents of every complete `<tag>…</tag>` block, in order, trimmed.
pub fn extract_all(text: &str, tag: &str) -> Vec<String> {
    spans(text, tag)
        .into_iter()
        .map(|(_, inner)| text[inner.0..inner.1].trim().to_string())
        .collect()
}

/// `true` when `<tag>` opens somewhere but is never closed.
pub fn unclosed(text: &str, tag: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let open = format!("<{}>", tag.to_ascii_lowercase());
    let close = format!("</{}>", tag.to_ascii_lowercase());
    lower.matches(&open).count() > lower.matches(&close).count()
}

/// The text with every complete `<tag>…</tag>` block of the given tags removed, trimmed.
pub fn strip(text: &str, tags: &[&str]) -> String {
    let mut cut: Vec<(usize, usize)> = tags
        .iter()
        .flat_map(|t| spans(text, t).into_iter().map(|(outer, _)| outer))
        .collect();
    cut.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end) in cut {
        if start >= pos {
            out.push_str(&text[pos..start]);
            pos = end;
        }
    }
    out.push_str(&text[pos..]);
    out.trim().to_string()
}

/// `((outer_start, outer_end), (inner_start, inner_end))` byte ranges of each
/// complete block. ASCII lower-casing keeps byte offsets valid.
fn spans(text: &str, tag: &str) -> Vec<((usize, usize), (usize, usize))> {
    let lower = text.to_ascii_lowercase();
    let open = format!("<{}>", tag.to_ascii_lowercase());
    let close = format!("</{}>", tag.to_ascii_lowercase());
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = lower[from..].find(&open) {
        let start = from + rel;
        let inner_start = start + open.len();
        let Some(crel) = lower[inner_start..].find(&close) else {
            break;
        };
        let inner_end = inner_start + crel;
        let end = inner_end + close.len();
        out.push(((start, end), (inner_start, inner_end)));
        from = end;
    }
    out
}

/// Cuts `text` to at most `max_chars` characters, keeping the first and the
/// last halves with a `...(truncated)...` marker between them (§5 of the
/// algorithms notes: 2,048 characters, 1,024 + 1,024). `max_chars = 0`
/// disables the cut.
pub fn truncate_middle(text: &str, max_chars: usize) -> String {
    let n = text.chars().count();
    if max_chars == 0 || n <= max_chars {
        return text.to_string();
    }
    let head = max_chars / 2;
    let tail = max_chars - head;
    let first: String = text.chars().take(head).collect();
    let last: String = text.chars().skip(n - tail).collect();
    format!("{first}\n...(truncated)...\n{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_and_strips() {
        let t = "x <Answer> 42 </answer> y <answer>7</answer> <thought>open";
        assert_eq!(extract(t, "answer").as_deref(), Some("42"));
        assert_eq!(extract_all(t, "ANSWER"), vec!["42", "7"]);
        assert_eq!(extract(t, "thought"), None);
        assert!(unclosed(t, "thought"));
        assert!(!unclosed(t, "answer"));
        assert_eq!(strip(t, &["answer"]), "x  y  <thought>open");
    }

    #[test]
    fn truncation_keeps_both_ends() {
        let s: String = "a".repeat(1500) + &"b".repeat(1500);
        let t = truncate_middle(&s, 2048);
        assert!(t.starts_with(&"a".repeat(1024)));
        assert!(t.ends_with(&"b".repeat(1024)));
        assert!(t.contains("...(truncated)..."));
        assert_eq!(truncate_middle("short", 2048), "short");
        assert_eq!(truncate_middle(&s, 0), s);
    }
}
