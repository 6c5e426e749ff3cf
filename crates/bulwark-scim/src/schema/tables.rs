//! The attribute tables: RFC 7643 §8.7.1 (User, Group, enterprise User) and §3.1 (common
//! attributes), written with a small `const` builder so each attribute is one line.

use super::{Attribute, Kind, Mutability, Returned, Uniqueness};

const fn attr(name: &'static str, kind: Kind, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        description,
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    attr(name, Kind::String, description)
}

const fn complex(
    name: &'static str,
    description: &'static str,
    sub_attributes: &'static [Attribute],
) -> Attribute {
    let mut a = attr(name, Kind::Complex, description);
    a.sub_attributes = sub_attributes;
    a
}

const fn reference(
    name: &'static str,
    types: &'static [&'static str],
    description: &'static str,
) -> Attribute {
    let mut a = attr(name, Kind::Reference, description);
    a.reference_types = types;
    a
}

impl Attribute {
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
}

const TYPE: &str = "A label indicating the attribute's function.";
const PRIMARY: &str = "Whether this is the primary value; true appears at most once.";
const DISPLAY: &str = "A human-readable name, primarily used for display purposes.";

/// `value`, `display`, `type` (with `types` as canonical values) and `primary`: the shape of
/// most multi-valued attributes.
macro_rules! labelled {
    ($value:expr, $types:expr) => {
        &[
            $value,
            string("display", DISPLAY),
            string("type", TYPE).canonical($types),
            attr("primary", Kind::Boolean, PRIMARY),
        ]
    };
}

/// `schemas`: not part of any schema (RFC 7643 §3), but filterable and always returned.
pub(super) const SCHEMAS: Attribute = reference(
    "schemas",
    &["uri"],
    "The schema URIs of the resource's attributes.",
)
.multi()
.required()
.read_only()
.returned(Returned::Always);

const ID: Attribute = string(
    "id",
    "A unique identifier for the resource, issued by the service provider.",
)
.exact()
.read_only()
.returned(Returned::Always)
.unique(Uniqueness::Server);

const EXTERNAL_ID: Attribute = string(
    "externalId",
    "An identifier for the resource as defined by the provisioning client.",
)
.exact();

const META: Attribute = complex(
    "meta",
    "Resource metadata.",
    &[
        string(
            "resourceType",
            "The name of the resource type of the resource.",
        )
        .exact()
        .read_only(),
        attr(
            "created",
            Kind::DateTime,
            "When the resource was added to the service provider.",
        )
        .read_only(),
        attr(
            "lastModified",
            Kind::DateTime,
            "When the resource was last changed.",
        )
        .read_only(),
        reference("location", &["uri"], "The URI of the resource.").read_only(),
        string("version", "The version (entity tag) of the resource.")
            .exact()
            .read_only(),
    ],
)
.read_only();

