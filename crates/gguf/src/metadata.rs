//! Typed GGUF metadata values.

use std::fmt;

/// The type id of a GGUF metadata value (the `u32` written before each value
/// and before the elements of an array).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaValueType {
    /// `u8`, id 0.
    U8,
    /// `i8`, id 1.
    I8,
    /// `u16`, id 2.
    U16,
    /// `i16`, id 3.
    I16,
    /// `u32`, id 4.
    U32,
    /// `i32`, id 5.
    I32,
    /// `f32`, id 6.
    F32,
    /// `bool` (one byte, 0 or 1), id 7.
    Bool,
    /// String (`u64` byte length + UTF-8 bytes, no terminator), id 8.
    String,
    /// Array (`u32` element type + `u64` count + elements), id 9.
    Array,
    /// `u64`, id 10.
    U64,
    /// `i64`, id 11.
    I64,
    /// `f64`, id 12.
    F64,
}

impl MetaValueType {
    /// The type with this id, if it is one of 0..=12.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return None,
        })
    }

    /// The id written in the file.
    pub fn id(self) -> u32 {
        match self {
            Self::U8 => 0,
            Self::I8 => 1,
            Self::U16 => 2,
            Self::I16 => 3,
            Self::U32 => 4,
            Self::I32 => 5,
            Self::F32 => 6,
            Self::Bool => 7,
            Self::String => 8,
            Self::Array => 9,
            Self::U64 => 10,
            Self::I64 => 11,
            Self::F64 => 12,
        }
    }

    /// The smallest number of bytes one value of this type takes in a file
    /// (used to bound array counts before allocating).
    pub(crate) fn min_encoded_size(self) -> u64 {
        match self {
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 | Self::String => 8,
            Self::Array => 12,
        }
    }

    /// Lower-case name (`"u32"`, `"string"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::F32 => "f32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Array => "array",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F64 => "f64",
        }
    }
}

impl fmt::Display for MetaValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
///
/// String values that are not valid UTF-8 are decoded lossily (invalid bytes
/// become U+FFFD); keys and tensor names must be valid UTF-8.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetaValue {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// A string.
    String(String),
    /// A typed array.
    Array(MetaArray),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

/// A metadata array: all elements share one type. Nested arrays are arrays of
/// arrays (each inner array with its own element type).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetaArray {
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `bool` elements.
    Bool(Vec<bool>),
    /// String elements.
    String(Vec<String>),
    /// Array elements.
    Array(Vec<MetaArray>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl MetaArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::U8(v) => v.len(),
            Self::I8(v) => v.len(),
            Self::U16(v) => v.len(),
            Self::I16(v) => v.len(),
            Self::U32(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::String(v) => v.len(),
            Self::Array(v) => v.len(),
            Self::U64(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn element_type(&self) -> MetaValueType {
        match self {
            Self::U8(_) => MetaValueType::U8,
            Self::I8(_) => MetaValueType::I8,
            Self::U16(_) => MetaValueType::U16,
            Self::I16(_) => MetaValueType::I16,
            Self::U32(_) => MetaValueType::U32,
            Self::I32(_) => MetaValueType::I32,
            Self::F32(_) => MetaValueType::F32,
            Self::Bool(_) => MetaValueType::Bool,
            Self::String(_) => MetaValueType::String,
            Self::Array(_) => MetaValueType::Array,
            Self::U64(_) => MetaValueType::U64,
            Self::I64(_) => MetaValueType::I64,
            Self::F64(_) => MetaValueType::F64,
        }
    }

    /// The elements when this is an array of strings.
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }
}

impl MetaValue {
    /// The value's type.
    pub fn value_type(&self) -> MetaValueType {
        match self {
            Self::U8(_) => MetaValueType::U8,
            Self::I8(_) => MetaValueType::I8,
            Self::U16(_) => MetaValueType::U16,
            Self::I16(_) => MetaValueType::I16,
            Self::U32(_) => MetaValueType::U32,
            Self::I32(_) => MetaValueType::I32,
            Self::F32(_) => MetaValueType::F32,
            Self::Bool(_) => MetaValueType::Bool,
            Self::String(_) => MetaValueType::String,
            Self::Array(_) => MetaValueType::Array,
            Self::U64(_) => MetaValueType::U64,
            Self::I64(_) => MetaValueType::I64,
            Self::F64(_) => MetaValueType::F64,
        }
    }

    /// Any integer value that is non-negative, widened to `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value, as `i64` when it fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A float value (`f32` widened), or an integer value converted to `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The value when it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The value when it is an array.
    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_round_trip() {
        for id in 0..=12 {
            let t = MetaValueType::from_id(id).expect("ids 0..=12 are defined");
            assert_eq!(t.id(), id);
        }
        assert_eq!(MetaValueType::from_id(13), None);
    }

    #[test]
    fn integer_conversions_respect_sign_and_range() {
        assert_eq!(MetaValue::I32(-1).as_u64(), None);
        assert_eq!(MetaValue::I32(7).as_u64(), Some(7));
        assert_eq!(MetaValue::U64(u64::MAX).as_i64(), None);
        assert_eq!(MetaValue::U32(5).as_f64(), Some(5.0));
        assert_eq!(MetaValue::String("x".into()).as_u64(), None);
        assert_eq!(MetaValue::F32(0.5).as_f64(), Some(0.5));
    }
}
