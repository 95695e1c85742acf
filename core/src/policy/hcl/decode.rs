//! The part of HCL v1's reflection decoder (`hcl/decoder.go`) that policy fields go through:
//! strings, string lists, ints, bools, `interface{}` values and maps of value lists, with the
//! decoder's field names (`root.Capabilities[0]`) and error texts.

use std::collections::BTreeMap;

use super::ast::{Node, ObjectItem, ObjectList, Pos, TokenType};
use super::strconv;

/// A node as the decoder sees it: a value, a filtered list of items, or a single item.
#[derive(Debug, Clone)]
pub(crate) enum DNode {
    /// A literal, list or object value.
    Node(Node),
    /// Items (an object's body, or the items a struct field filtered out).
    List(ObjectList),
    /// One item of a list being decoded element by element.
    Item(ObjectItem),
}

impl DNode {
    fn pos(&self) -> Pos {
        match self {
            DNode::Node(n) => n.pos(),
            DNode::List(l) => l.pos(),
            DNode::Item(i) => i.pos(),
        }
    }

    fn go_type(&self) -> &'static str {
        match self {
            DNode::Node(n) => n.go_type(),
            DNode::List(_) => "*ast.ObjectList",
            DNode::Item(_) => "*ast.ObjectItem",
        }
    }
}

/// Go's `PosError` text.
fn at(pos: Pos, msg: String) -> String {
    format!("At {pos}: {msg}")
}

/// A decoded `interface{}` value, as a policy's parameter values hold them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A string or heredoc.
    Str(String),
    /// An integer literal (Go `int`).
    Int(i64),
    /// A float literal (Go `float64`).
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A list (Go `[]interface{}`).
    List(Vec<Value>),
    /// An object inside a list (Go `map[string]interface{}`).
    Map(BTreeMap<String, Value>),
    /// An object nested in an object (Go `[]map[string]interface{}`); it never equals a
    /// request value, whose lists are always `[]interface{}`.
    MapList(Vec<BTreeMap<String, Value>>),
}

/// The nodes a struct field named `field` decodes from, in Go's order: the items that still
/// carry keys after filtering (as one list), then each plain match (objects as their items).
pub(crate) fn field_nodes(list: &ObjectList, field: &str) -> Vec<DNode> {
    let filter = list.filter(field);
    let prefix_matches = filter.children();
    let matches = filter.elem();
    let mut out = Vec::new();
    if !prefix_matches.items.is_empty() {
        out.push(DNode::List(prefix_matches));
    }
    for m in matches.items {
        out.push(match m.val {
            Node::Object(o) => DNode::List(o.list),
            other => DNode::Node(other),
        });
    }
    out
}

/// Decode into a Go `string`.
pub(crate) fn decode_string(name: &str, node: &DNode) -> Result<String, String> {
    if let DNode::Node(Node::Literal(t)) = node {
        match t.kind {
            TokenType::Number => return Ok(t.text.clone()),
            TokenType::String | TokenType::Heredoc => return t.string_value(),
            _ => {}
        }
    }
    Err(at(
        node.pos(),
        format!("{name}: unknown type for string {}", node.go_type()),
    ))
}

/// Decode into a Go `int` (base prefixes allowed, as `strconv.ParseInt(s, 0, 0)`).
pub(crate) fn decode_int(name: &str, node: &DNode) -> Result<i64, String> {
    if let DNode::Node(Node::Literal(t)) = node {
        match t.kind {
            TokenType::Number => return strconv::parse_int(&t.text, true),
            TokenType::String => return strconv::parse_int(&t.string_value()?, true),
            _ => {}
        }
    }
    Err(at(
        node.pos(),
        format!("{name}: unknown type {}", node.go_type()),
    ))
}

/// Decode into a Go `bool`.
pub(crate) fn decode_bool(name: &str, node: &DNode) -> Result<bool, String> {
    if let DNode::Node(Node::Literal(t)) = node
        && t.kind == TokenType::Bool
    {
        return Ok(t.text == "true");
    }
    Err(at(
        node.pos(),
        format!("{name}: unknown type {}", node.go_type()),
    ))
}

