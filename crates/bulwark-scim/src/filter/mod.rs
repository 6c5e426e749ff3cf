//! The SCIM filter language (RFC 7644 §3.4.2.2): the syntax tree, a parser with limits
//! ([`parse`]), a canonical text form (`Display`, which parses back to the same tree) and
//! evaluation against a resource ([`Filter::matches`]).

mod eval;
mod parse;

use std::fmt;

use serde_json::Value;

use crate::error::{ScimError, ScimType};
use crate::schema::Resource;

pub(crate) use eval::{check_in_element, element_matches};
pub use parse::parse;
pub(crate) use parse::parse_patch_path;

/// The longest filter accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// The deepest nesting of parentheses, `not (…)` and `[…]` accepted.
pub const MAX_DEPTH: usize = 32;
/// The most attribute expressions (comparisons and `pr`) in one filter.
pub const MAX_COMPARISONS: usize = 100;

/// An attribute path: `[URI ":"] name ["." sub]`, names as written (case kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN prefix, when the path has one.
    pub uri: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name.
    pub sub: Option<String>,
}

/// Whether `s` is an attribute name: `ALPHA *(ALPHA / DIGIT / "-" / "_")`, or `$ref`.
pub(crate) fn is_name(s: &str) -> bool {
    if s == "$ref" {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl AttrPath {
    /// A path without URN or sub-attribute.
    pub fn simple(name: impl Into<String>) -> Self {
        Self {
            uri: None,
            name: name.into(),
            sub: None,
        }
    }

    /// Parses `urn:…:User:name.sub`: everything before the last `:` is the URN (so the `2.0`
    /// inside a URN is not mistaken for a sub-attribute), then `name` and an optional `.sub`.
    ///
    /// # Errors
    /// 400 `invalidFilter` naming the path when it is not of that shape.
    pub fn parse(s: &str) -> Result<Self, ScimError> {
        let bad = || {
            ScimError::bad(
                ScimType::InvalidFilter,
                format!("`{s}` is not an attribute path"),
            )
        };
        let (uri, rest) = match s.rsplit_once(':') {
            Some((uri, rest)) if !uri.is_empty() => (Some(uri), rest),
            Some(_) => return Err(bad()),
            None => (None, s),
        };
        if uri.is_some_and(|u| u.chars().any(|c| c.is_whitespace() || "()[]\"".contains(c))) {
            return Err(bad());
        }
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if !is_name(name) || name == "$ref" || sub.is_some_and(|s| !is_name(s)) {
            return Err(bad());
        }
        Ok(Self {
            uri: uri.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator (RFC 7644 table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal to.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal to.
    Le,
}

impl CompareOp {
    /// All operators.
    pub const ALL: [Self; 9] = [
        Self::Eq,
        Self::Ne,
        Self::Co,
        Self::Sw,
        Self::Ew,
        Self::Gt,
        Self::Ge,
        Self::Lt,
        Self::Le,
    ];

    /// The operator as written in a filter (lowercase).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    /// The operator `s` names, in any case.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether this is an ordering (`gt`, `ge`, `lt`, `le`).
    pub const fn is_ordering(self) -> bool {
        matches!(self, Self::Gt | Self::Ge | Self::Lt | Self::Le)
    }

    /// Whether this is a substring operator (`co`, `sw`, `ew`).
    pub const fn is_substring(self) -> bool {
        matches!(self, Self::Co | Self::Sw | Self::Ew)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The value: a string, number, boolean or null.
        value: Value,
    },
    /// `path pr`.
    Present(AttrPath),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`.
    Not(Box<Filter>),
    /// `path[filter]`: one value of a complex attribute satisfies the whole inner filter.
    ValuePath {
        /// The complex attribute.
        path: AttrPath,
        /// The filter on its sub-attributes.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// Whether `value`, a `resource`, matches: names case-insensitive, strings compared
    /// case-insensitively unless the attribute is case-exact, a multi-valued attribute
    /// matching when any of its values does (RFC 7644 §3.4.2.2).
    ///
    /// # Errors
    /// 400 `invalidFilter` for an attribute the schema does not know, an ordering on a boolean
    /// or binary attribute, a substring operator on a non-string one, or a value of the wrong
    /// type; whatever `value` holds.
    pub fn matches(&self, resource: Resource, value: &Value) -> Result<bool, ScimError> {
        eval::check(self, resource)?;
        Ok(eval::eval(self, resource, value))
    }

    /// The comparison this filter is, when it is a single one (for a store to answer with a
    /// query). The caller decides which attributes it can answer.
    pub fn as_simple(&self) -> Option<(&AttrPath, CompareOp, &Value)> {
        match self {
            Self::Compare { path, op, value } => Some((path, *op, value)),
            _ => None,
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parenthesize: bool) -> fmt::Result {
        if parenthesize {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// The canonical text: single spaces, lowercase keywords, JSON values, parentheses only where
/// the tree needs them. `parse(&f.to_string()) == Ok(f)` for every parsed filter `f` (when the
/// text stays within [`MAX_LEN`]; numbers may be written longer).
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Self::Present(path) => write!(f, "{path} pr"),
            Self::And(a, b) => {
                a.fmt_operand(f, matches!(**a, Self::Or(..)))?;
                f.write_str(" and ")?;
                b.fmt_operand(f, matches!(**b, Self::Or(..) | Self::And(..)))
            }
            Self::Or(a, b) => {
                a.fmt_operand(f, false)?;
                f.write_str(" or ")?;
                b.fmt_operand(f, matches!(**b, Self::Or(..)))
            }
            Self::Not(inner) => write!(f, "not ({inner})"),
            Self::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_paths() {
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.uri.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
        let p = AttrPath::parse("name.givenName").unwrap();
        assert_eq!(
            p,
            AttrPath {
                uri: None,
                name: "name".into(),
                sub: Some("givenName".into())
            }
        );
        assert_eq!(
            AttrPath::parse("members.$ref").unwrap().sub.as_deref(),
            Some("$ref")
        );
        for bad in [
            "", "1abc", "a.b.c", ":a", "a b", "a.", ".a", "$ref", "urn:x:", "a-.b$",
        ] {
            let e = AttrPath::parse(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
        }
    }

    #[test]
    fn operators_in_any_case() {
        for op in CompareOp::ALL {
            assert_eq!(CompareOp::from_name(&op.as_str().to_uppercase()), Some(op));
        }
        assert_eq!(CompareOp::from_name("eqq"), None);
    }

    #[test]
    fn display_adds_only_the_parentheses_needed() {
        for (input, canonical) in [
            ("a pr AND b pr OR c pr", "a pr and b pr or c pr"),
            ("a pr and (b pr or c pr)", "a pr and (b pr or c pr)"),
            ("(a pr and b pr) and c pr", "a pr and b pr and c pr"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("(a pr or b pr) or c pr", "a pr or b pr or c pr"),
            ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
            ("NOT(a eq \"x\\\"y\")", "not (a eq \"x\\\"y\")"),
            ("emails[type EQ \"work\"]", "emails[type eq \"work\"]"),
            ("a Gt 1.5e1", "a gt 15.0"),
            ("a eq TRUE", "a eq true"),
        ] {
            let f = parse(input).unwrap();
            assert_eq!(f.to_string(), canonical, "{input}");
            assert_eq!(parse(canonical).unwrap(), f, "{canonical}");
        }
    }

    #[test]
    fn as_simple_is_one_comparison() {
        let f = parse("emails.value eq \"a@b\"").unwrap();
        let (path, op, value) = f.as_simple().unwrap();
        assert_eq!(
            (path.to_string(), op, value),
            ("emails.value".into(), CompareOp::Eq, &Value::from("a@b"))
        );
        assert!(parse("a pr").unwrap().as_simple().is_none());
        assert!(parse("a eq 1 and b eq 2").unwrap().as_simple().is_none());
    }
}
