//! The syntax tree of HCL v1 (`hcl/ast` and `hcl/token` in hashicorp/hcl), with the positions
//! and Go type names that OpenBao's error messages print.

use std::fmt;

use super::strconv;

/// A source position. Lines and columns start at 1; a line of 0 means "no position" (JSON
/// literals lose theirs) and prints as `-`, as Go does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    /// Byte offset from the start of the source.
    pub(crate) offset: usize,
    /// Line, from 1.
    pub(crate) line: usize,
    /// Column in characters, from 1.
    pub(crate) column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}", self.line, self.column)
        } else {
            f.write_str("-")
        }
    }
}

/// Token kinds of the HCL scanner (JSON tokens are converted to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    /// A character the scanner did not accept.
    Illegal,
    /// End of input.
    Eof,
    /// `#`, `//` or `/* */` comment.
    Comment,
    /// A bare identifier.
    Ident,
    /// An integer literal.
    Number,
    /// A float literal.
    Float,
    /// `true` or `false`.
    Bool,
    /// A quoted string, quotes included in the text.
    String,
    /// A `<<EOF` heredoc, marker lines included in the text.
    Heredoc,
    /// `[`
    Lbrack,
    /// `{`
    Lbrace,
    /// `,`
    Comma,
    /// `.`
    Period,
    /// `]`
    Rbrack,
    /// `}`
    Rbrace,
    /// `=`
    Assign,
    /// `+`
    Add,
    /// `-`
    Sub,
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenType::Illegal => "ILLEGAL",
            TokenType::Eof => "EOF",
            TokenType::Comment => "COMMENT",
            TokenType::Ident => "IDENT",
            TokenType::Number => "NUMBER",
            TokenType::Float => "FLOAT",
            TokenType::Bool => "BOOL",
            TokenType::String => "STRING",
            TokenType::Heredoc => "HEREDOC",
            TokenType::Lbrack => "LBRACK",
            TokenType::Lbrace => "LBRACE",
            TokenType::Comma => "COMMA",
            TokenType::Period => "PERIOD",
            TokenType::Rbrack => "RBRACK",
            TokenType::Rbrace => "RBRACE",
            TokenType::Assign => "ASSIGN",
            TokenType::Add => "ADD",
            TokenType::Sub => "SUB",
        })
    }
}

/// One token with its raw text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    /// What it is.
    pub(crate) kind: TokenType,
    /// Where it starts.
    pub(crate) pos: Pos,
    /// The raw source text.
    pub(crate) text: String,
    /// Whether it came from the JSON parser (strings then unquote with Go's rules, not HCL's).
    pub(crate) json: bool,
}

impl fmt::Display for Token {
    // Go's `Token.String()`: what `Unknown token: %+v` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.pos, self.kind, self.text)
    }
}

impl Token {
    /// The string value of an identifier, string or heredoc token (Go's `Token.Value()` for
    /// those kinds). Go panics where this returns an error.
    pub(crate) fn string_value(&self) -> Result<String, String> {
        match self.kind {
            TokenType::Ident => Ok(self.text.clone()),
            TokenType::Heredoc => Ok(unindent_heredoc(&self.text)),
            TokenType::String => {
                // JSON `null` becomes a string token with no text.
                if self.text.is_empty() {
                    return Ok(String::new());
                }
                let unquoted = if self.json {
                    strconv::unquote_go(&self.text)
                } else {
                    strconv::unquote_hcl(&self.text)
                };
                unquoted.map_err(|e| format!("unquote {} err: {e}", self.text))
            }
            other => Err(format!("unimplemented Value for type: {other}")),
        }
    }
}

