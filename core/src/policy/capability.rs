//! Capabilities (`read`, `update`, `deny`, ...) and the bitmap a rule holds.

use std::fmt;

/// One capability a path rule can grant. OpenBao has no `subscribe`; `scan` is OpenBao's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Capability {
    /// Forbids everything on the path; other capabilities on the rule are dropped.
    Deny,
    /// Write to an entry that does not exist yet.
    Create,
    /// Read.
    Read,
    /// Write.
    Update,
    /// Delete.
    Delete,
    /// List children.
    List,
    /// Needed in addition on root-protected paths.
    Sudo,
    /// JSON merge patch.
    Patch,
    /// Recursive listing (OpenBao).
    Scan,
}

impl Capability {
    /// Every capability, in OpenBao's bit order.
    pub(crate) const ALL: [Capability; 9] = [
        Capability::Deny,
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Patch,
        Capability::Scan,
    ];

    /// The policy-language name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Capability::Deny => "deny",
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Patch => "patch",
            Capability::Scan => "scan",
        }
    }

    /// The capability with this policy-language name (case-sensitive, as in OpenBao).
    pub(crate) fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// This capability's bit (OpenBao's `DenyCapabilityInt` ... `ScanCapabilityInt`).
    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Position in [`Capability::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities, stored as OpenBao's bitmap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Capabilities(u16);

impl Capabilities {
    /// No capability at all.
    pub(crate) const EMPTY: Capabilities = Capabilities(0);

    /// Only `deny`.
    pub(crate) const DENY: Capabilities = Capabilities(1);

    /// The set holding exactly these capabilities.
    pub(crate) fn of(caps: &[Capability]) -> Capabilities {
        caps.iter().fold(Capabilities::EMPTY, |s, c| s.with(*c))
    }

    /// Whether `cap` is in the set.
    pub(crate) fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// The set with `cap` added.
    #[must_use]
    pub(crate) fn with(self, cap: Capability) -> Capabilities {
        Capabilities(self.0 | cap.bit())
    }

    /// The union of two sets.
    #[must_use]
    pub(crate) fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `deny` is in the set.
    pub(crate) fn is_deny(self) -> bool {
        self.contains(Capability::Deny)
    }

    /// The capabilities in the set, in bit order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// What `sys/capabilities` answers for a rule with this set: the names sorted
    /// alphabetically, or `["deny"]` when the set holds `deny` or nothing.
    pub(crate) fn sorted_names(self) -> Vec<&'static str> {
        if self.is_deny() || self.is_empty() {
            return vec![Capability::Deny.as_str()];
        }
        let mut names: Vec<&'static str> = self.iter().map(Capability::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_openbao() {
        assert_eq!(Capability::Deny.bit(), 1);
        assert_eq!(Capability::Create.bit(), 2);
        assert_eq!(Capability::Scan.bit(), 256);
        assert_eq!(Capability::parse("scan"), Some(Capability::Scan));
        assert_eq!(Capability::parse("Read"), None);
    }

    #[test]
    fn names_are_sorted_and_deny_when_empty() {
        let c = Capabilities::of(&[Capability::Update, Capability::Read, Capability::List]);
        assert_eq!(c.sorted_names(), vec!["list", "read", "update"]);
        assert_eq!(Capabilities::EMPTY.sorted_names(), vec!["deny"]);
        assert_eq!(Capabilities::DENY.sorted_names(), vec!["deny"]);
    }
}
