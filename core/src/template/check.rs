//! Parse-time checks gotmpl leaves to execution: Go's parser refuses a call to an undefined
//! function (`template: NAME:LINE:COL: function "x" not defined`); we do the same, so that a
//! misspelt function is reported with its position when the agent starts, not at first render.

use std::collections::BTreeSet;

use gotmpl::parse::{BranchNode, Expr, ListNode, Node, PipeNode, Pos};

/// Go's built-in template functions (gotmpl registers the same set).
pub(crate) const BUILTINS: [&str; 19] = [
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

/// 1-based (line, column) of a byte offset, the column counted in characters as Go does.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The first call to a function not in `known`, with its position.
pub(crate) fn undefined_function(list: &ListNode, known: &BTreeSet<&str>) -> Option<(String, Pos)> {
    list.nodes.iter().find_map(|n| in_node(n, known))
}

fn in_node(node: &Node, known: &BTreeSet<&str>) -> Option<(String, Pos)> {
    match node {
        Node::List(l) => undefined_function(l, known),
        Node::Action(a) => in_pipe(&a.pipe, known),
        Node::If(b) | Node::Range(b) | Node::With(b) => in_branch(b, known),
        Node::Template(t) => t.pipe.as_ref().and_then(|p| in_pipe(p, known)),
        Node::Define(d) => undefined_function(&d.body, known),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => None,
    }
}

fn in_branch(b: &BranchNode, known: &BTreeSet<&str>) -> Option<(String, Pos)> {
    in_pipe(&b.pipe, known)
        .or_else(|| undefined_function(&b.body, known))
        .or_else(|| {
            b.else_body
                .as_ref()
                .and_then(|e| undefined_function(e, known))
        })
}

fn in_pipe(p: &PipeNode, known: &BTreeSet<&str>) -> Option<(String, Pos)> {
    p.commands
        .iter()
        .flat_map(|c| c.args.iter())
        .find_map(|e| in_expr(e, known))
}

fn in_expr(e: &Expr, known: &BTreeSet<&str>) -> Option<(String, Pos)> {
    match e {
        Expr::Identifier(pos, name) if !known.contains(name.as_str()) => {
            Some((name.to_string(), *pos))
        }
        Expr::Pipe(_, p) => in_pipe(p, known),
        Expr::Chain(_, inner, _) => in_expr(inner, known),
        _ => None,
    }
}

/// Block structure: every `if`/`range`/`with`/`define`/`block` closed by `end`, no stray `end`
/// or `else`. gotmpl stops reading at an unmatched `{{ end }}` and accepts an unclosed block
/// at the end of the input; Go refuses both, and so do we, with the position.
pub(crate) fn block_structure(
    source: &str,
    left: &str,
    right: &str,
) -> Result<(), (String, usize)> {
    let mut stack: Vec<(&'static str, usize)> = Vec::new();
    let mut at = 0;
    while let Some(found) = source.get(at..).and_then(|s| s.find(left)) {
        let start = at + found;
        let mut i = start + left.len();
        let body_start = i;
        // Find the closing delimiter outside quotes and comments.
        let bytes = source.as_bytes();
        let end = loop {
            let rest = source.get(i..).unwrap_or("");
            if rest.is_empty() {
                return Err(("unclosed action".to_string(), start));
            }
            if rest.starts_with("/*") {
                match rest.find("*/") {
                    Some(e) => i += e + 2,
                    None => return Err(("unclosed comment".to_string(), start)),
                }
                continue;
            }
            if rest.starts_with(right) {
                break i;
            }
            match bytes.get(i) {
                Some(q @ (b'"' | b'\'' | b'`')) => {
                    let mut j = i + 1;
                    loop {
                        match bytes.get(j) {
                            None => return Err(("unterminated quoted string".to_string(), i)),
                            Some(b'\\') if *q != b'`' => j += 2,
                            Some(c) if c == q => break,
                            Some(_) => j += 1,
                        }
                    }
                    i = j + 1;
                }
                Some(_) => i += 1,
                None => return Err(("unclosed action".to_string(), start)),
            }
        };
        let body = source.get(body_start..end).unwrap_or("");
        let body = body.strip_prefix('-').unwrap_or(body).trim_start();
        let word: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let keyword_pos = end - body.len().min(end);
        let keyword_pos = keyword_pos.max(body_start);
        match word.as_str() {
            "if" => stack.push(("if", start)),
            "range" => stack.push(("range", start)),
            "with" => stack.push(("with", start)),
            "define" => stack.push(("define", start)),
            "block" => stack.push(("block", start)),
            // The guard pops the block an `end` closes; an empty stack is a stray `end`.
            "end" if stack.pop().is_none() => {
                return Err(("unexpected {{end}}".to_string(), keyword_pos));
            }
            "else" => match stack.last() {
                Some(("if" | "range" | "with", _)) => {}
                _ => return Err(("unexpected {{else}}".to_string(), keyword_pos)),
            },
            _ => {}
        }
        at = end + right.len();
    }
    match stack.last() {
        Some((kind, pos)) => Err((
            format!("unexpected EOF: {{{{{kind}}}}} has no {{{{end}}}}"),
            *pos,
        )),
        None => Ok(()),
    }
}
