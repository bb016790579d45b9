//! Math answers: extraction from free text and equivalence checking.
//!
//! [`extract_answer`] finds the final answer of a solution: the content of the
//! last `\boxed{…}` (nested braces allowed), else the text after the last
//! `#### ` marker (GSM8K), else the last number. [`math_equal`] decides
//! whether two answers are the same: equal normalised strings, or — when both
//! are arithmetic expressions — equal exact rationals, or numerically equal
//! within an absolute 1e-3 ([`NUMERIC_TOLERANCE`]; `0.333` = `1/3`), with a
//! 1e-9 relative tolerance for huge magnitudes; irrational parts (`\sqrt{2}`,
//! `\pi`) are evaluated in floating point. Percentages compare both as
//! written and divided by 100. Nothing here panics on any input.

/// Extracts the final answer of a solution text; see the module docs for the
/// order of the rules. Returns `None` when the text has no recognisable answer
/// (no box, no `####`, no number).
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some(b) = extract_boxed(text) {
        return Some(b);
    }
    if let Some(h) = extract_hash_answer(text) {
        return Some(h);
    }
    extract_last_number(text)
}

/// The content of the last `\boxed{…}` or `\fbox{…}` in `text`, with nested
/// braces kept balanced (`\boxed{\frac{1}{2}}` → `\frac{1}{2}`). Also accepts
/// the brace-less form `\boxed 5`. `None` when there is no box or the last box
/// is not closed.
pub fn extract_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|m| text.rfind(m).map(|i| (i, m.len())))
        .max()?;
    let rest = &text[start.0 + start.1..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut depth = 1usize;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(inner[..i].trim().to_string());
                    }
                }
                _ => {}
            }
        }
        None
    } else if let Some(inner) = rest.strip_prefix(' ') {
        let ans: String = inner
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '$')
            .collect();
        if ans.is_empty() { None } else { Some(ans) }
    } else {
        None
    }
}

/// The text after the last `####` marker (GSM8K's gold format), up to the end
/// of that line, trimmed. `None` when there is no marker or nothing follows it.
pub fn extract_hash_answer(text: &str) -> Option<String> {
    let i = text.rfind("####")?;
    let line = text[i + 4..].lines().next().unwrap_or("").trim();
    if line.is_empty() {
        None
    } else {
        Some(line.to_string())
    }
}

/// The last number in `text` (`-3`, `1,234.5`, `.5`, `3/4`), with thousands
/// separators removed. `None` when there is none.
pub fn extract_last_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut last: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()));
        if !starts {
            i += 1;
            continue;
        }
        let neg = i > 0 && chars[i - 1] == '-' && (i < 2 || !chars[i - 2].is_ascii_alphanumeric());
        let mut s = String::new();
        if neg {
            s.push('-');
        }
        let mut seen_dot = false;
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_digit() {
                s.push(c);
            } else if c == ',' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) && !seen_dot
            {
                // thousands separator: skip it
            } else if c == '.' && !seen_dot && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
            {
                seen_dot = true;
                s.push('.');
            } else if c == '/' && !seen_dot && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
            {
                s.push('/');
                seen_dot = true; // no decimals after a fraction bar
            } else {
                break;
            }
            i += 1;
        }
        last = Some(s);
    }
    last
}

/// Normalises a math answer string for comparison: removes `$`, `\$`,
/// `\left`/`\right`, thin spaces, `\text{…}` wrappers, degree marks, unit
/// words after a number, trailing full stops, thousands separators and all
/// whitespace; maps `\dfrac`/`\tfrac` to `\frac` and `\%` to `%`.
pub fn normalize_math(answer: &str) -> String {
    let mut s = answer.trim().to_string();
    // Unwrap \text{..}, \textbf{..}, \mathrm{..}, \mbox{..} keeping their content.
    for cmd in ["\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf"] {
        s = unwrap_command(&s, cmd);
    }
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", ""),
        ("\\$", ""),
        ("$", ""),
        ("\\%", "%"),
        ("^\\circ", ""),
        ("^{\\circ}", ""),
        ("°", ""),
        ("\\displaystyle", ""),
    ] {
        s = s.replace(from, to);
    }
    let s = s.trim().trim_end_matches('.').trim();
    let s = strip_units(s);
    let s = strip_thousands(&s);
    let mut out: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    // "x = 5" / "x=5" → "5" when the left side is a single identifier.
    if let Some((lhs, rhs)) = out.split_once('=')
        && !rhs.is_empty()
        && lhs.chars().all(|c| c.is_ascii_alphabetic())
        && lhs.chars().count() <= 2
        && !lhs.is_empty()
    {
        out = rhs.to_string();
    }
    out
}

