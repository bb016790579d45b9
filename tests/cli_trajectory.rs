//! End-to-end tests of `flowrl trajectory …` and `flowrl schema …`.

use std::process::Command;

fn flowrl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowrl"))
}

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/data/trajectories.jsonl"
);

#[test]
fn validate_reports_the_corrupted_line_and_counts_the_others() {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    lines.insert(2, "{\"id\": \"broken\", \"spans\": [");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let out = flowrl()
        .args(["trajectory", "validate"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("corrupt.jsonl:line 3:"), "{stdout}");
    assert!(stdout.contains("4 valid, 1 invalid, 5 lines"), "{stdout}");

    let out = flowrl()
        .args(["trajectory", "validate", "--strict"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));

    let out = flowrl()
        .args(["trajectory", "stats"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trajectories"], 4);
    assert_eq!(v["invalid_lines"], 1);
    assert_eq!(v["turns"]["max"], 3.0);
}

#[test]
fn missing_file_is_named() {
    let out = flowrl()
        .args(["trajectory", "validate", "/nonexistent/x.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.jsonl"));
}

#[test]
fn export_writes_trainer_records() {
    let out = flowrl()
        .args(["trajectory", "export", SAMPLE])
        .output()
        .unwrap();
    assert!(out.status.success());
    let recs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three single-window trajectories and one canvas trajectory with three windows.
    assert_eq!(recs.len(), 6);
    for r in &recs {
        assert_eq!(
            r["response_ids"].as_array().unwrap().len(),
            r["response_mask"].as_array().unwrap().len()
        );
    }
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = flowrl().args(["schema", "trajectory"]).output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schemas/trajectory.schema.json"
    ))
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}
