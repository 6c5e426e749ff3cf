//! The filter parser: a lexer (words, JSON strings, brackets) and a recursive-descent parser
//! with the precedence of RFC 7644 §3.4.2.2 (`not` and parentheses, then `and`, then `or`,
//! left-associative). Keywords and operators are case-insensitive; any run of whitespace
//! separates tokens. The input length, the nesting depth and the number of attribute
//! expressions are limited, so hostile input costs little and never overflows the stack.
//! Also parses PATCH paths (`emails[type eq "work"].value`, RFC 7644 §3.5.2).

use serde_json::Value;

use super::{AttrPath, CompareOp, Filter, MAX_COMPARISONS, MAX_DEPTH, MAX_LEN, is_name};
use crate::error::{ScimError, ScimType};

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(&'a str),
    Str(String),
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset in the input.
    at: usize,
}

fn error(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidFilter, detail)
}

fn lex(input: &str) -> Result<Vec<Token<'_>>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '(' => Tok::Open,
            ')' => Tok::Close,
            '[' => Tok::OpenBracket,
            ']' => Tok::CloseBracket,
            '"' => Tok::Str(string(input, at, &mut chars)?),
            _ => {
                let mut end = at + c.len_utf8();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || "()[]\"".contains(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                Tok::Word(input.get(at..end).unwrap_or_default())
            }
        };
        tokens.push(Token { tok, at });
    }
    Ok(tokens)
}

