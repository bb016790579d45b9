//! The built-in operators of the Workflow-R1 and FlowSteer sets.
//!
//! Each is a [`StdOperator`] of one [`Kind`]: its prompt, the format it asks
//! the executor for, how it parses the reply and how it reads a text argument.

use std::sync::Arc;

use crate::args::{self, CHECKED_MARKER, TextArgs};
use crate::config::Shared;
use crate::executor::{Asked, ask};
use crate::{
    ArgumentError, Executor, Operator, OperatorError, OperatorInput, OperatorOutput, OperatorRole,
    SideChannel, TaskContext, tags,
};

/// Which built-in operator a [`StdOperator`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Question → thought + answer.
    AnswerGenerate,
    /// Task + instruction → answer.
    Custom,
    /// Query → refined query.
    PromptOptimizer,
    /// Question + solution → feedback and a verdict (flags only confident errors).
    Review,
    /// Question + solution + feedback → revised answer.
    Revise,
    /// Question → three independent answers.
    MultiAnswerGenerate,
    /// Query + ≥ 2 solutions → the most consistent one.
    ScEnsemble,
    /// Query → top documents of the BM25 index.
    Search,
    /// Problem → step-by-step plan.
    Plan,
    /// Problem → sub-problems.
    Decompose,
    /// Problem → Python code, run in the sandbox.
    Programmer,
    /// Solution → the task's tests run in the sandbox (or an executor-written check).
    Test,
    /// Question + solution → independent verification verdict.
    Verify,
    /// Several solutions → one combined answer.
    Aggregate,
    /// Solution → the final answer in the required form.
    Format,
}

impl Kind {
    /// Every kind, in documentation order.
    pub const ALL: [Kind; 15] = [
        Kind::AnswerGenerate,
        Kind::Custom,
        Kind::PromptOptimizer,
        Kind::Review,
        Kind::Revise,
        Kind::MultiAnswerGenerate,
        Kind::ScEnsemble,
        Kind::Search,
        Kind::Plan,
        Kind::Decompose,
        Kind::Programmer,
        Kind::Test,
        Kind::Verify,
        Kind::Aggregate,
        Kind::Format,
    ];

    /// The operator name, e.g. `AnswerGenerate`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AnswerGenerate => "AnswerGenerate",
            Kind::Custom => "Custom",
            Kind::PromptOptimizer => "PromptOptimizer",
            Kind::Review => "Review",
            Kind::Revise => "Revise",
            Kind::MultiAnswerGenerate => "MultiAnswerGenerate",
            Kind::ScEnsemble => "ScEnsemble",
            Kind::Search => "Search",
            Kind::Plan => "Plan",
            Kind::Decompose => "Decompose",
            Kind::Programmer => "Programmer",
            Kind::Test => "Test",
            Kind::Verify => "Verify",
            Kind::Aggregate => "Aggregate",
            Kind::Format => "Format",
        }
    }

    /// The kind called `name` (exact spelling).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// One-line description (shown to policies in prompts).
    pub fn description(self) -> &'static str {
        match self {
            Kind::AnswerGenerate => {
                "Solves the question step by step and returns a thought and an answer."
            }
            Kind::Custom => {
                "Follows your own instruction on the task (<task>, <instruction>) and returns an answer."
            }
            Kind::PromptOptimizer => "Rewrites a query so that it is clearer and easier to answer.",
            Kind::Review => {
                "Reviews a solution against the question; flags an error only when very confident."
            }
            Kind::Revise => {
                "Revises a solution using feedback (<solution>, <feedback>) and returns a corrected answer."
            }
            Kind::MultiAnswerGenerate => "Produces three independent answers to the question.",
            Kind::ScEnsemble => "Picks the most consistent answer among two or more solutions.",
            Kind::Search => {
                "Searches the document collection and returns the top titles with snippets."
            }
            Kind::Plan => "Writes a short step-by-step plan for solving the problem (no answer).",
            Kind::Decompose => "Splits the problem into smaller sub-problems (no answer).",
            Kind::Programmer => {
                "Writes Python code for the problem and runs it; the printed result is the answer."
            }
            Kind::Test => {
                "Runs the task's tests (or a written check) on the solution in a sandbox; repairs failing code."
            }
            Kind::Verify => {
                "Independently re-derives the answer and says whether the solution is correct."
            }
            Kind::Aggregate => "Combines several solutions into one final answer.",
            Kind::Format => "Rewrites a solution as the final answer only, in the required form.",
        }
    }

    /// The role of the kind.
    pub fn role(self) -> OperatorRole {
        match self {
            Kind::AnswerGenerate | Kind::Custom | Kind::MultiAnswerGenerate | Kind::Programmer => {
                OperatorRole::Solver
            }
            Kind::Review | Kind::Verify | Kind::Test => OperatorRole::Checker,
            Kind::Revise => OperatorRole::Reviser,
            Kind::ScEnsemble | Kind::Aggregate => OperatorRole::Ensemble,
            Kind::PromptOptimizer | Kind::Plan | Kind::Decompose => OperatorRole::Planner,
            Kind::Format => OperatorRole::Formatter,
            Kind::Search => OperatorRole::Retriever,
        }
    }
}

