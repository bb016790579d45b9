//! Dequantisation of ggml tensor data to f32.
//!
//! Each function below decodes one block (the layouts are described in
//! `docs/formats.md`). The arithmetic follows ggml's reference order (scale
//! products first, then the quant), so results match ggml bit for bit.

use half::{bf16, f16};

use crate::error::{GgufError, Result};
use crate::types::GgmlType;

/// Values per K-quant superblock.
pub const QK_K: usize = 256;

/// Dequantises `n` values of type `ty` stored in `bytes` into a new vector.
///
/// # Errors
/// [`GgufError::UnsupportedType`] when `ty` cannot be dequantised
/// ([`GgmlType::can_dequantize`]), [`GgufError::ByteLength`] when `n` is not
/// a whole number of blocks or `bytes` does not hold exactly `n` values.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    check(ty, bytes, n)?;
    let mut out = vec![0.0f32; n];
    dequantize_unchecked_len(ty, bytes, &mut out);
    Ok(out)
}

/// Dequantises `out.len()` values of type `ty` stored in `bytes` into `out`.
///
/// # Errors
/// As [`dequantize`].
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    check(ty, bytes, out.len())?;
    dequantize_unchecked_len(ty, bytes, out);
    Ok(())
}

fn check(ty: GgmlType, bytes: &[u8], n: usize) -> Result<()> {
    if !ty.can_dequantize() {
        return Err(GgufError::UnsupportedType {
            ty,
            operation: "dequantisation",
        });
    }
    match ty.bytes_for(n) {
        Some(expected) if expected == bytes.len() => Ok(()),
        expected => Err(GgufError::ByteLength {
            ty,
            n,
            block: ty.block_size(),
            expected: expected.unwrap_or(0),
            got: bytes.len(),
        }),
    }
}

/// Lengths were checked by [`check`]: `bytes` is exactly `out.len()` values.
fn dequantize_unchecked_len(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    if ty == GgmlType::F16 {
        f16_slice(bytes, out);
        return;
    }
    let blocks = bytes
        .chunks_exact(ty.type_size())
        .zip(out.chunks_exact_mut(ty.block_size()));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes(arr(b))),
        GgmlType::BF16 => {
            blocks.for_each(|(b, y)| y[0] = bf16::from_bits(u16::from_le_bytes(arr(b))).to_f32())
        }
        GgmlType::F64 => blocks.for_each(|(b, y)| y[0] = f64::from_le_bytes(arr(b)) as f32),
        GgmlType::I8 => blocks.for_each(|(b, y)| y[0] = f32::from(b[0] as i8)),
        GgmlType::I16 => blocks.for_each(|(b, y)| y[0] = f32::from(i16::from_le_bytes(arr(b)))),
        GgmlType::I32 => blocks.for_each(|(b, y)| y[0] = i32::from_le_bytes(arr(b)) as f32),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| block_q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| block_q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| block_q5_0(b, y)),
        GgmlType::Q5_1 => blocks.for_each(|(b, y)| block_q5_1(b, y)),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| block_q8_0(b, y)),
        GgmlType::Q8_1 => blocks.for_each(|(b, y)| block_q8_1(b, y)),
        GgmlType::Q4K => blocks.for_each(|(b, y)| block_q4_k(b, y)),
        GgmlType::Q5K => blocks.for_each(|(b, y)| block_q5_k(b, y)),
        GgmlType::Q6K => blocks.for_each(|(b, y)| block_q6_k(b, y)),
        GgmlType::Q8K => blocks.for_each(|(b, y)| block_q8_k(b, y)),
        // `check` rejected every other type.
        _ => {}
    }
}

/// F16 → f32 in chunks through `half`'s slice conversion, which uses the
/// CPU's F16C instructions when available.
fn f16_slice(bytes: &[u8], out: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    const CHUNK: usize = 512;
    let mut tmp = [f16::ZERO; CHUNK];
    for (b, y) in bytes.chunks(2 * CHUNK).zip(out.chunks_mut(CHUNK)) {
        let k = y.len();
        for (h, pair) in tmp[..k].iter_mut().zip(b.chunks_exact(2)) {
            *h = f16::from_bits(u16::from_le_bytes([pair[0], pair[1]]));
        }
        tmp[..k].convert_to_f32_slice(y);
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Q4_0 (18 bytes): f16 `d` | 16 bytes `qs`. Value `j < 16` is the low nibble
/// of `qs[j]`, value `j + 16` the high nibble; `x = (q - 8) * d`.
fn block_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = (i32::from(qs[j] & 0x0f) - 8) as f32 * d;
        y[j + 16] = (i32::from(qs[j] >> 4) - 8) as f32 * d;
    }
}

/// Q4_1 (20 bytes): f16 `d` | f16 `m` | 16 bytes `qs`; `x = q * d + m`.
fn block_q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = f32::from(qs[j] & 0x0f) * d + m;
        y[j + 16] = f32::from(qs[j] >> 4) * d + m;
    }
}

/// Q5_0 (22 bytes): f16 `d` | u32 `qh` (little-endian) | 16 bytes `qs`. The
/// fifth bit of value `j` is bit `j` of `qh`; `x = (q - 16) * d`.
fn block_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes(arr(&b[2..6]));
    let qs: [u8; 16] = arr(&b[6..22]);
    let (lo, hi) = y.split_at_mut(16);
    for (j, ((&q, l), h)) in qs.iter().zip(lo.iter_mut()).zip(hi.iter_mut()).enumerate() {
        let h0 = (((qh >> j) & 1) << 4) as u8;
        let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
        *l = (i32::from((q & 0x0f) | h0) - 16) as f32 * d;
        *h = (i32::from((q >> 4) | h1) - 16) as f32 * d;
    }
}

