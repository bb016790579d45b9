//! End-to-end test of `flowrl compare` on a budget of seconds.

use std::process::Command;

#[test]
fn compare_prints_one_row_per_algorithm_and_writes_markdown_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowrl"))
        .args([
            "compare",
            "--suite",
            "both",
            "--seeds",
            "2",
            "--steps",
            "1",
            "--warmup-steps",
            "2",
            "--tasks-per-step",
            "2",
            "--group-size",
            "2",
            "--eval-tasks",
            "3",
            "--train-per-family",
            "2",
            "--heldout-per-family",
            "1",
            "--max-turn-tokens",
            "12",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    // Header, separator, 3 think-action arms, 2 canvas arms.
    assert_eq!(rows.len(), 7, "{stdout}");
    for (row, (env, algo)) in rows[2..].iter().zip([
        ("think-action", "GRPO"),
        ("think-action", "GSPO"),
        ("think-action", "GSsPO"),
        ("canvas", "GRPO"),
        ("canvas", "CWRPO"),
    ]) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 11, "{row}");
        assert_eq!(cells[1], env, "{row}");
        assert!(cells[2].starts_with(algo), "{row}");
        assert_eq!(cells[3], "2", "{row}");
        assert!(cells[5].contains('±') && cells[6].contains('±'), "{row}");
    }
    let md = std::fs::read_to_string(dir.path().join("compare.md")).unwrap();
    assert!(stdout.starts_with(&md[..md.find('\n').unwrap()]));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).unwrap())
            .unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 10);
    assert_eq!(json["summary"].as_array().unwrap().len(), 5);
    // Arms of one environment and seed start from the same warm-up.
    let runs = json["runs"].as_array().unwrap();
    let befores: Vec<f64> = runs
        .iter()
        .filter(|r| r["env"] == "think-action" && r["seed"] == 1)
        .map(|r| r["before"].as_f64().unwrap())
        .collect();
    assert_eq!(befores.len(), 3);
    assert!(befores.iter().all(|b| *b == befores[0]), "{befores:?}");
}