/// A built-in operator.
pub struct StdOperator {
    kind: Kind,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StdOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdOperator")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl StdOperator {
    pub(crate) fn new(kind: Kind, shared: Arc<Shared>) -> Self {
        Self { kind, shared }
    }

    /// Which operator this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn side(&self, ctx: &TaskContext, input: &OperatorInput, purpose: &str) -> SideChannel {
        SideChannel {
            operator: self.kind.name().to_string(),
            purpose: purpose.to_string(),
            family: ctx.family.clone(),
            task_id: ctx.task_id.clone(),
            entry_point: ctx.entry_point.clone(),
            gold: ctx.gold.clone(),
            query: input.query_or(ctx).to_string(),
            inputs: input.inputs.clone(),
            feedback: input.feedback.clone(),
            instruction: input.instruction.clone(),
            attempt: 0,
        }
    }

    fn ask<T>(
        &self,
        exec: &dyn Executor,
        side: SideChannel,
        user: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Asked<T>, OperatorError> {
        ask(exec, &self.shared.settings, side, SYSTEM, user, parse)
    }

    fn finish(&self, mut out: OperatorOutput) -> OperatorOutput {
        out.text = tags::truncate_middle(&out.text, self.shared.config.output_chars);
        out
    }

    fn sandbox_error(&self, reason: impl std::fmt::Display) -> OperatorError {
        OperatorError::Sandbox {
            operator: self.kind.name().to_string(),
            reason: reason.to_string(),
        }
    }

    fn need_solution<'a>(&self, input: &'a OperatorInput) -> Result<&'a str, OperatorError> {
        input.solutions().last().copied().ok_or_else(|| {
            OperatorError::input(
                self.kind.name(),
                ArgumentError::new(format!(
                    "{} needs a solution to work on (none was given)",
                    self.kind.name()
                )),
            )
        })
    }
}

const SYSTEM: &str = "You are a precise assistant inside an automated workflow. Follow the requested reply format exactly; \
other programs read your reply.";

/// How the final answer should look for the task's family.
pub fn answer_form(ctx: &TaskContext) -> String {
    if ctx.is_code() {
        match &ctx.entry_point {
            Some(e) => {
                format!("the complete Python function `{e}` (code only, no markdown fences)")
            }
            None => "the complete Python code (code only, no markdown fences)".to_string(),
        }
    } else if ctx.is_math() {
        "the final value only (a number or a simplified expression), without words or units"
            .to_string()
    } else {
        "a short phrase of a few words, not a sentence".to_string()
    }
}

fn extras(input: &OperatorInput) -> String {
    let mut s = String::new();
    let sols = input.solutions();
    if !sols.is_empty() {
        s.push_str("\nEarlier work (it may help, and it may contain mistakes):\n");
        for sol in sols {
            s.push_str("---\n");
            s.push_str(sol);
            s.push('\n');
        }
        s.push_str("---\n");
    }
    if let Some(f) = input.feedback() {
        s.push_str(&format!("\nFeedback:\n{f}\n"));
    }
    if let Some(i) = input.instruction() {
        s.push_str(&format!("\nAdditional instruction: {i}\n"));
    }
    s
}

/// Removes a surrounding markdown code fence, if any.
pub fn strip_fences(code: &str) -> String {
    let t = code.trim();
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let body = &after[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].trim_end().to_string();
    }
    t.to_string()
}

/// The answer part of an operator output text: what follows the last
/// `Answer:` line when there is one, else the whole text, trimmed.
pub fn answer_of(text: &str) -> String {
    match text
        .rfind("\nAnswer:")
        .map(|i| i + 1)
        .or_else(|| text.starts_with("Answer:").then_some(0))
    {
        Some(i) => text[i + "Answer:".len()..].trim().to_string(),
        None => text.trim().to_string(),
    }
}

fn required(text: &str, tag: &str) -> Result<String, String> {
    match tags::extract(text, tag) {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(format!("the <{tag}> block is empty")),
        None if tags::unclosed(text, tag) => {
            Err(format!("the <{tag}> tag is not closed with </{tag}>"))
        }
        None => Err(format!("the reply has no <{tag}>…</{tag}> block")),
    }
}

