//! PATCH: the examples of RFC 7644 §3.5.2, the requests Microsoft Entra ID and Okta send
//! (from their SCIM documentation), atomicity, errors, and a 10,000-member change.

use bulwark_scim::error::{ScimError, ScimType};
use bulwark_scim::patch::{Op, PatchRequest, apply};
use bulwark_scim::schema::{ENTERPRISE_USER, GROUP, Resource, USER};
use serde_json::{Value, json};

use crate::{bjensen, tour_guides};

const BJENSEN: &str = "2819c223-7f76-453a-919d-413861904646";
const MANDY: &str = "902c246b-6245-4190-8e05-00816be7344a";

fn request(ops: Value) -> PatchRequest {
    serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": ops,
    }))
    .unwrap()
}

fn patch(
    resource: Resource,
    target: &Value,
    ops: Value,
) -> Result<(Value, Vec<String>), ScimError> {
    let mut t = target.clone();
    let changed = apply(resource, &mut t, &request(ops))?;
    Ok((t, changed))
}

fn user(ops: Value) -> (Value, Vec<String>) {
    patch(Resource::User, &bjensen(), ops).unwrap_or_else(|e| panic!("{e}"))
}

fn group(ops: Value) -> (Value, Vec<String>) {
    patch(Resource::Group, &tour_guides(), ops).unwrap_or_else(|e| panic!("{e}"))
}

fn error(resource: Resource, target: &Value, ops: Value) -> ScimError {
    let mut t = target.clone();
    let e = apply(resource, &mut t, &request(ops)).unwrap_err();
    assert_eq!(&t, target, "the target is left as it was");
    e
}

fn member_ids(g: &Value) -> Vec<&str> {
    g["members"]
        .as_array()
        .map(|m| m.iter().map(|m| m["value"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn request_bodies() {
    let r: PatchRequest = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "operations": [{"op": "ADD", "path": "title", "value": "x"}, {"op": "Remove", "path": "title", "value": null}]
    }))
    .unwrap();
    assert_eq!(r.operations.len(), 2);
    assert_eq!(r.operations[1].value, None);
    assert_eq!(Op::parse("ADD").unwrap(), Op::Add);
    assert_eq!(Op::parse("Replace").unwrap(), Op::Replace);
    assert_eq!(Op::parse("remove").unwrap(), Op::Remove);
    assert_eq!(
        Op::parse("move").unwrap_err().scim_type,
        Some(ScimType::InvalidSyntax)
    );
}

// RFC 7644 §3.5.2.1: add.

#[test]
fn rfc_add_member() {
    let (g, changed) = group(json!([{
        "op": "add",
        "path": "members",
        "value": [{
            "display": "Babs Jensen",
            "$ref": "https://example.com/v2/Users/2819c223...",
            "value": "2819c223-7f76-453a-9999-413861904646"
        }]
    }]));
    assert_eq!(
        member_ids(&g),
        [BJENSEN, MANDY, "2819c223-7f76-453a-9999-413861904646"]
    );
    assert_eq!(changed, ["members"]);
    // Adding a member already there changes nothing.
    let (g, changed) = group(
        json!([{"op": "add", "path": "members", "value": [{"value": MANDY.to_uppercase()}]}]),
    );
    assert_eq!(member_ids(&g), [BJENSEN, MANDY]);
    assert!(changed.is_empty());
}

#[test]
fn rfc_add_without_path() {
    let (u, changed) = user(json!([{
        "op": "add",
        "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "b@new.example", "type": "other"}], "nickname": "Babs"}
    }]));
    assert_eq!(u["nickName"], "Babs");
    let emails: Vec<&str> = u["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["bjensen@example.com", "babs@jensen.org", "b@new.example"]
    );
    assert_eq!(changed, ["nickName", "emails"]);
}

#[test]
fn add_sets_single_values_and_sub_attributes() {
    let (u, changed) = user(json!([
        {"op": "add", "path": "title", "value": "Lead Guide"},
        {"op": "add", "path": "name.middleName", "value": "Jane"},
        {"op": "add", "path": "name", "value": {"honorificPrefix": "Ms."}},
        {"op": "add", "path": "emails", "value": {"value": "p@example.com", "primary": true}}
    ]));
    assert_eq!(u["title"], "Lead Guide");
    assert_eq!(u["name"]["middleName"], "Jane");
    assert_eq!(u["name"]["givenName"], "Barbara");
    assert_eq!(u["name"]["honorificPrefix"], "Ms.");
    assert_eq!(
        u["emails"][0]["primary"], false,
        "a new primary email demotes the old one"
    );
    assert_eq!(u["emails"][2]["primary"], true);
    assert_eq!(changed, ["name", "title", "emails"]);
}

// RFC 7644 §3.5.2.2: remove.

#[test]
fn rfc_remove_all_members() {
    let (g, changed) = group(json!([{"op": "remove", "path": "members"}]));
    assert!(g.get("members").is_none());
    assert_eq!(changed, ["members"]);
}

#[test]
fn rfc_remove_one_member() {
    let (g, _) =
        group(json!([{"op": "remove", "path": format!("members[value eq \"{BJENSEN}\"]")}]));
    assert_eq!(member_ids(&g), [MANDY]);
}

#[test]
fn rfc_remove_all_then_add() {
    let (g, _) = group(json!([
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [
            {"display": "James Smith", "$ref": "https://example.com/v2/Users/08e1d05d...", "value": "08e1d05d-121c-4561-8b96-473d93df9210"}
        ]}
    ]));
    assert_eq!(member_ids(&g), ["08e1d05d-121c-4561-8b96-473d93df9210"]);
}