/// Removes `cmd{` … `}` wrappers, keeping the content.
fn unwrap_command(s: &str, cmd: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(cmd) {
        let after = &rest[i + cmd.len()..];
        if let Some(inner) = after.strip_prefix('{') {
            let mut depth = 1usize;
            let mut end = None;
            for (j, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(j) = end {
                out.push_str(&rest[..i]);
                out.push(' ');
                out.push_str(&inner[..j]);
                rest = &inner[j + 1..];
                continue;
            }
        }
        out.push_str(&rest[..i + cmd.len()]);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Drops trailing unit words ("5 dollars", "12 cm", "3 apples") after a
/// leading number: when the text starts with a number followed by alphabetic
/// words only, the words are removed.
fn strip_units(s: &str) -> String {
    let s = s.trim();
    let num_end = s
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit() || c == '.' || c == ',' || c == '/' || (i == 0 && c == '-'))
        })
        .map_or(s.len(), |(i, _)| i);
    if num_end == 0 || num_end == s.len() {
        return s.to_string();
    }
    let tail = &s[num_end..];
    let tail_trim = tail.trim();
    let only_words = tail.starts_with(char::is_whitespace)
        && !tail_trim.is_empty()
        && tail_trim.chars().all(|c| {
            c.is_alphabetic() || c.is_whitespace() || c == '.' || c == '^' || c.is_ascii_digit()
        })
        && tail_trim.chars().next().is_some_and(char::is_alphabetic);
    if only_words {
        s[..num_end].to_string()
    } else {
        s.to_string()
    }
}

