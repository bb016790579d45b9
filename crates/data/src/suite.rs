//! A built-in, seeded, procedurally generated task suite.
//!
//! Three families with short inputs (a tiny byte-level policy is trained on
//! them):
//! * **math** — one- or two-step arithmetic word problems with integer answers;
//! * **qa** — questions over a small generated fact base (people, home towns,
//!   jobs, pets); each task's `context` holds the relevant facts and one
//!   distractor;
//! * **code** — tiny Python functions with three `assert` tests and a
//!   reference solution.
//!
//! The same seed always gives the same suite. Train and held-out splits never
//! share a question.

use std::collections::{BTreeMap, HashSet};

use flowrl_rewards::CodeTests;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{DataError, Task, TaskFamily};

/// Suite settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SuiteConfig {
    /// Seed of the generator.
    pub seed: u64,
    /// Training tasks per family.
    pub train_per_family: usize,
    /// Held-out tasks per family.
    pub heldout_per_family: usize,
    /// Families to generate.
    pub families: Vec<TaskFamily>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            train_per_family: 64,
            heldout_per_family: 32,
            families: vec![TaskFamily::Math, TaskFamily::Qa, TaskFamily::Code],
        }
    }
}

/// The generated splits; sources are `suite/<family>`, ids `suite-<family>-<split>-<n>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Suite {
    /// Training tasks (families in config order).
    pub train: Vec<Task>,
    /// Held-out tasks, disjoint from `train` by question.
    pub heldout: Vec<Task>,
}

/// Largest number of tasks per family (train + held-out) that may be requested.
/// The code family has about 400 distinct questions and the QA family 1,200,
/// so those fail earlier with [`DataError::InvalidSuite`].
pub const MAX_PER_FAMILY: usize = 5000;

/// Generates the suite.
///
/// # Errors
/// [`DataError::InvalidSuite`] when more than [`MAX_PER_FAMILY`] tasks per
/// family are requested, or when a family runs out of distinct questions.
pub fn generate_suite(config: &SuiteConfig) -> Result<Suite, DataError> {
    let want = config
        .train_per_family
        .saturating_add(config.heldout_per_family);
    if want > MAX_PER_FAMILY {
        return Err(DataError::InvalidSuite(format!(
            "{want} tasks per family requested; at most {MAX_PER_FAMILY}"
        )));
    }
    let mut suite = Suite {
        train: Vec::new(),
        heldout: Vec::new(),
    };
    for &family in &config.families {
        let family_salt: u64 = match family {
            TaskFamily::Math => 0x6d61_7468,
            TaskFamily::Qa => 0x7161,
            TaskFamily::Code => 0x636f_6465,
        };
        let mut rng =
            StdRng::seed_from_u64(config.seed ^ family_salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let facts = (family == TaskFamily::Qa).then(|| FactBase::generate(&mut rng));
        let mut seen = HashSet::new();
        let mut pool = Vec::with_capacity(want);
        let mut attempts = 0usize;
        while pool.len() < want {
            attempts += 1;
            if attempts > want * 50 + 1000 {
                return Err(DataError::InvalidSuite(format!(
                    "family {family}: only {} distinct questions found for {want} requested",
                    pool.len()
                )));
            }
            let draft = match family {
                TaskFamily::Math => math_task(&mut rng),
                TaskFamily::Qa => match &facts {
                    Some(f) => f.question(&mut rng),
                    None => continue,
                },
                TaskFamily::Code => code_task(&mut rng),
            };
            if seen.insert(draft.question.clone()) {
                pool.push(draft);
            }
        }
        for (i, d) in pool.into_iter().enumerate() {
            let (split, n) = if i < config.train_per_family {
                ("train", i)
            } else {
                ("heldout", i - config.train_per_family)
            };
            let task = d.into_task(family, split, n);
            if split == "train" {
                suite.train.push(task);
            } else {
                suite.heldout.push(task);
            }
        }
    }
    Ok(suite)
}

struct Draft {
    question: String,
    answer: Option<String>,
    context: Option<String>,
    tests: Option<CodeTests>,
    reference: Option<String>,
    template: &'static str,
}

impl Draft {
    fn into_task(self, family: TaskFamily, split: &str, n: usize) -> Task {
        let mut metadata = BTreeMap::new();
        metadata.insert("split".into(), serde_json::Value::from(split));
        metadata.insert("template".into(), serde_json::Value::from(self.template));
        Task {
            id: format!("suite-{family}-{split}-{n}"),
            source: format!("suite/{family}"),
            family,
            question: self.question,
            answers: self.answer.into_iter().collect(),
            context: self.context,
            tests: self.tests,
            reference: self.reference,
            code_prefix: None,
            metadata,
        }
    }
}

const NAMES: [&str; 12] = [
    "Ann", "Ben", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou",
];
const ITEMS: [&str; 10] = [
    "apples", "pens", "cards", "eggs", "books", "coins", "shells", "stamps", "cups", "kites",
];

fn pick<'a, R: Rng>(rng: &mut R, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn math_task(rng: &mut StdRng) -> Draft {
    let name = pick(rng, &NAMES);
    let item = pick(rng, &ITEMS);
    let kind = rng.random_range(0..6u8);
    let (template, question, answer): (&'static str, String, i64) = match kind {
        0 => {
            let (a, b) = (rng.random_range(2..50), rng.random_range(2..50));
            (
                "add",
                format!("{name} has {a} {item} and gets {b} more. How many {item} now?"),
                a + b,
            )
        }
        1 => {
            let a = rng.random_range(10..90);
            let b = rng.random_range(1..a);
            (
                "sub",
                format!("{name} has {a} {item} and gives away {b}. How many are left?"),
                a - b,
            )
        }
        2 => {
            let (a, b) = (rng.random_range(2..13), rng.random_range(2..13));
            (
                "mul",
                format!("{name} buys {a} bags with {b} {item} each. How many {item} in all?"),
                a * b,
            )
        }
        3 => {
            let (q, d) = (rng.random_range(2..13), rng.random_range(2..10));
            (
                "div",
                format!(
                    "{name} shares {} {item} equally among {d} friends. How many each?",
                    q * d
                ),
                q,
            )
        }
        4 => {
            let (a, b) = (rng.random_range(5..40), rng.random_range(2..30));
            let c = rng.random_range(1..a + b);
            (
                "add_sub",
                format!("{name} has {a} {item}, gets {b} more, then loses {c}. How many now?"),
                a + b - c,
            )
        }
        _ => {
            let (p, n) = (rng.random_range(2..20), rng.random_range(2..10));
            let one = item.trim_end_matches('s');
            (
                "cost",
                format!("One {one} costs ${p}. How many dollars do {n} {item} cost?"),
                p * n,
            )
        }
    };
    Draft {
        question,
        answer: Some(answer.to_string()),
        context: None,
        tests: None,
        reference: None,
        template,
    }
}

