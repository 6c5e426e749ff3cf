//! `attributes` and `excludedAttributes` (RFC 7644 §3.9).

use bulwark_scim::error::ScimType;
use bulwark_scim::project::project;
use bulwark_scim::schema::{ENTERPRISE_USER, Resource, USER};
use serde_json::{Value, json};

use crate::{bjensen, tour_guides};

fn projected(attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let mut b = bjensen();
    b["password"] = json!("t1meMa$heen");
    project(Resource::User, &mut b, attributes, excluded).unwrap();
    b
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn nothing_asked_hides_only_never_returned() {
    let b = projected(None, None);
    assert!(b.get("password").is_none());
    assert_eq!(keys(&b).len(), keys(&bjensen()).len());
    assert_eq!(projected(Some(" "), Some("")), b);
}

#[test]
fn attributes_keep_what_is_named_and_what_is_always_returned() {
    let b = projected(Some("userName"), None);
    assert_eq!(keys(&b), ["id", "schemas", "userName"]);
    let b = projected(
        Some(
            "NAME.givenName, emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,password,nope,urn:x:y:z",
        ),
        None,
    );
    assert_eq!(
        keys(&b),
        ["emails", "id", "name", "schemas", ENTERPRISE_USER]
    );
    assert_eq!(b["name"], json!({"givenName": "Barbara"}));
    assert_eq!(
        b["emails"],
        json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}])
    );
    assert_eq!(b[ENTERPRISE_USER], json!({"department": "Tour Operations"}));
    assert_eq!(b["schemas"], json!([USER, ENTERPRISE_USER]));
    let b = projected(Some(ENTERPRISE_USER), None);
    assert_eq!(keys(&b), ["id", "schemas", ENTERPRISE_USER]);
    assert_eq!(b[ENTERPRISE_USER], bjensen()[ENTERPRISE_USER]);
    let b = projected(Some("name.middleName,meta.lastModified"), None);
    assert_eq!(keys(&b), ["id", "meta", "schemas"]);
    assert_eq!(b["meta"], json!({"lastModified": "2011-05-13T04:42:34Z"}));
}

#[test]
fn excluded_attributes_remove_what_is_named_but_never_id() {
    let b = projected(
        None,
        Some(
            "emails,meta,name.formatted,id,schemas,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager,groups.display",
        ),
    );
    assert!(b.get("emails").is_none());
    assert!(b.get("meta").is_none());
    assert!(b.get("password").is_none());
    assert_eq!(b["id"], bjensen()["id"]);
    assert_eq!(b["schemas"], bjensen()["schemas"]);
    assert_eq!(
        b["name"],
        json!({"familyName": "Jensen", "givenName": "Barbara"})
    );
    assert!(b[ENTERPRISE_USER].get("manager").is_none());
    assert_eq!(
        b["groups"],
        json!([{"value": "e9e30dba", "type": "direct"}])
    );
    let b = projected(None, Some(ENTERPRISE_USER));
    assert!(b.get(ENTERPRISE_USER).is_none());
    let b = projected(
        None,
        Some(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ),
    );
    assert!(b.get(ENTERPRISE_USER).is_none());
}

#[test]
fn attributes_win_over_excluded() {
    assert_eq!(
        projected(Some("userName"), Some("userName")),
        projected(Some("userName"), None)
    );
}

#[test]
fn groups() {
    let mut g = tour_guides();
    project(Resource::Group, &mut g, Some("displayName"), None).unwrap();
    assert_eq!(keys(&g), ["displayName", "id", "schemas"]);
    let mut g = tour_guides();
    project(Resource::Group, &mut g, None, Some("members")).unwrap();
    assert_eq!(keys(&g), ["displayName", "id", "meta", "schemas"]);
    let mut g = tour_guides();
    project(Resource::Group, &mut g, Some("members.value"), None).unwrap();
    assert_eq!(
        g["members"][0],
        json!({"value": "2819c223-7f76-453a-919d-413861904646"})
    );
}

#[test]
fn malformed_entries_are_invalid_value() {
    let mut b = bjensen();
    let e = project(
        Resource::User,
        &mut b,
        Some("userName,emails[type eq \"work\"]"),
        None,
    )
    .unwrap_err();
    assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
    assert_eq!(b, bjensen());
}