fn parse_answer(ctx: &TaskContext) -> impl Fn(&str) -> Result<(String, String), String> + '_ {
    move |text: &str| {
        let answer = required(text, "answer")?;
        let answer = if ctx.is_code() {
            strip_fences(&answer)
        } else {
            answer
        };
        let thought = tags::extract(text, "thought").unwrap_or_default();
        Ok((thought, answer))
    }
}

fn parse_verdict(text: &str) -> Result<bool, String> {
    let v = required(text, "verdict")?.to_ascii_lowercase();
    let v = v.trim_matches(|c: char| !c.is_alphanumeric());
    match v {
        "correct" | "pass" | "passes" | "yes" | "true" | "right" => Ok(true),
        "incorrect" | "wrong" | "fail" | "fails" | "no" | "false" => Ok(false),
        other => Err(format!(
            "<verdict> must be `correct` or `incorrect`, not `{other}`"
        )),
    }
}

fn parse_code<'a>(
    ctx: &'a TaskContext,
    need_solve: bool,
) -> impl Fn(&str) -> Result<String, String> + 'a {
    move |text: &str| {
        let code = strip_fences(&required(text, "code")?);
        if need_solve && !code.contains("def solve") {
            return Err("the code must define a function `solve()` that returns the answer".into());
        }
        if let (true, Some(e)) = (ctx.is_code() && !need_solve, &ctx.entry_point)
            && !code.contains(&format!("def {e}"))
        {
            return Err(format!("the code must define the function `{e}`"));
        }
        Ok(code)
    }
}

fn verdict_word(v: bool) -> &'static str {
    if v { "correct" } else { "incorrect" }
}

/// The key under which ensembles compare answers: the answer part of `s`,
/// SQuAD-normalised for QA, without whitespace for math, whitespace-collapsed for code.
pub fn vote_key(ctx: &TaskContext, s: &str) -> String {
    let a = answer_of(s);
    if ctx.is_math() {
        a.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase()
    } else if ctx.is_code() {
        a.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        flowrl_rewards::normalize_answer(&a)
    }
}

/// Index of the most frequent candidate by normalised answer, ties to the earliest.
pub fn majority(ctx: &TaskContext, candidates: &[&str]) -> Option<usize> {
    let keys: Vec<String> = candidates.iter().map(|c| vote_key(ctx, c)).collect();
    let mut best: Option<(usize, usize)> = None;
    for (i, k) in keys.iter().enumerate() {
        let count = keys.iter().filter(|x| *x == k).count();
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((i, count));
        }
    }
    best.map(|(i, _)| i)
}

fn letter(i: usize) -> char {
    char::from(b'A' + u8::try_from(i % 26).unwrap_or(0))
}

impl Operator for StdOperator {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn description(&self) -> &str {
        self.kind.description()
    }

    fn role(&self) -> OperatorRole {
        self.kind.role()
    }

    fn run(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let out = match self.kind {
            Kind::AnswerGenerate => self.answer_generate(ctx, input, exec)?,
            Kind::Custom => self.custom(ctx, input, exec)?,
            Kind::PromptOptimizer => self.prompt_optimizer(ctx, input, exec)?,
            Kind::Review | Kind::Verify => self.check(ctx, input, exec)?,
            Kind::Revise => self.revise(ctx, input, exec)?,
            Kind::MultiAnswerGenerate => self.multi(ctx, input, exec)?,
            Kind::ScEnsemble => self.ensemble(ctx, input, exec)?,
            Kind::Search => self.search(ctx, input)?,
            Kind::Plan | Kind::Decompose => self.plan(ctx, input, exec)?,
            Kind::Programmer => self.programmer(ctx, input, exec)?,
            Kind::Test => self.test(ctx, input, exec)?,
            Kind::Aggregate => self.aggregate(ctx, input, exec)?,
            Kind::Format => self.format(ctx, input, exec)?,
        };
        Ok(self.finish(out))
    }

    fn parse_text(
        &self,
        text: &str,
        ctx: &TaskContext,
        last: Option<&str>,
    ) -> Result<OperatorInput, ArgumentError> {
        let a = args::parse(text, ctx, last)?;
        parse_text_args(self.kind, a, last)
    }
}

