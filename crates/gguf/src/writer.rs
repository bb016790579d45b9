//! A minimal GGUF writer, for test fixtures and tiny models.

use std::path::Path;

use crate::error::{GgufError, Result};
use crate::metadata::{MetaArray, MetaValue};
use crate::quant::quantize;
use crate::types::GgmlType;
use crate::{DEFAULT_ALIGNMENT, MAX_DIMS};

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    bytes: Vec<u8>,
}

/// Builds a GGUF file in memory: metadata key/values, then tensors.
///
/// Tensors are laid out in insertion order, each at an offset that is a
/// multiple of the alignment; padding goes between tensors but not after the
/// last one, so every strict prefix of the output is an invalid file.
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty version-3 file with the default alignment of 32 bytes.
    pub fn new() -> Self {
        Self {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version written in the header (2 or 3; both have the same layout).
    ///
    /// # Errors
    /// [`GgufError::InvalidWrite`] for any other version.
    pub fn version(&mut self, version: u32) -> Result<&mut Self> {
        if version != 2 && version != 3 {
            return Err(invalid(format!("version {version} (supported: 2, 3)")));
        }
        self.version = version;
        Ok(self)
    }

    /// Sets the alignment and records it as `general.alignment` (u32).
    ///
    /// # Errors
    /// [`GgufError::InvalidWrite`] when `alignment` is not a power of two.
    pub fn alignment(&mut self, alignment: u32) -> Result<&mut Self> {
        if !alignment.is_power_of_two() {
            return Err(invalid(format!(
                "alignment {alignment} is not a power of two"
            )));
        }
        self.alignment = u64::from(alignment);
        self.metadata.retain(|(k, _)| k != "general.alignment");
        self.metadata
            .push(("general.alignment".into(), MetaValue::U32(alignment)));
        Ok(self)
    }

    /// Adds a metadata key/value.
    ///
    /// # Errors
    /// [`GgufError::InvalidWrite`] when the key is already present (use
    /// [`GgufWriter::alignment`] for `general.alignment`).
    pub fn metadata(&mut self, key: impl Into<String>, value: MetaValue) -> Result<&mut Self> {
        let key = key.into();
        if self.metadata.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("duplicate metadata key `{key}`")));
        }
        if key == "general.alignment" {
            return Err(invalid("set general.alignment with `alignment`".into()));
        }
        self.metadata.push((key, value));
        Ok(self)
    }

    /// Adds a tensor from f32 values, encoded as `ty` (F32, F16, BF16 or Q8_0).
    /// `shape` is in Hugging Face order (last entry contiguous); it is written
    /// reversed, as GGUF `ne`.
    ///
    /// # Errors
    /// [`GgufError::InvalidWrite`] for a bad name or shape,
    /// [`GgufError::UnsupportedType`] for other types.
    pub fn tensor_f32(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        values: &[f32],
        ty: GgmlType,
    ) -> Result<&mut Self> {
        let name = name.into();
        check_count(&name, shape, values.len())?;
        check_row(&name, shape, ty)?;
        let bytes = quantize(ty, values)?;
        self.push(name, shape, ty, bytes)
    }

    /// Adds a tensor from already-encoded bytes of type `ty` (any known type).
    /// `shape` is in Hugging Face order.
    ///
    /// # Errors
    /// [`GgufError::InvalidWrite`] for a bad name or shape, or when `bytes`
    /// is not exactly the size of `shape` in `ty`.
    pub fn tensor_raw(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        ty: GgmlType,
        bytes: Vec<u8>,
    ) -> Result<&mut Self> {
        let name = name.into();
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = n.ok_or_else(|| invalid(format!("tensor `{name}`: shape {shape:?} overflows")))?;
        check_row(&name, shape, ty)?;
        if ty.bytes_for(n) != Some(bytes.len()) {
            return Err(invalid(format!(
                "tensor `{name}`: {} bytes do not hold {shape:?} values of {ty}",
                bytes.len()
            )));
        }
        self.push(name, shape, ty, bytes)
    }

    fn push(
        &mut self,
        name: String,
        shape: &[usize],
        ty: GgmlType,
        bytes: Vec<u8>,
    ) -> Result<&mut Self> {
        if shape.is_empty() || shape.len() > MAX_DIMS || shape.contains(&0) {
            return Err(invalid(format!(
                "tensor `{name}`: shape {shape:?} must have 1 to {MAX_DIMS} non-zero dimensions"
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(invalid(format!("duplicate tensor name `{name}`")));
        }
        self.tensors.push(PendingTensor {
            name,
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            ty,
            bytes,
        });
        Ok(self)
    }

    /// The encoded file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.bytes.len() as u64).div_ceil(self.alignment) * self.alignment;
        }
        let data_start = (out.len() as u64).div_ceil(self.alignment) * self.alignment;
        if !self.tensors.is_empty() {
            out.resize(data_start as usize, 0);
        }
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + off) as usize, 0);
            out.extend_from_slice(&t.bytes);
        }
        out
    }

    /// Writes the encoded file to `path`.
    ///
    /// # Errors
    /// [`GgufError::Io`].
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn invalid(reason: String) -> GgufError {
    GgufError::InvalidWrite { reason }
}

fn check_count(name: &str, shape: &[usize], n: usize) -> Result<()> {
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(n) {
        return Err(invalid(format!(
            "tensor `{name}`: shape {shape:?} but {n} values"
        )));
    }
    Ok(())
}

fn check_row(name: &str, shape: &[usize], ty: GgmlType) -> Result<()> {
    let row = shape.last().copied().unwrap_or(0);
    if !row.is_multiple_of(ty.block_size()) {
        return Err(invalid(format!(
            "tensor `{name}`: row length {row} is not a multiple of the {ty} block size {}",
            ty.block_size()
        )));
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(a) => put_array(out, a),
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        MetaArray::U8(v) => out.extend_from_slice(v),
        MetaArray::I8(v) => each!(v),
        MetaArray::U16(v) => each!(v),
        MetaArray::I16(v) => each!(v),
        MetaArray::U32(v) => each!(v),
        MetaArray::I32(v) => each!(v),
        MetaArray::F32(v) => each!(v),
        MetaArray::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        MetaArray::String(v) => v.iter().for_each(|s| put_str(out, s)),
        MetaArray::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
        MetaArray::U64(v) => each!(v),
        MetaArray::I64(v) => each!(v),
        MetaArray::F64(v) => each!(v),
    }
}