/// Q5_1 (24 bytes): f16 `d` | f16 `m` | u32 `qh` | 16 bytes `qs`; `x = q * d + m`.
fn block_q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes(arr(&b[4..8]));
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = (((qh >> j) & 1) << 4) as u8;
        let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
        y[j] = f32::from((qs[j] & 0x0f) | h0) * d + m;
        y[j + 16] = f32::from((qs[j] >> 4) | h1) * d + m;
    }
}

/// Q8_0 (34 bytes): f16 `d` | 32 × i8 `qs`; `x = q * d`.
fn block_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (v, &q) in y.iter_mut().zip(&b[2..34]) {
        *v = f32::from(q as i8) * d;
    }
}

/// Q8_1 (36 bytes): f16 `d` | f16 `s` (sum, unused here) | 32 × i8; `x = q * d`.
fn block_q8_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (v, &q) in y.iter_mut().zip(&b[4..36]) {
        *v = f32::from(q as i8) * d;
    }
}

/// The 6-bit scale and 6-bit min of sub-block `j` (0..8) from the 12-byte
/// packed array of Q4_K / Q5_K: sub-blocks 0..4 keep their scale and min in
/// the low 6 bits of bytes `j` and `j + 4`; sub-blocks 4..8 keep their low 4
/// bits in the nibbles of byte `j + 4` and their top 2 bits in the top 2 bits
/// of bytes `j - 4` (scale) and `j` (min).
pub(crate) fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K (144 bytes): f16 `d` | f16 `dmin` | 12 bytes packed scales/mins |
/// 128 bytes `qs`. Eight sub-blocks of 32; each 32-byte group of `qs` holds
/// two sub-blocks (low nibbles first). `x = d * sc * q - dmin * m`.
fn block_q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let q = &qs[32 * c..32 * c + 32];
        let out = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            out[l] = d1 * f32::from(q[l] & 0x0f) - m1;
            out[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
        }
    }
}

/// Q5_K (176 bytes): f16 `d` | f16 `dmin` | 12 bytes scales/mins | 32 bytes
/// `qh` | 128 bytes `qs`. As Q4_K, plus a fifth bit per value: for the
/// sub-block pair `c`, bit `2c` of `qh[l]` (low sub-block) and bit `2c + 1`
/// (high sub-block) add 16.
fn block_q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
        let q = &qs[32 * c..32 * c + 32];
        let out = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            out[l] = d1 * f32::from((q[l] & 0x0f) + h1) - m1;
            out[l + 32] = d2 * f32::from((q[l] >> 4) + h2) - m2;
        }
    }
}

/// Q6_K (210 bytes): 128 bytes `ql` (low 4 bits) | 64 bytes `qh` (high 2
/// bits) | 16 × i8 `scales` | f16 `d`. Two halves of 128 values; in each, for
/// `l < 32`, byte `ql[l]` holds values `l` (low nibble) and `l + 64` (high),
/// `ql[l + 32]` holds `l + 32` and `l + 96`, and `qh[l]` holds the top bits
/// of `l`, `l + 32`, `l + 64`, `l + 96` in bit pairs 0-1, 2-3, 4-5, 6-7.
/// Every 16 values share a scale; `x = d * scale * (q - 32)`.
fn block_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let out = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let s = |k: usize| d * f32::from(sc[k] as i8);
            out[l] = s(is) * q1 as f32;
            out[l + 32] = s(is + 2) * q2 as f32;
            out[l + 64] = s(is + 4) * q3 as f32;
            out[l + 96] = s(is + 6) * q4 as f32;
        }
    }
}

/// Q8_K (292 bytes): f32 `d` | 256 × i8 `qs` | 16 × i16 block sums (unused
/// here); `x = d * q`.
fn block_q8_k(b: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes(arr(&b[0..4]));
    for (v, &q) in y.iter_mut().zip(&b[4..4 + QK_K]) {
        *v = d * f32::from(q as i8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_min_packing_reads_each_sub_block() {
        // Sub-blocks 0..4: scale j+1, min j+11 in the low 6 bits; top bits of
        // bytes 0..8 carry the high bits of sub-blocks 4..8.
        let mut s = [0u8; 12];
        for j in 0..4 {
            s[j] = (j as u8 + 1) | (0b01 << 6);
            s[j + 4] = (j as u8 + 11) | (0b10 << 6);
            s[j + 8] = 0x5 | (0x9 << 4);
        }
        for j in 0..4 {
            assert_eq!(scale_min_k4(j, &s), (j as u8 + 1, j as u8 + 11));
        }
        for j in 4..8 {
            // scale: low 4 = 5, high 2 = 0b01 -> 21; min: low 4 = 9, high 2 = 0b10 -> 41.
            assert_eq!(scale_min_k4(j, &s), (21, 41));
        }
    }

    #[test]
    fn rejects_wrong_lengths_and_types() {
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0u8; 33], 32),
            Err(GgufError::ByteLength { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q8_0, &[0u8; 34], 31),
            Err(GgufError::ByteLength { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q2K, &[0u8; 84], 256),
            Err(GgufError::UnsupportedType { .. })
        ));
        assert_eq!(
            dequantize(GgmlType::F32, &[], 0).map(|v| v.len()).ok(),
            Some(0)
        );
    }
}
