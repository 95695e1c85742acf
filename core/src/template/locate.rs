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
    let mut nodes = Vec::with_capacity(list.nodes.len() * 2);
    for node in &list.nodes {
        match node {
            Node::Action(a) => {
                nodes.push(marker(pipe_offset(&a.pipe, a.pos), tree));
                nodes.push(node.clone());
            }
            Node::If(b) => {
                nodes.push(marker(pipe_offset(&b.pipe, b.pos), tree));
                nodes.push(Node::If(branch(b, tree)));
            }
            Node::With(b) => {
                nodes.push(marker(pipe_offset(&b.pipe, b.pos), tree));
                nodes.push(Node::With(branch(b, tree)));
            }
            Node::Range(b) => {
                nodes.push(marker(pipe_offset(&b.pipe, b.pos), tree));
                nodes.push(Node::Range(branch(b, tree)));
            }
            Node::Template(t) => {
                nodes.push(marker(t.pos.offset, tree));
                nodes.push(node.clone());
            }
            Node::List(l) => nodes.push(Node::List(instrument(l, tree))),
            Node::Define(d) => nodes.push(Node::Define(DefineNode {
                pos: d.pos,
                name: d.name.clone(),
                body: instrument(&d.body, tree),
            })),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => nodes.push(node.clone()),
        }
    }
    ListNode {
        pos: list.pos,
        nodes,
    }
}

fn branch(b: &BranchNode, tree: usize) -> BranchNode {
    BranchNode {
        pos: b.pos,
        pipe: b.pipe.clone(),
        body: instrument(&b.body, tree),
        else_body: b.else_body.as_ref().map(|e| instrument(e, tree)),
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
    Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode {
                pos,
                args: vec![
                    Expr::Identifier(pos, MARKER.into()),
                    Expr::Number(pos, Number::Int(i64::try_from(offset).unwrap_or(i64::MAX))),
                    Expr::Number(pos, Number::Int(i64::try_from(tree).unwrap_or(i64::MAX))),
                ],
            }],
            is_assign: false,
        },
    })
}