/// A JSON string starting at byte `start` (the opening quote), decoded.
fn string(
    input: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<String, ScimError> {
    let mut escaped = false;
    for (i, c) in chars.by_ref() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, '"') => {
                let raw = input.get(start..=i).unwrap_or_default();
                return serde_json::from_str(raw)
                    .map_err(|_| error(format!("invalid string at position {start}")));
            }
            _ => escaped = false,
        }
    }
    Err(error(format!("unterminated string at position {start}")))
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
    comparisons: usize,
    /// Inside `[…]`, where another `[` is not allowed.
    in_value_path: bool,
    end: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self, ScimError> {
        if input.len() > MAX_LEN {
            return Err(error(format!("the filter is longer than {MAX_LEN} bytes")));
        }
        Ok(Self {
            tokens: lex(input)?,
            pos: 0,
            depth: 0,
            comparisons: 0,
            in_value_path: false,
            end: input.len(),
        })
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.at)
    }

    fn next(&mut self) -> Option<Tok<'a>> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    /// An error about the token at the current position.
    fn unexpected(&self, wanted: &str) -> ScimError {
        let found = match self.tokens.get(self.pos).map(|t| &t.tok) {
            None => "the end of the filter".to_owned(),
            Some(Tok::Open) => "`(`".into(),
            Some(Tok::Close) => "`)`".into(),
            Some(Tok::OpenBracket) => "`[`".into(),
            Some(Tok::CloseBracket) => "`]`".into(),
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Str(_)) => "a string".into(),
        };
        error(format!(
            "expected {wanted} at position {}, found {found}",
            self.at()
        ))
    }

    fn expect(&mut self, tok: &Tok<'_>, wanted: &str) -> Result<(), ScimError> {
        if self.peek() != Some(tok) {
            return Err(self.unexpected(wanted));
        }
        self.pos += 1;
        Ok(())
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(format!(
                "the filter nests deeper than {MAX_DEPTH} levels at position {}",
                self.at()
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    /// `( filter )`, `not ( filter )` or an attribute expression.
    fn unary(&mut self) -> Result<Filter, ScimError> {
        let not = self.keyword("not")
            && matches!(
                self.tokens.get(self.pos + 1).map(|t| &t.tok),
                Some(Tok::Open)
            );
        if not {
            self.pos += 1;
        }
        if self.peek() == Some(&Tok::Open) {
            self.enter()?;
            self.pos += 1;
            let inner = self.or()?;
            self.expect(&Tok::Close, "`)`")?;
            self.depth -= 1;
            return Ok(if not {
                Filter::Not(Box::new(inner))
            } else {
                inner
            });
        }
        let Some(Tok::Word(word)) = self.peek().cloned() else {
            return Err(self.unexpected("an attribute path, `not` or `(`"));
        };
        let at = self.at();
        let path =
            AttrPath::parse(word).map_err(|e| error(format!("{} (position {at})", e.detail)))?;
        self.pos += 1;
        if self.peek() == Some(&Tok::OpenBracket) {
            return self.value_path(path);
        }
        self.attribute_expression(path)
    }

    fn value_path(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        if self.in_value_path {
            return Err(self.unexpected("no `[` inside `[…]`"));
        }
        if path.sub.is_some() {
            return Err(error(format!(
                "`{path}` names a sub-attribute; `[…]` follows a complex attribute (position {})",
                self.at()
            )));
        }
        self.enter()?;
        self.pos += 1;
        self.in_value_path = true;
        let inner = self.or()?;
        self.expect(&Tok::CloseBracket, "`]`")?;
        self.in_value_path = false;
        self.depth -= 1;
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(inner),
        })
    }

    fn attribute_expression(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(error(format!(
                "the filter has more than {MAX_COMPARISONS} comparisons"
            )));
        }
        if self.keyword("pr") {
            self.pos += 1;
            return Ok(Filter::Present(path));
        }
        let op = match self.peek() {
            Some(Tok::Word(w)) => CompareOp::from_name(w),
            _ => None,
        };
        let Some(op) = op else {
            return Err(self.unexpected(&format!(
                "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after `{path}`"
            )));
        };
        self.pos += 1;
        let value = self.comp_value()?;
        if value.is_null() && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(error(format!("`{op}` cannot compare with null (`{path}`)")));
        }
        Ok(Filter::Compare { path, op, value })
    }

    /// `false` / `null` / `true` / a JSON number / a JSON string.
    fn comp_value(&mut self) -> Result<Value, ScimError> {
        let value = match self.peek() {
            Some(Tok::Str(s)) => Some(Value::String(s.clone())),
            Some(Tok::Word(w)) => word_value(w),
            _ => None,
        };
        let value = value
            .ok_or_else(|| self.unexpected("a value (a string, a number, true, false or null)"))?;
        self.pos += 1;
        Ok(value)
    }

    fn finish(&self) -> Result<(), ScimError> {
        if self.pos < self.tokens.len() {
            return Err(self.unexpected("`and`, `or` or the end of the filter"));
        }
        Ok(())
    }
}

fn word_value(w: &str) -> Option<Value> {
    if w.eq_ignore_ascii_case("true") {
        Some(Value::Bool(true))
    } else if w.eq_ignore_ascii_case("false") {
        Some(Value::Bool(false))
    } else if w.eq_ignore_ascii_case("null") {
        Some(Value::Null)
    } else {
        number(w).map(Value::Number)
    }
}

/// A JSON number (RFC 8259 §6), read with correct rounding (serde_json's own float parsing is
/// best-effort, so a number it prints might not read back the same; `Display` must round-trip).
fn number(w: &str) -> Option<serde_json::Number> {
    if !is_json_number(w) {
        return None;
    }
    if !w.contains(['.', 'e', 'E']) {
        if let Ok(i) = w.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = w.parse::<u64>() {
            return Some(u.into());
        }
    }
    serde_json::Number::from_f64(w.parse::<f64>().ok()?)
}

/// `[ "-" ] int [ frac ] [ exp ]` with `int = "0" / digit1-9 *DIGIT`.
fn is_json_number(w: &str) -> bool {
    fn digits(s: &str) -> (&str, &str) {
        let n = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s.split_at(n)
    }
    let rest = w.strip_prefix('-').unwrap_or(w);
    let (int, mut rest) = digits(rest);
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return false;
    }
    if let Some(frac) = rest.strip_prefix('.') {
        let (d, r) = digits(frac);
        if d.is_empty() {
            return false;
        }
        rest = r;
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let (d, r) = digits(exp.strip_prefix(['+', '-']).unwrap_or(exp));
        if d.is_empty() {
            return false;
        }
        rest = r;
    }
    rest.is_empty()
}