/// Maps parsed text arguments to an [`OperatorInput`] for `kind`.
fn parse_text_args(
    kind: Kind,
    a: TextArgs,
    last: Option<&str>,
) -> Result<OperatorInput, ArgumentError> {
    let name = kind.name();
    let plain = (!a.plain.is_empty()).then(|| a.plain.clone());
    let mut input = OperatorInput {
        inputs: a.solutions.clone(),
        feedback: a.feedback.clone(),
        instruction: a.instruction.clone(),
        query: a.query.clone(),
    };
    match kind {
        // Main field: the query / problem text.
        Kind::AnswerGenerate
        | Kind::MultiAnswerGenerate
        | Kind::PromptOptimizer
        | Kind::Search
        | Kind::Plan
        | Kind::Decompose
        | Kind::Programmer => {
            if input.query.is_none() {
                input.query = plain;
            } else if let Some(p) = plain {
                input.instruction.get_or_insert(p);
            }
        }
        // Main field: the instruction.
        Kind::Custom => {
            if input.instruction.is_none() {
                input.instruction = plain;
            }
            if input.instruction.is_none() {
                return Err(ArgumentError::new(
                    "Custom needs an instruction: write `Custom: <what to do>` or \
                     `<task>…</task><instruction>…</instruction>`",
                ));
            }
        }
        // Main field: the solution to judge or format.
        Kind::Review | Kind::Verify | Kind::Test | Kind::Format => {
            if input.inputs.is_empty() {
                match plain.or_else(|| last.map(str::to_string)) {
                    Some(p) => {
                        let sol = args::split_checked(&p).map_or(p, |(s, _)| s);
                        input.inputs.push(sol);
                    }
                    None => {
                        return Err(ArgumentError::new(format!(
                            "{name} needs a solution: write `{name}: $last` to use the previous output, \
                             or `<solution>…</solution>`"
                        )));
                    }
                }
            } else if let Some(p) = plain {
                input.instruction.get_or_insert(p);
            }
        }
        Kind::Revise => {
            if input.inputs.is_empty() {
                match plain.or_else(|| last.map(str::to_string)) {
                    Some(p) => match args::split_checked(&p) {
                        Some((sol, fb)) => {
                            input.inputs.push(sol);
                            input.feedback.get_or_insert(fb);
                        }
                        None => input.inputs.push(p),
                    },
                    None => {
                        return Err(ArgumentError::new(
                            "Revise needs a solution: write `Revise: $last` after a Review, or \
                             `<solution>…</solution><feedback>…</feedback>`",
                        ));
                    }
                }
            } else if let Some(p) = plain {
                if input.feedback.is_none() {
                    input.feedback = Some(p);
                } else {
                    input.instruction.get_or_insert(p);
                }
            }
        }
        Kind::ScEnsemble | Kind::Aggregate => {
            if input.inputs.is_empty()
                && let Some(p) = plain.as_deref()
            {
                input.inputs = args::split_candidates(p);
            }
            let min = if kind == Kind::ScEnsemble { 2 } else { 1 };
            if input.inputs.len() < min {
                return Err(ArgumentError::new(format!(
                    "{name} needs at least {min} solutions: give several `<solution>…</solution>` blocks, \
                     or `{name}: $last` right after MultiAnswerGenerate (`Answer 1: …` lines)"
                )));
            }
        }
    }
    Ok(input)
}

