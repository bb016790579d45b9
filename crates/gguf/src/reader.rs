//! Parsing GGUF files: header, metadata, tensor infos and the data section.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{GgufError, Result};
use crate::metadata::{MetaArray, MetaValue, MetaValueType};
use crate::types::GgmlType;
use crate::{DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS, Tensor, dequantize};

/// The four magic bytes a GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Where a tensor lives and how it is stored, as described by its tensor info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The GGUF tensor name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in GGUF (`ne`) order: `dims[0]` is the fastest-varying,
    /// contiguous dimension. [`TensorInfo::shape`] gives the reverse.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the tensor's bytes from the start of the data section.
    pub offset: u64,
    /// Number of values (product of `dims`).
    pub n_elements: usize,
    /// Number of bytes the tensor's data takes.
    pub n_bytes: usize,
}

impl TensorInfo {
    /// The shape in Hugging Face / PyTorch row-major order: the reversed GGUF
    /// `ne` order, so the last entry is the contiguous dimension. A GGUF
    /// tensor with `ne = [896, 151936]` has shape `[151936, 896]`.
    pub fn shape(&self) -> Vec<usize> {
        // Every dim was checked to fit in usize while parsing.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file (version 2 or 3, little-endian).
///
/// Opening checks the whole structure: every length and count against the
/// bytes left, every tensor's data range against the file, alignment of the
/// data section and of each tensor offset, and no overlaps. Afterwards
/// reading a tensor's bytes cannot go out of bounds.
pub struct GgufFile {
    storage: Storage,
    version: u32,
    metadata: Vec<(String, MetaValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("len", &self.storage.bytes().len())
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    ///
    /// The mapping is read-only; as with any memory map, the file must not be
    /// truncated or rewritten by another process while the `GgufFile` lives.
    ///
    /// # Errors
    /// [`GgufError::Io`] when the file cannot be opened or mapped, and every
    /// parse error of [`GgufFile::from_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and only ever read through bounds-checked
            // slices; the documented contract is that the file is not modified
            // while mapped.
            Storage::Mapped(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        Self::parse(storage)
    }

    /// Parses a GGUF file held in memory.
    ///
    /// # Errors
    /// [`GgufError::BadMagic`], [`GgufError::UnsupportedVersion`],
    /// [`GgufError::Truncated`] (naming the field), [`GgufError::InvalidUtf8`],
    /// [`GgufError::InvalidValueType`], [`GgufError::NestingTooDeep`],
    /// [`GgufError::DuplicateKey`], [`GgufError::DuplicateTensor`],
    /// [`GgufError::InvalidAlignment`], [`GgufError::UnknownType`],
    /// [`GgufError::InvalidTensor`], [`GgufError::TensorOutOfBounds`],
    /// [`GgufError::OverlappingTensors`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Storage::Owned(bytes))
    }

    fn parse(storage: Storage) -> Result<Self> {
        let bytes = storage.bytes();
        let mut cur = Cursor { bytes, pos: 0 };

        let magic = cur.take(4, "magic")?;
        if magic != GGUF_MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(GgufError::BadMagic { found });
        }
        let version = cur.u32("version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let tensor_count = cur.u64("tensor count")?;
        let kv_count = cur.u64("metadata key/value count")?;

        // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes.
        cur.check_count(kv_count, 13, "metadata key/values")?;
        let mut metadata = Vec::with_capacity(kv_count as usize);
        let mut metadata_index = HashMap::with_capacity(kv_count as usize);
        for i in 0..kv_count {
            let key = cur.string_strict(&format!("key of metadata entry {i}"))?;
            let type_id = cur.u32(&format!("value type of `{key}`"))?;
            let ty =
                MetaValueType::from_id(type_id).ok_or_else(|| GgufError::InvalidValueType {
                    key: key.clone(),
                    type_id,
                })?;
            let value = cur.value(ty, &key, 0)?;
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey { key });
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let value = &metadata[i].1;
                let a = value.as_u64().ok_or_else(|| GgufError::WrongType {
                    key: "general.alignment".into(),
                    expected: "a non-negative integer",
                    found: value.value_type().to_string(),
                })?;
                if a == 0 || !a.is_power_of_two() || a > u64::from(u32::MAX) {
                    return Err(GgufError::InvalidAlignment { value: a });
                }
                a
            }
        };

        // Each tensor info needs at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset).
        cur.check_count(tensor_count, 24, "tensor infos")?;
        let mut tensors = Vec::with_capacity(tensor_count as usize);
        let mut tensor_index = HashMap::with_capacity(tensor_count as usize);
        for i in 0..tensor_count {
            let name = cur.string_strict(&format!("name of tensor info {i}"))?;
            let info = cur.tensor_info(name, alignment)?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(GgufError::DuplicateTensor { name: info.name });
            }
            tensors.push(info);
        }

