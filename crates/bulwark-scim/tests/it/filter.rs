//! Filters: every example of RFC 7644 §3.4.2.2 parsed and evaluated, then the finer points of
//! the semantics and the errors.

use bulwark_scim::error::ScimType;
use bulwark_scim::filter::{Filter, parse};
use bulwark_scim::schema::Resource;
use serde_json::{Value, json};

use crate::{bjensen, cwilson, omalley, tour_guides};

fn matches(filter: &str, v: &Value) -> bool {
    parse(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(Resource::User, v)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
}

/// (filter, matches bjensen, matches omalley, matches cwilson).
const RFC_EXAMPLES: &[(&str, bool, bool, bool)] = &[
    (r#"userName eq "bjensen""#, true, false, false),
    (r#"name.familyName co "O'Malley""#, false, true, false),
    (r#"userName sw "J""#, false, true, false),
    (
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        false,
        true,
        false,
    ),
    (r#"title pr"#, true, false, false),
    (
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        false,
        true,
        false,
    ),
    (
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        true,
        true,
        false,
    ),
    (
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        false,
        false,
        true,
    ),
    (
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        true,
        false,
        true,
    ),
    (r#"title pr and userType eq "Employee""#, true, false, false),
    (r#"title pr or userType eq "Intern""#, true, true, false),
    (
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        true,
        false,
        false,
    ),
    (
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        true,
        false,
        false,
    ),
    (
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        false,
        false,
        true,
    ),
    (
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        true,
        false,
        false,
    ),
    (
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        true,
        false,
        false,
    ),
    (
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        true,
        true,
        true,
    ),
];

#[test]
fn rfc_7644_examples() {
    let users = [bjensen(), omalley(), cwilson()];
    for (filter, b, o, c) in RFC_EXAMPLES {
        for (user, want) in users.iter().zip([b, o, c]) {
            assert_eq!(
                matches(filter, user),
                *want,
                "{filter} on {}",
                user["userName"]
            );
        }
        let parsed = parse(filter).unwrap();
        assert_eq!(parse(&parsed.to_string()).unwrap(), parsed, "{filter}");
    }
}

#[test]
fn case_rules() {
    let b = bjensen();
    assert!(matches(r#"USERNAME EQ "BJENSEN""#, &b));
    assert!(matches(r#"name.GIVENNAME eq "barbara""#, &b));
    // id, externalId are case-exact.
    assert!(matches(
        r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
        &b
    ));
    assert!(!matches(
        r#"id eq "2819C223-7F76-453A-919D-413861904646""#,
        &b
    ));
    assert!(!matches(r#"externalId eq "BJENSEN-EXT""#, &b));
    assert!(matches(r#"externalId eq "bjensen-ext""#, &b));
}

#[test]
fn presence_and_null() {
    let b = bjensen();
    let o = omalley();
    assert!(matches("emails pr", &b));
    assert!(matches("name pr", &b));
    assert!(!matches("nickName pr", &b));
    assert!(matches("nickName eq null", &b));
    assert!(!matches("title eq null", &b));
    assert!(matches("title ne null", &b));
    assert!(!matches("title ne null", &o));
    let blank =
        json!({"userName": "x", "title": "", "emails": [], "name": {}, "roles": [{"value": null}]});
    for f in [
        "title pr",
        "emails pr",
        "name pr",
        "roles pr",
        "roles.value pr",
    ] {
        assert!(!matches(f, &blank), "{f}");
    }
    // `ne` holds for an absent attribute; orderings do not.
    assert!(matches(r#"title ne "Tour Guide""#, &o));
    assert!(!matches(r#"title gt "A""#, &o));
}

#[test]
fn multi_valued_and_value_paths() {
    let b = bjensen();
    assert!(matches(r#"emails eq "babs@jensen.org""#, &b));
    assert!(matches(r#"emails.type eq "home""#, &b));
    assert!(matches(r#"emails[type eq "home"]"#, &b));
    // The value path needs one email satisfying both; the separate comparisons do not.
    assert!(!matches(
        r#"emails[type eq "home" and value co "example.com"]"#,
        &b
    ));
    assert!(matches(
        r#"emails.type eq "home" and emails.value co "example.com""#,
        &b
    ));
    assert!(matches(r#"emails[not (type eq "work")]"#, &b));
    assert!(matches(r#"emails[primary eq true]"#, &b));
    assert!(matches(r#"emails.primary eq "TRUE""#, &b));
    assert!(matches(r#"emails[value ew ".ORG"]"#, &b));
}

#[test]
fn types() {
    let b = bjensen();
    let o = omalley();
    assert!(matches("active eq true", &b));
    assert!(matches(r#"active eq "false""#, &o));
    assert!(matches("active ne true", &o));
    // Date-times compare as instants, whatever their offset.
    assert!(matches(r#"meta.created eq "2011-05-13T04:42:35Z""#, &o));
    assert!(matches(
        r#"meta.lastModified eq "2011-05-13T04:42:35Z""#,
        &o
    ));
    assert!(matches(r#"meta.created sw "2010""#, &b));
    assert!(matches(r#"userName gt "a" and userName lt "C""#, &b));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        &b
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984"#,
        &b
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        &b
    ));
    assert!(!matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr"#,
        &o
    ));
}

#[test]
fn groups() {
    let g = tour_guides();
    let m = |f: &str| parse(f).unwrap().matches(Resource::Group, &g).unwrap();
    assert!(m(
        r#"members[value eq "902c246b-6245-4190-8e05-00816be7344a"]"#
    ));
    assert!(m(
        r#"members.value eq "2819c223-7f76-453a-919d-413861904646""#
    ));
    assert!(m(r#"members eq "2819c223-7f76-453a-919d-413861904646""#));
    assert!(!m(
        r#"members.value eq "2819C223-7F76-453A-919D-413861904646""#
    ));
    assert!(m(r#"displayName eq "tour guides""#));
    assert!(m("meta.lastModified gt \"2011-01-01T00:00:00Z\""));
    let e = parse("userName pr")
        .unwrap()
        .matches(Resource::Group, &g)
        .unwrap_err();
    assert!(e.detail.contains("unknown attribute `userName`"));
}

#[test]
fn semantic_errors_are_invalid_filter_whatever_the_data() {
    for (filter, says) in [
        ("nope eq 1", "unknown attribute `nope`"),
        ("name.nope pr", "unknown attribute `name.nope`"),
        ("urn:example:Other:userName eq \"x\"", "unknown attribute"),
        ("department eq \"x\"", "unknown attribute `department`"),
        ("active gt true", "is a boolean"),
        ("active co \"t\"", "is a boolean"),
        ("active eq 1", "is a boolean"),
        ("x509Certificates.value gt \"a\"", "is binary"),
        ("meta.lastModified gt \"yesterday\"", "RFC 3339"),
        ("name eq \"x\"", "is complex"),
        ("emails[nope eq \"x\"]", "not a sub-attribute of `emails`"),
        ("emails[emails.value eq \"x\"]", "not a sub-attribute"),
        ("userName[value eq \"x\"]", "not a complex attribute"),
    ] {
        for user in [bjensen(), json!({})] {
            let e = parse(filter)
                .unwrap()
                .matches(Resource::User, &user)
                .unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidFilter)),
                "{filter}"
            );
            assert!(e.detail.contains(says), "{filter}: {}", e.detail);
        }
    }
}

#[test]
fn hand_built_filters_are_checked_too() {
    let nested = Filter::ValuePath {
        path: bulwark_scim::AttrPath::simple("emails"),
        filter: Box::new(Filter::ValuePath {
            path: bulwark_scim::AttrPath::simple("type"),
            filter: Box::new(parse("value pr").unwrap()),
        }),
    };
    assert!(nested.matches(Resource::User, &bjensen()).is_err());
    let gt_null = Filter::Compare {
        path: bulwark_scim::AttrPath::simple("title"),
        op: bulwark_scim::CompareOp::Gt,
        value: Value::Null,
    };
    assert!(gt_null.matches(Resource::User, &bjensen()).is_err());
}
