//! The SCIM schemas this server speaks (RFC 7643 §4 and §8.7): the core User schema with the
//! enterprise extension, the core Group schema, and the common attributes (`id`, `externalId`,
//! `meta`). The tables are static; lookups by name are case-insensitive.

mod document;
mod normalize;
mod tables;

use crate::filter::AttrPath;

pub use document::{resource_types_document, schemas_document};
pub(crate) use normalize::element_key;
pub use normalize::normalize;

/// The core User schema.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// A list (query) response.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// A PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// An error response.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The schema of the `/Schemas` resources.
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The schema of the `/ServiceProviderConfig` resource.
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// The schema of the `/ResourceTypes` resources.
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// The longest string value accepted, in characters.
pub const MAX_STRING_CHARS: usize = 1024;
/// The longest binary value (base64) accepted, in characters: an X.509 certificate does not
/// fit in [`MAX_STRING_CHARS`].
pub const MAX_BINARY_CHARS: usize = 16 * 1024;
/// The most values of a multi-valued attribute other than a group's `members`.
pub const MAX_VALUES: usize = 100;

/// A resource type this server provisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    String,
    /// `true` or `false`.
    Boolean,
    /// A number with a fractional part.
    Decimal,
    /// A whole number.
    Integer,
    /// An RFC 3339 date-time.
    DateTime,
    /// Base64 data.
    Binary,
    /// A URI.
    Reference,
    /// An object of sub-attributes.
    Complex,
}

/// Who may change an attribute (RFC 7643 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the server only.
    ReadOnly,
    /// Set and changed by the client.
    ReadWrite,
    /// Set once by the client.
    Immutable,
    /// Set by the client, never returned.
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    /// Whatever `attributes` / `excludedAttributes` say.
    Always,
    /// Not even when asked.
    Never,
    /// Unless excluded.
    Default,
    /// Only when asked.
    Request,
}

/// How unique an attribute's value is (RFC 7643 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uniqueness {
    /// Not at all.
    None,
    /// Within this service provider (here: one organisation).
    Server,
    /// Everywhere.
    Global,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The name, in its canonical spelling.
    pub name: &'static str,
    /// The data type.
    pub kind: Kind,
    /// Whether it holds a list of values.
    pub multi_valued: bool,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether string comparisons respect case.
    pub case_exact: bool,
    /// Who may change it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// How unique its value is.
    pub uniqueness: Uniqueness,
    /// Suggested values (`type` sub-attributes).
    pub canonical_values: &'static [&'static str],
    /// What a reference may point to.
    pub reference_types: &'static [&'static str],
    /// What it means.
    pub description: &'static str,
    /// The sub-attributes of a complex attribute.
    pub sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// The sub-attribute `name` (case-insensitive).
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }

    /// Whether this is a complex attribute with a `value` sub-attribute, which stands for the
    /// whole value in filters (`emails co "x"`) and PATCH.
    pub fn value_sub(&self) -> Option<&'static Attribute> {
        self.sub("value")
    }
}

/// Where a resolved attribute lives in a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The extension object holding it (its URN), or `None` for the core schema.
    pub ext: Option<&'static str>,
    /// The top-level attribute.
    pub top: &'static Attribute,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'static Attribute>,
}

