//! Where an execution error happened. gotmpl's execution errors carry no position; Go's name
//! the line and column of the failing action. A copy of the parse tree with a marker call
//! before every action (`{{ __strongroom_at OFFSET TREE }}`, which writes nothing) is
//! replayed after a failure: the last marker reached is the action that failed, and `TREE`
//! the template (the file's own, or a `define`) it is in.

use gotmpl::parse::{
    ActionNode, BranchNode, CommandNode, DefineNode, Expr, ListNode, Node, Number, PipeNode, Pos,
};

/// The marker function's name (not an identifier a template can call: `check` rejects it at
/// parse time as an undefined function).
pub(crate) const MARKER: &str = "__strongroom_at";

/// `list` with a marker before each action, branch and template call, at any depth.
pub(crate) fn instrument(list: &ListNode, tree: usize) -> ListNode {
    insert_before(list, &|node| {
        let offset = match node {
            Node::Action(a) => pipe_offset(&a.pipe, a.pos),
            Node::If(b) | Node::With(b) | Node::Range(b) => pipe_offset(&b.pipe, b.pos),
            Node::Template(t) => t.pos.offset,
            _ => return None,
        };
        Some(marker(offset, tree))
    })
}

/// `list` with the node `before` gives for a node inserted before it, at any depth (branch
/// bodies, lists, `define`s): how a tree is instrumented without changing what it writes.
pub(crate) fn insert_before(list: &ListNode, before: &dyn Fn(&Node) -> Option<Node>) -> ListNode {
    let mut nodes = Vec::with_capacity(list.nodes.len() * 2);
    for node in &list.nodes {
        nodes.extend(before(node));
        nodes.push(match node {
            Node::If(b) => Node::If(branch(b, before)),
            Node::With(b) => Node::With(branch(b, before)),
            Node::Range(b) => Node::Range(branch(b, before)),
            Node::List(l) => Node::List(insert_before(l, before)),
            Node::Define(d) => Node::Define(DefineNode {
                pos: d.pos,
                name: d.name.clone(),
                body: insert_before(&d.body, before),
            }),
            Node::Action(_)
            | Node::Template(_)
            | Node::Text(_)
            | Node::Break(_)
            | Node::Continue(_) => node.clone(),
        });
    }
    ListNode {
        pos: list.pos,
        nodes,
    }
}

fn branch(b: &BranchNode, before: &dyn Fn(&Node) -> Option<Node>) -> BranchNode {
    BranchNode {
        pos: b.pos,
        pipe: b.pipe.clone(),
        body: insert_before(&b.body, before),
        else_body: b.else_body.as_ref().map(|e| insert_before(e, before)),
    }
}

/// Where the pipeline's text starts (its first argument), as Go points at it.
fn pipe_offset(pipe: &PipeNode, fallback: Pos) -> usize {
    pipe.commands
        .first()
        .and_then(|c| c.args.first())
        .map_or(fallback.offset, |e| e.pos().offset)
}

fn marker(offset: usize, tree: usize) -> Node {
    let pos = Pos::new(offset, 0);
    call(
        pos,
        vec![
            Expr::Identifier(pos, MARKER.into()),
            Expr::Number(pos, Number::Int(i64::try_from(offset).unwrap_or(i64::MAX))),
            Expr::Number(pos, Number::Int(i64::try_from(tree).unwrap_or(i64::MAX))),
        ],
    )
}

/// An action that calls a function (`args[0]`, with the rest as its arguments) and writes
/// what it returns.
pub(crate) fn call(pos: Pos, args: Vec<Expr>) -> Node {
    Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode { pos, args }],
            is_assign: false,
        },
    })
}
