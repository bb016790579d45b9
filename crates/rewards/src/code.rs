//! Code rewards: assemble a test program around a candidate solution and run
//! it in the [`crate::sandbox`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RewardsError;
use crate::sandbox::{ExecResult, Sandbox};

/// The tests of a code task, in either of the two common layouts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeTests {
    /// Code run before the solution (MBPP `test_setup_code`); may be empty.
    #[serde(default)]
    pub setup: String,
    /// Independent assertion statements run after the solution (MBPP `test_list`).
    #[serde(default)]
    pub asserts: Vec<String>,
    /// A checker harness (HumanEval `test`, defining `check(candidate)`),
    /// called as `check(<entry_point>)` after the asserts.
    #[serde(default)]
    pub harness: Option<Harness>,
}

/// A HumanEval-style harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Harness {
    /// Python source defining `check(candidate)`.
    pub code: String,
    /// Name of the function under test, passed to `check`.
    pub entry_point: String,
}

impl CodeTests {
    /// `true` when there is nothing to run (no asserts and no harness).
    pub fn is_empty(&self) -> bool {
        self.asserts.is_empty() && self.harness.is_none()
    }
}

/// The full program: solution, setup, asserts, then the harness and its call.
///
/// The setup comes after the solution because MBPP's setup code may build
/// objects from classes the solution defines (tasks 367 and 927); imports in
/// the setup are still in place when the asserts call the solution.
pub fn build_program(solution: &str, tests: &CodeTests) -> String {
    let mut p = String::with_capacity(solution.len() + 256);
    p.push_str(solution);
    p.push('\n');
    if !tests.setup.trim().is_empty() {
        p.push_str(&tests.setup);
        p.push('\n');
    }
    for a in &tests.asserts {
        p.push_str(a);
        p.push('\n');
    }
    if let Some(h) = &tests.harness {
        p.push('\n');
        p.push_str(&h.code);
        p.push_str("\ncheck(");
        p.push_str(&h.entry_point);
        p.push_str(")\n");
    }
    p
}

/// Pass/fail of a candidate solution against its tests, with the run's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CodeReward {
    /// 1.0 when every test passed, else 0.0.
    pub reward: u8,
    /// The sandbox result.
    pub result: ExecResult,
}

/// Runs `solution` against `tests` in the sandbox: 1 when the program exits
/// with status 0, 0 otherwise (including when there are no tests to run: an
/// untested solution earns nothing).
///
/// # Errors
/// Only sandbox start-up problems ([`Sandbox::run_python`]).
pub fn code_reward(
    sandbox: &Sandbox,
    solution: &str,
    tests: &CodeTests,
) -> Result<CodeReward, RewardsError> {
    let result = sandbox.run_python(&build_program(solution, tests))?;
    let reward = u8::from(result.outcome.passed() && !tests.is_empty());
    Ok(CodeReward { reward, result })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_layout() {
        let t = CodeTests {
            setup: "import math".into(),
            asserts: vec!["assert f(1) == 2".into()],
            harness: Some(Harness {
                code: "def check(c):\n    assert c(2) == 3".into(),
                entry_point: "f".into(),
            }),
        };
        let p = build_program("def f(x):\n    return x + 1", &t);
        assert_eq!(
            p,
            "def f(x):\n    return x + 1\nimport math\nassert f(1) == 2\n\ndef check(c):\n    assert c(2) == 3\ncheck(f)\n"
        );
        assert!(CodeTests::default().is_empty());
    }
}
