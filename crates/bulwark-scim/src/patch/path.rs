//! PATCH paths resolved against the schema: which attribute (in which extension), which value
//! filter and which sub-attribute an operation targets, and whether it may be changed.

use crate::error::{ScimError, ScimType};
use crate::filter::{AttrPath, Filter, check_in_element, parse_patch_path};
use crate::schema::{Attribute, Kind, Mutability, Resource};

/// What a PATCH path targets.
#[derive(Debug)]
pub(crate) enum Target {
    /// A whole extension object (`urn:…:enterprise:2.0:User`).
    Extension(&'static str),
    /// An attribute, maybe filtered, maybe a sub-attribute.
    Attr(AttrTarget),
}

/// An attribute target.
#[derive(Debug)]
pub(crate) struct AttrTarget {
    /// The extension holding the attribute, `None` for the core schema.
    pub ext: Option<&'static str>,
    /// The top-level attribute.
    pub top: &'static Attribute,
    /// The value filter (`emails[type eq "work"]`), on a multi-valued complex attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute (`name.givenName`, `emails[…].value`).
    pub sub: Option<&'static Attribute>,
}

fn invalid(detail: String) -> ScimError {
    ScimError::bad(ScimType::InvalidPath, detail)
}

/// Resolves `raw` for `resource`.
///
/// # Errors
/// 400 `invalidPath` for a malformed path, an unknown attribute or sub-attribute, a filter on
/// an attribute that is not multi-valued and complex, or a filter naming an unknown
/// sub-attribute; 400 `mutability` for a read-only attribute.
pub(crate) fn resolve(resource: Resource, raw: &str) -> Result<Target, ScimError> {
    let raw = raw.trim();
    if let Some(urn) = resource.extension_urn(raw) {
        return Ok(Target::Extension(urn));
    }
    let parsed = parse_patch_path(raw)?;
    let base = AttrPath {
        sub: None,
        ..parsed.path.clone()
    };
    let r = resource
        .resolve(&base)
        .ok_or_else(|| invalid(format!("unknown attribute `{base}`")))?;
    let sub =
        match (parsed.path.sub, parsed.sub) {
            (Some(name), None) | (None, Some(name)) => Some(r.top.sub(&name).ok_or_else(|| {
                invalid(format!("`{}` has no sub-attribute `{name}`", r.top.name))
            })?),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(invalid(format!("`{raw}` names two sub-attributes"))),
        };
    if let Some(filter) = &parsed.filter {
        if !(r.top.multi_valued && r.top.kind == Kind::Complex) {
            return Err(invalid(format!(
                "`{}` is not a multi-valued complex attribute; it takes no filter",
                r.top.name
            )));
        }
        check_in_element(filter, r.top).map_err(|e| e.retyped(ScimType::InvalidPath))?;
    }
    let read_only = r.top.mutability == Mutability::ReadOnly
        || sub.is_some_and(|s| s.mutability == Mutability::ReadOnly);
    if read_only {
        return Err(ScimError::bad(
            ScimType::Mutability,
            format!("`{raw}` is read-only"),
        ));
    }
    Ok(Target::Attr(AttrTarget {
        ext: r.ext,
        top: r.top,
        filter: parsed.filter,
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(raw: &str) -> AttrTarget {
        match resolve(Resource::User, raw).unwrap() {
            Target::Attr(t) => t,
            Target::Extension(_) => panic!("an extension"),
        }
    }

    fn err(resource: Resource, raw: &str) -> ScimType {
        resolve(resource, raw).unwrap_err().scim_type.unwrap()
    }

    #[test]
    fn resolves_paths() {
        let t = attr("emails[type eq \"work\"].value");
        assert_eq!(
            (t.top.name, t.sub.map(|s| s.name), t.filter.is_some()),
            ("emails", Some("value"), true)
        );
        let t = attr("NAME.GIVENNAME");
        assert_eq!(
            (t.top.name, t.sub.map(|s| s.name)),
            ("name", Some("givenName"))
        );
        let t = attr("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager");
        assert_eq!(t.ext, Some(crate::schema::ENTERPRISE_USER));
        assert!(matches!(
            resolve(
                Resource::User,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"
            ),
            Ok(Target::Extension(_))
        ));
    }

    #[test]
    fn refuses_bad_paths() {
        assert_eq!(err(Resource::User, "nope"), ScimType::InvalidPath);
        assert_eq!(err(Resource::User, "name.nope"), ScimType::InvalidPath);
        assert_eq!(
            err(Resource::User, "userName[value pr]"),
            ScimType::InvalidPath
        );
        assert_eq!(
            err(Resource::User, "emails[nope eq \"x\"]"),
            ScimType::InvalidPath
        );
        assert_eq!(
            err(Resource::User, "emails[type eq \"x\""),
            ScimType::InvalidPath
        );
        assert_eq!(
            err(Resource::User, "emails[type eq \"work\"].nope"),
            ScimType::InvalidPath
        );
        assert_eq!(err(Resource::Group, "userName"), ScimType::InvalidPath);
        assert_eq!(err(Resource::User, "id"), ScimType::Mutability);
        assert_eq!(err(Resource::User, "meta.created"), ScimType::Mutability);
        assert_eq!(err(Resource::User, "groups"), ScimType::Mutability);
        assert_eq!(err(Resource::User, "schemas"), ScimType::Mutability);
        assert_eq!(
            err(
                Resource::User,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName"
            ),
            ScimType::Mutability
        );
    }
}
