//! The XLSForm/ODK expression subset used in `relevant`, `constraint` and `calculation`,
//! parsed once when a form loads and evaluated on the server with XPath 1.0 / JavaRosa
//! semantics. The AST serializes to JSON so pages can evaluate the same tree in the browser.

use chrono::NaiveDate;
use regex::Regex;
use serde::Serialize;
use std::sync::Arc;
use thiserror::Error;

/// Longest accepted expression; nesting deeper than `MAX_DEPTH` is refused, so hostile
/// input cannot exhaust the stack.
const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Error, Clone, PartialEq)]
#[error("{message} (at byte {offset})")]
pub struct ParseError {
    pub message: String,
    pub offset: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Func {
    Selected,
    CountSelected,
    If,
    Not,
    True,
    False,
    StringLength,
    Regex,
    Coalesce,
    Concat,
    Int,
    Round,
    Number,
    String,
    Boolean,
    Today,
    Date,
    Contains,
    StartsWith,
    EndsWith,
    Substr,
    Floor,
    Ceiling,
    Abs,
    Min,
    Max,
    Pow,
}

impl Func {
    fn lookup(name: &str) -> Option<(Func, usize, Option<usize>)> {
        use Func::*;
        // (function, fewest arguments, most arguments; None = any number)
        Some(match name {
            "selected" => (Selected, 2, Some(2)),
            "count-selected" => (CountSelected, 1, Some(1)),
            "if" => (If, 3, Some(3)),
            "not" => (Not, 1, Some(1)),
            "true" => (True, 0, Some(0)),
            "false" => (False, 0, Some(0)),
            "string-length" => (StringLength, 0, Some(1)),
            "regex" => (Regex, 2, Some(2)),
            "coalesce" => (Coalesce, 2, Some(2)),
            "concat" => (Concat, 0, None),
            "int" => (Int, 1, Some(1)),
            "round" => (Round, 1, Some(2)),
            "number" => (Number, 1, Some(1)),
            "string" => (String, 1, Some(1)),
            "boolean" => (Boolean, 1, Some(1)),
            "today" => (Today, 0, Some(0)),
            "date" => (Date, 1, Some(1)),
            "contains" => (Contains, 2, Some(2)),
            "starts-with" => (StartsWith, 2, Some(2)),
            "ends-with" => (EndsWith, 2, Some(2)),
            "substr" => (Substr, 2, Some(3)),
            "floor" => (Floor, 1, Some(1)),
            "ceiling" => (Ceiling, 1, Some(1)),
            "abs" => (Abs, 1, Some(1)),
            "min" => (Min, 1, None),
            "max" => (Max, 1, None),
            "pow" => (Pow, 2, Some(2)),
            _ => return None,
        })
    }
}

/// A node of the expression tree.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Node {
    Num {
        v: f64,
    },
    Str {
        v: String,
    },
    Ref {
        q: String,
    },
    Current,
    Neg {
        e: Box<Node>,
    },
    Bin {
        op: Op,
        l: Box<Node>,
        r: Box<Node>,
    },
    Call {
        f: Func,
        args: Vec<Node>,
        /// A literal `regex()` pattern, compiled once at parse time.
        #[serde(skip)]
        pattern: Option<Arc<Regex>>,
    },
}

/// A parsed expression.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Expr {
    root: Node,
}

