//! Identity templating in policy paths (`{{identity.entity.id}}`, ...), after OpenBao's
//! `sdk/helper/identitytpl` in ACL mode.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::duration::{SECOND, parse_duration_second_str};

/// The identity a templated policy is rendered for.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateIdentity {
    /// The token's entity, if it has one.
    pub(crate) entity: Option<TemplateEntity>,
    /// The groups the entity belongs to.
    pub(crate) groups: Vec<TemplateGroup>,
    /// The namespace the request is in ("" for the root namespace).
    pub(crate) namespace_id: String,
}

/// An identity entity as templates see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateEntity {
    /// Entity id.
    pub(crate) id: String,
    /// Entity name.
    pub(crate) name: String,
    /// Entity metadata.
    pub(crate) metadata: BTreeMap<String, String>,
    /// The entity's aliases.
    pub(crate) aliases: Vec<TemplateAlias>,
}

/// An entity alias as templates see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateAlias {
    /// The auth mount's accessor the alias belongs to.
    pub(crate) mount_accessor: String,
    /// Alias id.
    pub(crate) id: String,
    /// Alias name.
    pub(crate) name: String,
    /// Alias metadata.
    pub(crate) metadata: BTreeMap<String, String>,
    /// Alias custom metadata.
    pub(crate) custom_metadata: BTreeMap<String, String>,
}

/// An identity group as templates see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateGroup {
    /// Group id.
    pub(crate) id: String,
    /// Group name.
    pub(crate) name: String,
    /// The namespace the group lives in.
    pub(crate) namespace_id: String,
    /// Group metadata.
    pub(crate) metadata: BTreeMap<String, String>,
}

/// Why a template could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `{{` and `}}` do not pair up (also raised when only validating).
    Unbalanced,
    /// A substituted value holds `*`, `+` or `/` that the policy does not allow: the request
    /// fails.
    Wildcard(String),
    /// Any other failure: the rule is skipped for this identity.
    Other(String),
}

impl TemplateError {
    /// OpenBao's message.
    pub(crate) fn message(&self) -> String {
        match self {
            TemplateError::Unbalanced => "unbalanced templating characters".into(),
            TemplateError::Wildcard(m) | TemplateError::Other(m) => m.clone(),
        }
    }
}

const NOT_FOUND: &str = "no value could be found for one of the template directives";

fn not_found() -> TemplateError {
    TemplateError::Other(NOT_FOUND.into())
}

/// Whether `s` holds template directives; errors when they are unbalanced.
pub(crate) fn has_templating(s: &str) -> Result<bool, TemplateError> {
    let mut pieces = s.split("{{");
    if pieces.next().is_some_and(|first| first.contains("}}")) {
        return Err(TemplateError::Unbalanced);
    }
    let mut any = false;
    for piece in pieces {
        if piece.split("}}").count() != 2 {
            return Err(TemplateError::Unbalanced);
        }
        any = true;
    }
    Ok(any)
}

/// How a templated policy is rendered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Render<'a> {
    /// Who the policy is rendered for.
    pub(crate) identity: &'a TemplateIdentity,
    /// Time for `{{time.now}}`.
    pub(crate) now: OffsetDateTime,
    /// Whether substituted values may contain `/`.
    pub(crate) allow_slashes: bool,
    /// Whether substituted values may contain `*` and `+`.
    pub(crate) allow_wildcards: bool,
}

/// Substitute every directive in `s` (ACL mode).
pub(crate) fn populate(s: &str, r: &Render<'_>) -> Result<String, TemplateError> {
    let mut pieces = s.split("{{");
    let first = pieces.next().unwrap_or_default();
    if first.contains("}}") {
        return Err(TemplateError::Unbalanced);
    }
    let mut out = String::with_capacity(s.len() * 2);
    out.push_str(first);
    for piece in pieces {
        let mut parts = piece.split("}}");
        let (Some(directive), Some(tail), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TemplateError::Unbalanced);
        };
        let value = perform(directive.trim(), r)?;
        check_blocked(&value, r)?;
        out.push_str(&value);
        out.push_str(tail);
    }
    Ok(out)
}

