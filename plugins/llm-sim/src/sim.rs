//! The simulated executor: answers operator requests from their side channel.

use flowrl_operators::ops::{answer_of, strip_fences, vote_key};
use flowrl_operators::{SideChannel, TaskContext};
use flowrl_plugin_abi::{ChatRequest, ChatResponse, Usage};

use crate::{FamilySkills, SimConfig};

/// The gold answer as the simulator reads it from [`SideChannel::gold`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gold {
    /// Acceptable answers (QA aliases; the first is canonical).
    pub answers: Vec<String>,
    /// A correct solution (code tasks).
    pub reference: Option<String>,
}

impl Gold {
    /// Reads a string, an array of strings, or an object with `answers`
    /// and/or `reference` (`answer` is accepted for a single string).
    pub fn from_value(v: &serde_json::Value) -> Self {
        use serde_json::Value;
        let strings = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .or_else(|| x.as_number().map(|n| n.to_string()))
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        match v {
            Value::Object(o) => {
                let mut answers = o.get("answers").map(strings).unwrap_or_default();
                if answers.is_empty() {
                    answers = o.get("answer").map(strings).unwrap_or_default();
                }
                let reference = o
                    .get("reference")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Self { answers, reference }
            }
            other => Self {
                answers: strings(other),
                reference: None,
            },
        }
    }

    /// The canonical right answer text for `family`, if known.
    pub fn canonical(&self, family: &str) -> Option<String> {
        if family.eq_ignore_ascii_case("code") {
            self.reference
                .clone()
                .or_else(|| self.answers.first().cloned())
        } else {
            self.answers.first().cloned()
        }
    }
}

/// 64-bit FNV-1a followed by a SplitMix64 finaliser.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash mapped to a uniform number in [0, 1) (its top 53 bits).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Deterministic draws for one request.
struct Dice {
    seed: u64,
    key: Vec<u8>,
}

impl Dice {
    /// A uniform number in [0, 1) for `label`.
    fn u(&self, label: &str) -> f64 {
        unit(stable_hash(&[
            &self.seed.to_le_bytes(),
            &self.key,
            label.as_bytes(),
        ]))
    }

    fn chance(&self, label: &str, p: f64) -> bool {
        self.u(label) < p
    }

    fn pick(&self, label: &str, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((self.u(label) * n as f64) as usize).min(n - 1)
    }
}

const QA_DISTRACTORS: &[&str] = &[
    "London",
    "Maria Lopez",
    "1912",
    "the blue whale",
    "Oslo",
    "a teacher",
    "Thomas Reed",
    "Lisbon",
];

/// One simulated reply: text and finish reason.
pub(crate) struct Reply {
    pub text: String,
    pub finish_reason: &'static str,
}

pub(crate) fn respond(config: &SimConfig, req: &ChatRequest) -> ChatResponse {
    let reply = match SideChannel::from_metadata(&req.metadata) {
        Some(side) => {
            let key = serde_json::to_vec(&(&req.messages, &req.metadata)).unwrap_or_default();
            let dice = Dice { seed: config.seed, key };
            let difficulty = Difficulty::of(config, &side.task_id);
            let sim = Sim { skills: config.skills_for(&side.family), gold: side.gold.as_ref().map(Gold::from_value).unwrap_or_default(), side, dice, difficulty };
            let text = sim.answer();
            sim.noise(config, text)
        }
        None => Reply {
            text: "This is the flowrl simulated executor: it only answers requests sent by flowrl operators \
                   (they carry a side channel in the request metadata)."
                .to_string(),
            finish_reason: "stop",
        },
    };
    let prompt_chars: usize = req.messages.iter().map(|m| m.content.len()).sum();
    ChatResponse {
        usage: Usage {
            prompt_tokens: u32::try_from(prompt_chars / 4).unwrap_or(u32::MAX),
            completion_tokens: u32::try_from(reply.text.len() / 4).unwrap_or(u32::MAX),
        },
        text: reply.text,
        logprobs: None,
        finish_reason: reply.finish_reason.to_string(),
    }
}

