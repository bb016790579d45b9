//! Quantisation round trips: simple reference quantisers written here encode
//! random data in each block format; dequantising must reproduce every value
//! within half a quantisation step of the block's own scale. Plus exact
//! hand-built blocks with known values.

use flowrl_gguf::{GgmlType, dequantize, quantize};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(n: usize, seed: u64, spread: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            // Mix scales across blocks so per-block scales matter.
            let scale = spread * (1.0 + (i / 32 % 7) as f32);
            rng.random_range(-1.0f32..1.0) * scale + if i % 97 == 0 { 0.3 * scale } else { 0.0 }
        })
        .collect()
}

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

fn hf(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// The smallest f16 ≥ `x` (for `x ≥ 0`), so a scale stored in f16 never
/// shrinks the range it must cover.
fn f16_ceil(x: f32) -> f32 {
    let r = f16::from_f32(x);
    if r.to_f32() >= x {
        r.to_f32()
    } else {
        f16::from_bits(r.to_bits() + 1).to_f32()
    }
}

fn check_within(name: &str, x: &[f32], y: &[f32], step: impl Fn(usize) -> f32) {
    assert_eq!(x.len(), y.len());
    for i in 0..x.len() {
        let tol = 0.5 * step(i) * (1.0 + 1e-5) + 1e-6 * x[i].abs() + 1e-7;
        assert!(
            (x[i] - y[i]).abs() <= tol,
            "{name}[{i}]: {} vs {} (tolerance {tol})",
            x[i],
            y[i]
        );
    }
}

fn q4_0(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for b in x.chunks(32) {
        let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = f16_ceil(amax / 7.0);
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let q: Vec<u8> = b
            .iter()
            .map(|v| ((v * inv).round().clamp(-8.0, 7.0) as i32 + 8) as u8)
            .collect();
        out.extend(h(d));
        out.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        steps.extend([d; 32]);
    }
    (out, steps)
}

fn q4_1(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for b in x.chunks(32) {
        let min = b.iter().copied().fold(f32::INFINITY, f32::min);
        let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let m = -f16_ceil(-min); // f16 ≤ min
        let d = f16_ceil((max - m) / 15.0);
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend(h(d));
        out.extend(h(m));
        let q: Vec<u8> = b
            .iter()
            .map(|v| ((v - m) * inv).round().clamp(0.0, 15.0) as u8)
            .collect();
        out.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        steps.extend([d; 32]);
    }
    (out, steps)
}

fn q5(x: &[f32], with_min: bool) -> (Vec<u8>, Vec<f32>) {
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for b in x.chunks(32) {
        let (d, m, q): (f32, f32, Vec<u32>) = if with_min {
            let min = b.iter().copied().fold(f32::INFINITY, f32::min);
            let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let m = -f16_ceil(-min);
            let d = f16_ceil((max - m) / 31.0);
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let q = b
                .iter()
                .map(|v| ((v - m) * inv).round().clamp(0.0, 31.0) as u32);
            (d, m, q.collect())
        } else {
            let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = f16_ceil(amax / 15.0);
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let q = b
                .iter()
                .map(|v| ((v * inv).round().clamp(-16.0, 15.0) as i32 + 16) as u32);
            (d, 0.0, q.collect())
        };
        out.extend(h(d));
        if with_min {
            out.extend(h(m));
        }
        let qh: u32 = (0..32).map(|j| ((q[j] >> 4) & 1) << j).sum();
        out.extend(qh.to_le_bytes());
        out.extend((0..16).map(|j| ((q[j] & 15) | ((q[j + 16] & 15) << 4)) as u8));
        steps.extend([d; 32]);
    }
    (out, steps)
}

/// Packs eight 6-bit scales and mins into the 12-byte K-quant layout.
fn pack_scales(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    s
}

/// Q4_K / Q5_K reference: per sub-block of 32, an offset `m ≥ -min` and a
/// step covering `max + m`, both quantised to 6 bits against f16 superblock
/// scales, rounding up so the range stays covered.
fn k_quant(x: &[f32], bits: u32) -> (Vec<u8>, Vec<f32>) {
    let levels = ((1u32 << bits) - 1) as f32;
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for sb in x.chunks(256) {
        let mins: Vec<f32> = sb
            .chunks(32)
            .map(|b| (-b.iter().copied().fold(f32::INFINITY, f32::min)).max(0.0))
            .collect();
        let dmin = f16_ceil(mins.iter().copied().fold(0.0, f32::max) / 63.0);
        let mut mq = [0u8; 8];
        let mut m1 = [0f32; 8];
        for j in 0..8 {
            mq[j] = if dmin > 0.0 {
                (mins[j] / dmin).ceil().min(63.0) as u8
            } else {
                0
            };
            m1[j] = dmin * f32::from(mq[j]);
        }
        let need: Vec<f32> = sb
            .chunks(32)
            .zip(m1)
            .map(|(b, m)| {
                (b.iter().copied().fold(f32::NEG_INFINITY, f32::max) + m).max(0.0) / levels
            })
            .collect();
        let d = f16_ceil(need.iter().copied().fold(0.0, f32::max) / 63.0);
        let mut sc = [0u8; 8];
        let mut d1 = [0f32; 8];
        for j in 0..8 {
            sc[j] = if d > 0.0 {
                (need[j] / d).ceil().min(63.0) as u8
            } else {
                0
            };
            d1[j] = d * f32::from(sc[j]);
        }
        let q: Vec<u8> = sb
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let j = i / 32;
                if d1[j] > 0.0 {
                    ((v + m1[j]) / d1[j]).round().clamp(0.0, levels) as u8
                } else {
                    0
                }
            })
            .collect();
        out.extend(h(d));
        out.extend(h(dmin));
        out.extend(pack_scales(&sc, &mq));
        if bits == 5 {
            let mut qh = [0u8; 32];
            for (i, &v) in q.iter().enumerate() {
                let (pair, half, l) = (i / 64, (i / 32) % 2, i % 32);
                qh[l] |= ((v >> 4) & 1) << (2 * pair + half);
            }
            out.extend(qh);
        }
        for c in 0..4 {
            out.extend((0..32).map(|l| (q[64 * c + l] & 15) | ((q[64 * c + 32 + l] & 15) << 4)));
        }
        steps.extend(d1.iter().flat_map(|&s| [s; 32]));
    }
    (out, steps)
}