/// Number of people in the generated world (three questions each).
const PEOPLE: usize = 400;

/// A small generated world: people with a home town, a job and a pet.
struct FactBase {
    people: Vec<Person>,
}

struct Person {
    name: String,
    town: String,
    job: &'static str,
    pet: &'static str,
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "ni", "pa", "zu", "ber", "gal", "tor",
    "qui", "mon",
];
const JOBS: [&str; 10] = [
    "baker", "pilot", "nurse", "farmer", "tailor", "judge", "sailor", "miner", "poet", "chef",
];
const PETS: [&str; 8] = [
    "cat", "dog", "owl", "goat", "parrot", "horse", "rabbit", "turtle",
];

fn word(rng: &mut StdRng, parts: usize) -> String {
    let mut w = String::new();
    for _ in 0..parts {
        w.push_str(pick(rng, &SYLLABLES));
    }
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

impl FactBase {
    fn generate(rng: &mut StdRng) -> Self {
        let towns: Vec<String> = (0..12).map(|_| word(rng, 2)).collect();
        let mut names = HashSet::new();
        let mut people = Vec::new();
        while people.len() < PEOPLE {
            let name = format!("{} {}", word(rng, 2), word(rng, 2));
            if !names.insert(name.clone()) {
                continue;
            }
            people.push(Person {
                name,
                town: towns[rng.random_range(0..towns.len())].clone(),
                job: pick(rng, &JOBS),
                pet: pick(rng, &PETS),
            });
        }
        Self { people }
    }

    fn question(&self, rng: &mut StdRng) -> Draft {
        let i = rng.random_range(0..self.people.len());
        let p = &self.people[i];
        let other =
            &self.people[(i + 1 + rng.random_range(0..self.people.len() - 1)) % self.people.len()];
        let (template, question, answer) = match rng.random_range(0..3u8) {
            0 => (
                "town",
                format!("Which town is {} from?", p.name),
                p.town.clone(),
            ),
            1 => (
                "job",
                format!("What is the job of {}?", p.name),
                p.job.to_string(),
            ),
            _ => (
                "pet",
                format!("What pet does {} keep?", p.name),
                p.pet.to_string(),
            ),
        };
        let facts = |q: &Person| {
            format!(
                "{} is a {} from {} who keeps a {}.",
                q.name, q.job, q.town, q.pet
            )
        };
        let context = if rng.random_bool(0.5) {
            format!("{} {}", facts(p), facts(other))
        } else {
            format!("{} {}", facts(other), facts(p))
        };
        Draft {
            question,
            answer: Some(answer),
            context: Some(context),
            tests: None,
            reference: None,
            template,
        }
    }
}

fn code_task(rng: &mut StdRng) -> Draft {
    let kind = rng.random_range(0..6u8);
    let k: i64 = rng.random_range(2..100);
    let xs: Vec<i64> = (0..3).map(|_| rng.random_range(-20..40)).collect();
    let (template, name, question, body, cases): (
        &'static str,
        String,
        String,
        String,
        Vec<(String, String)>,
    ) = match kind {
        0 => {
            let f = format!("add_{k}");
            let q = format!("Write a Python function {f}(x) that returns x plus {k}.");
            let cases = xs
                .iter()
                .map(|x| (x.to_string(), (x + k).to_string()))
                .collect();
            ("add", f, q, format!("return x + {k}"), cases)
        }
        1 => {
            let f = format!("times_{k}");
            let q = format!("Write a Python function {f}(x) that returns x times {k}.");
            let cases = xs
                .iter()
                .map(|x| (x.to_string(), (x * k).to_string()))
                .collect();
            ("mul", f, q, format!("return x * {k}"), cases)
        }
        2 => {
            let f = format!("div_by_{k}");
            let q = format!(
                "Write a Python function {f}(x) that returns True if x is divisible by {k}."
            );
            let mut inputs = xs.clone();
            inputs[0] = k * rng.random_range(1..9);
            let cases = inputs
                .iter()
                .map(|x| (x.to_string(), py_bool(x % k == 0).to_string()))
                .collect();
            ("divisible", f, q, format!("return x % {k} == 0"), cases)
        }
        3 => {
            let f = format!("sq_plus_{k}");
            let q = format!("Write a Python function {f}(x) that returns x squared plus {k}.");
            let cases = xs
                .iter()
                .map(|x| (x.to_string(), (x * x + k).to_string()))
                .collect();
            ("square", f, q, format!("return x * x + {k}"), cases)
        }
        4 => {
            let c = (b'a' + rng.random_range(0..5u8)) as char;
            let f = format!("count_{c}");
            let q = format!("Write a Python function {f}(s) that counts the letter '{c}' in s.");
            let cases = (0..3)
                .map(|_| {
                    let s: String = (0..rng.random_range(0..8))
                        .map(|_| (b'a' + rng.random_range(0..5u8)) as char)
                        .collect();
                    let n = s.chars().filter(|&x| x == c).count();
                    (format!("'{s}'"), n.to_string())
                })
                .collect();
            ("count", f, q, format!("return s.count('{c}')"), cases)
        }
        _ => {
            let f = format!("sum_over_{k}");
            let q = format!(
                "Write a Python function {f}(xs) that sums the items of xs greater than {k}."
            );
            let cases = (0..3)
                .map(|_| {
                    let l: Vec<i64> = (0..rng.random_range(0..5))
                        .map(|_| rng.random_range(-5..20))
                        .collect();
                    let s: i64 = l.iter().filter(|&&v| v > k).sum();
                    let lit = format!(
                        "[{}]",
                        l.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    );
                    (lit, s.to_string())
                })
                .collect();
            (
                "sum_filter",
                f,
                q,
                format!("return sum(v for v in xs if v > {k})"),
                cases,
            )
        }
    };
    let param = match template {
        "count" => "s",
        "sum_filter" => "xs",
        _ => "x",
    };
    let reference = format!("def {name}({param}):\n    {body}\n");
    let asserts = cases
        .into_iter()
        .map(|(arg, want)| format!("assert {name}({arg}) == {want}"))
        .collect();
    Draft {
        question,
        answer: None,
        context: None,
        tests: Some(CodeTests {
            setup: String::new(),
            asserts,
            harness: None,
        }),
        reference: Some(reference),
        template,
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}