struct Sim {
    skills: FamilySkills,
    gold: Gold,
    side: SideChannel,
    dice: Dice,
    difficulty: Difficulty,
}

/// A task's difficulty as solvers see it: a uniform number per task (seed
/// and task id) that a solving attempt reads instead of its own draw with
/// probability `task_correlation`. Each attempt still succeeds with its
/// skill's probability (a mixture of uniforms is uniform), but attempts on
/// the same task agree more often: a task one solver finds hard tends to be
/// hard for the others.
struct Difficulty {
    correlation: f64,
    u: f64,
}

impl Difficulty {
    fn of(config: &SimConfig, task_id: &str) -> Self {
        Difficulty {
            correlation: config.task_correlation,
            u: unit(stable_hash(&[
                &config.seed.to_le_bytes(),
                b"difficulty",
                task_id.as_bytes(),
            ])),
        }
    }
}

impl Sim {
    fn ctx(&self) -> TaskContext {
        let mut c = TaskContext::new(
            self.side.task_id.clone(),
            self.side.family.clone(),
            self.side.query.clone(),
        );
        c.entry_point = self.side.entry_point.clone();
        c
    }

    fn is(&self, family: &str) -> bool {
        self.side.family.eq_ignore_ascii_case(family)
    }

    /// Whether a candidate text carries a right answer.
    fn correct(&self, candidate: &str) -> bool {
        let ans = answer_of(candidate);
        if self.is("code") {
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            return match &self.gold.reference {
                Some(r) => {
                    let r = norm(r);
                    !r.is_empty() && norm(&strip_fences(&ans)).contains(&r)
                }
                None => false,
            };
        }
        if self.is("math") {
            return self
                .gold
                .answers
                .iter()
                .any(|g| flowrl_rewards::math_equal(&ans, g));
        }
        let a = flowrl_rewards::normalize_answer(&ans);
        self.gold.answers.iter().any(|g| {
            let g = flowrl_rewards::normalize_answer(g);
            !g.is_empty() && (a == g || format!(" {a} ").contains(&format!(" {g} ")))
        })
    }

    /// A right answer, or `None` without gold.
    fn right(&self) -> Option<String> {
        self.gold.canonical(&self.side.family)
    }

    /// A plausible wrong answer, varied by `label`.
    fn wrong(&self, label: &str) -> String {
        let gold = self.right().unwrap_or_default();
        if self.is("code") {
            return perturb_code(&gold);
        }
        if self.is("math") {
            if let Ok(g) = gold.trim().parse::<i64>() {
                let d = [1, -1, 2, -2, 10, -10, 3][self.dice.pick(&format!("{label}/off"), 7)];
                return g.saturating_add(d).to_string();
            }
            if let Ok(g) = gold.trim().parse::<f64>() {
                return format!("{}", g + 1.0);
            }
            return format!("{gold} + 1");
        }
        let mut i = self
            .dice
            .pick(&format!("{label}/pick"), QA_DISTRACTORS.len());
        for _ in 0..QA_DISTRACTORS.len() {
            let d = QA_DISTRACTORS[i];
            if !self.correct(d) {
                return d.to_string();
            }
            i = (i + 1) % QA_DISTRACTORS.len();
        }
        "unknown".to_string()
    }

    /// A right answer with probability `p`, else a wrong one (`label` varies the draw).
    fn attempt(&self, label: &str, p: f64) -> String {
        match self.right() {
            Some(r) if self.solves(label, p) => r,
            _ => self.wrong(label),
        }
    }

    /// Whether the solving attempt `label` with skill `p` gets it right:
    /// its own draw, or the task's difficulty (see [`Difficulty`]).
    fn solves(&self, label: &str, p: f64) -> bool {
        let d = &self.difficulty;
        let u =
            if d.correlation > 0.0 && self.dice.chance(&format!("{label}/shared"), d.correlation) {
                d.u
            } else {
                self.dice.u(label)
            };
        u < p
    }

