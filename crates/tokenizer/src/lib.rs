//! Tokenizers for flowrl.
//!
//! The [`Tokenizer`] trait is what models, environments and trainers use:
//! text ↔ token ids, the vocabulary size, id ↔ token piece, and the ids of
//! the ChatML special tokens. Two implementations:
//!
//! * [`HfTokenizer`] — a Hugging Face `tokenizer.json` (BPE, byte-level,
//!   added/special tokens, normalisers, decoders) through the `tokenizers`
//!   crate, built without C/C++ code (`fancy-regex` instead of Oniguruma, no
//!   esaxx C++ suffix arrays, no hub download);
//! * [`ByteTokenizer`] — 256 byte ids followed by a few special tokens, for
//!   tiny models and tests.
//!
//! [`chatml`] renders a message list in the ChatML template
//! (`<|im_start|>role\ncontent<|im_end|>\n`) and encodes it.
//!
//! Both implementations recognise special-token text inside the input of
//! [`Tokenizer::encode`] (as Hugging Face tokenizers do), so encoding a
//! rendered ChatML string yields the special ids.

pub mod byte;
pub mod chatml;
mod error;
pub mod hf;

pub use byte::ByteTokenizer;
pub use chatml::{ChatMessage, encode_chatml, render_chatml};
pub use error::{Result, TokenizerError};
pub use hf::HfTokenizer;

/// `<|endoftext|>`: end of document / padding in Qwen2 vocabularies.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// `<|im_start|>`: starts a ChatML message.
pub const IM_START: &str = "<|im_start|>";
/// `<|im_end|>`: ends a ChatML message (the end-of-turn token).
pub const IM_END: &str = "<|im_end|>";

/// Ids of the special tokens flowrl relies on, when the vocabulary has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecialTokens {
    /// Id of [`ENDOFTEXT`].
    pub endoftext: Option<u32>,
    /// Id of [`IM_START`].
    pub im_start: Option<u32>,
    /// Id of [`IM_END`].
    pub im_end: Option<u32>,
}

impl SpecialTokens {
    /// Looks the three tokens up with `lookup` (token text → id).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<u32>) -> Self {
        Self {
            endoftext: lookup(ENDOFTEXT),
            im_start: lookup(IM_START),
            im_end: lookup(IM_END),
        }
    }

    /// The ids that end a generated turn: `<|im_end|>` and `<|endoftext|>`,
    /// those present.
    pub fn stop_ids(&self) -> Vec<u32> {
        [self.im_end, self.endoftext]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Text ↔ token ids.
///
/// Implementations are immutable after construction and shareable across
/// threads.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`. Special-token text (e.g. `<|im_start|>`) inside
    /// `text` becomes the special id; no BOS/EOS is added.
    ///
    /// # Errors
    /// [`TokenizerError::Encode`] when the underlying tokenizer fails.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;

    /// The text of `ids`, special tokens included as their text. Byte
    /// sequences that are not valid UTF-8 (e.g. a cut multi-byte character)
    /// decode to U+FFFD.
    ///
    /// # Errors
    /// [`TokenizerError::UnknownId`] for an id outside the vocabulary,
    /// [`TokenizerError::Decode`] when the underlying tokenizer fails.
    fn decode(&self, ids: &[u32]) -> Result<String>;

    /// Number of token ids, special tokens included (ids are `0..vocab_size`
    /// for the built-in tokenizer; a Hugging Face vocabulary may have gaps).
    /// This can be smaller than a model's embedding rows, which are often
    /// padded (Qwen2.5: 151936 rows).
    fn vocab_size(&self) -> usize;

    /// The id of the token whose piece is exactly `token`.
    fn token_to_id(&self, token: &str) -> Option<u32>;

    /// The piece (vocabulary string) of `id`: for byte-level BPE the
    /// byte-to-unicode mapped form (e.g. `Ġhello`), for [`ByteTokenizer`] see
    /// [`ByteTokenizer::piece`].
    fn id_to_token(&self, id: u32) -> Option<String>;

    /// Ids of the ChatML special tokens.
    fn special_tokens(&self) -> SpecialTokens;
}
