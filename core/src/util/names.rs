//! The names in request paths (`transit/keys/<name>`, `auth/userpass/users/<name>`), in the
//! form the engine acts on.
//!
//! The ACL must judge exactly the path the engine will act on: a policy that denies
//! `sys/policies/acl/st-protected` must also deny `sys/policies/acl/ST-PROTECTED` when the
//! policy store lowercases names. So every engine and auth method declares, through
//! [`crate::secrets::Engine::canonical_path`], where its paths carry names and how it treats
//! them, and the pipeline rewrites the request path before the ACL (or refuses the path).
//!
//! The rules follow OpenBao 2.7, checked side by side with `bao server -dev`:
//! - most names must match the framework's `GenericNameRegex`, `\w(([\w-.]+)?\w)?` with Go's
//!   ASCII `\w`: anything else (a space, `@`, a leading `-`, a non-ASCII letter) is a path no
//!   pattern matches, answered 404 `unsupported path` once the ACL has allowed the request;
//! - some of those are case-insensitive and stored lowercased (userpass users, AppRole and
//!   Kubernetes roles): the ACL judges the lowercased path, as OpenBao's does;
//! - ACL policy names are trimmed and lowercased, whatever characters they hold;
//! - identity entity and group names are free-form and matched case-insensitively: the ACL
//!   judges the lowercased path (OpenBao judges the path as sent, so a rule denying
//!   `identity/entity/name/admin` did not cover `identity/entity/name/ADMIN`, which acts on the
//!   same entity);
//! - the rest (transit keys, database roles and connections, token roles) are case-sensitive:
//!   `PROT` and `prot` are two objects.

use std::borrow::Cow;

/// How a path's name segment is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameCase {
    /// `GenericNameRegex`, case-sensitive.
    Exact,
    /// `GenericNameRegex`, then lowercased (the engine stores names lowercased).
    Lower,
    /// Any characters, trimmed and lowercased (ACL policy names).
    TrimLower,
    /// Any characters, lowercased (identity names, matched case-insensitively).
    AnyLower,
}

/// Where a path carries a name: the segment right after `prefix` (up to the next `/`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameRule {
    /// The path prefix before the name, ending in `/` (`keys/`, `role/`).
    pub prefix: &'static str,
    /// How the name is treated.
    pub case: NameCase,
}

impl NameRule {
    /// A case-sensitive `GenericNameRegex` name after `prefix`.
    pub(crate) const fn exact(prefix: &'static str) -> NameRule {
        NameRule {
            prefix,
            case: NameCase::Exact,
        }
    }
    /// A `GenericNameRegex` name after `prefix`, stored lowercased.
    pub(crate) const fn lower(prefix: &'static str) -> NameRule {
        NameRule {
            prefix,
            case: NameCase::Lower,
        }
    }
    /// A free-form name after `prefix`, lowercased (not trimmed).
    pub(crate) const fn any_lower(prefix: &'static str) -> NameRule {
        NameRule {
            prefix,
            case: NameCase::AnyLower,
        }
    }
    /// A free-form name after `prefix`, trimmed and lowercased.
    pub(crate) const fn trim_lower(prefix: &'static str) -> NameRule {
        NameRule {
            prefix,
            case: NameCase::TrimLower,
        }
    }
}

/// A path as the engine will act on it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CanonicalPath<'p> {
    /// The path is canonical (or carries no name): judge and serve it as it is.
    Same(&'p str),
    /// The engine acts on this path: the ACL judges it, the engine receives it.
    Rewritten(String),
    /// A name the engine's patterns do not match: no object can have it. The ACL judges the
    /// path as sent; if it allows, the answer is 404 `unsupported path`, as OpenBao's.
    NotCanonical,
}

/// Whether `name` matches OpenBao's `framework.GenericNameRegex`: `\w(([\w-.]+)?\w)?`, with
/// Go's ASCII-only `\w` (`[0-9A-Za-z_]`).
pub(crate) fn is_generic_name(name: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            word(first) && word(last) && bytes.iter().all(|&b| word(b) || b == b'-' || b == b'.')
        }
        _ => false,
    }
}

