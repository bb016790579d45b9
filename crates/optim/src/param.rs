//! Named parameter views passed to an optimizer, and finiteness checks.

use std::collections::HashSet;

use crate::error::OptimError;
use crate::kernels;

/// One trainable tensor, flattened: its current values and the gradient of
/// the loss with respect to them.
///
/// The optimizer identifies its per-parameter state by `name`, so a name must
/// stay the same from step to step and be unique within one call.
#[derive(Debug)]
pub struct ParamMut<'a> {
    /// Stable, unique name (e.g. `model.layers.0.mlp.up_proj.weight`).
    pub name: &'a str,
    /// The values, updated in place by [`crate::Optimizer::step`].
    pub value: &'a mut [f32],
    /// ∂loss/∂value, same length as `value`.
    pub grad: &'a [f32],
}

impl<'a> ParamMut<'a> {
    /// Bundles a name, a value slice and its gradient.
    pub fn new(name: &'a str, value: &'a mut [f32], grad: &'a [f32]) -> Self {
        ParamMut { name, value, grad }
    }
}

/// Checks that every parameter's gradient has the length of its values and
/// that no name repeats.
///
/// # Errors
/// [`OptimError::LengthMismatch`] or [`OptimError::DuplicateParam`].
pub fn validate_params(params: &[ParamMut<'_>]) -> Result<(), OptimError> {
    let mut seen = HashSet::with_capacity(params.len());
    for p in params {
        if p.value.len() != p.grad.len() {
            return Err(OptimError::LengthMismatch {
                param: p.name.to_owned(),
                values: p.value.len(),
                grads: p.grad.len(),
            });
        }
        if !seen.insert(p.name) {
            return Err(OptimError::DuplicateParam(p.name.to_owned()));
        }
    }
    Ok(())
}

/// Checks that `data` holds no NaN or infinity.
///
/// # Errors
/// [`OptimError::NonFinite`] naming `name` and the first offending element.
pub fn check_finite(name: &str, data: &[f32]) -> Result<(), OptimError> {
    match kernels::first_non_finite(data) {
        None => Ok(()),
        Some((index, value)) => Err(OptimError::NonFinite {
            param: name.to_owned(),
            index,
            value,
        }),
    }
}

/// Checks every parameter's gradient for NaN and infinity, in order.
///
/// # Errors
/// [`OptimError::NonFinite`] for the first parameter with a bad gradient.
pub fn check_finite_grads(params: &[ParamMut<'_>]) -> Result<(), OptimError> {
    params.iter().try_for_each(|p| check_finite(p.name, p.grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_parameter_with_a_nan() {
        let mut a = vec![0.0f32; 3];
        let mut b = vec![0.0f32; 4];
        let ga = [1.0f32, 2.0, 3.0];
        let gb = [1.0f32, 2.0, f32::NAN, f32::INFINITY];
        let params = [
            ParamMut::new("a", &mut a, &ga),
            ParamMut::new("b", &mut b, &gb),
        ];
        match check_finite_grads(&params) {
            Err(OptimError::NonFinite {
                param,
                index,
                value,
            }) => {
                assert_eq!(param, "b");
                assert_eq!(index, 2);
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }

    #[test]
    fn rejects_mismatched_and_duplicate_params() {
        let mut a = vec![0.0f32; 3];
        let g2 = [0.0f32; 2];
        assert!(matches!(
            validate_params(&[ParamMut::new("a", &mut a, &g2)]),
            Err(OptimError::LengthMismatch {
                values: 3,
                grads: 2,
                ..
            })
        ));
        let mut b = vec![0.0f32; 2];
        let mut c = vec![0.0f32; 2];
        assert_eq!(
            validate_params(&[
                ParamMut::new("x", &mut b, &g2),
                ParamMut::new("x", &mut c, &g2)
            ]),
            Err(OptimError::DuplicateParam("x".into()))
        );
    }
}