#[test]
fn rfc_remove_filtered_values() {
    let (u, _) = user(
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
    );
    assert_eq!(
        u["emails"],
        json!([{"value": "babs@jensen.org", "type": "home"}])
    );
    let mut with_cert = bjensen();
    with_cert["x509Certificates"] =
        json!([{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}]);
    let (u, changed) = patch(Resource::User, &with_cert, json!([{
        "op": "remove",
        "path": "x509Certificates[value eq \"MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx\"]"
    }]))
    .unwrap();
    assert!(u.get("x509Certificates").is_none());
    assert_eq!(changed, ["x509Certificates"]);
    // Sub-attributes: of the matching values, of a complex attribute.
    let (u, _) = user(json!([
        {"op": "remove", "path": "emails[type eq \"work\"].primary"},
        {"op": "remove", "path": "name.formatted"}
    ]));
    assert_eq!(
        u["emails"][0],
        json!({"value": "bjensen@example.com", "type": "work"})
    );
    assert!(u["name"].get("formatted").is_none());
}

// RFC 7644 §3.5.2.3: replace.

#[test]
fn rfc_replace_members() {
    let (g, changed) = group(json!([{
        "op": "replace",
        "path": "members",
        "value": [
            {"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223...", "value": BJENSEN},
            {"display": "James Smith", "$ref": "https://example.com/v2/Users/08e1d05d...", "value": "08e1d05d-121c-4561-8b96-473d93df9210"}
        ]
    }]));
    assert_eq!(
        member_ids(&g),
        [BJENSEN, "08e1d05d-121c-4561-8b96-473d93df9210"]
    );
    assert_eq!(changed, ["members"]);
}