/// Apply the first rule whose prefix `path` starts with to its name segment. A path with no
/// name after the prefix (a list of `keys/`) is left as it is.
pub(crate) fn canonical_path<'p>(path: &'p str, rules: &[NameRule]) -> CanonicalPath<'p> {
    for rule in rules {
        let Some(rest) = path.strip_prefix(rule.prefix) else {
            continue;
        };
        let (name, tail) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if name.is_empty() {
            return CanonicalPath::Same(path);
        }
        let canonical: Cow<'_, str> = match rule.case {
            NameCase::Exact if is_generic_name(name) => Cow::Borrowed(name),
            NameCase::Lower if is_generic_name(name) => {
                if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(name.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(name)
                }
            }
            NameCase::Exact | NameCase::Lower => return CanonicalPath::NotCanonical,
            NameCase::AnyLower => {
                let lower = name.to_lowercase();
                if lower == name {
                    Cow::Borrowed(name)
                } else {
                    Cow::Owned(lower)
                }
            }
            NameCase::TrimLower => {
                let trimmed = name.trim();
                if trimmed.is_empty() {
                    // Nothing to judge but the path as sent; the engine refuses an empty name.
                    return CanonicalPath::Same(path);
                }
                // Whether lowercasing changes the name, exactly as the store will lowercase it:
                // `is_uppercase` misses titlecase letters (`ǅ` lowercases to `ǆ`).
                let unchanged = if name.is_ascii() {
                    !name.bytes().any(|b| b.is_ascii_uppercase())
                } else {
                    name.to_lowercase() == name
                };
                if trimmed.len() == name.len() && unchanged {
                    Cow::Borrowed(name)
                } else {
                    Cow::Owned(trimmed.to_lowercase())
                }
            }
        };
        return match canonical {
            Cow::Borrowed(_) => CanonicalPath::Same(path),
            Cow::Owned(name) => CanonicalPath::Rewritten(format!("{}{name}{tail}", rule.prefix)),
        };
    }
    CanonicalPath::Same(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_name_regex() {
        for ok in ["a", "A", "a.b", "a_b-c", "A_b-c", "x1", "_", "a..b", "a-b"] {
            assert!(is_generic_name(ok), "{ok}");
        }
        for bad in [
            "", " a", "a ", "a b", "a@b", "a$b", "-ab", ".ab", "ab-", "ab.", "aéb", "a/b", "a%b",
        ] {
            assert!(!is_generic_name(bad), "{bad:?}");
        }
    }

    const RULES: &[NameRule] = &[
        NameRule::exact("keys/"),
        NameRule::lower("role/"),
        NameRule::trim_lower("acl/"),
    ];

    #[test]
    fn rules_apply_to_the_name_segment_only() {
        assert_eq!(
            canonical_path("keys/Prot/rotate", RULES),
            CanonicalPath::Same("keys/Prot/rotate")
        );
        assert_eq!(
            canonical_path("keys/prot%20", RULES),
            CanonicalPath::NotCanonical
        );
        assert_eq!(
            canonical_path("keys/pr ot/rotate", RULES),
            CanonicalPath::NotCanonical
        );
        assert_eq!(
            canonical_path("role/ST-Admin/secret-id", RULES),
            CanonicalPath::Rewritten("role/st-admin/secret-id".into())
        );
        assert_eq!(
            canonical_path("role/st-admin/Secret-ID", RULES),
            CanonicalPath::Same("role/st-admin/Secret-ID")
        );
        assert_eq!(
            canonical_path("acl/ St-Protected ", RULES),
            CanonicalPath::Rewritten("acl/st-protected".into())
        );
        assert_eq!(
            canonical_path("acl/a$b c", RULES),
            CanonicalPath::Same("acl/a$b c")
        );
        assert_eq!(canonical_path("keys/", RULES), CanonicalPath::Same("keys/"));
        assert_eq!(
            canonical_path("acl/  ", RULES),
            CanonicalPath::Same("acl/  ")
        );
        assert_eq!(
            canonical_path("other/ANY thing", RULES),
            CanonicalPath::Same("other/ANY thing")
        );
    }
}
