//! The simulator's configuration: seed, noise rates and the skill table.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Skills of the simulated executor for one task family. Every value is a
/// probability in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FamilySkills {
    /// `AnswerGenerate` (and each of `MultiAnswerGenerate`'s three draws) is right.
    pub answer: f64,
    /// `Custom` is right.
    pub custom: f64,
    /// `Programmer`'s first program computes the right answer.
    pub programmer: f64,
    /// A wrong program crashes (instead of returning a wrong value), so that
    /// `Programmer` sees an error and asks for a fix.
    pub program_crash: f64,
    /// A code fix (after a failing run or failing tests) is right.
    pub code_fix: f64,
    /// `Review` flags a wrong solution.
    pub review_catch: f64,
    /// `Review` flags a right solution (false alarm).
    pub review_false_alarm: f64,
    /// `Verify`'s verdict is right (both directions).
    pub verify_accuracy: f64,
    /// A `Test` check script (tasks without tests) reaches the right verdict.
    pub check_accuracy: f64,
    /// `Revise` fixes a wrong solution when the feedback says it is wrong.
    pub revise_fix: f64,
    /// `Revise` fixes a wrong solution without such feedback.
    pub revise_fix_blind: f64,
    /// `Revise` breaks a right solution (tripled when the feedback wrongly
    /// says it is wrong, capped at 1).
    pub revise_break: f64,
    /// `ScEnsemble`/`Aggregate` pick a right answer when right answers are the
    /// strict plurality.
    pub ensemble_majority: f64,
    /// `ScEnsemble`/`Aggregate` pick a right answer that is present but not the plurality.
    pub ensemble_recognize: f64,
    /// `Format` keeps a right answer right.
    pub format_keep: f64,
    /// Added to a solver's skill when its earlier work includes a plan or
    /// sub-problems (`Plan`, `Decompose`).
    pub plan_bonus: f64,
}

impl FamilySkills {
    /// The default table for `qa`.
    pub fn qa() -> Self {
        Self {
            answer: 0.55,
            custom: 0.55,
            programmer: 0.35,
            program_crash: 0.2,
            code_fix: 0.3,
            review_catch: 0.5,
            review_false_alarm: 0.1,
            verify_accuracy: 0.7,
            check_accuracy: 0.6,
            revise_fix: 0.45,
            revise_fix_blind: 0.15,
            revise_break: 0.05,
            ensemble_majority: 0.95,
            ensemble_recognize: 0.45,
            format_keep: 0.98,
            plan_bonus: 0.03,
        }
    }

    /// The default table for `math`.
    pub fn math() -> Self {
        Self {
            answer: 0.5,
            custom: 0.5,
            programmer: 0.75,
            program_crash: 0.3,
            code_fix: 0.5,
            review_catch: 0.55,
            review_false_alarm: 0.1,
            verify_accuracy: 0.75,
            check_accuracy: 0.85,
            revise_fix: 0.45,
            revise_fix_blind: 0.2,
            revise_break: 0.05,
            ensemble_majority: 0.95,
            ensemble_recognize: 0.35,
            format_keep: 0.98,
            plan_bonus: 0.08,
        }
    }

    /// The default table for `code`.
    pub fn code() -> Self {
        Self {
            answer: 0.5,
            custom: 0.5,
            programmer: 0.65,
            program_crash: 0.2,
            code_fix: 0.6,
            review_catch: 0.5,
            review_false_alarm: 0.1,
            verify_accuracy: 0.7,
            check_accuracy: 0.7,
            revise_fix: 0.5,
            revise_fix_blind: 0.2,
            revise_break: 0.05,
            ensemble_majority: 0.95,
            ensemble_recognize: 0.35,
            format_keep: 0.97,
            plan_bonus: 0.05,
        }
    }

    /// The probabilities with their names, for checks and tables.
    pub fn entries(&self) -> [(&'static str, f64); 16] {
        [
            ("answer", self.answer),
            ("custom", self.custom),
            ("programmer", self.programmer),
            ("program_crash", self.program_crash),
            ("code_fix", self.code_fix),
            ("review_catch", self.review_catch),
            ("review_false_alarm", self.review_false_alarm),
            ("verify_accuracy", self.verify_accuracy),
            ("check_accuracy", self.check_accuracy),
            ("revise_fix", self.revise_fix),
            ("revise_fix_blind", self.revise_fix_blind),
            ("revise_break", self.revise_break),
            ("ensemble_majority", self.ensemble_majority),
            ("ensemble_recognize", self.ensemble_recognize),
            ("format_keep", self.format_keep),
            ("plan_bonus", self.plan_bonus),
        ]
    }
}

/// Configuration of the simulated executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed: together with the request content it decides every answer.
    pub seed: u64,
    /// Probability that a reply drops a closing tag (exercises the operators' retries).
    pub malformed_rate: f64,
    /// Probability that a reply is cut in half with `finish_reason = "length"`.
    pub truncate_rate: f64,
    /// Expected-reward cost of one executor call, for environments and
    /// evaluations that charge for workflow length (the simulator itself
    /// only reports it in [`crate::SimBackend::describe`]).
    pub call_cost: f64,
    /// Skills per task family (`qa`, `math`, `code`; others use `qa`).
    pub skills: BTreeMap<String, FamilySkills>,
    /// How much solving attempts on the same task agree, in [0, 1]: each
    /// attempt (an answer, a program, a fix) reads the task's own
    /// difficulty instead of an independent draw with this probability.
    /// Success rates stay those of the skill table; 0 makes every attempt
    /// independent (easy and hard tasks do not exist).
    #[serde(default)]
    pub task_correlation: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        let mut skills = BTreeMap::new();
        skills.insert("qa".to_string(), FamilySkills::qa());
        skills.insert("math".to_string(), FamilySkills::math());
        skills.insert("code".to_string(), FamilySkills::code());
        Self {
            seed: 0,
            malformed_rate: 0.03,
            truncate_rate: 0.01,
            call_cost: 0.01,
            skills,
            task_correlation: 0.0,
        }
    }
}

impl SimConfig {
    /// The skills for `family` (falls back to `qa`, then to the built-in QA table).
    pub fn skills_for(&self, family: &str) -> FamilySkills {
        self.skills
            .get(&family.to_ascii_lowercase())
            .or_else(|| self.skills.get("qa"))
            .cloned()
            .unwrap_or_else(FamilySkills::qa)
    }

    /// Checks that every rate and skill is a probability.
    ///
    /// # Errors
    /// A message naming the first value outside [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v} is not in [0, 1]"))
            }
        };
        check("malformed_rate", self.malformed_rate)?;
        check("truncate_rate", self.truncate_rate)?;
        check("task_correlation", self.task_correlation)?;
        if !self.call_cost.is_finite() || self.call_cost < 0.0 {
            return Err(format!(
                "call_cost = {} must be finite and ≥ 0",
                self.call_cost
            ));
        }
        for (family, s) in &self.skills {
            for (name, v) in s.entries() {
                check(&format!("skills.{family}.{name}"), v)?;
            }
        }
        Ok(())
    }
}