#[test]
fn rfc_replace_work_address() {
    let mut b = bjensen();
    b["addresses"] = json!([{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"}, {"type": "home", "locality": "Burbank"}]);
    let (u, _) = patch(
        Resource::User,
        &b,
        json!([{
            "op": "replace",
            "path": "addresses[type eq \"work\"]",
            "value": {
                "type": "work",
                "streetAddress": "911 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US",
                "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
                "primary": true
            }
        }]),
    )
    .unwrap();
    assert_eq!(
        u["addresses"][0]["streetAddress"],
        "911 Universal City Plaza"
    );
    assert_eq!(u["addresses"][0]["primary"], true);
    assert_eq!(
        u["addresses"][1],
        json!({"type": "home", "locality": "Burbank"})
    );
    let (u, _) = patch(Resource::User, &b, json!([{
        "op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"
    }]))
    .unwrap();
    assert_eq!(
        u["addresses"][0],
        json!({"type": "work", "streetAddress": "1010 Broadway Ave", "locality": "Hollywood"})
    );
}

#[test]
fn rfc_replace_without_path() {
    let (u, changed) = user(json!([{
        "op": "replace",
        "value": {
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
            "nickname": "Babs"
        }
    }]));
    assert_eq!(u["emails"], bjensen()["emails"]);
    assert_eq!(u["nickName"], "Babs");
    assert_eq!(changed, ["nickName"]);
}

// Microsoft Entra ID (learn.microsoft.com, "Tutorial: Develop and plan provisioning for a SCIM
// endpoint", request/response examples).

#[test]
fn entra_string_boolean() {
    let (u, changed) = user(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(u["active"], false);
    assert_eq!(changed, ["active"]);
}

#[test]
fn entra_add_and_remove_members_by_value() {
    let (g, _) = group(json!([{"op": "Add", "path": "members", "value": [{"value": "7f4ed5d8"}]}]));
    assert_eq!(member_ids(&g), [BJENSEN, MANDY, "7f4ed5d8"]);
    let (g, changed) =
        group(json!([{"op": "Remove", "path": "members", "value": [{"value": MANDY}]}]));
    assert_eq!(member_ids(&g), [BJENSEN]);
    assert_eq!(changed, ["members"]);
    // Removing someone who is not a member is not an error.
    let (g, changed) =
        group(json!([{"op": "Remove", "path": "members", "value": [{"value": "nobody"}]}]));
    assert_eq!(member_ids(&g), [BJENSEN, MANDY]);
    assert!(changed.is_empty());
    let (g, _) = group(json!([{"op": "Remove", "path": "members[value eq \"nobody\"]"}]));
    assert_eq!(member_ids(&g), [BJENSEN, MANDY]);
}

#[test]
fn entra_replace_work_email_creates_it_when_missing() {
    let (u, _) = user(
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"}]),
    );
    assert_eq!(u["emails"][0]["value"], "new@example.com");
    assert_eq!(u["emails"][0]["type"], "work");
    // A stored user without an email is not valid any more (emails are required), so the state
    // before is not normalised for the comparison: leave out what normalising would drop.
    let mut no_email = bjensen();
    no_email.as_object_mut().unwrap().remove("emails");
    if let Some(manager) = no_email
        .pointer_mut("/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/manager")
        .and_then(Value::as_object_mut)
    {
        manager.remove("displayName");
    }
    let (u, changed) = patch(Resource::User, &no_email, json!([
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@example.com"},
        {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
        {"op": "Add", "path": "emails[type eq \"work\"].primary", "value": "True"}
    ]))
    .unwrap();
    assert_eq!(
        u["emails"],
        json!([{"type": "work", "value": "w@example.com", "primary": true}])
    );
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    assert_eq!(changed, ["emails", "phoneNumbers"]);
}

#[test]
fn entra_enterprise_attributes() {
    let (u, changed) = user(json!([
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "a1b2c3"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", "value": "4130"}
    ]));
    let ext = &u[ENTERPRISE_USER];
    assert_eq!(ext["manager"], json!({"value": "a1b2c3"}));
    assert_eq!(ext["department"], "Sales");
    assert_eq!(ext["costCenter"], "4130");
    assert_eq!(
        changed,
        [
            format!("{ENTERPRISE_USER}:costCenter"),
            format!("{ENTERPRISE_USER}:department"),
            format!("{ENTERPRISE_USER}:manager"),
        ]
    );
    let (u, _) = user(
        json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
    );
    assert!(u[ENTERPRISE_USER].get("manager").is_none());
    let (u, _) = user(json!([{"op": "Remove", "path": ENTERPRISE_USER}]));
    assert!(u.get(ENTERPRISE_USER).is_none());
    assert_eq!(u["schemas"], json!([USER]));
}

#[test]
fn entra_paths_as_keys_without_path() {
    let (u, changed) = user(json!([{
        "op": "Replace",
        "value": {
            "name.givenName": "Babs",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
            "emails[type eq \"work\"].value": "babs@example.com",
            "displayName": null,
            "id": "forged",
            "unknown": 1
        }
    }]));
    assert_eq!(u["name"]["givenName"], "Babs");
    assert_eq!(u[ENTERPRISE_USER]["department"], "Sales");
    assert_eq!(u["emails"][0]["value"], "babs@example.com");
    assert!(u.get("displayName").is_none());
    assert_eq!(
        changed,
        [
            "name",
            "displayName",
            "emails",
            format!("{ENTERPRISE_USER}:department").as_str()
        ]
    );
}

// Okta ("SCIM 2.0 protocol reference", developer.okta.com).

#[test]
fn okta_deactivate() {
    let (u, changed) = user(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(u["active"], false);
    assert_eq!(changed, ["active"]);
}

#[test]
fn okta_group_rename_and_members() {
    let (g, changed) = group(
        json!([{"op": "replace", "value": {"id": "e9e30dba-f08f-4109-8486-d5c6a331660a", "displayName": "Guides"}}]),
    );
    assert_eq!(g["displayName"], "Guides");
    assert_eq!(changed, ["displayName"]);
    let (g, _) = group(json!([{"op": "remove", "path": format!("members[value eq \"{MANDY}\"]")}]));
    assert_eq!(member_ids(&g), [BJENSEN]);
    let (g, _) = group(
        json!([{"op": "replace", "path": "members", "value": [{"value": "u1", "display": "One"}, {"value": "u2"}]}]),
    );
    assert_eq!(member_ids(&g), ["u1", "u2"]);
    assert_eq!(g["schemas"], json!([GROUP]));
    let (g, _) = group(
        json!([{"op": "add", "path": "members", "value": [{"value": "u3", "display": "Three"}]}]),
    );
    assert_eq!(member_ids(&g), [BJENSEN, MANDY, "u3"]);
}

#[test]
fn all_or_nothing() {
    let e = error(
        Resource::User,
        &bjensen(),
        json!([
            {"op": "replace", "path": "title", "value": "Changed"},
            {"op": "replace", "path": "nope", "value": 1}
        ]),
    );
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    let e = error(
        Resource::User,
        &bjensen(),
        json!([
            {"op": "replace", "path": "title", "value": "Changed"},
            {"op": "replace", "path": "active", "value": "maybe"}
        ]),
    );
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    assert!(e.detail.contains("`active`"));
}

#[test]
fn errors() {
    let b = bjensen();
    let g = tour_guides();
    for (resource, target, ops, want) in [
        (
            Resource::User,
            &b,
            json!([{"op": "remove"}]),
            ScimType::NoTarget,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "replace", "path": "emails[type eq \"pager\"]", "value": {"value": "x"}}]),
            ScimType::NoTarget,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "replace", "path": "emails[type eq \"pager\" or type eq \"fax\"].value", "value": "x"}]),
            ScimType::NoTarget,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "id", "value": "x"}]),
            ScimType::Mutability,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}]),
            ScimType::Mutability,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            ScimType::Mutability,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
            ScimType::InvalidPath,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "nickname.value", "value": "x"}]),
            ScimType::InvalidPath,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "members", "value": []}]),
            ScimType::InvalidPath,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "remove", "path": "userName"}]),
            ScimType::InvalidValue,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "replace", "path": "userName", "value": null}]),
            ScimType::InvalidValue,
        ),
        (
            Resource::Group,
            &g,
            json!([{"op": "remove", "path": "displayName"}]),
            ScimType::InvalidValue,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "title"}]),
            ScimType::InvalidSyntax,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "copy", "path": "title", "value": "x"}]),
            ScimType::InvalidSyntax,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "value": "x"}]),
            ScimType::InvalidValue,
        ),
        (
            Resource::User,
            &b,
            json!([{"op": "add", "path": "name", "value": "x"}]),
            ScimType::InvalidValue,
        ),
        (Resource::User, &b, json!([]), ScimType::InvalidSyntax),
    ] {
        let e = error(resource, target, ops.clone());
        assert_eq!((e.status, e.scim_type), (400, Some(want)), "{ops}: {e}");
    }
    let mut t = b.clone();
    let wrong_schema = PatchRequest {
        schemas: vec![USER.into()],
        operations: request(json!([{"op": "add", "path": "title", "value": "x"}])).operations,
    };
    assert_eq!(
        apply(Resource::User, &mut t, &wrong_schema)
            .unwrap_err()
            .scim_type,
        Some(ScimType::InvalidSyntax)
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
        .collect();
    let e = error(Resource::User, &b, Value::Array(too_many));
    assert!(e.detail.contains("more than 1000 operations"));
}

