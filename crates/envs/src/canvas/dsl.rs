//! The workflow DSL: `A -> [B, C] -> D ? E : done -> (F -> G) * 2`.
//!
//! Grammar (whitespace is free):
//!
//! ```text
//! workflow := ε | step ("->" step)*
//! step     := NAME                                   operator
//!           | "[" NAME ("," NAME)+ "]"               parallel (≥ 2 branches)
//!           | NAME "?" branch ":" branch             conditional: check ? on_fail : on_pass
//!           | "(" NAME ("->" NAME)* ")" "*" COUNT    loop, COUNT in 1..=10
//! branch   := NAME | "done"
//! ```
//!
//! `Workflow`'s `Display` prints this form, and [`parse`] reads it back:
//! `parse(w.to_string())` gives `w`'s structure (prompts are not part of the
//! DSL), and printing a parsed string gives its canonical spacing.

use thiserror::Error;

use super::is_operator_name;
use super::workflow::{OpSlot, Step, Workflow};

/// Why a DSL string does not parse. `at` is a byte offset into the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DslError {
    /// A character that starts no token.
    #[error("unexpected character `{ch}` at byte {at}")]
    BadChar {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// A token other than the one the grammar needs.
    #[error("expected {expected} at byte {at}, found {found}")]
    Expected {
        /// What the grammar needed.
        expected: &'static str,
        /// What was there (`end of input` at the end).
        found: String,
        /// Byte offset.
        at: usize,
    },
    /// A name that cannot be an operator (`done`, too long, bad characters).
    #[error("`{name}` at byte {at} is not an operator name")]
    BadName {
        /// The name.
        name: String,
        /// Byte offset.
        at: usize,
    },
    /// A parallel step with fewer than two branches.
    #[error("a parallel step needs at least two branches (byte {at})")]
    ParallelTooSmall {
        /// Byte offset of `[`.
        at: usize,
    },
    /// A loop count outside 1..=10.
    #[error("loop count `{count}` at byte {at} is not in 1..=10")]
    BadCount {
        /// The count as written.
        count: String,
        /// Byte offset.
        at: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Name(&'a str),
    Num(&'a str),
    Arrow,
    LBracket,
    RBracket,
    Comma,
    Question,
    Colon,
    LParen,
    RParen,
    Star,
    End,
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Name(n) => format!("`{n}`"),
        Tok::Num(n) => format!("`{n}`"),
        Tok::Arrow => "`->`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Question => "`?`".into(),
        Tok::Colon => "`:`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Star => "`*`".into(),
        Tok::End => "end of input".into(),
    }
}

fn lex(s: &str) -> Result<Vec<(Tok<'_>, usize)>, DslError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let single = match c {
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b',' => Some(Tok::Comma),
            b'?' => Some(Tok::Question),
            b':' => Some(Tok::Colon),
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'*' => Some(Tok::Star),
            _ => None,
        };
        if let Some(t) = single {
            out.push((t, i));
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'>') {
            out.push((Tok::Arrow, i));
            i += 2;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &s[start..i];
            let tok = if word.bytes().all(|x| x.is_ascii_digit()) {
                Tok::Num(word)
            } else {
                Tok::Name(word)
            };
            out.push((tok, start));
        } else {
            let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
            return Err(DslError::BadChar { ch, at: i });
        }
    }
    out.push((Tok::End, s.len()));
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok<'a>, usize)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn at(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn bump(&mut self) -> (Tok<'a>, usize) {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn expect(&mut self, want: Tok<'static>, expected: &'static str) -> Result<(), DslError> {
        if *self.peek() == want {
            self.bump();
            Ok(())
        } else {
            Err(DslError::Expected {
                expected,
                found: describe(self.peek()),
                at: self.at(),
            })
        }
    }

    fn name(&mut self) -> Result<String, DslError> {
        match self.bump() {
            (Tok::Name(n), at) => {
                if is_operator_name(n) {
                    Ok(n.to_string())
                } else {
                    Err(DslError::BadName {
                        name: n.to_string(),
                        at,
                    })
                }
            }
            (t, at) => Err(DslError::Expected {
                expected: "an operator name",
                found: describe(&t),
                at,
            }),
        }
    }

    fn branch(&mut self) -> Result<Option<OpSlot>, DslError> {
        if *self.peek() == Tok::Name("done") {
            self.bump();
            return Ok(None);
        }
        Ok(Some(OpSlot::new(self.name()?)))
    }

    fn step(&mut self) -> Result<Step, DslError> {
        match self.peek().clone() {
            Tok::LBracket => {
                let at = self.at();
                self.bump();
                let mut v = vec![OpSlot::new(self.name()?)];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    v.push(OpSlot::new(self.name()?));
                }
                self.expect(Tok::RBracket, "`,` or `]`")?;
                if v.len() < 2 {
                    return Err(DslError::ParallelTooSmall { at });
                }
                Ok(Step::Parallel(v))
            }
            Tok::LParen => {
                self.bump();
                let mut body = vec![OpSlot::new(self.name()?)];
                while *self.peek() == Tok::Arrow {
                    self.bump();
                    body.push(OpSlot::new(self.name()?));
                }
                self.expect(Tok::RParen, "`->` or `)`")?;
                self.expect(Tok::Star, "`*` after a loop body")?;
                match self.bump() {
                    (Tok::Num(n), at) => match n.parse::<u8>() {
                        Ok(c) if (1..=10).contains(&c) => Ok(Step::Loop { body, count: c }),
                        _ => Err(DslError::BadCount {
                            count: n.to_string(),
                            at,
                        }),
                    },
                    (t, at) => Err(DslError::Expected {
                        expected: "a loop count",
                        found: describe(&t),
                        at,
                    }),
                }
            }
            _ => {
                let op = OpSlot::new(self.name()?);
                if *self.peek() == Tok::Question {
                    self.bump();
                    let on_fail = self.branch()?;
                    self.expect(Tok::Colon, "`:` in a conditional")?;
                    let on_pass = self.branch()?;
                    Ok(Step::Conditional {
                        check: op,
                        on_fail,
                        on_pass,
                    })
                } else {
                    Ok(Step::Operator(op))
                }
            }
        }
    }
}

/// Parses a DSL string into a workflow with nodes `node_1…node_n`.
///
/// # Errors
/// A [`DslError`] with the byte offset of the problem.
pub fn parse(s: &str) -> Result<Workflow, DslError> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let mut w = Workflow::new();
    if *p.peek() == Tok::End {
        return Ok(w);
    }
    w.push(p.step()?);
    while *p.peek() == Tok::Arrow {
        p.bump();
        w.push(p.step()?);
    }
    if *p.peek() != Tok::End {
        return Err(DslError::Expected {
            expected: "`->` or end of input",
            found: describe(p.peek()),
            at: p.at(),
        });
    }
    Ok(w)
}
