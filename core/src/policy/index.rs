//! The compiled path index of an [`super::Acl`]: which merged rule a request path selects.
//!
//! * Exact and prefix rules share one byte-level radix tree; a single walk over the path
//!   yields the exact rule (if any) and the longest prefix rule.
//! * Segment (`+`) rules live in a trie over `/`-separated segments, with a `+` edge per node
//!   and, per node, the prefix rules whose last segment is a string prefix (`a/+/b*`).
//! * OpenBao sorts the matching candidates with a comparator that only looks at each rule's
//!   pattern, so every prefix and segment rule gets a precomputed rank; a lookup keeps the
//!   best-ranked match. Nothing is allocated per lookup.

use std::cmp::Ordering;

/// Id of a merged rule (index into the ACL's rule table).
pub(crate) type RuleId = u32;

#[derive(Debug, Default)]
struct RadixNode {
    /// Label of the edge into this node.
    label: Box<[u8]>,
    /// Child node ids, sorted by the first byte of their label.
    children: Vec<u32>,
    /// First byte of each child's label (parallel to `children`).
    first_bytes: Vec<u8>,
    exact: Option<RuleId>,
    prefix: Option<RuleId>,
}

#[derive(Debug, Default)]
struct SegNode {
    /// Literal segment → child, sorted by segment.
    literals: Vec<(Box<str>, u32)>,
    /// The `+` child.
    plus: Option<u32>,
    /// A non-prefix pattern ending here.
    end: Option<RuleId>,
    /// Prefix patterns whose last segment is matched as a string prefix here.
    prefix_last: Vec<(Box<str>, RuleId)>,
}

/// A prefix or segment rule's sort key (OpenBao's `wcPathDescr`).
#[derive(Debug, Clone)]
struct RankKey {
    first_wildcard: usize,
    is_prefix: bool,
    wildcards: usize,
    pattern: Box<str>,
}

impl RankKey {
    /// OpenBao's priority order, lowest first.
    fn cmp(&self, other: &RankKey) -> Ordering {
        self.first_wildcard
            .cmp(&other.first_wildcard)
            // A `*` rule is lower than a non-`*` rule at the same position.
            .then_with(|| other.is_prefix.cmp(&self.is_prefix))
            // More `+` segments is lower.
            .then_with(|| other.wildcards.cmp(&self.wildcards))
            .then_with(|| self.pattern.len().cmp(&other.pattern.len()))
            .then_with(|| self.pattern.as_bytes().cmp(other.pattern.as_bytes()))
    }
}