#[test]
fn ten_thousand_members() {
    let ids: Vec<String> = (0..10_000).map(|i| format!("usr_{i:05}")).collect();
    let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let (g, changed) = group(json!([{"op": "add", "path": "members", "value": value}]));
    assert_eq!(member_ids(&g).len(), 10_002);
    assert_eq!(changed, ["members"]);
    let (g, _) = patch(
        Resource::Group,
        &g,
        json!([{"op": "add", "path": "members", "value": value}]),
    )
    .unwrap();
    assert_eq!(member_ids(&g).len(), 10_002);
    let half: Vec<Value> = value.iter().step_by(2).cloned().collect();
    let (g, _) = patch(
        Resource::Group,
        &g,
        json!([{"op": "remove", "path": "members", "value": half}]),
    )
    .unwrap();
    assert_eq!(member_ids(&g).len(), 5_002);
    let (g, _) = patch(
        Resource::Group,
        &g,
        json!([{"op": "replace", "path": "members", "value": value}]),
    )
    .unwrap();
    assert_eq!(member_ids(&g).len(), 10_000);
    let (g, _) = patch(
        Resource::Group,
        &g,
        json!([{"op": "remove", "path": "members[value sw \"usr_0\"]"}]),
    )
    .unwrap();
    assert_eq!(member_ids(&g).len(), 0);
}