/// Removes thousands separators in digit groups (`1,234,567` → `1234567`)
/// but keeps commas between list items (`1, 2` or `12,34`).
fn strip_thousands(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ',' {
            let before = i >= 1 && chars[i - 1].is_ascii_digit();
            let three_after = chars.len() >= i + 4
                && chars[i + 1..i + 4].iter().all(char::is_ascii_digit)
                && chars.get(i + 4).is_none_or(|d| !d.is_ascii_digit());
            if before && three_after {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Whether two math answers are equivalent; see the module docs.
///
/// Both arguments are answers (not whole solutions): pass a solution through
/// [`extract_answer`] first. Comma-separated lists compare element-wise in
/// order.
pub fn math_equal(prediction: &str, gold: &str) -> bool {
    let p = normalize_math(prediction);
    let g = normalize_math(gold);
    if p.is_empty() || g.is_empty() {
        return false;
    }
    if p == g {
        return true;
    }
    let pl = split_top_level(&p);
    let gl = split_top_level(&g);
    if pl.len() > 1 || gl.len() > 1 {
        return pl.len() == gl.len() && pl.iter().zip(&gl).all(|(a, b)| scalar_equal(a, b));
    }
    scalar_equal(&p, &g)
}

/// Splits on commas outside of brackets; strips one pair of enclosing
/// parentheses or brackets around a list (`(1,2)` → `1`, `2`).
fn split_top_level(s: &str) -> Vec<String> {
    let inner =
        if (s.starts_with('(') && s.ends_with(')')) || (s.starts_with('[') && s.ends_with(']')) {
            if s.contains(',') {
                &s[1..s.len() - 1]
            } else {
                s
            }
        } else {
            s
        };
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in inner.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Compares two normalised single answers.
fn scalar_equal(p: &str, g: &str) -> bool {
    if p == g {
        return true;
    }
    let (pv, p_pct) = strip_percent(p);
    let (gv, g_pct) = strip_percent(g);
    if pv == gv {
        return true;
    }
    let (Some(a), Some(b)) = (evaluate(pv), evaluate(gv)) else {
        return false;
    };
    if a.equals(&b) {
        return true;
    }
    // One side written as a percentage: also accept the fraction form.
    let hundred = Value::Exact(Rational::from_int(100));
    if p_pct != g_pct {
        let (pct, plain) = if p_pct { (&a, &b) } else { (&b, &a) };
        if let Some(frac) = pct.div(&hundred)
            && frac.equals(plain)
        {
            return true;
        }
    }
    false
}

fn strip_percent(s: &str) -> (&str, bool) {
    match s.strip_suffix('%') {
        Some(v) => (v, true),
        None => (s, false),
    }
}

/// Evaluates an arithmetic expression (numbers, `+ - * / ^`, parentheses and
/// braces, `\frac{a}{b}`, `\sqrt{x}`, `\pi`, `\cdot`, `\times`, `\div`,
/// implicit multiplication). `None` when the text is not such an expression.
pub fn evaluate_arithmetic(expr: &str) -> Option<f64> {
    evaluate(&normalize_math(expr)).map(|v| v.to_f64())
}

fn evaluate(s: &str) -> Option<Value> {
    let tokens = tokenize(s)?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
    };
    let v = p.expr()?;
    if p.pos == tokens.len() { Some(v) } else { None }
}

/// Absolute tolerance of numeric comparison.
pub const NUMERIC_TOLERANCE: f64 = 1e-3;

/// An exact rational with i128 parts (denominator > 0, reduced).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.checked_abs().unwrap_or(i128::MAX);
    b = b.checked_abs().unwrap_or(i128::MAX);
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Self { num: n, den: d })
    }
    fn from_int(n: i128) -> Self {
        Self { num: n, den: 1 }
    }
    fn add(self, o: Self) -> Option<Self> {
        Self::new(
            self.num
                .checked_mul(o.den)?
                .checked_add(o.num.checked_mul(self.den)?)?,
            self.den.checked_mul(o.den)?,
        )
    }
    fn mul(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.num)?, self.den.checked_mul(o.den)?)
    }
    fn neg(self) -> Option<Self> {
        Some(Self {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }
    fn recip(self) -> Option<Self> {
        Self::new(self.den, self.num)
    }
    fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// Exact when possible, floating point otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Exact(Rational),
    Approx(f64),
}

impl Value {
    fn to_f64(self) -> f64 {
        match self {
            Value::Exact(r) => r.to_f64(),
            Value::Approx(x) => x,
        }
    }
    fn equals(&self, o: &Value) -> bool {
        match (self, o) {
            (Value::Exact(a), Value::Exact(b)) if a == b => true,
            _ => {
                let (a, b) = (self.to_f64(), o.to_f64());
                let diff = (a - b).abs();
                a.is_finite()
                    && b.is_finite()
                    && (diff <= NUMERIC_TOLERANCE || diff <= 1e-9 * a.abs().max(b.abs()))
            }
        }
    }
    fn bin(
        self,
        o: Value,
        exact: impl Fn(Rational, Rational) -> Option<Rational>,
        approx: impl Fn(f64, f64) -> f64,
    ) -> Option<Value> {
        if let (Value::Exact(a), Value::Exact(b)) = (self, o)
            && let Some(r) = exact(a, b)
        {
            return Some(Value::Exact(r));
        }
        let x = approx(self.to_f64(), o.to_f64());
        x.is_finite().then_some(Value::Approx(x))
    }
    fn add(self, o: Value) -> Option<Value> {
        self.bin(o, Rational::add, |a, b| a + b)
    }
    fn sub(self, o: Value) -> Option<Value> {
        self.add(o.neg()?)
    }
    fn mul(self, o: Value) -> Option<Value> {
        self.bin(o, Rational::mul, |a, b| a * b)
    }
    fn div(&self, o: &Value) -> Option<Value> {
        if o.to_f64() == 0.0 {
            return None;
        }
        self.bin(*o, |a, b| a.mul(b.recip()?), |a, b| a / b)
    }
    fn neg(self) -> Option<Value> {
        match self {
            Value::Exact(r) => r
                .neg()
                .map(Value::Exact)
                .or(Some(Value::Approx(-r.to_f64()))),
            Value::Approx(x) => Some(Value::Approx(-x)),
        }
    }
    fn pow(self, e: Value) -> Option<Value> {
        if let (Value::Exact(b), Value::Exact(ex)) = (self, e)
            && ex.den == 1
            && ex.num.abs() <= 256
        {
            let mut acc = Some(Rational::from_int(1));
            for _ in 0..ex.num.abs() {
                acc = acc.and_then(|a| a.mul(b));
            }
            let acc = if ex.num < 0 {
                acc.and_then(Rational::recip)
            } else {
                acc
            };
            if let Some(r) = acc {
                return Some(Value::Exact(r));
            }
        }
        let x = self.to_f64().powf(e.to_f64());
        x.is_finite().then_some(Value::Approx(x))
    }
    fn sqrt(self) -> Option<Value> {
        if let Value::Exact(r) = self
            && r.num >= 0
            && let (Some(n), Some(d)) = (isqrt(r.num), isqrt(r.den))
        {
            return Some(Value::Exact(Rational::new(n, d)?));
        }
        let x = self.to_f64();
        (x >= 0.0).then(|| Value::Approx(x.sqrt()))
    }
}

/// Exact integer square root, `None` when `n` is not a perfect square.
fn isqrt(n: i128) -> Option<i128> {
    if n < 0 {
        return None;
    }
    let mut r = (n as f64).sqrt() as i128;
    while r > 0 && r.checked_mul(r).is_none_or(|sq| sq > n) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|sq| sq <= n) {
        r += 1;
    }
    (r.checked_mul(r) == Some(n)).then_some(r)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Value),
    Op(char),
    Open,
    Close,
    Frac,
    Sqrt,
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // `\frac12`: the two arguments are single digits.
        if c.is_ascii_digit() && out.last() == Some(&Tok::Frac) {
            out.push(Tok::Num(Value::Exact(Rational::from_int(i128::from(
                c - b'0',
            )))));
            i += 1;
            if let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
                out.push(Tok::Num(Value::Exact(Rational::from_int(i128::from(
                    d - b'0',
                )))));
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || c == b'.' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(parse_decimal(&s[start..i])?));
            continue;
        }
        if c == b'\\' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            match &s[start..i] {
                "frac" => out.push(Tok::Frac),
                "sqrt" => out.push(Tok::Sqrt),
                "pi" => out.push(Tok::Num(Value::Approx(std::f64::consts::PI))),
                "cdot" | "times" => out.push(Tok::Op('*')),
                "div" => out.push(Tok::Op('/')),
                _ => return None,
            }
            continue;
        }
        match c {
            b'+' | b'-' | b'*' | b'/' | b'^' => out.push(Tok::Op(c as char)),
            b'(' | b'{' | b'[' => out.push(Tok::Open),
            b')' | b'}' | b']' => out.push(Tok::Close),
            _ => return None,
        }
        i += 1;
    }
    (!out.is_empty()).then_some(out)
}