/// Parses a filter (RFC 7644 §3.4.2.2).
///
/// # Errors
/// 400 `invalidFilter` saying what was expected where (a byte position), or which limit
/// ([`MAX_LEN`], [`MAX_DEPTH`], [`MAX_COMPARISONS`]) the filter exceeds.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    let mut p = Parser::new(input)?;
    if p.tokens.is_empty() {
        return Err(error("the filter is empty"));
    }
    let filter = p.or()?;
    p.finish()?;
    Ok(filter)
}

/// A PATCH path (RFC 7644 §3.5.2): `attrPath`, or `attrPath "[" valFilter "]"` with an
/// optional `"." subAttr` after the bracket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PatchPath {
    pub path: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`.
    pub sub: Option<String>,
}

/// Parses a PATCH path.
///
/// # Errors
/// 400 `invalidPath` when it is not a path.
pub(crate) fn parse_patch_path(input: &str) -> Result<PatchPath, ScimError> {
    patch_path(input).map_err(|e| e.retyped(ScimType::InvalidPath))
}

fn patch_path(input: &str) -> Result<PatchPath, ScimError> {
    let mut p = Parser::new(input)?;
    let Some(Tok::Word(word)) = p.next() else {
        return Err(error(format!("`{input}` is not an attribute path")));
    };
    let path = AttrPath::parse(word)?;
    let (mut filter, mut sub) = (None, None);
    if p.peek() == Some(&Tok::OpenBracket) {
        let Filter::ValuePath { path: _, filter: f } = p.value_path(path.clone())? else {
            return Err(error("not a value path"));
        };
        filter = Some(*f);
        if let Some(Tok::Word(w)) = p.peek() {
            let name = w.strip_prefix('.').filter(|s| is_name(s));
            let name = name.ok_or_else(|| p.unexpected("`.` and a sub-attribute"))?;
            sub = Some(name.to_owned());
            p.pos += 1;
        }
    }
    if p.pos < p.tokens.len() {
        return Err(p.unexpected("the end of the path"));
    }
    Ok(PatchPath { path, filter, sub })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmp(path: &str, op: CompareOp, value: Value) -> Filter {
        Filter::Compare {
            path: AttrPath::parse(path).unwrap(),
            op,
            value,
        }
    }

    fn pr(path: &str) -> Filter {
        Filter::Present(AttrPath::parse(path).unwrap())
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(
            parse("a pr or b pr and c pr").unwrap(),
            or(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(
            parse("a pr and b pr or c pr").unwrap(),
            or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and b pr and c pr").unwrap(),
            and(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr or b pr or c pr").unwrap(),
            or(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("(a pr or b pr) and c pr").unwrap(),
            and(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("not (a pr) and b pr").unwrap(),
            and(Filter::Not(Box::new(pr("a"))), pr("b"))
        );
        assert_eq!(
            parse("not(a pr or b pr)").unwrap(),
            Filter::Not(Box::new(or(pr("a"), pr("b"))))
        );
    }

    #[test]
    fn lenient_whitespace_and_case() {
        let want = and(cmp("userName", CompareOp::Eq, json!("x")), pr("title"));
        assert_eq!(
            parse("  userName\tEQ   \"x\"\n AND title PR ").unwrap(),
            want
        );
        assert_eq!(parse("((userName eq \"x\")) and (title pr)").unwrap(), want);
    }

    #[test]
    fn values() {
        assert_eq!(
            parse("a eq -1.5").unwrap(),
            cmp("a", CompareOp::Eq, json!(-1.5))
        );
        assert_eq!(
            parse("a eq 10").unwrap(),
            cmp("a", CompareOp::Eq, json!(10))
        );
        assert_eq!(
            parse("a eq False").unwrap(),
            cmp("a", CompareOp::Eq, json!(false))
        );
        assert_eq!(
            parse("a eq null").unwrap(),
            cmp("a", CompareOp::Eq, json!(null))
        );
        assert_eq!(
            parse(r#"a eq "\u00e9\n\"""#).unwrap(),
            cmp("a", CompareOp::Eq, json!("é\n\""))
        );
        assert_eq!(
            parse(r#"a eq "a]b)c""#).unwrap(),
            cmp("a", CompareOp::Eq, json!("a]b)c"))
        );
    }

    #[test]
    fn json_numbers_only() {
        for ok in [
            "0",
            "-0",
            "12",
            "-1.5",
            "1e5",
            "1E+5",
            "2.5e-3",
            "18446744073709551615",
            "123456789012345678901234567890",
        ] {
            assert!(number(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "-", "01", "+1", "1.", ".5", "1e", "1e+", "0x10", "1_000", "NaN", "inf", "1e400",
            "--1",
        ] {
            assert!(number(bad).is_none(), "{bad}");
        }
        assert_eq!(number("-7"), Some((-7).into()));
        assert_eq!(number("18446744073709551615"), Some(u64::MAX.into()));
    }

    #[test]
    fn malformed_filters_are_invalid_filter() {
        for bad in [
            "",
            "   ",
            "(userName eq \"x\"",
            "userName eq \"x\")",
            "userName eq",
            "userName",
            "userName eqq \"x\"",
            "userName eq \"x\" junk",
            "userName eq \"x\" and",
            "userName eq x",
            "userName eq \"unterminated",
            "userName eq \"bad \\q escape\"",
            "userName gt null",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"]]",
            "emails[types[value pr]]",
            "emails.value[type pr]",
            "not userName pr",
            "and pr pr",
            "1abc pr",
            "a eq 01",
            "a eq +1",
            "emails[type eq \"work\"].value eq \"x\"",
            "()",
            "userName eq \"x\" or or title pr",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidFilter)),
                "{bad:?}: {e}"
            );
        }
        let e = parse("userName xx \"x\"").unwrap_err();
        assert!(e.detail.contains("position 9"), "{}", e.detail);
    }

    #[test]
    fn limits() {
        let long = format!("userName eq \"{}\"", "x".repeat(MAX_LEN));
        assert!(
            parse(&long)
                .unwrap_err()
                .detail
                .contains("longer than 4096 bytes")
        );
        let deep = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&deep).is_ok());
        let deeper = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(
            parse(&deeper)
                .unwrap_err()
                .detail
                .contains("deeper than 32")
        );
        let nots = format!(
            "{}a pr{}",
            "not (".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&nots).unwrap_err().detail.contains("deeper"));
        let many = |n: usize| vec!["a pr"; n].join(" and ");
        assert!(parse(&many(MAX_COMPARISONS)).is_ok());
        assert!(
            parse(&many(MAX_COMPARISONS + 1))
                .unwrap_err()
                .detail
                .contains("more than 100 comparisons")
        );
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path("emails[type eq \"work\"].value").unwrap();
        assert_eq!(p.path, AttrPath::simple("emails"));
        assert_eq!(p.filter, Some(cmp("type", CompareOp::Eq, json!("work"))));
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse_patch_path("members[value eq \"2819c223\"]").unwrap();
        assert_eq!((p.filter.is_some(), p.sub), (true, None));
        let p =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap();
        assert_eq!(
            (p.path.name.as_str(), p.filter, p.sub),
            ("manager", None, None)
        );
        for bad in [
            "",
            "emails[",
            "emails[type eq \"work\"]value",
            "emails[type eq \"work\"].",
            "a b",
            "a[b pr].c.d",
            "(a)",
        ] {
            let e = parse_patch_path(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad:?}");
        }
    }
}