const NAME: Attribute = complex(
    "name",
    "The components of the user's real name.",
    &[
        string("formatted", "The full name, formatted for display."),
        string(
            "familyName",
            "The family name (last name in Western languages).",
        ),
        string(
            "givenName",
            "The given name (first name in Western languages).",
        ),
        string("middleName", "The middle name(s)."),
        string("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
        string("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
    ],
);

const ADDRESSES: Attribute = complex(
    "addresses",
    "Physical mailing addresses for this user.",
    &[
        string(
            "formatted",
            "The full mailing address, formatted for display.",
        ),
        string("streetAddress", "The full street address."),
        string("locality", "The city or locality."),
        string("region", "The state or region."),
        string("postalCode", "The zip code or postal code."),
        string("country", "The country name (ISO 3166-1 alpha-2)."),
        string("type", TYPE).canonical(&["work", "home", "other"]),
        attr("primary", Kind::Boolean, PRIMARY),
    ],
)
.multi();

const GROUPS: Attribute = complex(
    "groups",
    "The groups the user belongs to; changed through the Group resources only.",
    &[
        string("value", "The id of the group.").read_only(),
        reference("$ref", &["User", "Group"], "The URI of the group.").read_only(),
        string("display", DISPLAY).read_only(),
        string("type", "Direct or indirect membership.")
            .canonical(&["direct", "indirect"])
            .read_only(),
    ],
)
.multi()
.read_only();

/// The core User schema with the common attributes (RFC 7643 §4.1, §3.1).
pub(super) const USER_ATTRIBUTES: &[Attribute] = &[
    ID,
    EXTERNAL_ID,
    META,
    string(
        "userName",
        "The unique identifier of the user, typically used to sign in.",
    )
    .required()
    .unique(Uniqueness::Server),
    NAME,
    string(
        "displayName",
        "The name of the user, suitable for display to end-users.",
    ),
    string("nickName", "The casual way to address the user."),
    reference(
        "profileUrl",
        &["external"],
        "A URI of the user's online profile.",
    ),
    string("title", "The user's title, such as 'Vice President'."),
    string(
        "userType",
        "The relationship between the organization and the user.",
    ),
    string(
        "preferredLanguage",
        "The user's preferred written or spoken language.",
    ),
    string(
        "locale",
        "The user's default location, for localizing items.",
    ),
    string("timezone", "The user's time zone (IANA name)."),
    attr("active", Kind::Boolean, "The user's administrative status."),
    string(
        "password",
        "The user's cleartext password; never stored nor returned here.",
    )
    .mutability(Mutability::WriteOnly)
    .returned(Returned::Never),
    // Required here (RFC 7643 leaves it optional): every Bulwark account has an address.
    complex(
        "emails",
        "Email addresses for the user; at least one (every account has an address).",
        labelled!(
            string("value", "An email address.").required(),
            &["work", "home", "other"]
        ),
    )
    .multi()
    .required(),
    complex(
        "phoneNumbers",
        "Phone numbers for the user.",
        labelled!(
            string("value", "A phone number."),
            &["work", "home", "mobile", "fax", "pager", "other"]
        ),
    )
    .multi(),
    complex(
        "ims",
        "Instant messaging addresses for the user.",
        labelled!(
            string("value", "An instant messaging address."),
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        ),
    )
    .multi(),
    complex(
        "photos",
        "URLs of images of the user.",
        labelled!(
            reference("value", &["external"], "The URL of a photo."),
            &["photo", "thumbnail"]
        ),
    )
    .multi(),
    ADDRESSES,
    GROUPS,
    complex(
        "entitlements",
        "Entitlements of the user.",
        labelled!(string("value", "An entitlement."), &[]),
    )
    .multi(),
    complex(
        "roles",
        "Roles of the user.",
        labelled!(string("value", "A role."), &[]),
    )
    .multi(),
    complex(
        "x509Certificates",
        "X.509 certificates issued to the user.",
        labelled!(
            attr("value", Kind::Binary, "A DER certificate, base64."),
            &[]
        ),
    )
    .multi(),
];

/// The enterprise User extension (RFC 7643 §4.3).
pub(super) const ENTERPRISE_ATTRIBUTES: &[Attribute] = &[
    string(
        "employeeNumber",
        "A number or string identifying the employee.",
    ),
    string("costCenter", "The name of a cost center."),
    string("organization", "The name of an organization."),
    string("division", "The name of a division."),
    string("department", "The name of a department."),
    complex(
        "manager",
        "The user's manager.",
        &[
            string("value", "The id of the manager's User resource."),
            reference("$ref", &["User"], "The URI of the manager's User resource."),
            string("displayName", "The manager's display name.").read_only(),
        ],
    ),
];

/// The core Group schema with the common attributes (RFC 7643 §4.2, §3.1).
pub(super) const GROUP_ATTRIBUTES: &[Attribute] = &[
    ID,
    EXTERNAL_ID,
    META,
    string(
        "displayName",
        "A human-readable name for the group (the team's name, unique in the organisation).",
    )
    .required()
    .unique(Uniqueness::Server),
    complex(
        "members",
        "The members of the group.",
        &[
            string("value", "The id of the member's resource.")
                .exact()
                .mutability(Mutability::Immutable),
            // Members are users (a group is a team of people); a member's display name is
            // not kept, so it is not offered.
            reference("$ref", &["User"], "The URI of the member's resource.")
                .mutability(Mutability::Immutable),
            string("type", "The type of the member.")
                .canonical(&["User"])
                .mutability(Mutability::Immutable),
        ],
    )
    .multi(),
];

/// How many of a core table's first attributes are the common ones (`id`, `externalId`,
/// `meta`), which the `/Schemas` documents leave out (RFC 7643 §3.1).
pub(super) const COMMON: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(table: &[Attribute]) {
        let mut names: Vec<String> = table.iter().map(|a| a.name.to_ascii_lowercase()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn tables_are_well_formed() {
        for table in [USER_ATTRIBUTES, GROUP_ATTRIBUTES, ENTERPRISE_ATTRIBUTES] {
            unique(table);
            for a in table {
                unique(a.sub_attributes);
                assert_eq!(
                    a.kind == Kind::Complex,
                    !a.sub_attributes.is_empty(),
                    "{}",
                    a.name
                );
                for s in a.sub_attributes {
                    assert_ne!(s.kind, Kind::Complex, "{}.{}", a.name, s.name);
                }
            }
        }
        for table in [USER_ATTRIBUTES, GROUP_ATTRIBUTES] {
            let common: Vec<_> = table.iter().take(COMMON).map(|a| a.name).collect();
            assert_eq!(common, ["id", "externalId", "meta"]);
        }
    }
}