    fn has_plan(&self) -> bool {
        self.side.inputs.iter().any(|i| {
            let t = i.trim_start();
            t.starts_with("Plan:") || t.starts_with("Sub-problems:")
        })
    }

    /// Skill of a solver given its earlier work: a plan helps; a right
    /// earlier answer is mostly kept.
    fn solver_skill(&self, base: f64) -> f64 {
        let mut p = base;
        if self.has_plan() {
            p += self.skills.plan_bonus;
        }
        if self
            .side
            .inputs
            .iter()
            .rev()
            .find(|i| !i.trim_start().starts_with("Plan:"))
            .is_some_and(|i| self.correct(i))
        {
            p = p.max(1.0 - self.skills.revise_break);
        }
        p.clamp(0.0, 1.0)
    }

    fn answer(&self) -> String {
        let op = self.side.operator.as_str();
        let purpose = self.side.purpose.as_str();
        match (op, purpose) {
            (_, "fix") => self.fix(),
            ("AnswerGenerate", _) => self.solve(self.skills.answer),
            ("Custom", _) => self.solve(self.skills.custom),
            ("MultiAnswerGenerate", _) => {
                let p = self.solver_skill(self.skills.answer);
                (1..=3).map(|i| format!("<answer_{i}>{}</answer_{i}>", self.attempt(&format!("multi{i}"), p))).collect::<Vec<_>>().join("\n")
            }
            ("PromptOptimizer", _) => format!(
                "<prompt>{} Answer with {}.</prompt>",
                self.side.query.trim(),
                if self.is("math") { "the final number only" } else if self.is("code") { "the function only" } else { "a short phrase" }
            ),
            ("Plan", _) => format!("<plan>{}</plan>", self.plan_steps()),
            ("Decompose", _) => "<subproblem>Identify exactly what is being asked and the facts given.</subproblem>\n\
                                 <subproblem>Work out the intermediate result each fact leads to.</subproblem>\n\
                                 <subproblem>Combine the intermediate results into the final answer.</subproblem>"
                .to_string(),
            ("Review", _) => self.review(),
            ("Verify", _) => self.verify(),
            ("Test", _) => self.check_script(),
            ("Revise", _) => self.revise(),
            ("ScEnsemble", _) => {
                let i = self.choose();
                format!("<thought>Comparing the final answers of the candidates.</thought>\n<choice>{}</choice>", char::from(b'A' + u8::try_from(i % 26).unwrap_or(0)))
            }
            ("Aggregate", _) => {
                let i = self.choose();
                let a = self.side.inputs.get(i).map(|s| answer_of(s)).unwrap_or_default();
                format!("<thought>Kept the answer the candidates support best.</thought>\n<answer>{a}</answer>")
            }
            ("Format", _) => self.format(),
            ("Programmer", _) => self.program(self.skills.programmer, "prog"),
            _ => self.solve(self.skills.answer),
        }
    }

    fn solve(&self, skill: f64) -> String {
        let a = self.attempt("solve", self.solver_skill(skill));
        format!(
            "<thought>{}</thought>\n<answer>{a}</answer>",
            self.thought()
        )
    }

