//! Optimizer state snapshots and their compact binary file format.
//!
//! # File layout (version 1)
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `FLRLOPTS` |
//! | 8 | header length `H`, unsigned little-endian |
//! | `H` | header: UTF-8 JSON (format name, version, hyper-parameters, groups, step counts, parameter names, lengths and buffer names, data size, checksum) |
//! | rest | data: every buffer as little-endian `f32`, parameters in name order, each parameter's buffers in the order its header entry lists |
//!
//! The checksum is a 64-bit FNV-1a-style hash over the data section taken in
//! little-endian 8-byte words (the last word zero-padded).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::OptimizerConfig;
use crate::error::OptimError;
use crate::group::GroupConfig;

/// The first 8 bytes of every state file.
pub const MAGIC: [u8; 8] = *b"FLRLOPTS";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "flowrl-optim-state";
/// Headers larger than this (bytes) are rejected before being read.
pub const MAX_HEADER_BYTES: u64 = 256 << 20;

/// The per-parameter state of an optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamState {
    /// Number of updates this parameter has received (drives bias correction).
    pub step: u64,
    /// Named buffers, each as long as the parameter (AdamW: `exp_avg`,
    /// `exp_avg_sq`; SGD with momentum: `momentum_buffer`).
    pub buffers: BTreeMap<String, Vec<f32>>,
}

impl ParamState {
    /// Length of the parameter (that of its buffers; 0 with no buffers).
    pub fn len(&self) -> usize {
        self.buffers.values().next().map_or(0, Vec::len)
    }

    /// Whether the parameter state holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete, owned snapshot of an optimizer: hyper-parameters, groups,
/// step counts and buffers. Serde gives a (verbose) JSON form; [`Self::write_to`]
/// and [`Self::read_from`] the compact binary one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerState {
    /// Optimizer kind and hyper-parameters.
    pub config: OptimizerConfig,
    /// Parameter groups (name rules only; predicates are not saved).
    pub groups: Vec<GroupConfig>,
    /// Explicit assignments, parameter name → group name.
    pub assignments: BTreeMap<String, String>,
    /// Number of [`crate::Optimizer::step`] calls.
    pub step: u64,
    /// Per-parameter state by name.
    pub params: BTreeMap<String, ParamState>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderParam {
    name: String,
    step: u64,
    len: u64,
    buffers: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    config: OptimizerConfig,
    groups: Vec<GroupConfig>,
    assignments: BTreeMap<String, String>,
    step: u64,
    params: Vec<HeaderParam>,
    data_bytes: u64,
    checksum: String,
}

/// Streaming 64-bit hash over little-endian 8-byte words.
struct Checksum {
    h: u64,
    pending: [u8; 8],
    n: usize,
}

impl Checksum {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Checksum {
            h: Self::OFFSET,
            pending: [0; 8],
            n: 0,
        }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(Self::PRIME);
        self.h ^= self.h >> 29;
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if self.n > 0 {
            let take = (8 - self.n).min(bytes.len());
            self.pending[self.n..self.n + take].copy_from_slice(&bytes[..take]);
            self.n += take;
            bytes = &bytes[take..];
            if self.n < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pending));
            self.n = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.word(u64::from_le_bytes(a));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
    }

    fn finish(mut self) -> u64 {
        if self.n > 0 {
            self.pending[self.n..].fill(0);
            self.word(u64::from_le_bytes(self.pending));
        }
        self.h
    }
}

/// `f32`s per conversion block when writing or reading the data section.
const BLOCK: usize = 1 << 14;

