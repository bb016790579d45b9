//! `eˣ` over slices of clamped arguments, in a form the compiler vectorises.
//!
//! The token pass needs one or two exponentials per token (the token ratio,
//! the k3 KL term) of arguments already clamped to ±20. A call into the C
//! library per value costs more than the rest of the token's work: the call
//! spills the loop's registers and cannot be vectorised. [`exp_in_place`]
//! runs a branch-free polynomial over a whole block instead.

/// `ln 2` split in a high part with trailing zero bits (so `k · LN2_HI` is
/// exact for |k| < 2²⁰) and the remainder.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding it rounds a value below 2⁵¹ in magnitude to the
/// nearest integer (ties to even), which then sits in the low mantissa bits.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// `eˣ` for |x| ≤ 700, within 1 ulp of the correctly rounded value (checked
/// against `f64::exp` in the tests); `e⁰` is exactly 1. Larger |x| are
/// outside its contract (the result is then meaningless, not an error); NaN
/// gives NaN.
#[inline(always)]
pub(crate) fn exp_bounded(x: f64) -> f64 {
    // x = k·ln 2 + r with |r| ≤ ln 2 / 2; eˣ = 2ᵏ · eʳ.
    let t = x * std::f64::consts::LOG2_E + ROUND;
    let kf = t - ROUND;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    // Taylor series of eʳ to degree 13: the truncation error is below
    // 0.35¹⁴/14! ≈ 4·10⁻¹⁸, under a tenth of an ulp of eʳ.
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2ᵏ from the integer in t's low bits (two's complement in the low 51
    // bits, so the wrapping add of the exponent bias gives k + 1023).
    let k_bits = t.to_bits().wrapping_add(1023) & 0x7ff;
    p * f64::from_bits(k_bits << 52)
}

/// Replaces every element `x` of `xs` by [`exp_bounded`]`(x)`; every `x`
/// must satisfy |x| ≤ 700 (or be NaN). Uses AVX2 where the CPU has it, with
/// the same operations in the same order, so the results are bit-identical
/// either way.
pub(crate) fn exp_in_place(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { exp_in_place_avx2(xs) };
        return;
    }
    exp_in_place_portable(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_in_place_avx2(xs: &mut [f64]) {
    exp_in_place_portable(xs);
}

#[inline(always)]
fn exp_in_place_portable(xs: &mut [f64]) {
    // Eight independent evaluations per step: the polynomial is one long
    // chain of dependent multiply-adds, so throughput needs several chains
    // in flight (the inner loop is unrolled and vectorised).
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        for x in c {
            *x = exp_bounded(*x);
        }
    }
    for x in chunks.into_remainder() {
        *x = exp_bounded(*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance from `a` to `b` in units of the last place of `b`.
    fn ulps(a: f64, b: f64) -> f64 {
        let ulp = f64::from_bits(b.to_bits() + 1) - b;
        (a - b).abs() / ulp
    }

    #[test]
    fn within_one_ulp_of_std_exp() {
        let mut xs: Vec<f64> = (0..=400_000)
            .map(|i| -20.0 + 40.0 * f64::from(i) / 400_000.0)
            .collect();
        // Pseudo-random points over the whole contract, and the edges.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            xs.push(((s >> 11) as f64 / (1u64 << 53) as f64) * 1400.0 - 700.0);
        }
        xs.extend([-700.0, 700.0, -1e-300, 1e-300, 1e-17, -1e-17, 0.5, -0.5]);
        let mut ys = xs.clone();
        exp_in_place(&mut ys);
        let mut worst = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            let e = ulps(y, x.exp());
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 <= 1.0, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let xs: Vec<f64> = (0..10_007)
            .map(|i| -20.0 + 40.0 * f64::from(i) / 10_007.0)
            .collect();
        let scalar: Vec<u64> = xs.iter().map(|&x| exp_bounded(x).to_bits()).collect();
        let mut portable = xs.clone();
        exp_in_place_portable(&mut portable);
        let mut dispatched = xs.clone();
        exp_in_place(&mut dispatched);
        assert!(
            portable
                .iter()
                .map(|y| y.to_bits())
                .eq(scalar.iter().copied())
        );
        assert!(
            dispatched
                .iter()
                .map(|y| y.to_bits())
                .eq(scalar.iter().copied())
        );
    }

    #[test]
    fn exact_where_it_matters() {
        assert_eq!(exp_bounded(0.0), 1.0);
        assert_eq!(exp_bounded(-0.0), 1.0);
        assert!(exp_bounded(f64::NAN).is_nan());
    }
}
