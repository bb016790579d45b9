//! The error type of this crate.

use std::path::PathBuf;

use thiserror::Error;

use crate::GgmlType;

/// Everything that can go wrong while reading, dequantising or writing GGUF.
///
/// Byte offsets are absolute positions in the file (or in the buffer given to
/// [`crate::GgufFile::from_bytes`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GgufError {
    /// Opening, mapping or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the bytes `GGUF`.
    #[error("not a GGUF file: the first bytes are {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The version is not 2 or 3 (version 1 used 32-bit counts; a byte-swapped
    /// version number means a big-endian file, which is not supported).
    #[error("unsupported GGUF version {version} (supported: 2 and 3, little-endian)")]
    UnsupportedVersion {
        /// The version field as read little-endian.
        version: u32,
    },
    /// The file ends before a field that must be there.
    #[error(
        "file truncated while reading {what} at byte {offset}: needs {needed} bytes, {available} left"
    )]
    Truncated {
        /// The field being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// How many bytes the file has from `offset` on.
        available: u64,
    },
    /// A metadata value has a type id outside 0..=12.
    #[error("metadata key `{key}` has unknown value type id {type_id}")]
    InvalidValueType {
        /// The metadata key.
        key: String,
        /// The type id found.
        type_id: u32,
    },
    /// A metadata key or tensor name is not valid UTF-8.
    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// What the string was.
        what: String,
        /// Where it starts.
        offset: u64,
    },
    /// Metadata arrays nest deeper than [`crate::MAX_ARRAY_DEPTH`].
    #[error("metadata key `{key}`: arrays nested deeper than {max}")]
    NestingTooDeep {
        /// The metadata key.
        key: String,
        /// The allowed depth.
        max: usize,
    },
    /// The same metadata key appears twice.
    #[error("duplicate metadata key `{key}`")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The same tensor name appears twice.
    #[error("duplicate tensor name `{name}`")]
    DuplicateTensor {
        /// The repeated name.
        name: String,
    },
    /// `general.alignment` is not a non-zero power of two that fits in `u32`.
    #[error("invalid general.alignment {value}: must be a non-zero power of two")]
    InvalidAlignment {
        /// The value found.
        value: u64,
    },
    /// A tensor type id that this crate does not know.
    #[error("tensor `{name}` has unknown ggml type id {type_id}")]
    UnknownType {
        /// The tensor's name.
        name: String,
        /// The type id found.
        type_id: u32,
    },
    /// A tensor info is inconsistent (dimension count, zero or overflowing
    /// sizes, a row not made of whole blocks, a misaligned offset).
    #[error("tensor `{name}`: {reason}")]
    InvalidTensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's bytes would lie (partly) outside the file.
    #[error(
        "tensor `{name}`: data at bytes [{start}, {end}) lies outside the file of {file_len} bytes"
    )]
    TensorOutOfBounds {
        /// The tensor's name.
        name: String,
        /// Absolute start of its data.
        start: u64,
        /// Absolute end (exclusive) of its data.
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// Two tensors' data ranges overlap.
    #[error("tensors `{first}` and `{second}` have overlapping data")]
    OverlappingTensors {
        /// The tensor that starts first.
        first: String,
        /// The tensor that starts inside it.
        second: String,
    },
    /// No tensor has this name.
    #[error("no tensor named `{name}`")]
    TensorNotFound {
        /// The name looked up.
        name: String,
    },
    /// Dequantisation (or quantisation) of this type is not implemented.
    #[error("{ty} is not supported for {operation}")]
    UnsupportedType {
        /// The type.
        ty: GgmlType,
        /// `"dequantisation"` or `"quantisation"`.
        operation: &'static str,
    },
    /// A buffer does not hold exactly the bytes of `n` values of a type, or
    /// `n` is not a whole number of blocks.
    #[error("{ty}: {n} values need {expected} bytes in whole blocks of {block}, got {got} bytes")]
    ByteLength {
        /// The type.
        ty: GgmlType,
        /// Number of values.
        n: usize,
        /// Values per block of `ty`.
        block: usize,
        /// Bytes expected (0 when `n` is not a multiple of `block`).
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A metadata key needed for [`crate::ArchInfo`] is missing.
    #[error("metadata key `{key}` is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value does not have the type or range needed.
    #[error("metadata key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What was found (type name or value).
        found: String,
    },
    /// Input given to [`crate::GgufWriter`] is inconsistent.
    #[error("cannot write GGUF: {reason}")]
    InvalidWrite {
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