fn for_each_le_block(
    data: &[f32],
    mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(BLOCK * 4);
    for block in data.chunks(BLOCK) {
        bytes.clear();
        for v in block {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        f(&bytes)?;
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, OptimError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

impl OptimizerState {
    /// Checks that this state covers exactly the given parameters
    /// `(name, number of elements)` with the same lengths.
    ///
    /// # Errors
    /// [`OptimError::ParamsMismatch`] listing missing, unexpected and resized
    /// parameters.
    pub fn check_params<'a>(
        &self,
        shapes: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> Result<(), OptimError> {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, len) in shapes {
            seen.insert(name);
            match self.params.get(name) {
                None => problems.push(format!("`{name}` has no state")),
                Some(p) if !p.buffers.is_empty() && p.len() != len => {
                    problems.push(format!(
                        "`{name}` has {len} elements, state has {}",
                        p.len()
                    ));
                }
                Some(_) => {}
            }
        }
        for name in self.params.keys() {
            if !seen.contains(name.as_str()) {
                problems.push(format!("state has unknown parameter `{name}`"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(OptimError::ParamsMismatch {
                reason: problems.join("; "),
            })
        }
    }

    /// Writes the binary form to `w`.
    ///
    /// # Errors
    /// [`OptimError::BadBuffers`] when a parameter's buffers differ in
    /// length, [`OptimError::Io`] when writing fails.
    pub fn write_to(&self, mut w: impl Write) -> Result<(), OptimError> {
        let mut params = Vec::with_capacity(self.params.len());
        let mut checksum = Checksum::new();
        let mut data_bytes: u64 = 0;
        for (name, p) in &self.params {
            let len = p.len();
            if let Some((b, v)) = p.buffers.iter().find(|(_, v)| v.len() != len) {
                return Err(OptimError::BadBuffers {
                    param: name.clone(),
                    reason: format!("buffer `{b}` has {} elements, expected {len}", v.len()),
                });
            }
            for v in p.buffers.values() {
                for_each_le_block(v, |bytes| {
                    checksum.update(bytes);
                    Ok(())
                })?;
                data_bytes += 4 * v.len() as u64;
            }
            params.push(HeaderParam {
                name: name.clone(),
                step: p.step,
                len: len as u64,
                buffers: p.buffers.keys().cloned().collect(),
            });
        }
        let header = Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            config: self.config,
            groups: self.groups.clone(),
            assignments: self.assignments.clone(),
            step: self.step,
            params,
            data_bytes,
            checksum: format!("{:016x}", checksum.finish()),
        };
        let header = serde_json::to_vec(&header).map_err(|e| OptimError::Header(e.to_string()))?;
        w.write_all(&MAGIC)?;
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for p in self.params.values() {
            for v in p.buffers.values() {
                for_each_le_block(v, |bytes| w.write_all(bytes))?;
            }
        }
        w.flush()?;
        Ok(())
    }

    /// Reads one state in binary form from `r`, consuming exactly its bytes.
    ///
    /// # Errors
    /// [`OptimError::BadMagic`], [`OptimError::Truncated`],
    /// [`OptimError::UnsupportedVersion`], [`OptimError::Header`],
    /// [`OptimError::ChecksumMismatch`] or [`OptimError::Io`].
    pub fn read_from(mut r: impl Read) -> Result<Self, OptimError> {
        let mut magic = [0u8; 8];
        let got = read_up_to(&mut r, &mut magic)?;
        if magic[..got] != MAGIC[..got] {
            return Err(OptimError::BadMagic {
                found: magic[..got].to_vec(),
            });
        }
        if got < 8 {
            return Err(OptimError::Truncated {
                section: "magic",
                expected: 8,
                got: got as u64,
            });
        }
        let mut len = [0u8; 8];
        let got = read_up_to(&mut r, &mut len)?;
        if got < 8 {
            return Err(OptimError::Truncated {
                section: "header length",
                expected: 8,
                got: got as u64,
            });
        }
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER_BYTES {
            return Err(OptimError::Header(format!(
                "header length {header_len} exceeds the limit of {MAX_HEADER_BYTES} bytes"
            )));
        }
        let mut header = Vec::new();
        (&mut r).take(header_len).read_to_end(&mut header)?;
        if (header.len() as u64) < header_len {
            return Err(OptimError::Truncated {
                section: "header",
                expected: header_len,
                got: header.len() as u64,
            });
        }
        let value: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| OptimError::Header(format!("invalid JSON: {e}")))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
            return Err(OptimError::Header(format!(
                "`format` is not `{FORMAT_NAME}`"
            )));
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(OptimError::UnsupportedVersion {
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        let header: Header =
            serde_json::from_value(value).map_err(|e| OptimError::Header(e.to_string()))?;
        let expected_sum = u64::from_str_radix(&header.checksum, 16).map_err(|_| {
            OptimError::Header(format!("checksum `{}` is not hexadecimal", header.checksum))
        })?;
        let mut total: u64 = 0;
        for p in &header.params {
            total = p
                .len
                .checked_mul(4 * p.buffers.len() as u64)
                .and_then(|b| total.checked_add(b))
                .ok_or_else(|| OptimError::Header("data size overflows".into()))?;
        }
        if total != header.data_bytes {
            return Err(OptimError::Header(format!(
                "parameters need {total} data bytes, header says {}",
                header.data_bytes
            )));
        }

        let mut checksum = Checksum::new();
        let mut read_bytes: u64 = 0;
        let mut raw = vec![0u8; BLOCK * 4];
        let mut params = BTreeMap::new();
        for p in header.params {
            let len = usize::try_from(p.len)
                .map_err(|_| OptimError::Header(format!("parameter `{}` is too large", p.name)))?;
            let mut buffers = BTreeMap::new();
            for b in p.buffers {
                // Capacity grows with the bytes actually present, so a lying
                // header cannot force a huge allocation.
                let mut v: Vec<f32> = Vec::with_capacity(len.min(BLOCK * 64));
                while v.len() < len {
                    let n = (len - v.len()).min(BLOCK);
                    let got = read_up_to(&mut r, &mut raw[..n * 4])?;
                    read_bytes += got as u64;
                    if got < n * 4 {
                        return Err(OptimError::Truncated {
                            section: "data",
                            expected: header.data_bytes,
                            got: read_bytes,
                        });
                    }
                    checksum.update(&raw[..n * 4]);
                    v.extend(
                        raw[..n * 4]
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    );
                }
                if buffers.insert(b.clone(), v).is_some() {
                    return Err(OptimError::Header(format!(
                        "parameter `{}` lists buffer `{b}` twice",
                        p.name
                    )));
                }
            }
            let state = ParamState {
                step: p.step,
                buffers,
            };
            if params.insert(p.name.clone(), state).is_some() {
                return Err(OptimError::Header(format!(
                    "parameter `{}` appears twice",
                    p.name
                )));
            }
        }
        let found = checksum.finish();
        if found != expected_sum {
            return Err(OptimError::ChecksumMismatch {
                expected: expected_sum,
                found,
            });
        }
        Ok(OptimizerState {
            config: header.config,
            groups: header.groups,
            assignments: header.assignments,
            step: header.step,
            params,
        })
    }

    /// The binary form as bytes.
    ///
    /// # Errors
    /// As [`Self::write_to`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, OptimError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Parses bytes holding exactly one state.
    ///
    /// # Errors
    /// As [`Self::read_from`], plus [`OptimError::TrailingData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OptimError> {
        let mut r = bytes;
        let state = Self::read_from(&mut r)?;
        if !r.is_empty() {
            return Err(OptimError::TrailingData {
                extra: r.len() as u64,
            });
        }
        Ok(state)
    }

    /// Writes the binary form to `path` atomically (a temporary file in the
    /// same directory, then a rename).
    ///
    /// # Errors
    /// As [`Self::write_to`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), OptimError> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let result = File::create(&tmp)
            .map_err(OptimError::from)
            .and_then(|f| {
                let mut w = BufWriter::new(f);
                self.write_to(&mut w)?;
                w.into_inner()
                    .map_err(|e| OptimError::from(e.into_error()))?
                    .sync_all()?;
                Ok(())
            })
            .and_then(|()| std::fs::rename(&tmp, path).map_err(OptimError::from));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Reads the state file at `path`.
    ///
    /// # Errors
    /// As [`Self::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, OptimError> {
        let mut r = BufReader::new(File::open(path)?);
        let state = Self::read_from(&mut r)?;
        let mut rest = Vec::new();
        r.take(1 << 20).read_to_end(&mut rest)?;
        if !rest.is_empty() {
            return Err(OptimError::TrailingData {
                extra: rest.len() as u64,
            });
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_independent_of_chunking() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut a = Checksum::new();
        a.update(&data);
        let mut b = Checksum::new();
        for c in data.chunks(3) {
            b.update(c);
        }
        assert_eq!(a.finish(), b.finish());
        let mut c = Checksum::new();
        let mut flipped = data.clone();
        flipped[500] ^= 1;
        c.update(&flipped);
        let mut a2 = Checksum::new();
        a2.update(&data);
        assert_ne!(c.finish(), a2.finish());
    }
}
