//! Fits a linear model `y = W·x + b` by least squares with the FlowSteer
//! optimization setting (AdamW, cosine schedule with warm-up, clipping, no
//! decay on the bias), then saves the optimizer state.
//!
//! `cargo run -p flowrl-optim --example least_squares -- [STATE_FILE]`

use flowrl_optim::{OptimConfig, OptimizerState, ParamMut, clip_grad_norm_named};

const IN: usize = 16;
const OUT: usize = 4;
const SAMPLES: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Deterministic data from a hidden true model.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let true_w: Vec<f32> = (0..OUT * IN).map(|_| next()).collect();
    let xs: Vec<f32> = (0..SAMPLES * IN).map(|_| next()).collect();
    let ys: Vec<f32> = (0..SAMPLES)
        .flat_map(|s| {
            let x = &xs[s * IN..(s + 1) * IN];
            let w = &true_w;
            (0..OUT).map(move |o| (0..IN).map(|i| w[o * IN + i] * x[i]).sum::<f32>() + 0.1)
        })
        .collect();

    let steps = 300;
    let mut config = OptimConfig::flowsteer(steps);
    if let flowrl_optim::OptimizerConfig::AdamW(c) = &mut config.optimizer {
        c.lr = 3e-2;
    }
    let mut opt = config.build_optimizer()?;
    let mut w = vec![0.0f32; OUT * IN];
    let mut b = vec![0.0f32; OUT];
    for step in 0..steps {
        let mut gw = vec![0.0f32; OUT * IN];
        let mut gb = vec![0.0f32; OUT];
        let mut loss = 0.0f64;
        for s in 0..SAMPLES {
            let x = &xs[s * IN..(s + 1) * IN];
            for o in 0..OUT {
                let pred: f32 = (0..IN).map(|i| w[o * IN + i] * x[i]).sum::<f32>() + b[o];
                let err = pred - ys[s * OUT + o];
                loss += f64::from(err * err) / SAMPLES as f64;
                let d = 2.0 * err / SAMPLES as f32;
                gb[o] += d;
                for i in 0..IN {
                    gw[o * IN + i] += d * x[i];
                }
            }
        }
        let norm = match config.max_grad_norm {
            Some(max) => clip_grad_norm_named(&mut [("w", &mut gw), ("b.bias", &mut gb)], max)?,
            None => f64::NAN,
        };
        let lr = config.lr_at(step);
        opt.step(
            &mut [
                ParamMut::new("w", &mut w, &gw),
                ParamMut::new("b.bias", &mut b, &gb),
            ],
            lr,
        )?;
        if step % 50 == 0 || step + 1 == steps {
            println!("step {step:3}  lr {lr:.2e}  loss {loss:.6}  grad norm {norm:.4}");
        }
    }
    if let Some(path) = std::env::args().nth(1) {
        opt.state().save(&path)?;
        let back = OptimizerState::load(&path)?;
        back.check_params([("w", OUT * IN), ("b.bias", OUT)])?;
        println!(
            "saved optimizer state after {} updates to {path}",
            back.step
        );
    }
    Ok(())
}
