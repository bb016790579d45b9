//! The error type of this crate.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while loading or using a tokenizer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// Reading a tokenizer file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `tokenizer.json` could not be parsed or is not supported.
    #[error("cannot load tokenizer{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Load {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// What the tokenizers library reported.
        message: String,
    },
    /// Encoding text failed.
    #[error("cannot encode text: {message}")]
    Encode {
        /// What went wrong.
        message: String,
    },
    /// Decoding ids failed.
    #[error("cannot decode ids: {message}")]
    Decode {
        /// What went wrong.
        message: String,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    UnknownId {
        /// The id.
        id: u32,
        /// Number of ids the tokenizer knows.
        vocab_size: usize,
    },
    /// A special token the operation needs is not in the vocabulary.
    #[error("the tokenizer has no special token {token}")]
    MissingSpecialToken {
        /// The token's text (e.g. `<|im_start|>`).
        token: String,
    },
    /// The special tokens given to [`crate::ByteTokenizer::with_specials`]
    /// are empty, duplicated or too many.
    #[error("invalid special tokens: {reason}")]
    InvalidSpecials {
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;
