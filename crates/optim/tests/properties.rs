//! Property tests: clipping and schedule invariants over random inputs.

use flowrl_optim::{ScheduleConfig, clip_grad_norm, grad_norm};
use proptest::prelude::*;

fn finite_vec(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-1e3f32..1e3, 0..max_len)
}

proptest! {
    #[test]
    fn clipping_bounds_the_norm_and_keeps_direction(
        mut a in finite_vec(64),
        mut b in finite_vec(300),
        max_norm in 1e-3f64..1e3,
    ) {
        let (a0, b0) = (a.clone(), b.clone());
        let before = grad_norm(&[&a, &b]);
        let total = clip_grad_norm(&mut [&mut a, &mut b], max_norm).unwrap();
        prop_assert_eq!(total, before);
        let after = grad_norm(&[&a, &b]);
        if before > max_norm {
            prop_assert!((after - max_norm).abs() <= 1e-5 * max_norm, "{} vs {}", after, max_norm);
            let c = max_norm / before;
            for (x, x0) in a.iter().chain(&b).zip(a0.iter().chain(&b0)) {
                prop_assert!((f64::from(*x) - f64::from(*x0) * c).abs() <= 1e-6 * f64::from(x0.abs()) + 1e-30);
            }
        } else {
            prop_assert_eq!(&a, &a0);
            prop_assert_eq!(&b, &b0);
        }
    }

    #[test]
    fn schedules_rise_then_fall_within_bounds(
        warmup in 0u64..50,
        extra in 1u64..500,
        final_factor in 0.0f64..=1.0,
        cosine in any::<bool>(),
    ) {
        let total = warmup + extra;
        let s = if cosine {
            ScheduleConfig::Cosine { warmup_steps: warmup, total_steps: total, final_factor }
        } else {
            ScheduleConfig::Linear { warmup_steps: warmup, total_steps: total, final_factor }
        };
        s.validate().unwrap();
        let mut prev = 0.0;
        for step in 0..total + 5 {
            let f = s.factor(step);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&f), "step {}: {}", step, f);
            if step < warmup {
                prop_assert!(f > prev);
            } else if step > warmup {
                prop_assert!(f <= prev + 1e-12, "step {}: {} > {}", step, f, prev);
            }
            prev = f;
        }
        if warmup > 0 {
            prop_assert!((s.factor(warmup - 1) - 1.0).abs() < 1e-12);
        }
        prop_assert!((s.factor(total) - final_factor).abs() < 1e-12);
    }
}
