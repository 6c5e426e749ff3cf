//! The discovery documents: the `/Schemas` resources (RFC 7643 §7) and the `/ResourceTypes`
//! resources (RFC 7643 §6), generated from the attribute tables so they cannot drift.

use serde_json::{Map, Value, json};

use super::{
    Attribute, ENTERPRISE_USER, GROUP, Kind, Mutability, RESOURCE_TYPE, Resource, Returned, SCHEMA,
    SERVICE_PROVIDER_CONFIG, USER, Uniqueness, tables,
};

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::String => "string",
        Kind::Boolean => "boolean",
        Kind::Decimal => "decimal",
        Kind::Integer => "integer",
        Kind::DateTime => "dateTime",
        Kind::Binary => "binary",
        Kind::Reference => "reference",
        Kind::Complex => "complex",
    }
}

fn mutability(m: Mutability) -> &'static str {
    match m {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned(r: Returned) -> &'static str {
    match r {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness(u: Uniqueness) -> &'static str {
    match u {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

/// One attribute as RFC 7643 §7 represents it.
fn attribute(a: &Attribute) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), a.name.into());
    m.insert("type".into(), kind(a.kind).into());
    m.insert("multiValued".into(), a.multi_valued.into());
    m.insert("description".into(), a.description.into());
    m.insert("required".into(), a.required.into());
    m.insert("caseExact".into(), a.case_exact.into());
    m.insert("mutability".into(), mutability(a.mutability).into());
    m.insert("returned".into(), returned(a.returned).into());
    m.insert("uniqueness".into(), uniqueness(a.uniqueness).into());
    if !a.canonical_values.is_empty() {
        m.insert("canonicalValues".into(), a.canonical_values.into());
    }
    if a.kind == Kind::Reference {
        m.insert("referenceTypes".into(), a.reference_types.into());
    }
    if a.kind == Kind::Complex {
        let subs: Vec<Value> = a.sub_attributes.iter().map(attribute).collect();
        m.insert("subAttributes".into(), subs.into());
    }
    Value::Object(m)
}

