//! The built-in byte-level tokenizer: ids 0..256 are bytes, then specials.

use std::collections::HashMap;

use crate::error::{Result, TokenizerError};
use crate::{ENDOFTEXT, IM_END, IM_START, SpecialTokens, Tokenizer};

/// Number of byte ids.
pub const BYTE_IDS: u32 = 256;

/// Most special tokens a [`ByteTokenizer`] accepts.
pub const MAX_SPECIALS: usize = 1024;

/// A tokenizer with one id per byte (`0..256`) followed by special tokens
/// (`256..256 + n`). The default specials are `<|endoftext|>` (256),
/// `<|im_start|>` (257) and `<|im_end|>` (258), so the vocabulary has 259 ids.
///
/// Encoding is UTF-8 bytes, except that special-token text is matched first
/// (longest match wins) and becomes its id.
#[derive(Debug, Clone)]
pub struct ByteTokenizer {
    specials: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for ByteTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ByteTokenizer {
    /// The tokenizer with the three default ChatML specials.
    pub fn new() -> Self {
        Self::build(vec![ENDOFTEXT.into(), IM_START.into(), IM_END.into()])
    }

    /// A tokenizer with these specials, in order, at ids 256, 257, ….
    ///
    /// # Errors
    /// [`TokenizerError::InvalidSpecials`] when a special is empty or
    /// repeated, or there are more than [`MAX_SPECIALS`].
    pub fn with_specials(specials: Vec<String>) -> Result<Self> {
        if specials.len() > MAX_SPECIALS {
            return Err(TokenizerError::InvalidSpecials {
                reason: format!("{} specials (at most {MAX_SPECIALS})", specials.len()),
            });
        }
        for (i, s) in specials.iter().enumerate() {
            if s.is_empty() {
                return Err(TokenizerError::InvalidSpecials {
                    reason: format!("special {i} is empty"),
                });
            }
            if specials[..i].contains(s) {
                return Err(TokenizerError::InvalidSpecials {
                    reason: format!("`{s}` appears twice"),
                });
            }
        }
        Ok(Self::build(specials))
    }

    fn build(specials: Vec<String>) -> Self {
        let index = specials
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), BYTE_IDS + i as u32))
            .collect();
        Self { specials, index }
    }

    /// The special tokens, in id order from 256.
    pub fn specials(&self) -> &[String] {
        &self.specials
    }

    /// The piece of `id`: the byte as a character for printable ASCII
    /// (`0x21..=0x7e`), `<0xNN>` for other bytes, the text of a special.
    pub fn piece(&self, id: u32) -> Option<String> {
        if id < BYTE_IDS {
            let b = id as u8;
            Some(if b.is_ascii_graphic() {
                char::from(b).to_string()
            } else {
                format!("<0x{b:02X}>")
            })
        } else {
            self.specials.get((id - BYTE_IDS) as usize).cloned()
        }
    }

    fn special_at(&self, text: &str) -> Option<(usize, u32)> {
        self.specials
            .iter()
            .enumerate()
            .filter(|(_, s)| text.starts_with(s.as_str()))
            .max_by_key(|(_, s)| s.len())
            .map(|(i, s)| (s.len(), BYTE_IDS + i as u32))
    }
}

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some((len, id)) = self.special_at(rest) {
                ids.push(id);
                rest = &rest[len..];
            } else {
                let len = c.len_utf8();
                ids.extend(rest.as_bytes()[..len].iter().map(|&b| u32::from(b)));
                rest = &rest[len..];
            }
        }
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut out = String::new();
        let mut bytes = Vec::new();
        for &id in ids {
            if id < BYTE_IDS {
                bytes.push(id as u8);
                continue;
            }
            let special =
                self.specials
                    .get((id - BYTE_IDS) as usize)
                    .ok_or(TokenizerError::UnknownId {
                        id,
                        vocab_size: self.vocab_size(),
                    })?;
            out.push_str(&String::from_utf8_lossy(&bytes));
            bytes.clear();
            out.push_str(special);
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        Ok(out)
    }

    fn vocab_size(&self) -> usize {
        BYTE_IDS as usize + self.specials.len()
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        if let Some(&id) = self.index.get(token) {
            return Some(id);
        }
        let b = token.as_bytes();
        if b.len() == 1 && b[0].is_ascii_graphic() {
            return Some(u32::from(b[0]));
        }
        let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
        if hex.len() != 2 {
            return None;
        }
        let byte = u8::from_str_radix(hex, 16).ok()?;
        (!byte.is_ascii_graphic()).then_some(u32::from(byte))
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.piece(id)
    }

    fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::from_lookup(|t| self.index.get(t).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let t = ByteTokenizer::new();
        assert_eq!(t.vocab_size(), 259);
        let s = t.special_tokens();
        assert_eq!(
            (s.endoftext, s.im_start, s.im_end),
            (Some(256), Some(257), Some(258))
        );
        assert_eq!(t.encode("A<|im_end|>").unwrap(), vec![65, 258]);
        assert_eq!(t.encode("é").unwrap(), vec![0xc3, 0xa9]);
    }

    #[test]
    fn longest_special_wins() {
        let t = ByteTokenizer::with_specials(vec!["<a>".into(), "<a>b".into()]).unwrap();
        assert_eq!(t.encode("<a>b<a>").unwrap(), vec![257, 256]);
    }

    #[test]
    fn pieces_round_trip_through_token_to_id() {
        let t = ByteTokenizer::new();
        for id in 0..t.vocab_size() as u32 {
            let piece = t.id_to_token(id).unwrap();
            assert_eq!(t.token_to_id(&piece), Some(id), "{piece}");
        }
        assert_eq!(t.id_to_token(259), None);
        assert_eq!(
            t.token_to_id("<0x41>"),
            None,
            "printable bytes use the character"
        );
    }

    #[test]
    fn bad_ids_and_specials_are_errors() {
        let t = ByteTokenizer::new();
        assert!(matches!(
            t.decode(&[65, 300]),
            Err(TokenizerError::UnknownId {
                id: 300,
                vocab_size: 259
            })
        ));
        assert!(ByteTokenizer::with_specials(vec!["".into()]).is_err());
        assert!(ByteTokenizer::with_specials(vec!["x".into(), "x".into()]).is_err());
    }
}
