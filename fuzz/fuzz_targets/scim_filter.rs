//! Fuzzes the SCIM filter parser: any input is refused with `invalidFilter` or parses to a
//! filter whose canonical text parses back to the same filter; evaluating it against sample
//! resources returns a result or an error, and nothing panics.
#![no_main]

use bulwark_scim::error::ScimType;
use bulwark_scim::filter::{self, MAX_LEN};
use bulwark_scim::schema::{ENTERPRISE_USER, GROUP, Resource, USER};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        ENTERPRISE_USER: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
        "meta": {"created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}

fn group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "e9e30dba",
        "displayName": "Tour Guides",
        "members": [{"value": "2819c223-7f76-453a-919d-413861904646", "type": "User"}]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match filter::parse(input) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidFilter)));
            return;
        }
    };
    let text = parsed.to_string();
    if text.len() <= MAX_LEN {
        assert_eq!(filter::parse(&text).as_ref(), Ok(&parsed), "{text}");
    }
    for (resource, sample) in [(Resource::User, user()), (Resource::Group, group())] {
        if let Err(e) = parsed.matches(resource, &sample) {
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidFilter)));
        }
    }
    let _ = parsed.as_simple();
});