impl Resource {
    /// The core schema URN.
    pub fn schema(self) -> &'static str {
        match self {
            Self::User => USER,
            Self::Group => GROUP,
        }
    }

    /// The schema extensions this resource type may carry.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::User => &[ENTERPRISE_USER],
            Self::Group => &[],
        }
    }

    /// The endpoint, relative to the SCIM base URL.
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::User => "/Users",
            Self::Group => "/Groups",
        }
    }

    /// The resource type's name (`User`, `Group`).
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    /// The attribute (or sub-attribute, when `path.sub` is given) a path names: the URN prefix
    /// picks the core schema or an extension; names are case-insensitive. `schemas` resolves
    /// to a pseudo-attribute (a multi-valued reference, always returned).
    pub fn attribute(self, path: &AttrPath) -> Option<&'static Attribute> {
        let r = self.resolve(path)?;
        Some(r.sub.unwrap_or(r.top))
    }

    /// The attributes of the core schema, common attributes first.
    pub(crate) fn core(self) -> &'static [Attribute] {
        match self {
            Self::User => tables::USER_ATTRIBUTES,
            Self::Group => tables::GROUP_ATTRIBUTES,
        }
    }

    /// The attributes of the extension `urn` (exact canonical URN).
    pub(crate) fn extension(self, urn: &str) -> Option<&'static [Attribute]> {
        match (self, urn) {
            (Self::User, ENTERPRISE_USER) => Some(tables::ENTERPRISE_ATTRIBUTES),
            _ => None,
        }
    }

    /// The canonical URN of the extension `urn` names (case-insensitive), if this resource
    /// type has it.
    pub(crate) fn extension_urn(self, urn: &str) -> Option<&'static str> {
        self.extensions()
            .iter()
            .copied()
            .find(|e| e.eq_ignore_ascii_case(urn))
    }

    /// Where `path` lives: its extension, top-level attribute and sub-attribute.
    pub(crate) fn resolve(self, path: &AttrPath) -> Option<Resolved> {
        let (ext, table) = match path.uri.as_deref() {
            None => (None, self.core()),
            Some(uri) if uri.eq_ignore_ascii_case(self.schema()) => (None, self.core()),
            Some(uri) => {
                let urn = self.extension_urn(uri)?;
                (Some(urn), self.extension(urn)?)
            }
        };
        let top = match find(table, &path.name) {
            Some(top) => top,
            None if ext.is_none() && path.name.eq_ignore_ascii_case("schemas") => &tables::SCHEMAS,
            None => return None,
        };
        let sub = match path.sub.as_deref() {
            Some(name) => Some(top.sub(name)?),
            None => None,
        };
        Some(Resolved { ext, top, sub })
    }
}

/// The attribute `name` of `table` (case-insensitive).
pub(crate) fn find(table: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    table.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> AttrPath {
        AttrPath::parse(s).unwrap()
    }

    #[test]
    fn resolves_core_extension_and_sub_attributes() {
        let u = Resource::User;
        assert_eq!(u.attribute(&path("USERNAME")).unwrap().name, "userName");
        assert_eq!(
            u.attribute(&path("name.givenname")).unwrap().name,
            "givenName"
        );
        assert_eq!(
            u.attribute(&path("urn:ietf:params:scim:schemas:core:2.0:User:userName"))
                .unwrap()
                .name,
            "userName"
        );
        let manager =
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
        assert_eq!(u.attribute(&manager).unwrap().name, "value");
        let r = u.resolve(&manager).unwrap();
        assert_eq!((r.ext, r.top.name), (Some(ENTERPRISE_USER), "manager"));
        assert_eq!(u.attribute(&path("members")), None);
        assert_eq!(u.attribute(&path("department")), None);
        assert_eq!(u.attribute(&path("name.nope")), None);
        assert_eq!(u.attribute(&path("urn:example:Other:userName")), None);
        assert_eq!(u.attribute(&path("schemas")).unwrap().name, "schemas");
        assert!(u.attribute(&path("meta.lastModified")).is_some());
        assert!(u.attribute(&path("emails.$ref")).is_none());
        assert!(u.attribute(&path("groups.$ref")).is_some());
    }

    #[test]
    fn groups_know_members() {
        let g = Resource::Group;
        assert_eq!(
            g.attribute(&path("members.value")).unwrap().mutability,
            Mutability::Immutable
        );
        assert!(g.attribute(&path("members.value")).unwrap().case_exact);
        assert!(g.attribute(&path("displayName")).unwrap().required);
        assert!(g.attribute(&path("userName")).is_none());
        assert!(
            g.attribute(&path(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
            ))
            .is_none()
        );
        assert_eq!(g.extensions(), &[] as &[&str]);
        assert_eq!((g.schema(), g.endpoint()), (GROUP, "/Groups"));
    }

    #[test]
    fn common_attributes() {
        for r in [Resource::User, Resource::Group] {
            let id = r.attribute(&path("id")).unwrap();
            assert!(id.case_exact);
            assert_eq!(
                (id.returned, id.mutability),
                (Returned::Always, Mutability::ReadOnly)
            );
            assert!(r.attribute(&path("externalId")).unwrap().case_exact);
            assert_eq!(
                r.attribute(&path("meta.created")).unwrap().kind,
                Kind::DateTime
            );
        }
    }
}