fn schema(base: &str, id: &str, name: &str, description: &str, attrs: &[Attribute]) -> Value {
    let attributes: Vec<Value> = attrs.iter().map(attribute).collect();
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

fn trimmed(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// The `/Schemas` resources: User, the enterprise User extension and Group, and the three
/// discovery schemas (ServiceProviderConfig, ResourceType, Schema, RFC 7643 §8.7.2), each with
/// `meta.location` under `base_url` (the SCIM base, e.g. `https://host/scim/v2/acme`). The
/// common attributes (`id`, `externalId`, `meta`) are not listed, as in RFC 7643 §8.7.1.
pub fn schemas_document(base_url: &str) -> Vec<Value> {
    let base = trimmed(base_url);
    let core = |r: Resource| r.core().get(tables::COMMON..).unwrap_or_default();
    vec![
        schema(base, USER, "User", "User Account", core(Resource::User)),
        schema(
            base,
            ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            tables::ENTERPRISE_ATTRIBUTES,
        ),
        schema(base, GROUP, "Group", "Group", core(Resource::Group)),
        discovery_schema(
            base,
            SERVICE_PROVIDER_CONFIG,
            "ServiceProviderConfig",
            "Service Provider Configuration",
            &service_provider_config_attributes(),
        ),
        discovery_schema(
            base,
            RESOURCE_TYPE,
            "ResourceType",
            "Resource Type",
            &resource_type_attributes(),
        ),
        discovery_schema(
            base,
            SCHEMA,
            "Schema",
            "Specifies the schema of a resource",
            &schema_attributes(),
        ),
    ]
}

/// A read-only attribute of a discovery resource (RFC 7643 §8.7.2), as `/Schemas` lists it.
fn read_only(name: &str, kind: &str, multi: bool, required: bool, subs: Vec<Value>) -> Value {
    let mut a = json!({
        "name": name, "type": kind, "multiValued": multi, "description": name,
        "required": required, "caseExact": false, "mutability": "readOnly",
        "returned": "default", "uniqueness": "none",
    });
    if let (false, Some(m)) = (subs.is_empty(), a.as_object_mut()) {
        m.insert("subAttributes".into(), subs.into());
    }
    a
}

fn discovery_schema(
    base: &str,
    id: &str,
    name: &str,
    description: &str,
    attributes: &[Value],
) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

fn service_provider_config_attributes() -> Vec<Value> {
    let flag = |name: &str, extra: Vec<Value>| {
        let mut subs = vec![read_only("supported", "boolean", false, true, vec![])];
        subs.extend(extra);
        read_only(name, "complex", false, true, subs)
    };
    let int = |name: &str| read_only(name, "integer", false, true, vec![]);
    vec![
        read_only("documentationUri", "reference", false, false, vec![]),
        flag("patch", vec![]),
        flag("bulk", vec![int("maxOperations"), int("maxPayloadSize")]),
        flag("filter", vec![int("maxResults")]),
        flag("changePassword", vec![]),
        flag("sort", vec![]),
        flag("etag", vec![]),
        read_only(
            "authenticationSchemes",
            "complex",
            true,
            true,
            vec![
                read_only("type", "string", false, true, vec![]),
                read_only("name", "string", false, true, vec![]),
                read_only("description", "string", false, true, vec![]),
                read_only("specUri", "reference", false, false, vec![]),
                read_only("documentationUri", "reference", false, false, vec![]),
                read_only("primary", "boolean", false, false, vec![]),
            ],
        ),
    ]
}

fn resource_type_attributes() -> Vec<Value> {
    let text = |name: &str, required: bool| read_only(name, "string", false, required, vec![]);
    vec![
        text("id", false),
        text("name", true),
        text("description", false),
        read_only("endpoint", "reference", false, true, vec![]),
        read_only("schema", "reference", false, true, vec![]),
        read_only(
            "schemaExtensions",
            "complex",
            true,
            false,
            vec![
                read_only("schema", "reference", false, true, vec![]),
                read_only("required", "boolean", false, true, vec![]),
            ],
        ),
    ]
}

fn schema_attributes() -> Vec<Value> {
    let text = |name: &str, required: bool| read_only(name, "string", false, required, vec![]);
    let boolean = |name: &str| read_only(name, "boolean", false, false, vec![]);
    let attribute_subs = |nested: Vec<Value>| {
        let mut subs = vec![
            text("name", true),
            text("type", true),
            boolean("multiValued"),
            text("description", false),
            boolean("required"),
            read_only("canonicalValues", "string", true, false, vec![]),
            boolean("caseExact"),
            text("mutability", false),
            text("returned", false),
            text("uniqueness", false),
            read_only("referenceTypes", "string", true, false, vec![]),
        ];
        subs.extend(nested);
        subs
    };
    let sub_attributes = read_only(
        "subAttributes",
        "complex",
        true,
        false,
        attribute_subs(vec![]),
    );
    vec![
        text("id", true),
        text("name", false),
        text("description", false),
        read_only(
            "attributes",
            "complex",
            true,
            true,
            attribute_subs(vec![sub_attributes]),
        ),
    ]
}

fn resource_type(base: &str, r: Resource, description: &str) -> Value {
    let extensions: Vec<Value> = r
        .extensions()
        .iter()
        .map(|urn| json!({"schema": urn, "required": false}))
        .collect();
    let mut v = json!({
        "schemas": [RESOURCE_TYPE],
        "id": r.name(),
        "name": r.name(),
        "endpoint": r.endpoint(),
        "description": description,
        "schema": r.schema(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", r.name()),
        },
    });
    if let (false, Some(m)) = (extensions.is_empty(), v.as_object_mut()) {
        m.insert("schemaExtensions".into(), extensions.into());
    }
    v
}

/// The `/ResourceTypes` resources: User (with the enterprise extension, not required) and
/// Group, each with `meta.location` under `base_url`.
pub fn resource_types_document(base_url: &str) -> Vec<Value> {
    let base = trimmed(base_url);
    vec![
        resource_type(base, Resource::User, "User Account"),
        resource_type(base, Resource::Group, "Group"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name<'v>(attrs: &'v Value, name: &str) -> &'v Value {
        attrs
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn schemas_follow_rfc_7643_section_7() {
        let docs = schemas_document("https://h/scim/v2/acme/");
        assert_eq!(docs.len(), 6);
        let user = &docs[0];
        assert_eq!(user["id"], USER);
        assert_eq!(user["schemas"], json!([SCHEMA]));
        assert_eq!(
            user["meta"],
            json!({"resourceType": "Schema", "location": format!("https://h/scim/v2/acme/Schemas/{USER}")})
        );
        let attrs = &user["attributes"];
        assert!(
            attrs
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["name"] != "id" && a["name"] != "meta")
        );
        let user_name = by_name(attrs, "userName");
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["type"], "string");
        let emails = by_name(attrs, "emails");
        assert_eq!(emails["multiValued"], true);
        let kind = by_name(&emails["subAttributes"], "type");
        assert_eq!(kind["canonicalValues"], json!(["work", "home", "other"]));
        let password = by_name(attrs, "password");
        assert_eq!(
            (&password["mutability"], &password["returned"]),
            (&json!("writeOnly"), &json!("never"))
        );
        assert_eq!(
            by_name(attrs, "profileUrl")["referenceTypes"],
            json!(["external"])
        );
        assert_eq!(by_name(attrs, "groups")["mutability"], "readOnly");
        let manager = by_name(&docs[1]["attributes"], "manager");
        assert_eq!(
            by_name(&manager["subAttributes"], "displayName")["mutability"],
            "readOnly"
        );
        let members = by_name(&docs[2]["attributes"], "members");
        assert_eq!(
            by_name(&members["subAttributes"], "value")["mutability"],
            "immutable"
        );
    }

    #[test]
    fn resource_types_follow_rfc_7643_section_6() {
        let docs = resource_types_document("https://h/scim/v2/acme");
        assert_eq!(
            docs[0],
            json!({
                "schemas": [RESOURCE_TYPE],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "User Account",
                "schema": USER,
                "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}],
                "meta": {"resourceType": "ResourceType", "location": "https://h/scim/v2/acme/ResourceTypes/User"},
            })
        );
        assert_eq!(docs[1]["endpoint"], "/Groups");
        assert!(docs[1].get("schemaExtensions").is_none());
    }
}
