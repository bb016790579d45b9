//! The float types the model runs in (`f32` for use, `f64` for gradient
//! checks) and the matrix product they share.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

use rayon::prelude::*;

/// A real scalar the model can compute in: implemented for `f32` and `f64`.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Short name of the type (`f32`, `f64`).
    const NAME: &'static str;
    /// Conversion from `f64` (rounding for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Conversion to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Conversion from `f32` (exact).
    fn from_f32(x: f32) -> Self;
    /// Conversion to `f32` (rounding for `f64`).
    fn to_f32(self) -> f32;
    /// eˣ.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// The larger of two values (NaN-ignoring like `f32::max`).
    fn max(self, other: Self) -> Self;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// `C ← α·A·B + β·C` through `matrixmultiply`, with element strides.
    ///
    /// # Safety
    /// Every index `i·rs + j·cs` of each operand inside its `m × k`,
    /// `k × n` or `m × n` extent must be in bounds, and `c` must not alias
    /// `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_float {
    ($t:ty, $gemm:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const NAME: &'static str = stringify!($t);
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_float!(f32, matrixmultiply::sgemm);
impl_float!(f64, matrixmultiply::dgemm);

/// A read-only matrix operand: data plus row and column strides (in
/// elements) of a logical `rows × cols` matrix.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (a view, no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
        last < self.data.len()
    }
}

struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint blocks of one output to rayon tasks.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

/// Work (in multiply-adds) below which a product runs on one thread.
const PAR_THRESHOLD: usize = 1 << 16;

/// `f` over every task, on rayon's pool when the estimated `work`
/// (multiply-adds in all) is large enough to pay for the hand-off, in order
/// on this thread otherwise.
pub(crate) fn map_tasks<I, R, F>(tasks: &[I], work: usize, f: F) -> Vec<R>
where
    I: Sync,
    R: Send,
    F: Fn(&I) -> R + Sync + Send,
{
    if work < PAR_THRESHOLD || tasks.len() < 2 {
        tasks.iter().map(f).collect()
    } else {
        tasks.par_iter().map(f).collect()
    }
}

/// `C ← A·B + (accumulate ? C : 0)` with `C` row-major `m × n`; splits rows
/// (or columns when there are few rows) across rayon's pool.
///
/// Panics when operand shapes disagree — callers in this crate size every
/// buffer from the validated config, so a panic here is a bug, never a
/// consequence of user input.
pub(crate) fn matmul<T: Float>(a: Mat<'_, T>, b: Mat<'_, T>, c: &mut [T], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul: inner dimensions differ");
    assert_eq!(c.len(), m * n, "matmul: output size");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "matmul: operand out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    let beta = if accumulate { T::ONE } else { T::ZERO };
    if k == 0 {
        if !accumulate {
            c.iter_mut().for_each(|x| *x = T::ZERO);
        }
        return;
    }
    let work = m * n * k;
    let threads = rayon::current_num_threads().max(1);
    if work < PAR_THRESHOLD || threads == 1 {
        // SAFETY: shapes checked above; c is a distinct &mut slice.
        unsafe {
            T::gemm_raw(
                m,
                k,
                n,
                T::ONE,
                a.data.as_ptr(),
                a.rs as isize,
                a.cs as isize,
                b.data.as_ptr(),
                b.rs as isize,
                b.cs as isize,
                beta,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        };
        return;
    }
    // Each block packs the operand it shares in full: split the longer side
    // of C so that the shared operand is the smaller one.
    let split_rows = m >= threads * 4 && m > n;
    let parts = (threads * 2).min(if split_rows { m } else { n }).max(1);
    let cptr = SendPtr(c.as_mut_ptr());
    if split_rows {
        let chunk = m.div_ceil(parts);
        (0..m.div_ceil(chunk)).into_par_iter().for_each(|p| {
            let r0 = p * chunk;
            let rows = chunk.min(m - r0);
            let cp = &cptr;
            // SAFETY: block p covers rows r0..r0+rows of C only; A's rows
            // r0.. are in bounds because A is checked as a whole.
            unsafe {
                T::gemm_raw(
                    rows,
                    k,
                    n,
                    T::ONE,
                    a.data.as_ptr().add(r0 * a.rs),
                    a.rs as isize,
                    a.cs as isize,
                    b.data.as_ptr(),
                    b.rs as isize,
                    b.cs as isize,
                    beta,
                    cp.0.add(r0 * n),
                    n as isize,
                    1,
                )
            };
        });
    } else {
        let chunk = n.div_ceil(parts).max(16).min(n);
        (0..n.div_ceil(chunk)).into_par_iter().for_each(|p| {
            let c0 = p * chunk;
            let cols = chunk.min(n - c0);
            let cp = &cptr;
            // SAFETY: block p covers columns c0..c0+cols of C only.
            unsafe {
                T::gemm_raw(
                    m,
                    k,
                    cols,
                    T::ONE,
                    a.data.as_ptr(),
                    a.rs as isize,
                    a.cs as isize,
                    b.data.as_ptr().add(c0 * b.cs),
                    b.rs as isize,
                    b.cs as isize,
                    beta,
                    cp.0.add(c0),
                    n as isize,
                    1,
                )
            };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    c[i * n + j] += a[i * k + l] * b[l * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn matmul_matches_naive_in_every_split() {
        for &(m, k, n) in &[(3, 4, 5), (200, 70, 90), (2, 300, 400), (1, 1, 1)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
            let want = naive(&a, &b, m, k, n);
            let mut c = vec![1.0; m * n];
            matmul(Mat::new(&a, m, k), Mat::new(&b, k, n), &mut c, false);
            assert_eq!(c, want);
            // transposed operands: (Bᵀ)ᵀ
            let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            matmul(Mat::new(&a, m, k), Mat::new(&bt, n, k).t(), &mut c, true);
            let twice: Vec<f64> = want.iter().map(|x| 2.0 * x).collect();
            assert_eq!(c, twice);
        }
    }
}