fn parse_decimal(t: &str) -> Option<Value> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let exact = digits.parse::<i128>().ok().and_then(|n| {
        let den = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        Rational::new(n, den)
    });
    match exact {
        Some(r) => Some(Value::Exact(r)),
        None => t
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Value::Approx),
    }
}

struct Parser<'a> {
    tokens: &'a [Tok],
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }
    // expr := term (('+'|'-') term)*
    fn expr(&mut self) -> Option<Value> {
        self.enter()?;
        let mut v = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            let op = *op;
            self.pos += 1;
            let r = self.term()?;
            v = if op == '+' { v.add(r)? } else { v.sub(r)? };
        }
        self.depth -= 1;
        Some(v)
    }
    // term := unary (('*'|'/')? unary)*   (juxtaposition multiplies)
    fn term(&mut self) -> Option<Value> {
        let mut v = self.unary()?;
        loop {
            match self.peek() {
                Some(Tok::Op('*')) => {
                    self.pos += 1;
                    v = v.mul(self.unary()?)?;
                }
                Some(Tok::Op('/')) => {
                    self.pos += 1;
                    let d = self.unary()?;
                    v = v.div(&d)?;
                }
                Some(Tok::Num(_) | Tok::Open | Tok::Frac | Tok::Sqrt) => {
                    v = v.mul(self.power()?)?;
                }
                _ => return Some(v),
            }
        }
    }
    // unary := '-' unary | '+' unary | power
    fn unary(&mut self) -> Option<Value> {
        match self.peek() {
            Some(Tok::Op('-')) => {
                self.pos += 1;
                self.enter()?;
                let v = self.unary()?.neg();
                self.depth -= 1;
                v
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                self.enter()?;
                let v = self.unary();
                self.depth -= 1;
                v
            }
            _ => self.power(),
        }
    }
    // power := atom ('^' unary)?
    fn power(&mut self) -> Option<Value> {
        let base = self.atom()?;
        if let Some(Tok::Op('^')) = self.peek() {
            self.pos += 1;
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            return base.pow(e);
        }
        Some(base)
    }
    fn group(&mut self) -> Option<Value> {
        match self.peek()? {
            Tok::Open => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek()? != &Tok::Close {
                    return None;
                }
                self.pos += 1;
                Some(v)
            }
            // `\frac12` style: a single digit token acts as a group.
            Tok::Num(v) => {
                let v = *v;
                self.pos += 1;
                Some(v)
            }
            _ => None,
        }
    }
    fn atom(&mut self) -> Option<Value> {
        match self.peek()?.clone() {
            Tok::Num(v) => {
                self.pos += 1;
                Some(v)
            }
            Tok::Open => self.group(),
            Tok::Frac => {
                self.pos += 1;
                self.enter()?;
                let a = self.group()?;
                let b = self.group()?;
                self.depth -= 1;
                a.div(&b)
            }
            Tok::Sqrt => {
                self.pos += 1;
                self.enter()?;
                let a = self.group()?;
                self.depth -= 1;
                a.sqrt()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction() {
        assert_eq!(
            extract_boxed("so \\boxed{\\frac{1}{2}} done").as_deref(),
            Some("\\frac{1}{2}")
        );
        assert_eq!(
            extract_boxed("\\boxed{1} then \\boxed{{2}}").as_deref(),
            Some("{2}")
        );
        assert_eq!(extract_boxed("\\boxed 7$"), Some("7".into()));
        assert_eq!(extract_boxed("\\boxed{unclosed"), None);
        assert_eq!(
            extract_hash_answer("a\n#### 1,234\n").as_deref(),
            Some("1,234")
        );
        assert_eq!(
            extract_last_number("he paid $1,200.50 then -3 more").as_deref(),
            Some("-3")
        );
        assert_eq!(extract_last_number("ratio 3/4.").as_deref(), Some("3/4"));
        assert_eq!(extract_last_number("x-3").as_deref(), Some("3"));
        assert_eq!(extract_answer("no numbers"), None);
        assert_eq!(extract_answer("The answer is 42.").as_deref(), Some("42"));
    }

    #[test]
    fn equality() {
        for (a, b) in [
            ("42", "42.0"),
            ("1,000", "1000"),
            ("$18", "18"),
            ("18 dollars", "18"),
            ("\\frac{1}{2}", "0.5"),
            ("\\dfrac{3}{6}", "1/2"),
            ("\\frac12", "0.5"),
            ("50%", "0.5"),
            ("50\\%", "50"),
            ("\\sqrt{16}", "4"),
            ("2\\sqrt{2}", "\\sqrt{8}"),
            ("2^{10}", "1024"),
            ("\\pi", "3.1416"),
            ("2\\pi", "6.2832"),
            ("\\text{(B)}", "(B)"),
            ("x = 5", "5"),
            ("(1, 2)", "(1,2)"),
            ("90^\\circ", "90"),
            ("0.333", "0.3333"),
            ("-\\frac{2}{4}", "-0.5"),
            ("3 \\times 4", "12"),
        ] {
            assert!(math_equal(a, b), "{a} should equal {b}");
        }
        for (a, b) in [
            ("41", "42"),
            ("1/3", "0.3"),
            ("(1,2)", "(2,1)"),
            ("", ""),
            ("x+1", "x+2"),
            ("1000", "1001"),
        ] {
            assert!(!math_equal(a, b), "{a} should differ from {b}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing() {
        let s = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        // Too deep to evaluate: compared as strings only, so not equal.
        assert!(!math_equal(&s, "1"));
        assert_eq!(evaluate_arithmetic(&s), None);
        let f = "\\frac{".repeat(5000);
        assert_eq!(evaluate_arithmetic(&f), None);
    }
}