/// A substituted `*` or `+` (unless wildcards are allowed) or `/` (unless slashes are) fails
/// the whole ACL, as OpenBao 2.7.2 does (verified: `template substitution contains forbidden
/// value: "/"`, and the request is refused), rather than dropping the rule.
fn check_blocked(value: &str, r: &Render<'_>) -> Result<(), TemplateError> {
    let forbidden = |c: char| {
        Err(TemplateError::Wildcard(format!(
            "template substitution contains forbidden value: \"{c}\""
        )))
    };
    if !r.allow_wildcards
        && let Some(c) = ['*', '+'].into_iter().find(|c| value.contains(*c))
    {
        return forbidden(c);
    }
    if !r.allow_slashes && value.contains('/') {
        return forbidden('/');
    }
    Ok(())
}

fn from_map(m: &BTreeMap<String, String>, key: Option<&str>) -> Result<String, TemplateError> {
    key.and_then(|k| m.get(k)).cloned().ok_or_else(not_found)
}

fn non_empty(s: &str) -> Result<String, TemplateError> {
    if s.is_empty() {
        Err(not_found())
    } else {
        Ok(s.to_string())
    }
}

fn perform(input: &str, r: &Render<'_>) -> Result<String, TemplateError> {
    if let Some(rest) = input.strip_prefix("identity.entity.") {
        let Some(entity) = &r.identity.entity else {
            return Err(TemplateError::Other(
                "string contains entity template directives but no entity was provided".into(),
            ));
        };
        return entity_value(entity, rest);
    }
    if let Some(rest) = input.strip_prefix("identity.groups.") {
        if r.identity.groups.is_empty() {
            return Err(TemplateError::Other(
                "string contains groups template directives but no groups were provided".into(),
            ));
        }
        return group_value(r.identity, rest);
    }
    if let Some(rest) = input.strip_prefix("time.") {
        return time_value(r.now, rest);
    }
    Err(not_found())
}

fn entity_value(entity: &TemplateEntity, sel: &str) -> Result<String, TemplateError> {
    match sel {
        "id" => non_empty(&entity.id),
        "name" => non_empty(&entity.name),
        "metadata" | "groups.names" | "groups.ids" => Err(not_found()),
        _ => {
            if let Some(key) = sel.strip_prefix("metadata.") {
                return from_map(&entity.metadata, Some(key));
            }
            if let Some(rest) = sel.strip_prefix("aliases.") {
                let Some((accessor, field)) = rest.split_once('.') else {
                    return Err(TemplateError::Other("invalid alias selector".into()));
                };
                let Some(alias) = entity.aliases.iter().find(|a| a.mount_accessor == accessor)
                else {
                    return Err(TemplateError::Other("alias not found".into()));
                };
                return alias_value(alias, field);
            }
            Err(not_found())
        }
    }
}

fn alias_value(alias: &TemplateAlias, sel: &str) -> Result<String, TemplateError> {
    match sel {
        "id" => non_empty(&alias.id),
        "name" => non_empty(&alias.name),
        "metadata" | "custom_metadata" => Err(not_found()),
        _ => {
            if let Some(key) = sel.strip_prefix("metadata.") {
                return from_map(&alias.metadata, Some(key));
            }
            if let Some(key) = sel.strip_prefix("custom_metadata.") {
                return from_map(&alias.custom_metadata, Some(key));
            }
            Err(not_found())
        }
    }
}