/// What the path index is built from: one entry per merged rule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IndexEntry<'a> {
    /// An exact path.
    Exact(&'a str),
    /// A prefix (without the `*`).
    Prefix(&'a str),
    /// A segment pattern (with its trailing `*`, if any).
    Segment(&'a str),
}

/// The compiled index.
#[derive(Debug)]
pub(crate) struct PathIndex {
    radix: Vec<RadixNode>,
    segments: Vec<SegNode>,
    has_segments: bool,
    /// Rank of each rule (0 for exact rules, which are never ranked).
    ranks: Vec<u32>,
}

impl PathIndex {
    /// Build the index; `entries[i]` describes rule `i`.
    pub(crate) fn build(entries: &[IndexEntry<'_>]) -> PathIndex {
        let mut index = PathIndex {
            radix: vec![RadixNode::default()],
            segments: vec![SegNode::default()],
            has_segments: false,
            ranks: vec![0; entries.len()],
        };
        let mut keyed: Vec<(RankKey, RuleId)> = Vec::new();
        for (id, entry) in (0u32..).zip(entries) {
            match *entry {
                IndexEntry::Exact(p) => index.radix_insert(p.as_bytes(), false, id),
                IndexEntry::Prefix(p) => {
                    index.radix_insert(p.as_bytes(), true, id);
                    keyed.push((
                        RankKey {
                            first_wildcard: p.len(),
                            is_prefix: true,
                            wildcards: 0,
                            pattern: p.into(),
                        },
                        id,
                    ));
                }
                IndexEntry::Segment(p) => {
                    index.has_segments = true;
                    let is_prefix = p.ends_with('*');
                    let pattern = p.strip_suffix('*').unwrap_or(p);
                    index.segment_insert(pattern, is_prefix, id);
                    keyed.push((
                        RankKey {
                            first_wildcard: p.find('+').unwrap_or(0),
                            is_prefix,
                            wildcards: pattern.split('/').filter(|s| *s == "+").count(),
                            pattern: pattern.into(),
                        },
                        id,
                    ));
                }
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (rank, (_, id)) in (1u32..).zip(&keyed) {
            if let Some(slot) = index.ranks.get_mut(*id as usize) {
                *slot = rank;
            }
        }
        index
    }

    fn radix_insert(&mut self, key: &[u8], prefix: bool, id: RuleId) {
        let mut node = 0usize;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                if let Some(n) = self.radix.get_mut(node) {
                    if prefix {
                        n.prefix = Some(id);
                    } else {
                        n.exact = Some(id);
                    }
                }
                return;
            };
            let Some(n) = self.radix.get(node) else {
                return;
            };
            let pos = n.first_bytes.binary_search(&first);
            match pos {
                Err(at) => {
                    let child = self.radix.len() as u32;
                    let mut new = RadixNode {
                        label: rest.into(),
                        ..RadixNode::default()
                    };
                    if prefix {
                        new.prefix = Some(id);
                    } else {
                        new.exact = Some(id);
                    }
                    self.radix.push(new);
                    if let Some(n) = self.radix.get_mut(node) {
                        n.children.insert(at, child);
                        n.first_bytes.insert(at, first);
                    }
                    return;
                }
                Ok(at) => {
                    let Some(&child) = n.children.get(at) else {
                        return;
                    };
                    let Some(c) = self.radix.get(child as usize) else {
                        return;
                    };
                    let common = c.label.iter().zip(rest).take_while(|(a, b)| a == b).count();
                    if common == c.label.len() {
                        node = child as usize;
                        rest = rest.get(common..).unwrap_or_default();
                        continue;
                    }
                    // Split the edge: a new middle node takes the common part.
                    let (head, tail) = c.label.split_at(common);
                    let head: Box<[u8]> = head.into();
                    let tail: Box<[u8]> = tail.into();
                    let tail_first = tail.first().copied().unwrap_or(0);
                    let mid = self.radix.len() as u32;
                    self.radix.push(RadixNode {
                        label: head,
                        children: vec![child],
                        first_bytes: vec![tail_first],
                        ..RadixNode::default()
                    });
                    if let Some(c) = self.radix.get_mut(child as usize) {
                        c.label = tail;
                    }
                    if let Some(n) = self.radix.get_mut(node)
                        && let Some(slot) = n.children.get_mut(at)
                    {
                        *slot = mid;
                    }
                    node = mid as usize;
                    rest = rest.get(common..).unwrap_or_default();
                }
            }
        }
    }

    fn segment_insert(&mut self, pattern: &str, is_prefix: bool, id: RuleId) {
        let mut segs: Vec<&str> = pattern.split('/').collect();
        let last = if is_prefix { segs.pop() } else { None };
        let mut node = 0usize;
        for seg in segs {
            node = self.segment_child(node, seg);
        }
        if let Some(n) = self.segments.get_mut(node) {
            match last {
                Some(last) => n.prefix_last.push((last.into(), id)),
                None => n.end = Some(id),
            }
        }
    }

    fn segment_child(&mut self, node: usize, seg: &str) -> usize {
        let next = self.segments.len();
        let Some(n) = self.segments.get_mut(node) else {
            return node;
        };
        if seg == "+" {
            if let Some(c) = n.plus {
                return c as usize;
            }
            n.plus = Some(next as u32);
        } else {
            match n.literals.binary_search_by(|(s, _)| (**s).cmp(seg)) {
                Ok(at) => return n.literals.get(at).map_or(node, |(_, c)| *c as usize),
                Err(at) => n.literals.insert(at, (seg.into(), next as u32)),
            }
        }
        self.segments.push(SegNode::default());
        next
    }

    /// The exact rule for `path` and the longest prefix rule matching it, in one walk.
    pub(crate) fn exact_and_prefix(&self, path: &str) -> (Option<RuleId>, Option<RuleId>) {
        let mut rest = path.as_bytes();
        let Some(mut node) = self.radix.first() else {
            return (None, None);
        };
        let mut prefix = node.prefix;
        loop {
            let Some(&first) = rest.first() else {
                return (node.exact, prefix);
            };
            let Ok(at) = node.first_bytes.binary_search(&first) else {
                return (None, prefix);
            };
            let Some(child) = node
                .children
                .get(at)
                .and_then(|c| self.radix.get(*c as usize))
            else {
                return (None, prefix);
            };
            let Some(tail) = rest.strip_prefix(&*child.label) else {
                return (None, prefix);
            };
            rest = tail;
            node = child;
            if node.prefix.is_some() {
                prefix = node.prefix;
            }
        }
    }

    /// The exact rule for `path`.
    pub(crate) fn exact(&self, path: &str) -> Option<RuleId> {
        self.exact_and_prefix(path).0
    }

    /// OpenBao's `CheckAllowedFromNonExactPaths`: the best of the longest prefix rule
    /// (`longest_prefix`, from [`PathIndex::exact_and_prefix`]) and every matching segment
    /// rule.
    pub(crate) fn non_exact(&self, path: &str, longest_prefix: Option<RuleId>) -> Option<RuleId> {
        if !self.has_segments {
            return longest_prefix;
        }
        let mut best = longest_prefix.map(|id| (self.rank(id), id));
        self.segment_walk(0, Some(path), &mut best);
        best.map(|(_, id)| id)
    }

    fn rank(&self, id: RuleId) -> u32 {
        self.ranks.get(id as usize).copied().unwrap_or(0)
    }

    fn consider(&self, id: RuleId, best: &mut Option<(u32, RuleId)>) {
        let rank = self.rank(id);
        if best.is_none_or(|(r, _)| rank > r) {
            *best = Some((rank, id));
        }
    }

    /// Visit the trie along `rest` (the unconsumed segments; `None` once all are consumed).
    fn segment_walk(&self, node: usize, rest: Option<&str>, best: &mut Option<(u32, RuleId)>) {
        let Some(n) = self.segments.get(node) else {
            return;
        };
        let Some(rest) = rest else {
            if let Some(id) = n.end {
                self.consider(id, best);
            }
            return;
        };
        let (seg, next) = match rest.split_once('/') {
            Some((seg, next)) => (seg, Some(next)),
            None => (rest, None),
        };
        for (p, id) in &n.prefix_last {
            if seg.starts_with(&**p) {
                self.consider(*id, best);
            }
        }
        if let Ok(at) = n.literals.binary_search_by(|(s, _)| (**s).cmp(seg))
            && let Some((_, child)) = n.literals.get(at)
        {
            self.segment_walk(*child as usize, next, best);
        }
        if let Some(child) = n.plus {
            self.segment_walk(child as usize, next, best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_finds_exact_and_longest_prefix() {
        let idx = PathIndex::build(&[
            IndexEntry::Exact("secret/foo"),
            IndexEntry::Prefix("secret/"),
            IndexEntry::Prefix("secret/fo"),
            IndexEntry::Exact("secret/food"),
            IndexEntry::Prefix(""),
        ]);
        assert_eq!(idx.exact_and_prefix("secret/foo"), (Some(0), Some(2)));
        assert_eq!(idx.exact_and_prefix("secret/food"), (Some(3), Some(2)));
        assert_eq!(idx.exact_and_prefix("secret/f"), (None, Some(1)));
        assert_eq!(idx.exact_and_prefix("other"), (None, Some(4)));
        assert_eq!(idx.exact_and_prefix("secret/fox"), (None, Some(2)));
    }

    #[test]
    fn segment_rules_rank_like_openbao() {
        let idx = PathIndex::build(&[
            IndexEntry::Segment("a/+/x"),
            IndexEntry::Segment("+/+/x"),
            IndexEntry::Prefix("a/b"),
            IndexEntry::Segment("a/+/x*"),
        ]);
        // `a/+/x` (first `+` at 2) beats `+/+/x` (at 0); a non-`*` rule beats `a/+/x*`.
        assert_eq!(idx.non_exact("a/b/x", None), Some(0));
        let (_, p) = idx.exact_and_prefix("a/bc/x");
        // The prefix `a/b` has its glob at 3, later than any `+`.
        assert_eq!(idx.non_exact("a/bc/x", p), Some(2));
        assert_eq!(idx.non_exact("a/q/xyz/more", None), Some(3));
        assert_eq!(idx.non_exact("z/q/x", None), Some(1));
        assert_eq!(idx.non_exact("z/q", None), None);
    }
}