fn decode_float(name: &str, node: &DNode) -> Result<f64, String> {
    if let DNode::Node(Node::Literal(t)) = node
        && matches!(t.kind, TokenType::Float | TokenType::Number)
    {
        return t.text.parse::<f64>().map_err(|_| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                strconv::quote(&t.text)
            )
        });
    }
    Err(at(
        node.pos(),
        format!("{name}: unknown type {}", node.go_type()),
    ))
}

/// The items a Go struct decodes from (`decodeStruct`'s node normalisation).
pub(crate) fn struct_items(name: &str, node: &DNode) -> Result<ObjectList, String> {
    match node {
        DNode::List(l) => Ok(l.clone()),
        DNode::Node(Node::Object(o)) => Ok(o.list.clone()),
        DNode::Item(i) => match &i.val {
            Node::Object(o) => Ok(o.list.clone()),
            Node::Literal(_) => Ok(ObjectList {
                items: vec![i.clone()],
            }),
            other => Err(at(
                other.pos(),
                format!(
                    "{name}: not an object type for struct ({})",
                    other.go_type()
                ),
            )),
        },
        other => Err(at(
            other.pos(),
            format!(
                "{name}: not an object type for struct ({})",
                other.go_type()
            ),
        )),
    }
}

/// The elements a slice decodes from (Go's `decodeSlice` item selection).
fn slice_items(node: &DNode) -> Result<Vec<DNode>, String> {
    match node {
        DNode::List(l) => Ok(l.items.iter().cloned().map(DNode::Item).collect()),
        DNode::Node(Node::Object(o)) => Ok(vec![DNode::Node(Node::Object(o.clone()))]),
        DNode::Node(Node::List(l)) => Ok(l.list.iter().cloned().map(DNode::Node).collect()),
        other => Err(at(
            other.pos(),
            format!("unknown slice type: {}", other.go_type()),
        )),
    }
}

/// Decode into a Go `[]string`, appending to `out` (repeated keys append, as in Go).
pub(crate) fn decode_string_slice(
    name: &str,
    node: &DNode,
    out: &mut Vec<String>,
) -> Result<(), String> {
    for (i, item) in slice_items(node)?.iter().enumerate() {
        out.push(decode_string(&format!("{name}[{i}]"), item)?);
    }
    Ok(())
}

/// Decode into a Go `interface{}`. `in_slice` says whether the enclosing decode target is a
/// slice (or nothing), which decides whether an object becomes a map or a list of maps.
pub(crate) fn decode_any(name: &str, node: &DNode, in_slice: bool) -> Result<Value, String> {
    match node {
        DNode::Node(Node::Object(_)) | DNode::List(_) => {
            if in_slice {
                decode_map_any(name, node).map(Value::Map)
            } else {
                let mut maps = Vec::new();
                for (i, item) in slice_items(node)?.iter().enumerate() {
                    maps.push(decode_map_any(&format!("{name}[{i}]"), item)?);
                }
                Ok(Value::MapList(maps))
            }
        }
        DNode::Node(Node::List(_)) => {
            let mut list = Vec::new();
            for (i, item) in slice_items(node)?.iter().enumerate() {
                list.push(decode_any(&format!("{name}[{i}]"), item, true)?);
            }
            Ok(Value::List(list))
        }
        DNode::Node(Node::Literal(t)) => match t.kind {
            TokenType::Bool => decode_bool(name, node).map(Value::Bool),
            TokenType::Float => decode_float(name, node).map(Value::Float),
            TokenType::Number => decode_int(name, node).map(Value::Int),
            TokenType::String | TokenType::Heredoc => decode_string(name, node).map(Value::Str),
            _ => Err(at(
                node.pos(),
                format!("{name}: cannot decode into interface: {}", node.go_type()),
            )),
        },
        DNode::Item(_) => Err(format!(
            "{name}: cannot decode into interface: {}",
            node.go_type()
        )),
    }
}

