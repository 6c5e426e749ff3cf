//! SCIM resources as JSON: a provisioned user or group with its `id`, `schemas` and `meta`, the
//! state a request body describes, list parameters, and which filters the database answers.

use bulwark_core::model::{ScimColumn, ScimGroup, ScimMatch, ScimUser, ScimUserQuery};
use bulwark_core::scim::{GroupState, UserState};
use bulwark_scim::error::{ScimError, ScimType};
use bulwark_scim::filter::{AttrPath, CompareOp, Filter};
use bulwark_scim::schema::{self, Resource};
use bulwark_types::{TeamId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The most resources one page holds (`filter.maxResults`).
pub const MAX_RESULTS: u64 = 1000;
/// Resources per page when the client does not say.
pub const DEFAULT_COUNT: u64 = 100;

/// `W/"<version>"`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version of an ETag of ours (`W/"3"` or `"3"`).
pub fn parse_etag(raw: &str) -> Option<i64> {
    raw.trim_start_matches("W/").trim_matches('"').parse().ok()
}

fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn meta(kind: &str, location: String, created: i64, updated: i64, version: i64) -> Value {
    json!({
        "resourceType": kind,
        "created": time_of(created),
        "lastModified": time_of(updated),
        "location": location,
        "version": etag(version),
    })
}

/// A provisioned user as SCIM JSON.
pub fn user_json(u: &ScimUser, groups: &[(TeamId, String)], base: &str) -> Value {
    let mut v: Map<String, Value> = serde_json::from_str(&u.resource).unwrap_or_default();
    let mut schemas = vec![Value::from(schema::USER)];
    if v.contains_key(schema::ENTERPRISE_USER) {
        schemas.push(Value::from(schema::ENTERPRISE_USER));
    }
    v.insert("schemas".into(), Value::Array(schemas));
    v.insert("id".into(), Value::from(u.user_id.to_string()));
    v.insert("userName".into(), Value::from(u.user_name.clone()));
    // `active` as the provider last set it; absent (it removed it, or never sent it) counts as
    // true, as RFC 7643 leaves it.
    if v.contains_key("active") {
        v.insert("active".into(), Value::Bool(u.active));
    }
    if !groups.is_empty() {
        let list = groups
            .iter()
            .map(|(id, name)| {
                json!({"value": id.to_string(), "$ref": format!("{base}/Groups/{id}"),
                       "display": name, "type": "direct"})
            })
            .collect();
        v.insert("groups".into(), Value::Array(list));
    }
    let location = format!("{base}/Users/{}", u.user_id);
    v.insert(
        "meta".into(),
        meta("User", location, u.created_ms, u.updated_ms, u.version),
    );
    Value::Object(v)
}

/// A provisioned group as SCIM JSON (members when loaded).
pub fn group_json(g: &ScimGroup, base: &str, with_members: bool) -> Value {
    let mut v = Map::new();
    v.insert("schemas".into(), json!([schema::GROUP]));
    v.insert("id".into(), Value::from(g.team_id.to_string()));
    v.insert("displayName".into(), Value::from(g.display_name.clone()));
    if let Some(ext) = &g.external_id {
        v.insert("externalId".into(), Value::from(ext.clone()));
    }
    if with_members {
        let list = g
            .members
            .iter()
            .map(|u| json!({"value": u.to_string(), "$ref": format!("{base}/Users/{u}"), "type": "User"}))
            .collect();
        v.insert("members".into(), Value::Array(list));
    }
    let location = format!("{base}/Groups/{}", g.team_id);
    v.insert(
        "meta".into(),
        meta("Group", location, g.created_ms, g.updated_ms, g.version),
    );
    Value::Object(v)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// What a (normalized) user body says; `attributes` names what the request set.
pub fn user_state(mut body: Value, attributes: Vec<String>) -> Result<UserState, ScimError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ScimError::bad(
            ScimType::InvalidSyntax,
            "the body must be a JSON object",
        ));
    };
    for derived in ["id", "meta", "groups", "schemas", "password"] {
        obj.remove(derived);
    }
    let user_name = text(&body, "userName")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ScimError::bad(ScimType::InvalidValue, "`userName` is required"))?;
    let mut emails: Vec<(bool, String)> = body
        .get("emails")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    let value = e.get("value")?.as_str()?.to_owned();
                    Some((e.get("primary") != Some(&Value::Bool(true)), value))
                })
                .collect()
        })
        .unwrap_or_default();
    emails.sort_by_key(|(not_primary, _)| *not_primary);
    Ok(UserState {
        external_id: text(&body, "externalId"),
        display_name: text(&body, "displayName"),
        active: body.get("active").and_then(Value::as_bool).unwrap_or(true),
        emails: emails.into_iter().map(|(_, v)| v).collect(),
        resource: body.to_string(),
        user_name,
        attributes,
    })
}