/// Q6_K reference: sixteen sub-blocks of 16 with i8 scales against an f16
/// superblock scale; values in -32..=31, scaled so |x| maps to at most 31.
fn q6_k(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for sb in x.chunks(256) {
        let need: Vec<f32> = sb
            .chunks(16)
            .map(|b| b.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 31.0)
            .collect();
        let d = f16_ceil(need.iter().copied().fold(0.0, f32::max) / 127.0);
        let sc: Vec<i8> = need
            .iter()
            .map(|&n| {
                if d > 0.0 {
                    (n / d).ceil().min(127.0) as i8
                } else {
                    0
                }
            })
            .collect();
        let d1: Vec<f32> = sc.iter().map(|&s| d * f32::from(s)).collect();
        let q: Vec<u8> = sb
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s = d1[i / 16];
                let q = if s > 0.0 {
                    (v / s).round().clamp(-32.0, 31.0) as i32
                } else {
                    0
                };
                (q + 32) as u8
            })
            .collect();
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for half in 0..2 {
            let base = 128 * half;
            for l in 0..32 {
                let [a, b, c, e] = [0, 32, 64, 96].map(|o| q[base + o + l]);
                ql[64 * half + l] = (a & 15) | ((c & 15) << 4);
                ql[64 * half + l + 32] = (b & 15) | ((e & 15) << 4);
                qh[32 * half + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
            }
        }
        out.extend(ql);
        out.extend(qh);
        out.extend(sc.iter().map(|&s| s as u8));
        out.extend(h(d));
        steps.extend(d1.iter().flat_map(|&s| [s; 16]));
    }
    (out, steps)
}

fn q8_k(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for sb in x.chunks(256) {
        let amax = sb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let q: Vec<i8> = sb
            .iter()
            .map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8)
            .collect();
        out.extend(d.to_le_bytes());
        out.extend(q.iter().map(|&v| v as u8));
        for b in q.chunks(16) {
            out.extend(b.iter().map(|&v| i16::from(v)).sum::<i16>().to_le_bytes());
        }
        steps.extend([d; 256]);
    }
    (out, steps)
}

const N: usize = 256 * 12;

#[test]
fn block_quant_round_trips_stay_within_half_a_step() {
    type Quantiser = fn(&[f32]) -> (Vec<u8>, Vec<f32>);
    let cases: [(GgmlType, Quantiser); 8] = [
        (GgmlType::Q4_0, q4_0),
        (GgmlType::Q4_1, q4_1),
        (GgmlType::Q5_0, |x| q5(x, false)),
        (GgmlType::Q5_1, |x| q5(x, true)),
        (GgmlType::Q4K, |x| k_quant(x, 4)),
        (GgmlType::Q5K, |x| k_quant(x, 5)),
        (GgmlType::Q6K, q6_k),
        (GgmlType::Q8K, q8_k),
    ];
    for (seed, spread) in [(1u64, 0.05f32), (2, 1.0), (3, 30.0)] {
        let x = random(N, seed, spread);
        for (ty, quant) in cases {
            let (bytes, steps) = quant(&x);
            assert_eq!(Some(bytes.len()), ty.bytes_for(N), "{ty}");
            let y = dequantize(ty, &bytes, N).unwrap();
            check_within(ty.name(), &x, &y, |i| steps[i]);
            // And the steps are fine enough to make this meaningful.
            let max_step = steps.iter().copied().fold(0.0, f32::max);
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let bits = match ty {
                GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K => 4,
                GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5K => 5,
                GgmlType::Q6K => 6,
                _ => 8,
            };
            assert!(
                max_step <= 2.2 * amax / ((1 << (bits - 1)) - 1) as f32,
                "{ty}: step {max_step}"
            );
        }
    }
}

