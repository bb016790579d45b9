//! End-to-end tests of `flowrl loss`.

use std::io::Write;
use std::process::{Command, Stdio};

fn flowrl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowrl"))
}

/// Two trajectories: (turn of 2 tokens, turn of 1 token) and (turn of 3 tokens).
const BATCH: &str = r#"{
  "algorithm": "gsspo",
  "config": {"kl_coef": 0.0},
  "logprobs":     [0, -1.0, -2.0, 0, -0.5,  0, -1.0, -1.0, -1.0],
  "old_logprobs": [0, -1.0, -2.0, 0, -0.5,  0, -1.0, -1.0, -1.0],
  "mask":   [0, 1, 1, 0, 1,  0, 1, 1, 1],
  "subseq": [-1, 0, 0, -1, 1,  -1, 2, 2, 2],
  "traj":   [0, 0, 0, 0, 0,  1, 1, 1, 1],
  "advantages": [1.0, -0.5]
}"#;

fn parse(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn on_policy_gsspo_gradient_matches_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.json");
    std::fs::write(&path, BATCH).unwrap();
    let out = flowrl()
        .arg("loss")
        .arg("--input")
        .arg(&path)
        .output()
        .unwrap();
    let v = parse(&out);
    let grad: Vec<f64> = v["grad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_f64().unwrap())
        .collect();
    // ∂J/∂lp_t = −A_i / (N·K_i·|y_{i,k}|) at s = 1, N = 2.
    let expected = [
        0.0,
        -1.0 / 8.0,
        -1.0 / 8.0,
        0.0,
        -1.0 / 4.0,
        0.0,
        0.5 / 6.0,
        0.5 / 6.0,
        0.5 / 6.0,
    ];
    assert_eq!(grad.len(), expected.len());
    for (g, e) in grad.iter().zip(expected) {
        assert!((g - e).abs() < 1e-12, "{grad:?}");
    }
    // J = (1/N) Σ_i −A_i = (−1 + 0.5) / 2.
    assert!((v["loss"].as_f64().unwrap() + 0.25).abs() < 1e-12);
    let stats = &v["stats"];
    assert_eq!(stats["num_subseqs"], 3);
    assert_eq!(stats["num_policy_tokens"], 6);
    assert_eq!(stats["ratio_unit"], "subseq");
    assert_eq!(stats["clip_frac_token"].as_f64(), Some(0.0));
    assert_eq!(v["config"]["aggregation"], "traj-mean-subseq-mean");
}

#[test]
fn rewards_and_groups_from_stdin() {
    let mut req: serde_json::Value = serde_json::from_str(BATCH).unwrap();
    let obj = req.as_object_mut().unwrap();
    obj.remove("advantages");
    obj.insert("rewards".into(), serde_json::json!([1.0, 0.0]));
    obj.insert("groups".into(), serde_json::json!(["gsm8k", "gsm8k"]));
    obj.insert("algorithm".into(), serde_json::json!("cwrpo"));
    let mut child = flowrl()
        .args(["loss", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let v = parse(&child.wait_with_output().unwrap());
    // Per-source: population std of {1, 0} is 0.5 ⇒ advantages ±1.
    let adv = v["advantages"].as_array().unwrap();
    assert!((adv[0].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!((adv[1].as_f64().unwrap() + 1.0).abs() < 1e-12);
    assert_eq!(v["stats"]["ratio_unit"], "token");
    assert_eq!(v["config"]["aggregation"], "seq-mean-token-mean");
}

#[test]
fn bad_names_are_reported_with_field_and_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, field, allowed) in [
        (
            "algorithm",
            "ppo",
            "`algorithm`",
            "grpo, gspo, gsspo, cwrpo, reinforce",
        ),
        (
            "aggregation",
            "mean",
            "`aggregation`",
            "token-mean, seq-mean-token-mean",
        ),
        ("kl_estimator", "k4", "`kl_estimator`", "k1, k2, k3"),
    ] {
        let mut req: serde_json::Value = serde_json::from_str(BATCH).unwrap();
        if key == "algorithm" {
            req[key] = serde_json::json!(value);
        } else {
            req["config"][key] = serde_json::json!(value);
        }
        let path = dir.path().join(format!("{key}.json"));
        std::fs::write(&path, req.to_string()).unwrap();
        let out = flowrl()
            .arg("loss")
            .arg("--input")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(field) && stderr.contains(allowed),
            "{stderr}"
        );
    }
    let out = flowrl()
        .args(["loss", "--input", "/nonexistent/batch.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