    fn thought(&self) -> &'static str {
        if self.is("math") {
            "Set up the quantities from the problem and compute step by step."
        } else if self.is("code") {
            "Implement the function directly from the description."
        } else {
            "Recall the relevant fact and state it briefly."
        }
    }

    fn plan_steps(&self) -> &'static str {
        if self.is("code") {
            "1. Read the required signature.\n2. Handle the general case.\n3. Check edge cases against the examples."
        } else if self.is("math") {
            "1. List the given quantities.\n2. Write the operations that connect them.\n3. Compute and check the result."
        } else {
            "1. Identify the entity asked about.\n2. Recall the fact that links it to the answer.\n3. State the answer briefly."
        }
    }

    fn program(&self, skill: f64, label: &str) -> String {
        let p = self.solver_skill(skill);
        if self.is("code") {
            let code = self.attempt(label, p);
            return format!("<code>\n{code}\n</code>");
        }
        let ok = self.right().is_some() && self.solves(label, p);
        let body = if ok {
            python_literal(&self.right().unwrap_or_default())
        } else if self
            .dice
            .chance(&format!("{label}/crash"), self.skills.program_crash)
        {
            "total + 1  # uses a name that was never defined".to_string()
        } else {
            python_literal(&self.wrong(label))
        };
        format!("<code>\ndef solve():\n    return {body}\n</code>")
    }

    fn fix(&self) -> String {
        if self.side.operator == "Programmer" && !self.is("code") {
            return self.program(self.skills.code_fix, "fix");
        }
        let code = self.attempt("fix", self.skills.code_fix);
        format!("<code>\n{code}\n</code>")
    }

    fn candidate(&self) -> (String, bool) {
        let c = self.side.inputs.last().cloned().unwrap_or_default();
        let ok = self.correct(&c);
        (c, ok)
    }

    fn review(&self) -> String {
        let (_, ok) = self.candidate();
        let flag = if ok {
            self.dice.chance("review", self.skills.review_false_alarm)
        } else {
            self.dice.chance("review", self.skills.review_catch)
        };
        if flag {
            "<review>The final answer does not follow from the question: the key step is wrong and should be redone.</review>\n\
             <verdict>incorrect</verdict>"
                .to_string()
        } else {
            "<review>Each step is consistent with the question and I see no error.</review>\n<verdict>correct</verdict>".to_string()
        }
    }

    fn verify(&self) -> String {
        let (_, ok) = self.candidate();
        let right = self.dice.chance("verify", self.skills.verify_accuracy);
        let says_ok = if right { ok } else { !ok };
        if says_ok {
            "<analysis>Solving it again gives the same final answer.</analysis>\n<verdict>correct</verdict>".to_string()
        } else {
            "<analysis>Solving it again gives a different final answer.</analysis>\n<verdict>incorrect</verdict>".to_string()
        }
    }

    fn check_script(&self) -> String {
        let (_, ok) = self.candidate();
        let right = self.dice.chance("check", self.skills.check_accuracy);
        let says_ok = if right { ok } else { !ok };
        if says_ok {
            "<code>\nchecks = [True]\nassert all(checks), 'the recomputed value differs'\nprint('check passed')\n</code>".to_string()
        } else {
            "<code>\nchecks = [False]\nassert all(checks), 'the recomputed value differs from the proposed answer'\n</code>".to_string()
        }
    }

    fn revise(&self) -> String {
        let (c, ok) = self.candidate();
        let flagged = self.side.feedback.as_deref().is_some_and(|f| {
            let f = f.to_ascii_lowercase();
            f.contains("incorrect") || f.contains("fail") || f.contains("wrong")
        });
        let answer = if ok {
            let p_break = if flagged {
                (self.skills.revise_break * 3.0).min(1.0)
            } else {
                self.skills.revise_break
            };
            if self.dice.chance("revise", p_break) {
                self.wrong("revise")
            } else {
                answer_of(&c)
            }
        } else {
            let p_fix = if flagged {
                self.skills.revise_fix
            } else {
                self.skills.revise_fix_blind
            };
            match self.right() {
                Some(r) if self.dice.chance("revise", p_fix) => r,
                _ => answer_of(&c),
            }
        };
        format!(
            "<thought>Checked the previous solution against the feedback.</thought>\n<answer>{answer}</answer>"
        )
    }

    /// The index an ensemble picks.
    fn choose(&self) -> usize {
        let inputs: Vec<&str> = self.side.inputs.iter().map(String::as_str).collect();
        if inputs.is_empty() {
            return 0;
        }
        let ctx = self.ctx();
        let keys: Vec<String> = inputs.iter().map(|s| vote_key(&ctx, s)).collect();
        let ok: Vec<bool> = inputs.iter().map(|s| self.correct(s)).collect();
        let count = |k: &str| keys.iter().filter(|x| x.as_str() == k).count();
        let right_votes = (0..inputs.len()).filter(|&i| ok[i]).count();
        let best_wrong = (0..inputs.len())
            .filter(|&i| !ok[i])
            .map(|i| count(&keys[i]))
            .max()
            .unwrap_or(0);
        let first_right = ok.iter().position(|&b| b);
        // The most voted wrong candidate (ties to the earliest).
        let wrong_pick = (0..inputs.len())
            .filter(|&i| !ok[i])
            .max_by(|&a, &b| count(&keys[a]).cmp(&count(&keys[b])).then(b.cmp(&a)));
        match first_right {
            Some(r) => {
                let p = if right_votes > best_wrong {
                    self.skills.ensemble_majority
                } else {
                    self.skills.ensemble_recognize
                };
                if self.dice.chance("ensemble", p) {
                    r
                } else {
                    wrong_pick.unwrap_or(r)
                }
            }
            None => wrong_pick.unwrap_or(0),
        }
    }

    fn format(&self) -> String {
        let (c, ok) = self.candidate();
        let a = if ok {
            if self.dice.chance("format", self.skills.format_keep) {
                self.right().unwrap_or_else(|| answer_of(&c))
            } else {
                self.wrong("format")
            }
        } else {
            answer_of(&c)
        };
        format!("<answer>{a}</answer>")
    }

    fn noise(&self, config: &SimConfig, text: String) -> Reply {
        if self.dice.chance("noise/truncate", config.truncate_rate) {
            let cut: String = text.chars().take(text.chars().count() / 2).collect();
            return Reply {
                text: cut,
                finish_reason: "length",
            };
        }
        if self.dice.chance("noise/malformed", config.malformed_rate) {
            // Drop the last closing tag: the operator's parser must notice and retry.
            if let Some(at) = text.rfind("</") {
                let end = text[at..].find('>').map_or(text.len(), |e| at + e + 1);
                let mut t = text.clone();
                t.replace_range(at..end, "");
                return Reply {
                    text: t,
                    finish_reason: "stop",
                };
            }
        }
        Reply {
            text,
            finish_reason: "stop",
        }
    }
}

