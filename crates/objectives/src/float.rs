//! The floating-point element types the objectives accept.

use std::fmt::{Debug, Display};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type of the token slices: `f32` or `f64`.
///
/// Every reduction and every per-unit quantity is computed in `f64`
/// whatever the element type; values are converted once on read and the
/// gradient once on write. The trait is sealed.
pub trait Float:
    sealed::Sealed + Copy + Send + Sync + PartialOrd + Default + Debug + Display + 'static
{
    /// The additive identity.
    const ZERO: Self;
    /// Name of the type (`"f32"` or `"f64"`), for messages.
    const NAME: &'static str;
    /// Widens (or copies) to `f64`.
    fn to_f64(self) -> f64;
    /// Rounds (or copies) from `f64`.
    fn from_f64(v: f64) -> Self;
    /// True unless NaN or ±∞.
    fn is_finite(self) -> bool;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}
