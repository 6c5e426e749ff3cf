//! The crate's integration tests: the examples of RFC 7644, the requests Microsoft Entra ID and
//! Okta send, and property tests of the filter parser.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration tests: a failed step is a failed test"
)]

mod filter;
mod patch;
mod project;
mod roundtrip;

use serde_json::{Value, json};

use bulwark_scim::schema::{ENTERPRISE_USER, GROUP, USER};

/// Barbara Jensen, the RFC's example user: an employee with a title, a work email at
/// example.com, the enterprise extension.
pub fn bjensen() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen-ext",
        "userName": "bjensen",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "groups": [{"value": "e9e30dba", "display": "Tour Guides", "type": "direct"}],
        ENTERPRISE_USER: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        },
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "version": "W/\"3694e05e9dff591\""
        }
    })
}

/// Jim O'Malley: an intern without a title, email at example.org, an XMPP address at foo.com.
pub fn omalley() -> Value {
    json!({
        "schemas": [USER],
        "id": "c3a26dd3",
        "userName": "jomalley",
        "name": {"familyName": "O'Malley", "givenName": "Jim"},
        "userType": "Intern",
        "active": false,
        "emails": [{"value": "jim@example.org", "type": "work"}],
        "ims": [{"value": "jim@foo.com", "type": "xmpp"}],
        "meta": {"resourceType": "User", "created": "2011-05-13T04:42:35+00:00", "lastModified": "2011-05-13T06:42:35+02:00"}
    })
}

/// Carol Wilson: a contractor with a home email elsewhere and an XMPP address at foo.com.
pub fn cwilson() -> Value {
    json!({
        "schemas": [USER],
        "id": "a0b1c2",
        "userName": "cwilson",
        "userType": "Contractor",
        "emails": [{"value": "carol@other.net", "type": "home"}],
        "ims": [{"value": "carol@foo.com", "type": "xmpp"}],
        "meta": {"resourceType": "User", "lastModified": "2010-01-01T00:00:00Z"}
    })
}

/// A group with two members.
pub fn tour_guides() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen", "type": "User"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "$ref": "https://example.com/v2/Users/902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge", "type": "User"}
        ],
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}