fn group_value(identity: &TemplateIdentity, sel: &str) -> Result<String, TemplateError> {
    let invalid_selector = || TemplateError::Other("invalid groups selector".into());
    let (kind, rest) = sel.split_once('.').ok_or_else(invalid_selector)?;
    let by_id = match kind {
        "ids" => true,
        "names" => false,
        _ => return Err(invalid_selector()),
    };
    let (wanted, field) = rest
        .split_once('.')
        .ok_or_else(|| TemplateError::Other("invalid groups accessor".into()))?;
    let found = identity.groups.iter().find(|g| {
        if by_id {
            g.id == wanted
        } else {
            (identity.namespace_id.is_empty() || g.namespace_id == identity.namespace_id)
                && g.name == wanted
        }
    });
    let Some(group) = found else {
        return Err(TemplateError::Other(format!(
            "entity is not a member of group {}",
            super::hcl::strconv::quote(wanted)
        )));
    };
    match field {
        "id" => Ok(group.id.clone()),
        "name" => non_empty(&group.name),
        _ => match field.strip_prefix("metadata.") {
            Some(key) => from_map(&group.metadata, Some(key)),
            None => Err(not_found()),
        },
    }
}

fn time_value(now: OffsetDateTime, sel: &str) -> Result<String, TemplateError> {
    let ops: Vec<&str> = sel.splitn(3, '.').collect();
    match ops.as_slice() {
        ["now"] => Ok(now.unix_timestamp().to_string()),
        ["now", _] => Err(TemplateError::Other("missing time operand".into())),
        ["now", op, dur] => {
            let d = parse_duration_second_str(dur)
                .map_err(|e| TemplateError::Other(format!("invalid duration: {e}")))?;
            let secs = d / SECOND;
            let t = match *op {
                "plus" => now.unix_timestamp().saturating_add(secs),
                "minus" => now.unix_timestamp().saturating_sub(secs),
                other => {
                    return Err(TemplateError::Other(format!(
                        "invalid time operator {}",
                        super::hcl::strconv::quote(other)
                    )));
                }
            };
            Ok(t.to_string())
        }
        [first, ..] => Err(TemplateError::Other(format!(
            "invalid time selector {}",
            super::hcl::strconv::quote(first)
        ))),
        [] => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> TemplateIdentity {
        TemplateIdentity {
            entity: Some(TemplateEntity {
                id: "e-1".into(),
                name: "alice".into(),
                metadata: [("team".to_string(), "ops".to_string())].into(),
                aliases: vec![TemplateAlias {
                    mount_accessor: "auth_userpass_1".into(),
                    name: "alice-up".into(),
                    ..TemplateAlias::default()
                }],
            }),
            groups: vec![TemplateGroup {
                id: "g-1".into(),
                name: "admins".into(),
                ..TemplateGroup::default()
            }],
            namespace_id: String::new(),
        }
    }

    fn render(s: &str) -> Result<String, TemplateError> {
        let id = identity();
        populate(
            s,
            &Render {
                identity: &id,
                now: OffsetDateTime::UNIX_EPOCH,
                allow_slashes: false,
                allow_wildcards: false,
            },
        )
    }

    #[test]
    fn validates_balance() {
        assert_eq!(has_templating("a/{{x}}/b"), Ok(true));
        assert_eq!(has_templating("a/b"), Ok(false));
        assert_eq!(has_templating("a/}}{{x"), Err(TemplateError::Unbalanced));
        assert_eq!(has_templating("a/{{x"), Err(TemplateError::Unbalanced));
    }

    #[test]
    fn renders_entity_alias_group_and_time() {
        assert_eq!(render("x/{{identity.entity.id}}").unwrap(), "x/e-1");
        assert_eq!(
            render("x/{{ identity.entity.metadata.team }}").unwrap(),
            "x/ops"
        );
        assert_eq!(
            render("x/{{identity.entity.aliases.auth_userpass_1.name}}").unwrap(),
            "x/alice-up"
        );
        assert_eq!(
            render("x/{{identity.groups.names.admins.id}}").unwrap(),
            "x/g-1"
        );
        assert_eq!(render("x/{{time.now.plus.1h}}").unwrap(), "x/3600");
        assert_eq!(
            render("x/{{identity.entity.metadata.nope}}")
                .unwrap_err()
                .message(),
            NOT_FOUND
        );
    }
}
