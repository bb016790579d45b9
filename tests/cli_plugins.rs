//! `flowrl plugins list` shows the plugins linked into the binary.

use std::process::Command;

#[test]
fn built_in_plugins_are_listed_without_building_anything() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args(["plugins", "list", "--no-env"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "operators-std 0.1.0  (built-in)",
        "llm-sim 0.1.0  (built-in)",
        "openai-llm 0.1.0  (built-in)",
    ] {
        assert!(text.contains(name), "missing {name}:\n{text}");
    }
    for op in [
        "Programmer:",
        "ScEnsemble:",
        "llm backend `sim`",
        "llm backend `openai`",
    ] {
        assert!(text.contains(op), "missing {op}:\n{text}");
    }
}
