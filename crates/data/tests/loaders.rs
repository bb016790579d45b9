//! Each supported layout loads from a small fixture; bad records give
//! errors naming the file, line and field.

use std::path::{Path, PathBuf};

use flowrl_data::{DataError, DatasetFormat, TaskFamily, load_file, parse_jsonl};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn qa_layout() {
    let tasks = load_file(&fixture("qa_nq.jsonl"), DatasetFormat::Qa, None).unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0].id, "test_0");
    assert_eq!(tasks[0].source, "qa_nq");
    assert_eq!(tasks[0].answers, ["Herman Melville", "Melville"]);
    assert_eq!(tasks[0].family, TaskFamily::Qa);
    assert!(tasks[1].metadata.contains_key("metadata"));
    // no id: source and line number (line 4: a blank line is skipped)
    assert_eq!(tasks[2].id, "qa_nq-4");
    let named = load_file(&fixture("qa_nq.jsonl"), DatasetFormat::Qa, Some("nq")).unwrap();
    assert_eq!(named[2].id, "nq-4");
}

#[test]
fn squad_v2_layout() {
    let tasks = load_file(&fixture("squad_v2.jsonl"), DatasetFormat::SquadV2, None).unwrap();
    assert_eq!(tasks[0].answers, ["The Nile", "Nile"]);
    assert!(tasks[0].context.as_deref().unwrap().starts_with("The Nile"));
    assert_eq!(
        tasks[1].answers,
        [""],
        "unanswerable questions have the empty gold answer"
    );
    assert_eq!(tasks[0].metadata["title"], "Rivers");
}

#[test]
fn math_layouts() {
    let g = load_file(&fixture("gsm8k.jsonl"), DatasetFormat::Gsm8k, None).unwrap();
    assert_eq!(g[0].answers, ["31"]);
    assert_eq!(g[1].answers, ["2400"]);
    assert!(
        g[0].metadata["solution"]
            .as_str()
            .unwrap()
            .contains("<<3*12=36>>")
    );
    let m = load_file(&fixture("math.jsonl"), DatasetFormat::Math, None).unwrap();
    assert_eq!(m[0].answers, ["1"]);
    assert_eq!(m[1].answers, ["5\\sqrt{2}"]);
    assert_eq!(m[1].id, "test/algebra/1.json");
    assert_eq!(m[2].answers, ["\\dfrac{10}{2}"]);
    assert_eq!(m[0].metadata["level"], "Level 1");
    let q = load_file(&fixture("mathqa.jsonl"), DatasetFormat::Mathqa, None).unwrap();
    assert_eq!(q[0].answers, ["40", "b"]);
    assert_eq!(q[1].answers, ["30", "c"]);
    assert!(q[0].question.contains("Options: a ) 30"));
}

#[test]
fn code_layouts() {
    let h = load_file(&fixture("humaneval.jsonl"), DatasetFormat::Humaneval, None).unwrap();
    assert_eq!(h[0].id, "Fixture/0");
    let harness = h[0].tests.as_ref().unwrap().harness.as_ref().unwrap();
    assert_eq!(harness.entry_point, "add");
    // A completion is appended to the prompt; a full function is used as is.
    let completion = h[0].solution_program("    return a + b\n");
    assert!(completion.starts_with("def add(a: int, b: int)"));
    assert_eq!(
        h[0].solution_program("def add(a, b):\n    return b + a\n"),
        "def add(a, b):\n    return b + a\n"
    );
    let m = load_file(&fixture("mbpp.jsonl"), DatasetFormat::Mbpp, None).unwrap();
    assert_eq!(m[1].id, "1002");
    let tests = m[1].tests.as_ref().unwrap();
    assert_eq!(tests.setup, "import math");
    assert_eq!(tests.asserts.len(), 2);
    assert_eq!(
        m[1].metadata["challenge_test_list"][0],
        "assert fact(10) == 3628800"
    );
    assert!(m[0].question.contains("assert larger(1, 2) == 2"));
}

fn parse_err(text: &str, format: DatasetFormat) -> String {
    match parse_jsonl(text, format, "src", Path::new("data.jsonl")) {
        Ok(t) => panic!("expected an error, got {} tasks", t.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_file_line_and_field() {
    let e = parse_err(
        "{\"question\": \"q\", \"golden_answers\": [\"a\"]}\n{\"question\": \"q2\"}\n",
        DatasetFormat::Qa,
    );
    assert_eq!(e, "data.jsonl:2: field `golden_answers`: missing");
    let e = parse_err(
        "{\"question\": 5, \"golden_answers\": [\"a\"]}",
        DatasetFormat::Qa,
    );
    assert_eq!(
        e,
        "data.jsonl:1: field `question`: expected a string, found a number"
    );
    let e = parse_err(
        "{\"question\": \"q\", \"golden_answers\": [\"a\", {}]}",
        DatasetFormat::Qa,
    );
    assert!(e.contains("field `golden_answers`: item 1"), "{e}");
    let e = parse_err("not json", DatasetFormat::Gsm8k);
    assert!(e.starts_with("data.jsonl:1: not a JSON object"), "{e}");
    let e = parse_err("[1, 2]", DatasetFormat::Gsm8k);
    assert!(e.contains("not an object"), "{e}");
    let e = parse_err(
        "{\"question\": \"q\", \"answer\": \"no marker\"}",
        DatasetFormat::Gsm8k,
    );
    assert_eq!(e, "data.jsonl:1: field `answer`: no `#### <answer>` line");
    let e = parse_err(
        "{\"problem\": \"p\", \"solution\": \"\\\\boxed{1\"}",
        DatasetFormat::Math,
    );
    assert!(e.contains("field `answer`"), "{e}");
    let e = parse_err(
        "{\"Problem\": \"p\", \"options\": \"a ) 1 , b ) 2\", \"correct\": \"e\"}",
        DatasetFormat::Mathqa,
    );
    assert!(e.contains("field `correct`"), "{e}");
    let e = parse_err(
        "{\"task_id\": \"x\", \"prompt\": \"p\", \"canonical_solution\": \"c\", \"test\": \"t\"}",
        DatasetFormat::Humaneval,
    );
    assert_eq!(e, "data.jsonl:1: field `entry_point`: missing");
    let e = parse_err(
        "{\"task_id\": 1, \"text\": \"t\", \"code\": \"c\", \"test_list\": []}",
        DatasetFormat::Mbpp,
    );
    assert!(e.contains("field `test_list`: empty list"), "{e}");
    let e = parse_err(
        "{\"id\": \"a\", \"question\": \"q\", \"golden_answers\": [\"x\"]}\n{\"id\": \"a\", \"question\": \"q\", \"golden_answers\": [\"x\"]}",
        DatasetFormat::Qa,
    );
    assert_eq!(e, "data.jsonl:2: duplicate id `a`");
    let e = parse_err(
        "{\"id\": \"s\", \"question\": \"q\", \"context\": \"c\", \"answers\": {}}",
        DatasetFormat::SquadV2,
    );
    assert!(e.contains("field `answers.text`"), "{e}");
}

#[test]
fn io_and_format_errors() {
    let e = load_file(
        Path::new("/nonexistent/file.jsonl"),
        DatasetFormat::Qa,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/file.jsonl:"));
    assert!(matches!(
        DatasetFormat::parse("squad-v2"),
        Ok(DatasetFormat::SquadV2)
    ));
    assert!(
        DatasetFormat::parse("imagenet")
            .unwrap_err()
            .to_string()
            .contains("unknown dataset format `imagenet`")
    );
}