/// What an expression reads: answers by question id, the current value, today's date.
pub trait Context {
    fn value(&self, question: &str) -> Value;
    fn current(&self) -> Value;
    fn today(&self) -> NaiveDate;
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An unanswered or irrelevant question: the empty string in XPath terms.
    Empty,
    Number(f64),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    Multi(Vec<String>),
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let day = s.get(..10)?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// XPath's number-to-string: integers without a fraction, NaN and Infinity by name.
fn number_text(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl Value {
    pub fn to_bool(&self) -> bool {
        match self {
            Value::Empty => false,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::Text(s) => !s.is_empty(),
            Value::Bool(b) => *b,
            Value::Date(_) => true,
            Value::Multi(items) => !items.is_empty(),
        }
    }

    pub fn to_number(&self) -> f64 {
        match self {
            Value::Empty => f64::NAN,
            Value::Number(n) => *n,
            Value::Text(s) => {
                let t = s.trim();
                // XPath numbers are plain decimals: no exponent, no "inf"/"nan" words.
                if !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
                {
                    t.parse().unwrap_or(f64::NAN)
                } else {
                    f64::NAN
                }
            }
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Date(d) => (*d - epoch()).num_days() as f64,
            Value::Multi(_) => Value::Text(self.to_text()).to_number(),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::Number(n) => number_text(*n),
            Value::Text(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Multi(items) => items.join(" "),
        }
    }

    /// As a date, for comparisons where the other side is a date.
    fn to_days(&self) -> f64 {
        match self {
            Value::Text(s) => {
                parse_date(s).map_or_else(|| self.to_number(), |d| (d - epoch()).num_days() as f64)
            }
            other => other.to_number(),
        }
    }

    fn items(&self) -> Vec<String> {
        match self {
            Value::Multi(items) => items.clone(),
            other => other
                .to_text()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        }
    }
}

// ---------------------------------------------------------------- tokens

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ref(String),
    Dot,
    Name(String),
    LParen,
    RParen,
    Comma,
    Op(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let err = |message: &str, offset: usize| ParseError {
        message: message.to_owned(),
        offset,
    };
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push((Tok::LParen, start)),
            b')' => out.push((Tok::RParen, start)),
            b',' => out.push((Tok::Comma, start)),
            b'+' | b'-' | b'*' | b'=' => out.push((
                Tok::Op(match c {
                    b'+' => "+",
                    b'-' => "-",
                    b'*' => "*",
                    _ => "=",
                }),
                start,
            )),
            b'!' | b'<' | b'>' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, eq) {
                    (b'!', true) => "!=",
                    (b'!', false) => return Err(err("`!` must be followed by `=`", start)),
                    (b'<', true) => "<=",
                    (b'<', false) => "<",
                    (_, true) => ">=",
                    _ => ">",
                };
                if eq {
                    i += 1;
                }
                out.push((Tok::Op(op), start));
            }
            b'\'' | b'"' => {
                let end = src[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| err("unterminated string", start))?;
                out.push((Tok::Str(src[i + 1..i + 1 + end].to_owned()), start));
                i += end + 1;
            }
            b'$' => {
                if bytes.get(i + 1) != Some(&b'{') {
                    return Err(err("expected `${name}`", start));
                }
                let end = src[i..]
                    .find('}')
                    .ok_or_else(|| err("unterminated `${`", start))?;
                let name = &src[i + 2..i + end];
                let valid = name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
                if !valid {
                    return Err(err("invalid question name in `${…}`", start));
                }
                out.push((Tok::Ref(name.to_owned()), start));
                i += end;
            }
            b'0'..=b'9' | b'.' => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                    j += 1;
                }
                let text = &src[i..j];
                if text == "." {
                    out.push((Tok::Dot, start));
                } else {
                    let n: f64 = text.parse().map_err(|_| err("invalid number", start))?;
                    out.push((Tok::Num(n), start));
                }
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric()
                        || bytes[j] == b'_'
                        || bytes[j] == b'-'
                        || bytes[j] == b':')
                {
                    j += 1;
                }
                // A trailing `-` belongs to a following operator (`x- 1` is not valid anyway).
                while j > i + 1 && bytes[j - 1] == b'-' {
                    j -= 1;
                }
                let name = &src[i..j];
                out.push((
                    match name {
                        "and" | "or" | "div" | "mod" => Tok::Op(match name {
                            "and" => "and",
                            "or" => "or",
                            "div" => "div",
                            _ => "mod",
                        }),
                        _ => Tok::Name(name.to_owned()),
                    },
                    start,
                ));
                i = j;
                continue;
            }
            _ => {
                let c = src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or_default();
                let hint = if matches!(c, '‘' | '’' | '“' | '”') {
                    " (a typographic quote: use ' or \")"
                } else {
                    ""
                };
                return Err(err(&format!("unexpected character `{c}`{hint}"), start));
            }
        }
        i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |(_, o)| *o)
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            offset: self.offset(),
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}")))
        }
    }

    /// Binary operators by precedence level, lowest first.
    const LEVELS: [&'static [(&'static str, Op)]; 5] = [
        &[("or", Op::Or)],
        &[("and", Op::And)],
        &[("=", Op::Eq), ("!=", Op::Ne)],
        &[("<", Op::Lt), ("<=", Op::Le), (">", Op::Gt), (">=", Op::Ge)],
        &[("+", Op::Add), ("-", Op::Sub)],
    ];

    fn binary(&mut self, level: usize) -> Result<Node, ParseError> {
        if level == Self::LEVELS.len() {
            return self.multiplicative();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(Tok::Op(sym)) = self.peek() {
            let Some(&(_, op)) = Self::LEVELS[level].iter().find(|(s, _)| s == sym) else {
                break;
            };
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = Node::Bin {
                op,
                l: Box::new(left),
                r: Box::new(right),
            };
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Node, ParseError> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(sym)) = self.peek() {
            let op = match *sym {
                "*" => Op::Mul,
                "div" => Op::Div,
                "mod" => Op::Mod,
                _ => break,
            };
            self.pos += 1;
            let right = self.unary()?;
            left = Node::Bin {
                op,
                l: Box::new(left),
                r: Box::new(right),
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        let node = if self.peek() == Some(&Tok::Op("-")) {
            self.pos += 1;
            Node::Neg {
                e: Box::new(self.unary()?),
            }
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(node)
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.err("unexpected end of expression"));
        };
        self.pos += 1;
        match tok {
            Tok::Num(v) => Ok(Node::Num { v }),
            Tok::Str(v) => Ok(Node::Str { v }),
            Tok::Ref(q) => Ok(Node::Ref { q }),
            Tok::Dot => Ok(Node::Current),
            Tok::LParen => {
                let inner = self.binary(0)?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Tok::Name(name) => {
                self.pos -= 1;
                let Some((f, min, max)) = Func::lookup(&name) else {
                    return Err(self.err(format!("unknown function `{name}`")));
                };
                self.pos += 1;
                self.expect(Tok::LParen, &format!("`(` after `{name}`"))?;
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        args.push(self.binary(0)?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(Tok::RParen, "`)`")?;
                if args.len() < min || max.is_some_and(|m| args.len() > m) {
                    return Err(self.err(format!("`{name}` takes a different number of arguments")));
                }
                let pattern = match (f, args.get(1)) {
                    (Func::Regex, Some(Node::Str { v })) => {
                        Some(Arc::new(compile_regex(v).ok_or_else(|| {
                            self.err(format!("invalid regular expression `{v}`"))
                        })?))
                    }
                    _ => None,
                };
                Ok(Node::Call { f, args, pattern })
            }
            Tok::RParen | Tok::Comma | Tok::Op(_) => {
                self.pos -= 1;
                Err(self.err("expected a value"))
            }
        }
    }
}

/// `regex()` matches the whole text, as JavaRosa's `Pattern.matches(re, str)` does. The
/// pattern is checked on its own first: wrapped, `a)|(b` would become valid.
fn compile_regex(pattern: &str) -> Option<Regex> {
    let build = |p: &str| regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok();
    build(pattern)?;
    build(&format!(r"\A(?:{pattern})\z"))
}

impl Expr {
    pub fn parse(src: &str) -> Result<Expr, ParseError> {
        if src.len() > MAX_LEN {
            return Err(ParseError {
                message: format!("expression longer than {MAX_LEN} bytes"),
                offset: MAX_LEN,
            });
        }
        let toks = tokenize(src)?;
        let mut parser = Parser {
            toks,
            pos: 0,
            depth: 0,
            len: src.len(),
        };
        let root = parser.binary(0)?;
        if parser.pos != parser.toks.len() {
            return Err(parser.err("unexpected text after the expression"));
        }
        Ok(Expr { root })
    }

    /// Every `${id}` named, once each, in order of appearance.
    pub fn references(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            match node {
                Node::Ref { q } if !out.contains(q) => out.push(q.clone()),
                Node::Neg { e } => walk(e, out),
                Node::Bin { l, r, .. } => {
                    walk(l, out);
                    walk(r, out);
                }
                Node::Call { args, .. } => args.iter().for_each(|a| walk(a, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Whether `.` (the current answer) appears.
    pub fn uses_current(&self) -> bool {
        fn walk(node: &Node) -> bool {
            match node {
                Node::Current => true,
                Node::Call {
                    f: Func::StringLength,
                    args,
                    ..
                } if args.is_empty() => true,
                Node::Neg { e } => walk(e),
                Node::Bin { l, r, .. } => walk(l) || walk(r),
                Node::Call { args, .. } => args.iter().any(walk),
                _ => false,
            }
        }
        walk(&self.root)
    }

    pub fn eval(&self, ctx: &dyn Context) -> Value {
        eval(&self.root, ctx)
    }

    /// The text literals an expression can result in, in order of appearance, when every
    /// result is one (`if(${age} < 30, 'young', 'older')`); `None` when some result is
    /// anything else.
    pub fn text_outcomes(&self) -> Option<Vec<String>> {
        fn walk(node: &Node, out: &mut Vec<String>) -> bool {
            match node {
                Node::Str { v } => {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                    true
                }
                Node::Call {
                    f: Func::If, args, ..
                } => args[1..].iter().all(|a| walk(a, out)),
                _ => false,
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out).then_some(out)
    }
}

fn compare(op: Op, l: &Value, r: &Value) -> bool {
    let is_date = matches!(l, Value::Date(_)) || matches!(r, Value::Date(_));
    match op {
        Op::Eq | Op::Ne => {
            let equal = if is_date {
                l.to_days() == r.to_days()
            } else if matches!(l, Value::Bool(_)) || matches!(r, Value::Bool(_)) {
                l.to_bool() == r.to_bool()
            } else if matches!(l, Value::Number(_)) || matches!(r, Value::Number(_)) {
                // JavaRosa (XPathEqExpr): equal within 1e-12, so 0.1 + 0.2 = 0.3.
                (l.to_number() - r.to_number()).abs() < 1e-12
            } else {
                l.to_text() == r.to_text()
            };
            // NaN is unequal to everything, so `!=` holds for it (XPath).
            if op == Op::Eq {
                equal
            } else {
                !equal
            }
        }
        _ => {
            let (a, b) = if is_date {
                (l.to_days(), r.to_days())
            } else {
                (l.to_number(), r.to_number())
            };
            match op {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                _ => a >= b,
            }
        }
    }
}

fn eval(node: &Node, ctx: &dyn Context) -> Value {
    match node {
        Node::Num { v } => Value::Number(*v),
        Node::Str { v } => Value::Text(v.clone()),
        Node::Ref { q } => ctx.value(q),
        Node::Current => ctx.current(),
        Node::Neg { e } => Value::Number(-eval(e, ctx).to_number()),
        Node::Bin { op: Op::Or, l, r } => {
            Value::Bool(eval(l, ctx).to_bool() || eval(r, ctx).to_bool())
        }
        Node::Bin { op: Op::And, l, r } => {
            Value::Bool(eval(l, ctx).to_bool() && eval(r, ctx).to_bool())
        }
        Node::Bin { op, l, r } => {
            let (a, b) = (eval(l, ctx), eval(r, ctx));
            match op {
                Op::Add => Value::Number(a.to_number() + b.to_number()),
                Op::Sub => Value::Number(a.to_number() - b.to_number()),
                Op::Mul => Value::Number(a.to_number() * b.to_number()),
                Op::Div => Value::Number(a.to_number() / b.to_number()),
                Op::Mod => Value::Number(a.to_number() % b.to_number()),
                _ => Value::Bool(compare(*op, &a, &b)),
            }
        }
        Node::Call { f, args, pattern } => call(*f, args, pattern.as_deref(), ctx),
    }
}

/// JavaRosa's `round(x, places)` (XPathFuncExpr.round): the decimal text of `x` (Java's
/// `Double.toString`, the shortest text that reads back as `x`) rounded half up for
/// x ≥ 0 and half down (towards zero) for x < 0, so round(-2.5) = -2 and
/// round(2.675, 2) = 2.68, although 2.675 is stored as 2.67499….
fn round(x: f64, places: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Java's `intValue()`: truncated, NaN gives 0.
    let places = places as i32;
    if !(-30..=30).contains(&places) {
        return f64::NAN;
    }
    let parse = |text: String| text.parse::<f64>().unwrap_or(f64::NAN);
    if places < 0 {
        // JavaRosa shifts the decimal point, adds 0.5 and truncates to a `long`.
        let scaled = parse(format!("{x}e{places}"));
        let whole = (scaled + 0.5) as i64 as f64;
        return parse(format!("{whole}e{}", -places));
    }
    let text = format!("{}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let places = places as usize;
    let Some(&next) = frac.as_bytes().get(places) else {
        return x + 0.0; // nothing to drop; `+ 0.0` turns -0 into 0, as BigDecimal does
    };
    let rest_nonzero = frac.bytes().skip(places + 1).any(|b| b != b'0');
    let up = next > b'5' || (next == b'5' && (x > 0.0 || rest_nonzero));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes().take(places)).collect();
    if up {
        let mut carry = true;
        for d in digits.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                carry = false;
                break;
            }
        }
        if carry {
            digits.insert(0, b'1');
        }
    }
    let sign = if x < 0.0 { "-" } else { "" };
    parse(format!(
        "{sign}{}e-{places}",
        String::from_utf8_lossy(&digits)
    )) + 0.0
}

fn call(f: Func, args: &[Node], pattern: Option<&Regex>, ctx: &dyn Context) -> Value {
    let arg = |i: usize| args.get(i).map_or(Value::Empty, |a| eval(a, ctx));
    let num = |i: usize| arg(i).to_number();
    let text = |i: usize| arg(i).to_text();
    match f {
        Func::Selected => {
            let (answer, wanted) = (arg(0), text(1));
            // A select_one value may contain spaces (pyxform allows it): the whole
            // answer counts too, as in JavaRosa's `(" " + a + " ").contains(" " + v + " ")`.
            let whole = !wanted.is_empty() && answer.to_text() == wanted;
            Value::Bool(whole || answer.items().contains(&wanted))
        }
        Func::CountSelected => Value::Number(arg(0).items().len() as f64),
        Func::If => {
            if arg(0).to_bool() {
                arg(1)
            } else {
                arg(2)
            }
        }
        Func::Not => Value::Bool(!arg(0).to_bool()),
        Func::True => Value::Bool(true),
        Func::False => Value::Bool(false),
        // Without an argument, the context node: the answer being checked (JavaRosa).
        Func::StringLength => {
            let subject = if args.is_empty() {
                ctx.current().to_text()
            } else {
                text(0)
            };
            Value::Number(subject.chars().count() as f64)
        }
        Func::Regex => {
            let subject = text(0);
            let matched = match pattern {
                Some(re) => re.is_match(&subject),
                None => compile_regex(&text(1)).is_some_and(|re| re.is_match(&subject)),
            };
            Value::Bool(matched)
        }
        Func::Coalesce => {
            let first = arg(0);
            // JavaRosa's isNull: the empty string or NaN.
            let null = matches!(first, Value::Number(n) if n.is_nan());
            if null || first.to_text().is_empty() {
                arg(1)
            } else {
                first
            }
        }
        Func::Concat => Value::Text((0..args.len()).map(text).collect()),
        Func::Int => Value::Number(num(0).trunc()),
        Func::Round => Value::Number(round(num(0), if args.len() > 1 { num(1) } else { 0.0 })),
        Func::Number => Value::Number(num(0)),
        Func::String => Value::Text(text(0)),
        Func::Boolean => Value::Bool(arg(0).to_bool()),
        Func::Today => Value::Date(ctx.today()),
        Func::Date => match arg(0) {
            Value::Date(d) => Value::Date(d),
            Value::Number(n) if n.is_finite() && n.abs() < 1e7 => {
                Value::Date(epoch() + chrono::Duration::days(n.trunc() as i64))
            }
            other => parse_date(&other.to_text()).map_or(Value::Empty, Value::Date),
        },
        Func::Contains => Value::Bool(text(0).contains(&text(1))),
        Func::StartsWith => Value::Bool(text(0).starts_with(&text(1))),
        Func::EndsWith => Value::Bool(text(0).ends_with(&text(1))),
        Func::Substr => {
            let chars: Vec<char> = text(0).chars().collect();
            let clamp = |x: f64| {
                if x.is_nan() {
                    0
                } else {
                    x.max(0.0).min(chars.len() as f64) as usize
                }
            };
            let start = clamp(num(1));
            let end = if args.len() > 2 {
                clamp(num(2))
            } else {
                chars.len()
            };
            Value::Text(
                chars
                    .get(start..end.max(start))
                    .map_or(String::new(), |s| s.iter().collect()),
            )
        }
        Func::Floor => Value::Number(num(0).floor()),
        Func::Ceiling => Value::Number(num(0).ceil()),
        Func::Abs => Value::Number(num(0).abs()),
        // JavaRosa skips arguments that are not numbers (an empty answer) and gives NaN
        // only when none is. (Its max() starts from Double.MIN_VALUE, the least positive
        // double, so max(-5, -3) is 4.9e-324 there: a bug not copied.)
        Func::Min | Func::Max => {
            let values: Vec<f64> = (0..args.len()).map(num).filter(|v| !v.is_nan()).collect();
            let result = if values.is_empty() {
                f64::NAN
            } else if f == Func::Min {
                values.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            };
            Value::Number(result)
        }
        Func::Pow => Value::Number(num(0).powf(num(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    struct Ctx {
        values: HashMap<String, Value>,
        current: Value,
    }

    impl Context for Ctx {
        fn value(&self, q: &str) -> Value {
            self.values.get(q).cloned().unwrap_or(Value::Empty)
        }
        fn current(&self) -> Value {
            self.current.clone()
        }
        fn today(&self) -> NaiveDate {
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default()
        }
    }

    fn ctx(pairs: &[(&str, Value)]) -> Ctx {
        Ctx {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            current: Value::Empty,
        }
    }

    fn eval_in(src: &str, c: &Ctx) -> Value {
        Expr::parse(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .eval(c)
    }

    fn truth(src: &str, c: &Ctx) -> bool {
        eval_in(src, c).to_bool()
    }

    #[test]
    fn empty_answers_compare_like_odk() {
        let c = ctx(&[]);
        assert!(!truth("${age} >= 18", &c));
        assert!(!truth("${age} < 18", &c));
        assert!(truth("${q} = ''", &c));
        assert!(truth("${age} != 5", &c), "NaN != 5");
        let c = ctx(&[("age", Value::Number(20.0)), ("q", Value::Text("x".into()))]);
        assert!(truth("${age} >= 18", &c));
        assert!(!truth("${q} = ''", &c));
        assert!(
            truth("${age} = '20'", &c),
            "numbers compare numerically with strings"
        );
    }

    #[test]
    fn precedence_and_arithmetic() {
        let c = ctx(&[]);
        assert_eq!(eval_in("1 + 2 * 3", &c), Value::Number(7.0));
        assert!(truth("1 + 2 * 3 = 7", &c));
        assert!(!truth("not(1 = 2 or 2 = 2)", &c));
        assert!(truth("1 = 1 and 2 > 1 or 1 = 0", &c));
        assert_eq!(eval_in("7 mod 3", &c), Value::Number(1.0));
        assert_eq!(eval_in("7 div 2", &c), Value::Number(3.5));
        assert_eq!(eval_in("-(2 - 5)", &c), Value::Number(3.0));
        assert_eq!(eval_in("1 div 0", &c), Value::Number(f64::INFINITY));
        assert!(eval_in("0 div 0", &c).to_number().is_nan());
    }

    #[test]
    fn selections() {
        let c = ctx(&[
            ("m", Value::Multi(vec!["a".into(), "b".into()])),
            ("t", Value::Text("a c".into())),
        ]);
        assert!(truth("selected(${m}, 'a')", &c));
        assert!(!truth("selected(${m}, 'c')", &c));
        assert!(truth("selected(${t}, 'c')", &c));
        assert_eq!(eval_in("count-selected(${m})", &c), Value::Number(2.0));
        assert_eq!(eval_in("count-selected(${none})", &c), Value::Number(0.0));
        let mut c = c;
        c.current = Value::Multi(vec!["none".into(), "x".into()]);
        assert!(!truth(
            "not(selected(., 'none') and count-selected(.) > 1)",
            &c
        ));
    }

    #[test]
    fn if_and_calculated_groups() {
        let src = "if(${age} < 30, 'young', if(${age} < 60, 'middle', 'older'))";
        assert_eq!(
            eval_in(src, &ctx(&[("age", Value::Number(29.0))])),
            Value::Text("young".into())
        );
        assert_eq!(
            eval_in(src, &ctx(&[("age", Value::Number(45.0))])),
            Value::Text("middle".into())
        );
        assert_eq!(
            eval_in(src, &ctx(&[("age", Value::Number(60.0))])),
            Value::Text("older".into())
        );
        assert_eq!(
            eval_in(src, &ctx(&[])),
            Value::Text("older".into()),
            "NaN < 30 is false"
        );
    }

    #[test]
    fn current_value_and_functions() {
        let mut c = ctx(&[]);
        c.current = Value::Number(42.0);
        assert!(truth(". >= 0 and . <= 120", &c));
        c.current = Value::Text("01234".into());
        assert!(truth("regex(., '^[0-9]{5}$')", &c));
        assert!(truth("string-length(.) = 5", &c));
        assert_eq!(eval_in("round(2.5)", &c), Value::Number(3.0));
        assert_eq!(eval_in("round(-2.5)", &c), Value::Number(-2.0));
        assert_eq!(eval_in("round(2.71828, 2)", &c), Value::Number(2.72));
        assert_eq!(eval_in("int(-3.7)", &c), Value::Number(-3.0));
        assert_eq!(
            eval_in("concat('a', 1, 'b')", &c),
            Value::Text("a1b".into())
        );
        assert_eq!(
            eval_in("coalesce(${x}, 'dflt')", &c),
            Value::Text("dflt".into())
        );
        assert_eq!(
            eval_in("substr('hello', 1, 3)", &c),
            Value::Text("el".into())
        );
        assert_eq!(eval_in("max(1, 5, 3)", &c), Value::Number(5.0));
        assert_eq!(eval_in("min(1, ${x})", &c), Value::Number(1.0));
        assert_eq!(eval_in("pow(2, 10)", &c), Value::Number(1024.0));
        assert!(truth(
            "starts-with('kyiv', 'ky') and ends-with('kyiv', 'iv') and contains('kyiv', 'yi')",
            &c
        ));
        assert_eq!(eval_in("3 * 1.5", &c).to_text(), "4.5");
        assert_eq!(eval_in("2 + 1", &c).to_text(), "3");
    }

    #[test]
    fn xlsform_functions_follow_odk() {
        let c = ctx(&[
            ("empty", Value::Empty),
            ("t", Value::Text("12.7".into())),
            ("m", Value::Multi(vec!["a".into(), "b".into()])),
        ]);
        // int() truncates toward zero, also for text; round() rounds the decimal text
        // half up, and half towards zero below zero (JavaRosa).
        assert_eq!(eval_in("int(${t})", &c), Value::Number(12.0));
        assert_eq!(eval_in("int(-12.7)", &c), Value::Number(-12.0));
        for (src, want) in [
            ("round(-1.25, 1)", -1.2),
            ("round(2.675, 2)", 2.68),
            ("round(1.005, 2)", 1.01),
            ("round(-2.5)", -2.0),
            ("round(-2.51)", -3.0),
            ("round(-2.6)", -3.0),
            ("round(0.5)", 1.0),
            ("round(9.995, 2)", 10.0),
            ("round(1234.5678, 2)", 1234.57),
            ("round(3, 2)", 3.0),
            ("round(33.33, -1)", 30.0),
            ("round(1250, -2)", 1300.0),
            ("round(12.7, 0.9)", 13.0),
        ] {
            assert_eq!(eval_in(src, &c), Value::Number(want), "{src}");
        }
        assert!(eval_in("round(1, 31)", &c).to_number().is_nan());
        assert!(eval_in("round(${empty})", &c).to_number().is_nan());
        assert_eq!(eval_in("round(-0.4)", &c).to_text(), "0");
        // XPath `mod` keeps the sign of the dividend; `div` is floating point.
        assert_eq!(eval_in("-7 mod 3", &c), Value::Number(-1.0));
        assert_eq!(eval_in("7 mod -3", &c), Value::Number(1.0));
        // An unanswered question is the empty string: falsy, length 0, no selections.
        assert!(!truth("${empty}", &c));
        assert!(truth("not(${empty})", &c));
        assert_eq!(eval_in("string-length(${empty})", &c), Value::Number(0.0));
        assert_eq!(eval_in("count-selected(${empty})", &c), Value::Number(0.0));
        assert!(!truth("selected(${empty}, '')", &c));
        let spaced = ctx(&[("one", Value::Text("public transport".into()))]);
        assert!(truth("selected(${one}, 'public transport')", &spaced));
        assert!(
            truth("selected(${one}, 'public')", &spaced),
            "as in JavaRosa"
        );
        assert!(!truth("selected(${one}, 'transport public')", &spaced));
        assert_eq!(
            eval_in("concat(${empty}, 'x', ${empty})", &c),
            Value::Text("x".into())
        );
        assert_eq!(
            eval_in("coalesce(${empty}, ${t})", &c),
            Value::Text("12.7".into())
        );
        assert_eq!(
            eval_in("if(${empty}, 'yes', 'no')", &c),
            Value::Text("no".into())
        );
        // string-length counts characters, not bytes.
        assert_eq!(eval_in("string-length('Київ')", &c), Value::Number(4.0));
        // regex() matches the whole text (JavaRosa: `Pattern.matches`), literal or not.
        assert!(!truth("regex('ab12', '[0-9]+')", &c));
        assert!(truth("regex('ab12', '[a-z]+[0-9]+')", &c));
        assert!(
            truth("regex('ab12', '^[a-z0-9]+$')", &c),
            "anchors still work"
        );
        assert!(
            truth("regex('ab', 'a|ab')", &c),
            "some alternative matches it all"
        );
        assert!(!truth(
            "regex(concat('ab', '12'), concat('[0-9]', '+'))",
            &c
        ));
        assert!(
            !truth("regex('a', concat('a)|(', 'b'))", &c),
            "invalid: no match"
        );
        assert!(truth(
            "selected(${m}, 'b') and count-selected(${m}) = 2",
            &c
        ));
        // `and`/`or` give booleans; comparisons of text with numbers are numeric.
        assert_eq!(eval_in("1 and 'x'", &c), Value::Bool(true));
        assert!(truth("${t} > 9", &c));
        assert!(truth("'10' > '9'", &c));
        assert!(Expr::parse("${a} = ’x’")
            .expect_err("typographic quote")
            .message
            .contains("typographic quote"));
    }

    /// The browser evaluates the same trees with form.js: run it under Node on the same
    /// answers and compare each result as text. Skipped where Node is not installed.
    fn assert_form_js_agrees(c: &Ctx, sources: &[&str]) {
        let json = |v: &Value| match v {
            Value::Empty => serde_json::Value::Null,
            Value::Number(n) => serde_json::json!(n),
            Value::Text(s) => serde_json::json!(s),
            Value::Bool(b) => serde_json::json!(b),
            Value::Date(d) => serde_json::json!({ "date": (*d - epoch()).num_days() }),
            Value::Multi(items) => serde_json::json!(items),
        };
        let trees: Vec<Expr> = sources
            .iter()
            .map(|src| Expr::parse(src).unwrap_or_else(|e| panic!("{src}: {e}")))
            .collect();
        let input = serde_json::json!({
            "trees": trees,
            "current": json(&c.current),
            "values": c.values.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>(),
        });
        let script = r#"
            const engine = require(process.argv[1]);
            const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
            const ctx = {
              current: input.current,
              value: (q) => (q in input.values ? input.values[q] : null),
            };
            console.log(JSON.stringify(input.trees.map((t) => engine.toText(engine.evaluate(t, ctx)))));
        "#;
        let child = std::process::Command::new("node")
            .args(["-e", script])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/web/static/form.js"
            ))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: node is not installed, form.js is not compared");
            return;
        };
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(input.to_string().as_bytes())
                .expect("write to node");
        }
        let out = child.wait_with_output().expect("node");
        assert!(
            out.status.success(),
            "node: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let browser: Vec<String> = serde_json::from_slice(&out.stdout).expect("node output");
        for (src, (tree, js)) in sources.iter().zip(trees.iter().zip(&browser)) {
            assert_eq!(
                &tree.eval(c).to_text(),
                js,
                "{src}: server and form.js differ"
            );
        }
    }

    #[test]
    fn form_js_agrees_with_the_server() {
        let mut c = ctx(&[
            ("empty", Value::Empty),
            ("t", Value::Text("12.7".into())),
            ("n", Value::Number(3.0)),
            ("m", Value::Multi(vec!["a".into(), "b".into()])),
            ("spaced", Value::Text("public transport".into())),
        ]);
        c.current = Value::Text("ab12".into());
        assert_form_js_agrees(
            &c,
            &[
                "regex(., '[0-9]+')",
                "regex(., '[a-z]+[0-9]+')",
                "regex(., '^[a-z0-9]+$')",
                "regex('ab', 'a|ab')",
                "regex(., concat('[0-9]', '+'))",
                "regex('a', concat('a)|(', 'b'))",
                "regex('Київ', '\\p{L}{4}')",
                "round(2.5)",
                "round(-2.5)",
                "round(-1.25, 1)",
                "round(2.675, 2)",
                "round(1.005, 2)",
                "round(-2.51)",
                "round(9.995, 2)",
                "round(0.0000001234, 9) * 1000000000",
                "round(33.33, -1)",
                "round(-35, -1)",
                "round(1250, -2)",
                "round(${t}, ${n} - 2.5)",
                "round(1, 31)",
                "round(${empty})",
                "round(-0.4)",
                "0.1 + 0.2 = 0.3",
                "0.1 + 0.2 != 0.3",
                "${t} = 12.7000000000001",
                "1 = 1.000000001",
                "${empty} = 0",
                "coalesce(number(${empty}), 7)",
                "coalesce(0 div 0, 'x')",
                "coalesce(${empty}, ${t})",
                "coalesce(0, 'x')",
                "min(${empty}, 4, 2)",
                "max(${empty}, 'a', 4, 2)",
                "max(-5, -3)",
                "min(${empty})",
                "string-length()",
                "string-length(${t})",
                "selected(${spaced}, 'public transport')",
                "selected(${spaced}, 'public')",
                "selected(${spaced}, 'transport public')",
                "selected(${m}, 'b')",
            ],
        );
    }

    #[test]
    fn javarosa_equality_coalesce_min_max_and_string_length() {
        let mut c = ctx(&[("empty", Value::Empty), ("two", Value::Text("2".into()))]);
        c.current = Value::Text("Київ".into());
        assert!(truth("0.1 + 0.2 = 0.3", &c), "doubles equal within 1e-12");
        assert!(!truth("0.1 + 0.2 != 0.3", &c));
        assert!(truth("${two} = 2.0000000000001", &c));
        assert!(!truth("1 = 1.000000001", &c));
        assert!(
            truth("0.1 + 0.2 > 0.3", &c),
            "< and > stay exact (XPathCmpExpr)"
        );
        assert!(!truth("${empty} = 0", &c), "NaN equals nothing");
        assert_eq!(
            eval_in("coalesce(number(${empty}), 7)", &c),
            Value::Number(7.0)
        );
        assert_eq!(
            eval_in("coalesce(0 div 0, 'x')", &c),
            Value::Text("x".into())
        );
        assert_eq!(eval_in("coalesce(0, 'x')", &c), Value::Number(0.0));
        assert_eq!(eval_in("min(${empty}, 4, 2)", &c), Value::Number(2.0));
        assert_eq!(eval_in("max(${empty}, 'a', 4, 2)", &c), Value::Number(4.0));
        assert_eq!(eval_in("max(-5, -3)", &c), Value::Number(-3.0));
        assert!(eval_in("max(${empty})", &c).to_number().is_nan());
        assert_eq!(eval_in("string-length()", &c), Value::Number(4.0));
        assert!(Expr::parse("string-length() > 3")
            .expect("parse")
            .uses_current());
        assert!(!Expr::parse("string-length('x')")
            .expect("parse")
            .uses_current());
    }

    #[test]
    fn dates_compare_as_days() {
        let c = ctx(&[(
            "d",
            Value::Date(NaiveDate::from_ymd_opt(2024, 3, 1).unwrap_or_default()),
        )]);
        assert!(truth("${d} < today()", &c));
        assert!(truth("${d} = '2024-03-01'", &c));
        assert!(truth("${d} > date('2024-02-28')", &c));
        assert!(truth("today() - ${d} > 365", &c));
        assert!(!truth("${missing} < today()", &c));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        for (src, needle) in [
            ("if(1, 2)", "number of arguments"),
            ("frobnicate(1)", "unknown function"),
            ("1 +", "unexpected end"),
            ("(1", "`)`"),
            ("'open", "unterminated string"),
            ("${a b}", "invalid question name"),
            ("1 ! 2", "`!`"),
            ("regex(., '(')", "invalid regular expression"),
            ("1 2", "unexpected text"),
        ] {
            let err = Expr::parse(src).expect_err(src);
            assert!(err.message.contains(needle), "{src}: {err}");
        }
        let deep = "(".repeat(200) + "1" + &")".repeat(200);
        assert!(Expr::parse(&deep).is_err());
        assert!(Expr::parse(&"1+".repeat(3000)).is_err());
    }

    #[test]
    fn references_and_current() {
        let e = Expr::parse("${a} + ${b} > ${a} and selected(., 'x')").expect("parse");
        assert_eq!(e.references(), vec!["a", "b"]);
        assert!(e.uses_current());
        assert!(!Expr::parse("${a}").expect("parse").uses_current());
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Empty),
            any::<f64>().prop_map(Value::Number),
            ".{0,8}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            (-100_000i64..100_000).prop_map(|d| Value::Date(epoch() + chrono::Duration::days(d))),
            prop::collection::vec("[a-z]{1,3}", 0..4).prop_map(Value::Multi),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(src in ".{0,80}") {
            let _ = Expr::parse(&src);
        }

        #[test]
        fn eval_never_panics(
            src in r"[-+*()=<>!., 0-9'a-z${}]{0,60}",
            a in any_value(), b in any_value(), cur in any_value(),
        ) {
            let built = format!("{src} + if(${{a}} > ${{b}}, substr(${{a}}, ., 3), round(., ${{b}}))");
            for candidate in [src.as_str(), built.as_str()] {
                if let Ok(e) = Expr::parse(candidate) {
                    let c = Ctx {
                        values: [("a".to_string(), a.clone()), ("b".to_string(), b.clone())].into_iter().collect(),
                        current: cur.clone(),
                    };
                    let _ = e.eval(&c).to_text();
                }
            }
        }
    }
}