/// A Python literal for an answer: numbers as they are, anything else as a string.
pub fn python_literal(answer: &str) -> String {
    let t = answer.trim();
    if t.parse::<i64>().is_ok()
        || (t.parse::<f64>().is_ok_and(f64::is_finite)
            && !t.contains(['e', 'E', 'n', 'N', 'i', 'I']))
    {
        t.to_string()
    } else {
        serde_json::to_string(t).unwrap_or_else(|_| "''".to_string())
    }
}

/// A wrong but runnable variant of a reference solution: the first
/// `return EXPR` becomes `return (EXPR) + 1`; without a `return`, the
/// function is renamed so that the tests cannot find it.
pub fn perturb_code(reference: &str) -> String {
    let mut lines: Vec<String> = reference.lines().map(str::to_string).collect();
    if let Some(line) = lines
        .iter_mut()
        .find(|l| l.trim_start().starts_with("return "))
    {
        let indent = line.len() - line.trim_start().len();
        let expr = line.trim_start()["return ".len()..].trim_end().to_string();
        *line = format!("{}return ({expr}) + 1", &line[..indent]);
        return lines.join("\n") + "\n";
    }
    match reference.find("def ") {
        Some(at) => {
            let name_end = reference[at + 4..]
                .find('(')
                .map_or(reference.len(), |e| at + 4 + e);
            format!("{}_draft{}", &reference[..name_end], &reference[name_end..])
        }
        None => format!("{reference}\nraise RuntimeError('unfinished solution')\n"),
    }
}