impl StdOperator {
    fn answer_generate(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let user = format!(
            "Problem:\n{}\n{}\nThink step by step, then give the final answer as {}.\n\
             Reply exactly in this format:\n<thought>your reasoning</thought>\n<answer>the final answer</answer>",
            input.query_or(ctx),
            extras(input),
            answer_form(ctx)
        );
        let r = self.ask(
            exec,
            self.side(ctx, input, "solve"),
            &user,
            parse_answer(ctx),
        )?;
        let (thought, answer) = r.value;
        let text = if thought.is_empty() {
            format!("Answer: {answer}")
        } else {
            format!("Thought: {thought}\nAnswer: {answer}")
        };
        Ok(OperatorOutput {
            text,
            answer: Some(answer),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn custom(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let instruction = input.instruction().unwrap_or("Solve the task.");
        let mut plain = input.clone();
        plain.instruction = None;
        let user = format!(
            "Task:\n{}\n{}\nInstruction: {instruction}\n\nEnd with the result as {}.\n\
             Reply exactly in this format:\n<thought>your work</thought>\n<answer>the result</answer>",
            input.query_or(ctx),
            extras(&plain),
            answer_form(ctx)
        );
        let r = self.ask(
            exec,
            self.side(ctx, input, "solve"),
            &user,
            parse_answer(ctx),
        )?;
        let (thought, answer) = r.value;
        let text = if thought.is_empty() {
            format!("Answer: {answer}")
        } else {
            format!("Thought: {thought}\nAnswer: {answer}")
        };
        Ok(OperatorOutput {
            text,
            answer: Some(answer),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn prompt_optimizer(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let user = format!(
            "Rewrite the following query so that it is self-contained, unambiguous and easy to answer. \
             Keep every fact it contains and do not answer it.\nQuery:\n{}\n{}\n\
             Reply exactly in this format:\n<prompt>the rewritten query</prompt>",
            input.query_or(ctx),
            extras(input)
        );
        let r = self.ask(exec, self.side(ctx, input, "rewrite"), &user, |t| {
            required(t, "prompt")
        })?;
        Ok(OperatorOutput {
            text: format!("Refined query: {}", r.value),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn check(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let solution = self.need_solution(input)?;
        let (how, body_tag) = if self.kind == Kind::Review {
            (
                "Review the proposed solution critically: check each step and the final answer against the question. \
                 Call it incorrect only if you are very confident that it is wrong; otherwise call it correct.",
                "review",
            )
        } else {
            (
                "Verify the proposed solution: solve the problem again independently, then compare your result \
                 with the proposed final answer.",
                "analysis",
            )
        };
        let instruction = input
            .instruction()
            .map(|i| format!("\nAdditional instruction: {i}\n"))
            .unwrap_or_default();
        let user = format!(
            "Question:\n{}\n\nProposed solution:\n{solution}\n{instruction}\n{how}\n\
             Reply exactly in this format:\n<{body_tag}>your analysis and, if it is wrong, what to fix</{body_tag}>\n\
             <verdict>correct or incorrect</verdict>",
            input.query_or(ctx)
        );
        let mut side = self.side(ctx, input, "check");
        side.inputs = vec![solution.to_string()];
        let r = self.ask(exec, side, &user, |t| {
            let verdict = parse_verdict(t)?;
            let body = tags::extract(t, body_tag).unwrap_or_default();
            Ok((verdict, body))
        })?;
        let (verdict, body) = r.value;
        let text = format!(
            "Verdict: {}\nFeedback: {}\n{CHECKED_MARKER} {solution}",
            verdict_word(verdict),
            if body.is_empty() { "(none)" } else { &body }
        );
        Ok(OperatorOutput {
            text,
            verdict: Some(verdict),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn revise(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let solution = self.need_solution(input)?;
        let feedback = input
            .feedback()
            .unwrap_or("(no feedback given: look for mistakes yourself)");
        let instruction = input
            .instruction()
            .map(|i| format!("\nAdditional instruction: {i}\n"))
            .unwrap_or_default();
        let user = format!(
            "Question:\n{}\n\nPrevious solution:\n{solution}\n\nFeedback on it:\n{feedback}\n{instruction}\n\
             Write an improved solution. If the previous solution is right, keep its answer. \
             Give the final answer as {}.\n\
             Reply exactly in this format:\n<thought>what you changed and why</thought>\n<answer>the final answer</answer>",
            input.query_or(ctx),
            answer_form(ctx)
        );
        let mut side = self.side(ctx, input, "revise");
        side.inputs = vec![solution.to_string()];
        let r = self.ask(exec, side, &user, parse_answer(ctx))?;
        let (thought, answer) = r.value;
        let text = if thought.is_empty() {
            format!("Answer: {answer}")
        } else {
            format!("Thought: {thought}\nAnswer: {answer}")
        };
        Ok(OperatorOutput {
            text,
            answer: Some(answer),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn multi(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let user = format!(
            "Problem:\n{}\n{}\nSolve the problem three times, independently, each time with a different approach. \
             Each answer is {}.\n\
             Reply exactly in this format:\n<answer_1>first answer</answer_1>\n<answer_2>second answer</answer_2>\n\
             <answer_3>third answer</answer_3>",
            input.query_or(ctx),
            extras(input),
            answer_form(ctx)
        );
        let r = self.ask(exec, self.side(ctx, input, "multi"), &user, |t| {
            (1..=3)
                .map(|i| {
                    let a = required(t, &format!("answer_{i}"))?;
                    Ok(if ctx.is_code() { strip_fences(&a) } else { a })
                })
                .collect::<Result<Vec<String>, String>>()
        })?;
        let candidates = r.value;
        let text = candidates
            .iter()
            .enumerate()
            .map(|(i, a)| format!("Answer {}: {a}", i + 1))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(OperatorOutput {
            text,
            answer: candidates.first().cloned(),
            candidates,
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn ensemble(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let sols = input.solutions();
        if sols.len() < 2 {
            return Err(OperatorError::input(
                self.kind.name(),
                ArgumentError::new(format!(
                    "ScEnsemble needs at least two solutions, got {}",
                    sols.len()
                )),
            ));
        }
        let listed = sols
            .iter()
            .enumerate()
            .map(|(i, s)| format!("({}) {s}", letter(i)))
            .collect::<Vec<_>>()
            .join("\n");
        let instruction = input
            .instruction()
            .map(|i| format!("\nAdditional instruction: {i}\n"))
            .unwrap_or_default();
        let user = format!(
            "Question:\n{}\n\nCandidate solutions:\n{listed}\n{instruction}\n\
             Which candidate's final answer agrees most with the others and is most likely correct?\n\
             Reply exactly in this format:\n<thought>your comparison</thought>\n<choice>the letter of one candidate</choice>",
            input.query_or(ctx)
        );
        let n = sols.len();
        let parsed = self.ask(exec, self.side(ctx, input, "ensemble"), &user, |t| {
            let c = required(t, "choice")?;
            let l = c
                .trim()
                .trim_matches(|ch: char| !ch.is_ascii_alphanumeric())
                .to_ascii_uppercase();
            let idx = (l.len() == 1)
                .then(|| l.as_bytes()[0])
                .filter(u8::is_ascii_uppercase)
                .map(|b| usize::from(b - b'A'));
            match idx {
                Some(i) if i < n => Ok(i),
                _ => Err(format!(
                    "<choice> must be one letter from A to {}",
                    letter(n - 1)
                )),
            }
        });
        let (chosen, calls, how) = match parsed {
            Ok(r) => (r.value, r.calls, "chosen by the executor"),
            Err(OperatorError::Unparseable { attempts, .. }) => (
                majority(ctx, &sols).unwrap_or(0),
                attempts,
                "chosen by majority vote (executor reply unusable)",
            ),
            Err(e) => return Err(e),
        };
        let sol = sols[chosen];
        Ok(OperatorOutput {
            text: format!(
                "Most consistent solution ({}), {how}:\n{sol}",
                letter(chosen)
            ),
            answer: Some(answer_of(sol)),
            executor_calls: calls,
            ..Default::default()
        })
    }

    fn aggregate(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let sols = input.solutions();
        if sols.is_empty() {
            return Err(OperatorError::input(
                self.kind.name(),
                ArgumentError::new("Aggregate needs at least one solution"),
            ));
        }
        let listed = sols
            .iter()
            .enumerate()
            .map(|(i, s)| format!("({}) {s}", letter(i)))
            .collect::<Vec<_>>()
            .join("\n");
        let instruction = input
            .instruction()
            .map(|i| format!("\nAdditional instruction: {i}\n"))
            .unwrap_or_default();
        let user = format!(
            "Question:\n{}\n\nPartial results and candidate solutions:\n{listed}\n{instruction}\n\
             Combine them into one final solution: keep what they agree on and resolve disagreements. \
             Give the final answer as {}.\n\
             Reply exactly in this format:\n<thought>how you combined them</thought>\n<answer>the final answer</answer>",
            input.query_or(ctx),
            answer_form(ctx)
        );
        let r = self.ask(
            exec,
            self.side(ctx, input, "aggregate"),
            &user,
            parse_answer(ctx),
        )?;
        let (thought, answer) = r.value;
        let text = if thought.is_empty() {
            format!("Answer: {answer}")
        } else {
            format!("Thought: {thought}\nAnswer: {answer}")
        };
        Ok(OperatorOutput {
            text,
            answer: Some(answer),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn format(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let solution = self.need_solution(input)?;
        let instruction = input
            .instruction()
            .map(|i| format!("\nAdditional instruction: {i}\n"))
            .unwrap_or_default();
        let user = format!(
            "Question:\n{}\n\nSolution:\n{solution}\n{instruction}\n\
             Extract the final answer from the solution and write it as {}. Do not change what the answer is.\n\
             Reply exactly in this format:\n<answer>the final answer</answer>",
            input.query_or(ctx),
            answer_form(ctx)
        );
        let mut side = self.side(ctx, input, "format");
        side.inputs = vec![solution.to_string()];
        let r = self.ask(exec, side, &user, parse_answer(ctx))?;
        let (_, answer) = r.value;
        Ok(OperatorOutput {
            text: format!("Answer: {answer}"),
            answer: Some(answer),
            executor_calls: r.calls,
            ..Default::default()
        })
    }

    fn plan(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        if self.kind == Kind::Plan {
            let user = format!(
                "Problem:\n{}\n{}\nWrite a short numbered plan (at most five steps) for solving it. Do not solve it.\n\
                 Reply exactly in this format:\n<plan>the numbered steps</plan>",
                input.query_or(ctx),
                extras(input)
            );
            let r = self.ask(exec, self.side(ctx, input, "plan"), &user, |t| {
                required(t, "plan")
            })?;
            Ok(OperatorOutput {
                text: format!("Plan:\n{}", r.value),
                executor_calls: r.calls,
                ..Default::default()
            })
        } else {
            let user = format!(
                "Problem:\n{}\n{}\nSplit it into two to four smaller sub-problems whose answers together solve it. \
                 Do not solve them.\nReply exactly in this format, one block per sub-problem:\n\
                 <subproblem>first sub-problem</subproblem>\n<subproblem>second sub-problem</subproblem>",
                input.query_or(ctx),
                extras(input)
            );
            let r = self.ask(exec, self.side(ctx, input, "decompose"), &user, |t| {
                let parts = tags::extract_all(t, "subproblem");
                let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
                if parts.is_empty() {
                    Err("the reply has no <subproblem>…</subproblem> block".to_string())
                } else {
                    Ok(parts)
                }
            })?;
            let list = r
                .value
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{}. {p}", i + 1))
                .collect::<Vec<_>>()
                .join("\n");
            Ok(OperatorOutput {
                text: format!("Sub-problems:\n{list}"),
                executor_calls: r.calls,
                ..Default::default()
            })
        }
    }

    fn search(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
    ) -> Result<OperatorOutput, OperatorError> {
        let Some(index) = self.shared.search.as_ref() else {
            return Err(OperatorError::Unavailable {
                operator: "Search".into(),
                reason: "no search corpus is configured (set `search_corpus` to a JSONL file of {title, text})".into(),
            });
        };
        let query = input.query_or(ctx);
        let hits = index.search(query, self.shared.config.search_top_k);
        if hits.is_empty() {
            return Ok(OperatorOutput {
                text: format!("No documents match `{query}`."),
                ..Default::default()
            });
        }
        let n = self.shared.config.snippet_chars;
        let lines: Vec<String> = hits
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let d = index.document(h.doc)?;
                let snippet: String = d.text.chars().take(n).collect();
                let more = if d.text.chars().count() > n {
                    "…"
                } else {
                    ""
                };
                Some(format!("[{}] {}: {snippet}{more}", i + 1, d.title))
            })
            .collect();
        Ok(OperatorOutput {
            text: lines.join("\n"),
            ..Default::default()
        })
    }

    fn run_code(&self, program: &str) -> Result<flowrl_rewards::ExecResult, OperatorError> {
        let sandbox = self.shared.sandbox().map_err(|e| self.sandbox_error(e))?;
        sandbox
            .run_python(program)
            .map_err(|e| self.sandbox_error(e))
    }

    fn programmer(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let need_solve = !ctx.is_code();
        let what = if need_solve {
            "Write a Python program that defines a function `solve()` taking no arguments and returning the final answer. \
             Do not print anything and do not call solve() yourself; it is called for you and its value printed."
                .to_string()
        } else {
            format!("Write the solution as {}.", answer_form(ctx))
        };
        let user = format!(
            "Problem:\n{}\n{}\n{what}\nReply exactly in this format:\n<code>the Python code</code>",
            input.query_or(ctx),
            extras(input)
        );
        let first = self.ask(
            exec,
            self.side(ctx, input, "solve"),
            &user,
            parse_code(ctx, need_solve),
        )?;
        let mut calls = first.calls;
        let mut code = first.value;
        let mut round = 0;
        loop {
            let program = if need_solve {
                format!("{code}\n\nprint(solve())\n")
            } else {
                format!("{code}\n")
            };
            let result = self.run_code(&program)?;
            let stdout_last = result
                .stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string());
            let ok = result.outcome.passed() && (!need_solve || stdout_last.is_some());
            if ok {
                let answer = if need_solve {
                    stdout_last.clone().unwrap_or_default()
                } else {
                    code.clone()
                };
                let text = if need_solve {
                    format!(
                        "Code:\n{code}\nOutput: {}\nAnswer: {answer}",
                        stdout_last.unwrap_or_default()
                    )
                } else {
                    format!("Code runs without errors.\nAnswer:\n{code}")
                };
                return Ok(OperatorOutput {
                    text,
                    answer: Some(answer),
                    executor_calls: calls,
                    ..Default::default()
                });
            }
            let error = run_error(&result);
            if round >= self.shared.config.code_fix_rounds {
                return Ok(OperatorOutput {
                    text: format!("Code:\n{code}\nExecution failed: {error}"),
                    executor_calls: calls,
                    ..Default::default()
                });
            }
            round += 1;
            let fix = format!(
                "Problem:\n{}\n\nYour code:\n{code}\n\nRunning it failed:\n{error}\n\n{what}\n\
                 Reply exactly in this format:\n<code>the corrected Python code</code>",
                input.query_or(ctx)
            );
            let mut side = self.side(ctx, input, "fix");
            side.inputs = vec![code.clone()];
            side.feedback = Some(error);
            let r = self.ask(exec, side, &fix, parse_code(ctx, need_solve))?;
            calls += r.calls;
            code = r.value;
        }
    }

    fn test(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
    ) -> Result<OperatorOutput, OperatorError> {
        let raw = self.need_solution(input)?;
        let solution = if ctx.is_code() {
            strip_fences(&answer_of(raw))
        } else {
            raw.to_string()
        };
        match ctx.tests.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(tests) => self.test_with_tests(ctx, input, exec, &solution, tests),
            None => self.test_with_check(ctx, input, exec, &solution),
        }
    }

    fn test_with_tests(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
        solution: &str,
        tests: &str,
    ) -> Result<OperatorOutput, OperatorError> {
        let mut code = solution.to_string();
        let mut calls = 0;
        let mut round = 0;
        let mut first_error: Option<String> = None;
        loop {
            let result = self.run_code(&format!("{code}\n\n{tests}\n"))?;
            if result.outcome.passed() {
                let text = match &first_error {
                    None => format!(
                        "Verdict: correct\nFeedback: all tests pass.\n{CHECKED_MARKER} {code}"
                    ),
                    Some(e) => format!(
                        "Verdict: correct\nFeedback: the given solution failed the tests ({e}); the repaired solution passes.\n\
                         {CHECKED_MARKER} {code}"
                    ),
                };
                return Ok(OperatorOutput {
                    text,
                    answer: Some(code),
                    verdict: Some(true),
                    executor_calls: calls,
                    ..Default::default()
                });
            }
            let error = run_error(&result);
            first_error.get_or_insert_with(|| error.clone());
            if round >= self.shared.config.code_fix_rounds {
                let text = format!(
                    "Verdict: incorrect\nFeedback: the tests fail: {error}\n{CHECKED_MARKER} {code}"
                );
                let answer = (code != solution).then(|| code.clone());
                return Ok(OperatorOutput {
                    text,
                    answer,
                    verdict: Some(false),
                    executor_calls: calls,
                    ..Default::default()
                });
            }
            round += 1;
            let user = format!(
                "Problem:\n{}\n\nSolution:\n{code}\n\nIt fails these tests:\n{tests}\n\nError:\n{error}\n\n\
                 Write a corrected solution as {}.\nReply exactly in this format:\n<code>the corrected code</code>",
                input.query_or(ctx),
                answer_form(ctx)
            );
            let mut side = self.side(ctx, input, "fix");
            side.inputs = vec![code.clone()];
            side.feedback = Some(error);
            let r = self.ask(exec, side, &user, parse_code(ctx, false))?;
            calls += r.calls;
            code = r.value;
        }
    }

    fn test_with_check(
        &self,
        ctx: &TaskContext,
        input: &OperatorInput,
        exec: &dyn Executor,
        solution: &str,
    ) -> Result<OperatorOutput, OperatorError> {
        let user = format!(
            "Problem:\n{}\n\nProposed solution:\n{solution}\n\n\
             Write a short Python script that checks the proposed final answer (recompute it independently, or \
             substitute it back into the problem) and raises AssertionError if it is wrong.\n\
             Reply exactly in this format:\n<code>the Python check</code>",
            input.query_or(ctx)
        );
        let mut side = self.side(ctx, input, "check");
        side.inputs = vec![solution.to_string()];
        let r = self.ask(exec, side, &user, |t| {
            required(t, "code").map(|c| strip_fences(&c))
        })?;
        let result = self.run_code(&r.value)?;
        let passed = result.outcome.passed();
        let feedback = if passed {
            "the check passes".to_string()
        } else {
            format!("the check fails: {}", run_error(&result))
        };
        Ok(OperatorOutput {
            text: format!(
                "Verdict: {}\nFeedback: {feedback}\n{CHECKED_MARKER} {solution}",
                verdict_word(passed)
            ),
            verdict: Some(passed),
            executor_calls: r.calls,
            ..Default::default()
        })
    }
}

fn run_error(result: &flowrl_rewards::ExecResult) -> String {
    use flowrl_rewards::ExecOutcome as O;
    match &result.outcome {
        O::Passed if result.stdout.trim().is_empty() => "the program printed nothing".to_string(),
        O::Passed => "the program ran".to_string(),
        O::Failed {
            exit_code,
            stderr_tail,
        } => {
            let tail: String = stderr_tail
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            format!("exit code {exit_code}: {tail}")
        }
        O::Timeout => "the program timed out".to_string(),
        O::MemoryLimit => "the program ran out of memory".to_string(),
        O::CpuLimit => "the program used too much CPU time".to_string(),
        O::Signaled { signal } => format!("the program was killed by signal {signal}"),
        O::SandboxFailure { message } => format!("the sandbox failed: {message}"),
        other => format!("{other:?}"),
    }
}
