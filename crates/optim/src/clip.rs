//! Global-norm gradient clipping.

use crate::error::{OptimError, invalid};
use crate::kernels;

/// The L2 norm of all gradients taken together, `sqrt(Σᵢ Σⱼ gᵢⱼ²)`,
/// accumulated in `f64`. NaN or infinite when any element is.
pub fn grad_norm(grads: &[&[f32]]) -> f64 {
    grads.iter().map(|g| kernels::sum_sq(g)).sum::<f64>().sqrt()
}

fn clip_impl(
    grads: &mut [&mut [f32]],
    name: impl Fn(usize) -> String,
    max_norm: f64,
) -> Result<f64, OptimError> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(invalid(
            "max_norm",
            format!("{max_norm} is not a finite value > 0"),
        ));
    }
    let total = grads.iter().map(|g| kernels::sum_sq(g)).sum::<f64>().sqrt();
    if !total.is_finite() {
        for (i, g) in grads.iter().enumerate() {
            if let Some((index, value)) = kernels::first_non_finite(g) {
                return Err(OptimError::NonFinite {
                    param: name(i),
                    index,
                    value,
                });
            }
        }
    }
    if total > max_norm {
        let coef = (max_norm / total) as f32;
        for g in grads.iter_mut() {
            kernels::scale(g, coef);
        }
    }
    Ok(total)
}

/// Scales all gradients by one factor so that their global L2 norm is at
/// most `max_norm`, and returns the norm measured before clipping.
///
/// When the norm exceeds `max_norm` every element is multiplied by
/// `max_norm / norm` (no epsilon), so the clipped norm equals `max_norm` up
/// to `f32` rounding; otherwise nothing changes.
///
/// # Errors
/// [`OptimError::InvalidConfig`] when `max_norm` is not a finite value > 0;
/// [`OptimError::NonFinite`] (`param` = `grads[i]`) when some gradient holds
/// NaN or infinity — then no gradient is modified.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f64) -> Result<f64, OptimError> {
    clip_impl(grads, |i| format!("grads[{i}]"), max_norm)
}

/// [`clip_grad_norm`] over named gradients: a non-finite value is reported
/// with its parameter's name.
///
/// # Errors
/// As [`clip_grad_norm`].
pub fn clip_grad_norm_named(
    grads: &mut [(&str, &mut [f32])],
    max_norm: f64,
) -> Result<f64, OptimError> {
    let names: Vec<&str> = grads.iter().map(|(n, _)| *n).collect();
    let mut slices: Vec<&mut [f32]> = grads.iter_mut().map(|(_, g)| &mut **g).collect();
    clip_impl(&mut slices, |i| names[i].to_owned(), max_norm)
}
