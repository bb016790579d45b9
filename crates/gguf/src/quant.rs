//! Encoding f32 values into the simple ggml types the writer supports.

use half::{bf16, f16};

use crate::error::{GgufError, Result};
use crate::types::GgmlType;

/// Encodes `values` as `ty`: F32, F16, BF16 (round to nearest even) or Q8_0
/// (per block of 32: `d = max|x| / 127` rounded to f16, `q = round(x / d)`).
///
/// # Errors
/// [`GgufError::UnsupportedType`] for any other type, and
/// [`GgufError::ByteLength`] when `values` is not a whole number of blocks.
pub fn quantize(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    let Some(n_bytes) = ty.bytes_for(values.len()) else {
        return Err(GgufError::ByteLength {
            ty,
            n: values.len(),
            block: ty.block_size(),
            expected: 0,
            got: 0,
        });
    };
    let mut out = Vec::with_capacity(n_bytes);
    match ty {
        GgmlType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&f16::from_f32(v).to_bits().to_le_bytes())),
        GgmlType::BF16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes())),
        GgmlType::Q8_0 => values.chunks_exact(32).for_each(|block| {
            let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // Quantise against the stored (f16-rounded) scale, so that every
            // value is within half a step of its reconstruction.
            let d = f16::from_f32(amax / 127.0);
            let inv = if d.to_f32() != 0.0 {
                1.0 / d.to_f32()
            } else {
                0.0
            };
            out.extend_from_slice(&d.to_bits().to_le_bytes());
            out.extend(
                block
                    .iter()
                    .map(|&v| ((v * inv).round().clamp(-127.0, 127.0) as i8) as u8),
            );
        }),
        _ => {
            return Err(GgufError::UnsupportedType {
                ty,
                operation: "quantisation",
            });
        }
    }
    Ok(out)
}
