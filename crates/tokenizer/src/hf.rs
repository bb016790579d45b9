//! Hugging Face `tokenizer.json` through the `tokenizers` crate.

use std::path::Path;

use crate::error::{Result, TokenizerError};
use crate::{SpecialTokens, Tokenizer};

/// Largest vocabulary (one more than the largest token id) accepted, so a
/// corrupt file with a huge id cannot make loading allocate gigabytes.
pub const MAX_VOCAB_IDS: usize = 1 << 24;

/// A tokenizer loaded from a Hugging Face `tokenizer.json`.
///
/// Encoding does not run the post-processor's template (no BOS/EOS is
/// added); decoding keeps special tokens.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    /// `known[id]` is true when `id` has a piece (vocabulary or added token).
    known: Vec<bool>,
    specials: SpecialTokens,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("vocab_size", &self.known.len())
            .field("specials", &self.specials)
            .finish()
    }
}

impl HfTokenizer {
    /// Loads `tokenizer.json` from `path`.
    ///
    /// # Errors
    /// [`TokenizerError::Io`] when the file cannot be read,
    /// [`TokenizerError::Load`] when it is not a tokenizer this build supports.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            TokenizerError::Load { message, .. } => TokenizerError::Load {
                path: Some(path.to_path_buf()),
                message,
            },
            other => other,
        })
    }

    /// Parses the JSON text of a `tokenizer.json`.
    ///
    /// # Errors
    /// [`TokenizerError::Load`].
    pub fn from_bytes(json: &[u8]) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| TokenizerError::Load {
            path: None,
            message: e.to_string(),
        })?;
        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        if size > MAX_VOCAB_IDS {
            return Err(TokenizerError::Load {
                path: None,
                message: format!(
                    "token id {} exceeds the supported {MAX_VOCAB_IDS} ids",
                    size - 1
                ),
            });
        }
        let mut known = vec![false; size];
        for &id in vocab.values() {
            known[id as usize] = true;
        }
        let specials = SpecialTokens::from_lookup(|t| inner.token_to_id(t));
        Ok(Self {
            inner,
            known,
            specials,
        })
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode {
                message: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(&id) = ids
            .iter()
            .find(|&&id| !self.known.get(id as usize).copied().unwrap_or(false))
        {
            return Err(TokenizerError::UnknownId {
                id,
                vocab_size: self.known.len(),
            });
        }
        self.inner
            .decode(ids, false)
            .map_err(|e| TokenizerError::Decode {
                message: e.to_string(),
            })
    }

    /// One more than the largest id of the vocabulary and added tokens.
    fn vocab_size(&self) -> usize {
        self.known.len()
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn special_tokens(&self) -> SpecialTokens {
        self.specials
    }
}