        let info_end = cur.pos as u64;
        let data_offset = info_end.div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;

        let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes as u64));
            match (start, end) {
                (Some(start), Some(end)) if end <= file_len => ranges.push((start, end, i)),
                _ => {
                    return Err(GgufError::TensorOutOfBounds {
                        name: t.name.clone(),
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        file_len,
                    });
                }
            }
        }
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.0 < a.1 {
                return Err(GgufError::OverlappingTensors {
                    first: tensors[a.2].name.clone(),
                    second: tensors[b.2].name.clone(),
                });
            }
        }

        Ok(Self {
            storage,
            version,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of tensor offsets, in bytes
    /// (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> usize {
        self.storage.bytes().len()
    }

    /// Whether the file is empty (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.storage.bytes().is_empty()
    }

    /// All metadata key/values, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// The metadata value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The string stored under `key`.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongType`].
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong_type(key, "a string", v))
    }

    /// The non-negative integer stored under `key` (any integer type).
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongType`].
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| wrong_type(key, "a non-negative integer", v))
    }

    /// The number stored under `key` (any float or integer type).
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongType`].
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong_type(key, "a number", v))
    }

    fn require(&self, key: &str) -> Result<&MetaValue> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor info named `name` (GGUF name).
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw stored bytes of tensor `name`.
    ///
    /// # Errors
    /// [`GgufError::TensorNotFound`].
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound { name: name.into() })?;
        Ok(self.bytes_of(info))
    }

    fn bytes_of(&self, info: &TensorInfo) -> &[u8] {
        // Ranges were validated against the file length in `parse`.
        let start = (self.data_offset + info.offset) as usize;
        &self.storage.bytes()[start..start + info.n_bytes]
    }

    /// Dequantises tensor `name` to f32, with its shape in Hugging Face order
    /// (see [`TensorInfo::shape`]); the tensor keeps its GGUF name.
    ///
    /// # Errors
    /// [`GgufError::TensorNotFound`], or [`GgufError::UnsupportedType`] when
    /// the tensor's type cannot be dequantised.
    pub fn dequantize(&self, name: &str) -> Result<Tensor> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound { name: name.into() })?;
        let data = dequantize(info.ggml_type, self.bytes_of(info), info.n_elements)?;
        Ok(Tensor {
            name: info.name.clone(),
            shape: info.shape(),
            data,
        })
    }

    /// Dequantises the tensor with Hugging Face name `hf_name` (e.g.
    /// `model.layers.0.self_attn.q_proj.weight`), found through
    /// [`crate::hf_to_gguf_name`]; the returned tensor carries `hf_name`.
    ///
    /// # Errors
    /// [`GgufError::TensorNotFound`] when the name has no GGUF counterpart or
    /// the file lacks it, and the errors of [`GgufFile::dequantize`].
    pub fn dequantize_hf(&self, hf_name: &str) -> Result<Tensor> {
        let gguf_name =
            crate::hf_to_gguf_name(hf_name).ok_or_else(|| GgufError::TensorNotFound {
                name: hf_name.into(),
            })?;
        let mut t = self.dequantize(&gguf_name)?;
        t.name = hf_name.to_owned();
        Ok(t)
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &MetaValue) -> GgufError {
    GgufError::WrongType {
        key: key.into(),
        expected,
        found: found.value_type().to_string(),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what.into(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Fails with `Truncated` when `count` items of at least `min_size` bytes
    /// each cannot fit in what is left (before anything is allocated).
    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<()> {
        let needed = count.saturating_mul(min_size);
        if needed > self.remaining() as u64 {
            return Err(GgufError::Truncated {
                what: format!("{count} {what}"),
                offset: self.pos as u64,
                needed,
                available: self.remaining() as u64,
            });
        }
        Ok(())
    }

    fn raw_string(&mut self, what: &str) -> Result<(usize, &'a [u8])> {
        let len = self.u64(&format!("length of {what}"))?;
        let start = self.pos;
        if len > self.remaining() as u64 {
            return Err(GgufError::Truncated {
                what: what.into(),
                offset: start as u64,
                needed: len,
                available: self.remaining() as u64,
            });
        }
        Ok((start, self.take(len as usize, what)?))
    }

    fn string_strict(&mut self, what: &str) -> Result<String> {
        let (start, raw) = self.raw_string(what)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| GgufError::InvalidUtf8 {
                what: what.into(),
                offset: start as u64,
            })
    }

    fn string_lossy(&mut self, what: &str) -> Result<String> {
        let (_, raw) = self.raw_string(what)?;
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn value(&mut self, ty: MetaValueType, key: &str, depth: usize) -> Result<MetaValue> {
        let what = || format!("value of `{key}`");
        Ok(match ty {
            MetaValueType::U8 => MetaValue::U8(self.array::<1>(&what())?[0]),
            MetaValueType::I8 => MetaValue::I8(i8::from_le_bytes(self.array(&what())?)),
            MetaValueType::U16 => MetaValue::U16(u16::from_le_bytes(self.array(&what())?)),
            MetaValueType::I16 => MetaValue::I16(i16::from_le_bytes(self.array(&what())?)),
            MetaValueType::U32 => MetaValue::U32(u32::from_le_bytes(self.array(&what())?)),
            MetaValueType::I32 => MetaValue::I32(i32::from_le_bytes(self.array(&what())?)),
            MetaValueType::F32 => MetaValue::F32(f32::from_le_bytes(self.array(&what())?)),
            MetaValueType::U64 => MetaValue::U64(u64::from_le_bytes(self.array(&what())?)),
            MetaValueType::I64 => MetaValue::I64(i64::from_le_bytes(self.array(&what())?)),
            MetaValueType::F64 => MetaValue::F64(f64::from_le_bytes(self.array(&what())?)),
            MetaValueType::Bool => MetaValue::Bool(self.array::<1>(&what())?[0] != 0),
            MetaValueType::String => MetaValue::String(self.string_lossy(&what())?),
            MetaValueType::Array => MetaValue::Array(self.meta_array(key, depth + 1)?),
        })
    }

    fn meta_array(&mut self, key: &str, depth: usize) -> Result<MetaArray> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                key: key.into(),
                max: MAX_ARRAY_DEPTH,
            });
        }
        let type_id = self.u32(&format!("array element type of `{key}`"))?;
        let ty = MetaValueType::from_id(type_id).ok_or_else(|| GgufError::InvalidValueType {
            key: key.into(),
            type_id,
        })?;
        let count = self.u64(&format!("array length of `{key}`"))?;
        self.check_count(
            count,
            ty.min_encoded_size(),
            &format!("{ty} elements of `{key}`"),
        )?;
        let n = count as usize;
        let what = format!("array elements of `{key}`");
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                let raw = self.take(n * SIZE, &what)?;
                MetaArray::$variant(
                    raw.chunks_exact(SIZE)
                        .map(|c| {
                            let mut b = [0u8; SIZE];
                            b.copy_from_slice(c);
                            <$t>::from_le_bytes(b)
                        })
                        .collect(),
                )
            }};
        }
        Ok(match ty {
            MetaValueType::U8 => MetaArray::U8(self.take(n, &what)?.to_vec()),
            MetaValueType::I8 => fixed!(I8, i8),
            MetaValueType::U16 => fixed!(U16, u16),
            MetaValueType::I16 => fixed!(I16, i16),
            MetaValueType::U32 => fixed!(U32, u32),
            MetaValueType::I32 => fixed!(I32, i32),
            MetaValueType::F32 => fixed!(F32, f32),
            MetaValueType::U64 => fixed!(U64, u64),
            MetaValueType::I64 => fixed!(I64, i64),
            MetaValueType::F64 => fixed!(F64, f64),
            MetaValueType::Bool => {
                MetaArray::Bool(self.take(n, &what)?.iter().map(|&b| b != 0).collect())
            }
            MetaValueType::String => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string_lossy(&format!("element {i} of `{key}`"))?);
                }
                MetaArray::String(v)
            }
            MetaValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.meta_array(key, depth + 1)?);
                }
                MetaArray::Array(v)
            }
        })
    }

    fn tensor_info(&mut self, name: String, alignment: u64) -> Result<TensorInfo> {
        let invalid = |reason: String| GgufError::InvalidTensor {
            name: name.clone(),
            reason,
        };
        let n_dims = self.u32(&format!("dimension count of tensor `{name}`"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(invalid(format!(
                "{n_dims} dimensions (supported: 1 to {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(self.u64(&format!("dimension {d} of tensor `{name}`"))?);
        }
        let type_id = self.u32(&format!("type of tensor `{name}`"))?;
        let offset = self.u64(&format!("data offset of tensor `{name}`"))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownType {
            name: name.clone(),
            type_id,
        })?;
        let mut n_elements: usize = 1;
        for &d in &dims {
            let d = usize::try_from(d).map_err(|_| invalid(format!("dimension {d} too large")))?;
            n_elements = n_elements
                .checked_mul(d)
                .ok_or_else(|| invalid(format!("element count of {dims:?} overflows")))?;
        }
        if n_elements == 0 {
            return Err(invalid(format!("dimensions {dims:?} hold no values")));
        }
        let block = ggml_type.block_size() as u64;
        if dims[0] % block != 0 {
            return Err(invalid(format!(
                "row length {} is not a multiple of the {ggml_type} block size {block}",
                dims[0]
            )));
        }
        let n_bytes = ggml_type
            .bytes_for(n_elements)
            .ok_or_else(|| invalid(format!("byte size of {dims:?} {ggml_type} overflows")))?;
        if offset % alignment != 0 {
            return Err(invalid(format!(
                "data offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }
}
