//! Property tests of the filter parser: it never panics, and the canonical text of any filter
//! it accepts parses back to the same filter.

use bulwark_scim::filter::{AttrPath, CompareOp, Filter, MAX_LEN, parse};
use bulwark_scim::schema::Resource;
use proptest::prelude::*;
use serde_json::Value;

use crate::{bjensen, tour_guides};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_owned()),
        Just("emails".to_owned()),
        Just("and".to_owned()),
        Just("not".to_owned()),
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
    ]
}

fn path() -> impl Strategy<Value = AttrPath> {
    let uri = prop_oneof![
        3 => Just(None),
        1 => Just(Some("urn:ietf:params:scim:schemas:core:2.0:User".to_owned())),
        1 => Just(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned())),
    ];
    let sub = prop_oneof![2 => Just(None), 1 => name().prop_map(Some), 1 => Just(Some("$ref".to_owned()))];
    (uri, name(), sub).prop_map(|(uri, name, sub)| AttrPath { uri, name, sub })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    proptest::sample::select(CompareOp::ALL.to_vec())
}

fn comparison() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (path(), op(), value()).prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
        (path(), proptest::bool::ANY).prop_map(|(path, eq)| Filter::Compare {
            path,
            op: if eq { CompareOp::Eq } else { CompareOp::Ne },
            value: Value::Null,
        }),
        path().prop_map(Filter::Present),
    ]
}

/// Filters without value paths (what may go inside `[…]`).
fn plain() -> impl Strategy<Value = Filter> {
    comparison().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    let value_path = (name(), plain()).prop_map(|(name, f)| Filter::ValuePath {
        path: AttrPath::simple(name),
        filter: Box::new(f),
    });
    prop_oneof![3 => plain(), 1 => value_path].prop_recursive(2, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

/// Text that looks like a filter, to reach deeper into the parser than random strings.
fn filterish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just("not"),
        Just("and"),
        Just("or"),
        Just("pr"),
        Just("eq"),
        Just("GT"),
        Just("co"),
        Just("\"x\""),
        Just("\"a\\\"b\""),
        Just("1.5e3"),
        Just("true"),
        Just("null"),
        Just("userName"),
        Just("emails"),
        Just("emails.value"),
        Just("type"),
        Just("value"),
        Just("meta.lastModified"),
        Just("\"2011-05-13T04:42:34Z\""),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        Just(" "),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|t| t.join(" "))
}

fn check_round_trip(f: &Filter) {
    let text = f.to_string();
    if text.len() <= MAX_LEN {
        assert_eq!(parse(&text).as_ref(), Ok(f), "{text}");
    }
    for (resource, sample) in [
        (Resource::User, bjensen()),
        (Resource::Group, tour_guides()),
    ] {
        let _ = f.matches(resource, &sample);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_round_trips(input in any::<String>()) {
        if let Ok(f) = parse(&input) {
            check_round_trip(&f);
        }
    }

    #[test]
    fn filterish_input_round_trips(input in filterish()) {
        if let Ok(f) = parse(&input) {
            check_round_trip(&f);
        }
    }

    #[test]
    fn generated_filters_round_trip(f in filter()) {
        let text = f.to_string();
        prop_assume!(text.len() <= MAX_LEN);
        prop_assert_eq!(parse(&text), Ok(f.clone()), "{}", text);
        check_round_trip(&f);
    }
}