/// What a (normalized) group body says.
pub fn group_state(body: &Value, attributes: Vec<String>) -> Result<GroupState, ScimError> {
    let display_name = text(body, "displayName")
        .ok_or_else(|| ScimError::bad(ScimType::InvalidValue, "`displayName` is required"))?;
    let mut members = Vec::new();
    for m in body
        .get("members")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let raw = m.get("value").and_then(Value::as_str).unwrap_or_default();
        let id: UserId = raw.parse().map_err(|_| {
            ScimError::bad(
                ScimType::InvalidValue,
                format!("member `{raw}` is not a user of this organisation"),
            )
        })?;
        members.push(id);
    }
    Ok(GroupState {
        display_name,
        external_id: text(body, "externalId"),
        members,
        attributes,
    })
}

/// The top-level attributes of a body (for the audit event: names, never values).
pub fn attribute_names(body: &Value) -> Vec<String> {
    body.as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !matches!(k.as_str(), "schemas" | "id" | "meta"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The list parameters of RFC 7644 §3.4.2.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// A filter expression.
    pub filter: Option<String>,
    /// 1-based index of the first result.
    pub start_index: Option<String>,
    /// Results per page.
    pub count: Option<String>,
    /// Attribute to sort by.
    pub sort_by: Option<String>,
    /// `ascending` or `descending`.
    pub sort_order: Option<String>,
    /// Only these attributes.
    pub attributes: Option<String>,
    /// All but these attributes.
    pub excluded_attributes: Option<String>,
}

/// A `POST …/.search` body (RFC 7644 §3.4.3).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// `urn:ietf:params:scim:api:messages:2.0:SearchRequest`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// A filter expression.
    pub filter: Option<String>,
    /// 1-based index of the first result.
    pub start_index: Option<i64>,
    /// Results per page.
    pub count: Option<i64>,
    /// Attribute to sort by.
    pub sort_by: Option<String>,
    /// `ascending` or `descending`.
    pub sort_order: Option<String>,
    /// Only these attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// All but these attributes.
    #[serde(default)]
    pub excluded_attributes: Vec<String>,
}

const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

impl SearchRequest {
    /// The body read as list parameters.
    pub fn into_query(body: Value) -> Result<ListQuery, ScimError> {
        let search: Self = serde_json::from_value(body).map_err(|e| {
            ScimError::bad(ScimType::InvalidSyntax, format!("not a SearchRequest: {e}"))
        })?;
        if !search.schemas.iter().any(|s| s == SEARCH_REQUEST) {
            return Err(ScimError::bad(
                ScimType::InvalidSyntax,
                format!("`schemas` must hold `{SEARCH_REQUEST}`"),
            ));
        }
        let list = |v: Vec<String>| (!v.is_empty()).then(|| v.join(","));
        Ok(ListQuery {
            filter: search.filter,
            start_index: search.start_index.map(|n| n.to_string()),
            count: search.count.map(|n| n.to_string()),
            sort_by: search.sort_by,
            sort_order: search.sort_order,
            attributes: list(search.attributes),
            excluded_attributes: list(search.excluded_attributes),
        })
    }
}

impl ListQuery {
    /// (offset, count): a `startIndex` below 1 counts as 1; `count` is capped at
    /// [`MAX_RESULTS`], and below 0 counts as 0.
    pub fn page(&self) -> Result<(u64, u64), ScimError> {
        let number = |raw: &Option<String>, name: &str| -> Result<Option<i64>, ScimError> {
            raw.as_deref()
                .map(|s| {
                    s.trim().parse::<i64>().map_err(|_| {
                        ScimError::bad(
                            ScimType::InvalidValue,
                            format!("`{name}` must be an integer"),
                        )
                    })
                })
                .transpose()
        };
        let start = number(&self.start_index, "startIndex")?.unwrap_or(1).max(1);
        let count = number(&self.count, "count")?
            .map_or(DEFAULT_COUNT, |c| u64::try_from(c.max(0)).unwrap_or(0))
            .min(MAX_RESULTS);
        Ok((u64::try_from(start - 1).unwrap_or(0), count))
    }