/// The items a map decodes from (Go's `decodeMap` node normalisation).
fn map_items(name: &str, node: &DNode) -> Result<ObjectList, String> {
    match node {
        DNode::Item(i) => Ok(ObjectList {
            items: vec![i.clone()],
        }),
        DNode::Node(Node::Object(o)) => Ok(o.list.clone()),
        DNode::List(l) => Ok(l.clone()),
        other => Err(at(
            other.pos(),
            format!("{name}: not an object type for map ({})", other.go_type()),
        )),
    }
}

/// Walk a map's items as Go's `decodeMap` does, calling `decode` with each key, its field
/// name and the node to decode.
fn each_map_entry(
    name: &str,
    node: &DNode,
    mut decode: impl FnMut(String, String, DNode) -> Result<(), String>,
) -> Result<(), String> {
    let list = map_items(name, node)?;
    let mut done: Vec<String> = Vec::new();
    for item in &list.items {
        if item.keys.is_empty() {
            return Err(at(list.pos(), format!("{name}: map must have string keys")));
        }
        let key = item.first_key()?;
        if done.contains(&key) {
            continue;
        }
        let val = if item.keys.len() > 1 {
            done.push(key.clone());
            DNode::List(list.filter(&key))
        } else {
            DNode::Node(item.val.clone())
        };
        let field = format!("{name}.{key}");
        decode(key, field, val)?;
    }
    Ok(())
}

fn decode_map_any(name: &str, node: &DNode) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    each_map_entry(name, node, |key, field, val| {
        let v = decode_any(&field, &val, false)?;
        out.insert(key, v);
        Ok(())
    })?;
    Ok(out)
}

/// Decode into a Go `map[string][]interface{}`, merging into `out` (a repeated key appends
/// to its list, as Go's decoder does).
pub(crate) fn decode_map_of_lists(
    name: &str,
    node: &DNode,
    out: &mut BTreeMap<String, Vec<Value>>,
) -> Result<(), String> {
    each_map_entry(name, node, |key, field, val| {
        let mut list = out.remove(&key).unwrap_or_default();
        for (i, item) in slice_items(&val)?.iter().enumerate() {
            list.push(decode_any(&format!("{field}[{i}]"), item, true)?);
        }
        out.insert(key, list);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_config;
    use super::*;

    fn body(src: &str) -> ObjectList {
        let list = parse_config(src).unwrap();
        match &list.items[0].val {
            Node::Object(o) => o.list.clone(),
            _ => panic!("not a block"),
        }
    }

    #[test]
    fn decodes_string_lists_with_go_errors() {
        let b = body("path \"a\" {\n  capabilities = [\"read\", true]\n}");
        let nodes = field_nodes(&b, "Capabilities");
        let mut out = Vec::new();
        let err = decode_string_slice("root.Capabilities", &nodes[0], &mut out).unwrap_err();
        assert_eq!(
            err,
            "At 2:27: root.Capabilities[1]: unknown type for string *ast.LiteralType"
        );
        let b = body("path \"a\" {\n  capabilities = \"read\"\n}");
        let nodes = field_nodes(&b, "Capabilities");
        let err = decode_string_slice("root.Capabilities", &nodes[0], &mut out).unwrap_err();
        assert_eq!(err, "At 2:18: unknown slice type: *ast.LiteralType");
    }

    #[test]
    fn decodes_parameter_maps() {
        let b = body(
            "path \"a\" {\n  allowed_parameters = { \"x\" = [\"a*\", 1, true, [\"n\"], {k = \"v\"}], \"*\" = [] }\n}",
        );
        let nodes = field_nodes(&b, "allowed_parameters");
        let mut out = BTreeMap::new();
        decode_map_of_lists("root.allowed_parameters", &nodes[0], &mut out).unwrap();
        let x = &out["x"];
        assert_eq!(x[0], Value::Str("a*".into()));
        assert_eq!(x[1], Value::Int(1));
        assert_eq!(x[2], Value::Bool(true));
        assert_eq!(x[3], Value::List(vec![Value::Str("n".into())]));
        let mut m = BTreeMap::new();
        m.insert("k".to_string(), Value::Str("v".into()));
        assert_eq!(x[4], Value::Map(m));
        assert!(out["*"].is_empty());
    }
}