/// The content of a heredoc token, with `<<-` indentation removed (Go's `unindentHeredoc`).
fn unindent_heredoc(heredoc: &str) -> String {
    let Some(idx) = heredoc.find('\n') else {
        return String::new();
    };
    let unindent = heredoc.as_bytes().get(2) == Some(&b'-');
    let len = heredoc.len();
    if !unindent {
        let end = (len + 1).saturating_sub(idx);
        return heredoc.get(idx + 1..end).unwrap_or_default().to_string();
    }
    let end = (len + 2).saturating_sub(idx);
    let body = heredoc.get(idx + 1..end).unwrap_or_default();
    let lines: Vec<&str> = body.split('\n').collect();
    let prefix = lines.last().copied().unwrap_or_default();
    if !lines.iter().all(|l| l.starts_with(prefix)) {
        let end = (len + 1).saturating_sub(idx);
        return heredoc
            .get(idx + 1..end)
            .unwrap_or_default()
            .trim_end_matches([' ', '\t'])
            .to_string();
    }
    let count = lines.len();
    lines
        .iter()
        .enumerate()
        .map(|(k, l)| {
            if k + 1 == count {
                ""
            } else {
                l.strip_prefix(prefix).unwrap_or(l)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A value node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A number, bool, string or heredoc.
    Literal(Token),
    /// `[ ... ]`
    List(ListType),
    /// `{ ... }`
    Object(ObjectType),
}

impl Node {
    /// Where the node starts.
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Node::Literal(t) => t.pos,
            Node::List(l) => l.lbrack,
            Node::Object(o) => o.lbrace,
        }
    }

    /// The Go type name that decoder errors print (`%T`).
    pub(crate) fn go_type(&self) -> &'static str {
        match self {
            Node::Literal(_) => "*ast.LiteralType",
            Node::List(_) => "*ast.ListType",
            Node::Object(_) => "*ast.ObjectType",
        }
    }
}

/// A list literal.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ListType {
    /// Position of `[`.
    pub(crate) lbrack: Pos,
    /// The elements in source order.
    pub(crate) list: Vec<Node>,
}

/// An object literal or block body.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ObjectType {
    /// Position of `{` (none for JSON).
    pub(crate) lbrace: Pos,
    /// The items in source order.
    pub(crate) list: ObjectList,
}

/// The items of a file or object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ObjectList {
    /// The items in source order.
    pub(crate) items: Vec<ObjectItem>,
}

/// `key = value` or `key "label" { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectItem {
    /// The key and labels (identifier or string tokens).
    pub(crate) keys: Vec<Token>,
    /// Position of `=` (or `:` in JSON); no position for blocks.
    pub(crate) assign: Pos,
    /// The value.
    pub(crate) val: Node,
}

impl ObjectItem {
    /// Where the item starts (its first key).
    pub(crate) fn pos(&self) -> Pos {
        self.keys.first().map(|k| k.pos).unwrap_or_default()
    }

    /// The first key's string value.
    pub(crate) fn first_key(&self) -> Result<String, String> {
        match self.keys.first() {
            Some(k) => k.string_value(),
            None => Ok(String::new()),
        }
    }
}

impl ObjectList {
    /// Where the list starts (its first item).
    pub(crate) fn pos(&self) -> Pos {
        self.items.first().map(ObjectItem::pos).unwrap_or_default()
    }

    /// Items whose first key equals `key` (case-insensitively, as Go's `strings.EqualFold`),
    /// with that key removed (Go's `ObjectList.Filter` with one key).
    pub(crate) fn filter(&self, key: &str) -> ObjectList {
        let items = self
            .items
            .iter()
            .filter(|item| {
                item.keys
                    .first()
                    .and_then(|k| k.string_value().ok())
                    .is_some_and(|k| k == key || eq_fold(&k, key))
            })
            .map(|item| ObjectItem {
                keys: item.keys.get(1..).unwrap_or_default().to_vec(),
                assign: item.assign,
                val: item.val.clone(),
            })
            .collect();
        ObjectList { items }
    }

    /// Items that still have keys after [`ObjectList::filter`] (Go's `Children`).
    pub(crate) fn children(&self) -> ObjectList {
        ObjectList {
            items: self
                .items
                .iter()
                .filter(|i| !i.keys.is_empty())
                .cloned()
                .collect(),
        }
    }

    /// Items with no keys left after [`ObjectList::filter`] (Go's `Elem`).
    pub(crate) fn elem(&self) -> ObjectList {
        ObjectList {
            items: self
                .items
                .iter()
                .filter(|i| i.keys.is_empty())
                .cloned()
                .collect(),
        }
    }
}

/// Unicode simple case-insensitive equality, close to Go's `strings.EqualFold`.
fn eq_fold(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_print_like_go() {
        assert_eq!(Pos::default().to_string(), "-");
        let p = Pos {
            offset: 3,
            line: 2,
            column: 7,
        };
        assert_eq!(p.to_string(), "2:7");
    }

    #[test]
    fn heredocs_unindent_like_go() {
        assert_eq!(unindent_heredoc("<<EOF\nfoo\nbar\nEOF\n"), "foo\nbar\n");
        assert_eq!(
            unindent_heredoc("<<-EOF\n  foo\n  bar\n  EOF\n"),
            "foo\nbar\n"
        );
    }
}