    /// The filter, parsed.
    pub fn parsed_filter(&self) -> Result<Option<Filter>, ScimError> {
        self.filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(bulwark_scim::filter::parse)
            .transpose()
    }
}

/// A ListResponse of `resources`, `total` in all, starting at `offset`.
pub fn list_response(total: u64, offset: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": total,
        "startIndex": offset + 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn is_core_user(path: &AttrPath) -> bool {
    path.uri
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(schema::USER))
}

/// The database query that answers `filter` exactly, when there is one: one comparison of
/// `userName`, `displayName` or an email value (`eq`, `co`, `sw`, `ew`), or `externalId eq`.
pub fn pushed_down(filter: &Filter) -> Option<ScimUserQuery> {
    let (path, op, value) = filter.as_simple()?;
    let value = value.as_str()?;
    if !is_core_user(path) || value.contains('\n') {
        return None;
    }
    let how = match op {
        CompareOp::Eq => ScimMatch::Eq,
        CompareOp::Co => ScimMatch::Contains,
        CompareOp::Sw => ScimMatch::StartsWith,
        CompareOp::Ew => ScimMatch::EndsWith,
        _ => return None,
    };
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    let column = match (name.as_str(), sub.as_deref()) {
        ("username", None) => ScimColumn::UserName,
        ("displayname", None) => ScimColumn::DisplayName,
        ("emails", None | Some("value")) => ScimColumn::Email,
        ("externalid", None) if how == ScimMatch::Eq => {
            return Some(ScimUserQuery::Where(
                ScimColumn::ExternalId,
                how,
                value.to_owned(),
            ));
        }
        _ => return None,
    };
    Some(ScimUserQuery::Where(column, how, value.to_lowercase()))
}

/// Sorts `resources` by the attribute `sort_by` (missing values last), as RFC 7644 §3.4.2.3
/// says: strings compared case-insensitively unless case-exact.
pub fn sort(
    resources: &mut [Value],
    kind: Resource,
    sort_by: &str,
    descending: bool,
) -> Result<(), ScimError> {
    let path = AttrPath::parse(sort_by)?;
    let attribute = kind.attribute(&path).ok_or_else(|| {
        ScimError::bad(
            ScimType::InvalidValue,
            format!("cannot sort by unknown attribute `{sort_by}`"),
        )
    })?;
    let key = |v: &Value| -> Option<String> {
        let mut at = v.get(path.name.as_str()).or_else(|| {
            v.as_object()?
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&path.name))
                .map(|(_, x)| x)
        })?;
        if let Some(list) = at.as_array() {
            at = list
                .iter()
                .find(|e| e.get("primary") == Some(&Value::Bool(true)))
                .or_else(|| list.first())?;
        }
        if let Some(sub) = &path.sub {
            at = at.get(sub.as_str())?;
        } else if at.is_object() {
            at = at.get("value")?;
        }
        let s = match at {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some(if attribute.case_exact {
            s
        } else {
            s.to_lowercase()
        })
    };
    resources.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let order = match (&ka, &kb) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if descending && ka.is_some() && kb.is_some() {
            order.reverse()
        } else {
            order
        }
    });
    Ok(())
}

/// The resources of `all` that `filter` selects, sorted as `query` asks, and the page of them
/// from `offset` (`count` at most): how many matched, and the page.
pub fn filtered_page(
    kind: Resource,
    all: impl IntoIterator<Item = Value>,
    query: &ListQuery,
    filter: Option<&Filter>,
    (offset, count): (u64, u64),
) -> Result<(u64, Vec<Value>), ScimError> {
    let mut matched = Vec::new();
    for json in all {
        if filter.map_or(Ok(true), |f| f.matches(kind, &json))? {
            matched.push(json);
        }
    }
    if let Some(by) = &query.sort_by {
        let descending = query
            .sort_order
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("descending"));
        sort(&mut matched, kind, by, descending)?;
    }
    let total = u64::try_from(matched.len()).unwrap_or(u64::MAX);
    let page = matched
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
    Ok((total, page))
}