#[test]
fn q8_0_from_the_crate_quantiser_round_trips() {
    for (seed, spread) in [(4u64, 0.01f32), (5, 3.0)] {
        let x = random(N, seed, spread);
        let bytes = quantize(GgmlType::Q8_0, &x).unwrap();
        let y = dequantize(GgmlType::Q8_0, &bytes, N).unwrap();
        let steps: Vec<f32> = bytes
            .chunks(34)
            .flat_map(|b| [f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(); 32])
            .collect();
        check_within("Q8_0", &x, &y, |i| steps[i]);
    }
}

#[test]
fn float_types_round_trip_like_the_half_crate() {
    let x = random(1000, 6, 100.0);
    let y = dequantize(GgmlType::F32, &quantize(GgmlType::F32, &x).unwrap(), 1000).unwrap();
    assert_eq!(x, y);
    let y = dequantize(GgmlType::F16, &quantize(GgmlType::F16, &x).unwrap(), 1000).unwrap();
    assert!(x.iter().zip(&y).all(|(a, b)| hf(*a) == *b));
    let y = dequantize(GgmlType::BF16, &quantize(GgmlType::BF16, &x).unwrap(), 1000).unwrap();
    assert!(
        x.iter()
            .zip(&y)
            .all(|(a, b)| bf16::from_f32(*a).to_f32() == *b)
    );
    let raw: Vec<u8> = [1.5f64, -2.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(
        dequantize(GgmlType::F64, &raw, 2).unwrap(),
        vec![1.5, -2.25]
    );
    let raw: Vec<u8> = [-3i32, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::I32, &raw, 2).unwrap(), vec![-3.0, 7.0]);
}

#[test]
fn known_q8_0_block() {
    let mut b = h(0.5).to_vec();
    b.extend((0..32).map(|i| (i as i8 - 16) as u8));
    let y = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
    let want: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.5).collect();
    assert_eq!(y, want);
}

#[test]
fn known_q4_0_block() {
    let mut b = h(2.0).to_vec();
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let y = dequantize(GgmlType::Q4_0, &b, 32).unwrap();
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 2.0);
        assert_eq!(y[j + 16], (7.0 - j as f32) * 2.0);
    }
}

#[test]
fn known_q5_0_block() {
    let qh: u32 = 0xAAAA_5555;
    let mut b = h(1.0).to_vec();
    b.extend(qh.to_le_bytes());
    b.extend((0..16u8).map(|j| j | (j << 4)));
    let y = dequantize(GgmlType::Q5_0, &b, 32).unwrap();
    for (j, v) in y.iter().enumerate() {
        let low = (j % 16) as u32;
        let high = (qh >> j) & 1;
        assert_eq!(*v, (low | (high << 4)) as f32 - 16.0, "value {j}");
    }
}

#[test]
fn known_q4_k_block() {
    // Sub-block j: scale j + 1 (and 40 + j for j >= 4, exercising the high
    // bits), min j; d = 1, dmin = 0.5; quant of value i is i % 16.
    let sc: [u8; 8] = [1, 2, 3, 4, 44, 45, 46, 47];
    let mn: [u8; 8] = [0, 1, 2, 3, 20, 33, 50, 63];
    let mut b = h(1.0).to_vec();
    b.extend(h(0.5));
    b.extend(pack_scales(&sc, &mn));
    for c in 0..4 {
        b.extend(
            (0..32).map(|l| ((64 * c + l) % 16) as u8 | ((((64 * c + 32 + l) % 16) as u8) << 4)),
        );
    }
    let y = dequantize(GgmlType::Q4K, &b, 256).unwrap();
    for (i, v) in y.iter().enumerate() {
        let j = i / 32;
        let want = f32::from(sc[j]) * (i % 16) as f32 - 0.5 * f32::from(mn[j]);
        assert_eq!(*v, want, "value {i}");
    }
}

#[test]
fn known_q6_k_block() {
    // All quants 33 (i.e. +1), scales alternate sign: value = d * sc.
    let sc: Vec<i8> = (0..16)
        .map(|j| if j % 2 == 0 { j + 1 } else { -(j + 1) })
        .collect();
    let q: u8 = 33; // low nibble 1, high bits 0b10
    let mut b = vec![(q & 15) | ((q & 15) << 4); 128];
    let hb = q >> 4;
    b.extend(vec![hb | (hb << 2) | (hb << 4) | (hb << 6); 64]);
    b.extend(sc.iter().map(|&s| s as u8));
    b.extend(h(0.25));
    let y = dequantize(GgmlType::Q6K, &b, 256).unwrap();
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, 0.25 * f32::from(sc[i / 16]), "value {i}");
    }
}
