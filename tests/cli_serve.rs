//! `flowrl serve` serves a backend that `flowrl openai` (the `openai`
//! backend) can talk to; bad invocations fail with a clear message.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_served_simulator_answers_the_openai_client() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args([
            "serve",
            "--backend",
            "sim",
            "--addr",
            "127.0.0.1:0",
            "--print-address",
            "--no-env",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).expect(&line);
    let base_url = info["base_url"].as_str().unwrap().to_string();
    assert_eq!(info["model"], "sim");

    let models = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args(["openai", "models", "--base-url", &base_url])
        .output()
        .unwrap();
    assert!(models.status.success(), "{models:?}");
    assert!(String::from_utf8_lossy(&models.stdout).contains("sim"));

    let chat = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args([
            "openai",
            "chat",
            "--base-url",
            &base_url,
            "--model",
            "sim",
            "What is 3 + 4?",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&chat.stdout);
    assert!(
        chat.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert!(!answer["text"].as_str().unwrap().is_empty(), "{answer}");
    drop(server);
}

#[test]
fn serving_a_local_model_needs_an_existing_model_path() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flowrl"))
            .args(["serve", "--addr", "127.0.0.1:0", "--no-env"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&[]);
    assert!(e.contains("--model"), "{e}");
    let e = run(&["--model", "/nonexistent/q.gguf"]);
    assert!(e.contains("/nonexistent/q.gguf"), "{e}");
    let e = run(&["--backend", "nosuch"]);
    assert!(e.contains("nosuch"), "{e}");
}
