//! Minimal XML-like tag scanning shared by the protocol parsers.
//!
//! The protocols use flat, non-nested tags (`<think>…</think>`), so a scan for
//! the opening tag and the next closing tag is exact and cannot panic.

/// A tag occurrence: its name, its inner text, and byte offsets into the
/// scanned string (`start` at `<`, `end` one past the closing `>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag<'a> {
    /// Tag name (between `<` and `>`).
    pub name: &'a str,
    /// Text between the opening and closing tags.
    pub inner: &'a str,
    /// Byte offset of the opening `<`.
    pub start: usize,
    /// Byte offset one past the closing tag's `>`.
    pub end: usize,
}

/// Finds the first `<name>…</name>` at or after byte offset `from`.
///
/// Returns `None` when the opening tag is absent or never closed (also when
/// `from` is out of range or not on a character boundary).
pub fn find<'a>(s: &'a str, name: &'a str, from: usize) -> Option<Tag<'a>> {
    let hay = s.get(from..)?;
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let o = hay.find(&open)?;
    let inner_start = from + o + open.len();
    let c = s.get(inner_start..)?.find(&close)?;
    Some(Tag {
        name,
        inner: &s[inner_start..inner_start + c],
        start: from + o,
        end: inner_start + c + close.len(),
    })
}

/// Removes every `<name>…</name>` block (and an unclosed trailing `<name>…`).
pub fn strip(s: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(o) = rest.find(&open) {
        out.push_str(&rest[..o]);
        match rest[o..].find(&close) {
            Some(c) => rest = &rest[o + c + close.len()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}
