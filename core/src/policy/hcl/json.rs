//! HCL v1's JSON parser (`json/scanner`, `json/parser`, `json/parser/flatten.go`), which
//! OpenBao uses for any policy whose text starts with `{`. It is lenient in the same places as
//! the Go original (text after the root object is ignored, a truncated document can parse)
//! and flattens nested objects into multi-key items, which is what makes
//! `{"path": {"a/*": {...}}}` read like `path "a/*" {...}`.

use super::ast::{ListType, Node, ObjectItem, ObjectList, ObjectType, Pos, Token, TokenType};
use super::parser::{MAX_DEPTH, TOO_DEEP};
use super::scanner::{EOF, Reader, is_digit, is_letter};

/// JSON token kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Illegal,
    Eof,
    Number,
    Float,
    Bool,
    String,
    Null,
    Lbrack,
    Lbrace,
    Comma,
    Period,
    Colon,
    Rbrack,
    Rbrace,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Illegal => "ILLEGAL",
            Kind::Eof => "EOF",
            Kind::Number => "NUMBER",
            Kind::Float => "FLOAT",
            Kind::Bool => "BOOL",
            Kind::String => "STRING",
            Kind::Null => "NULL",
            Kind::Lbrack => "LBRACK",
            Kind::Lbrace => "LBRACE",
            Kind::Comma => "COMMA",
            Kind::Period => "PERIOD",
            Kind::Colon => "COLON",
            Kind::Rbrack => "RBRACK",
            Kind::Rbrace => "RBRACE",
        }
    }
}

#[derive(Debug, Clone)]
struct JToken {
    kind: Kind,
    pos: Pos,
    text: String,
}

impl JToken {
    /// Go's `Token.String()`.
    fn describe(&self) -> String {
        format!("{} {} {}", self.pos, self.kind.name(), self.text)
    }

    /// Go's `HCLToken()`: positions are dropped, `null` becomes an empty string.
    fn hcl(&self) -> Token {
        let (kind, text, json) = match self.kind {
            Kind::Bool => (TokenType::Bool, self.text.clone(), false),
            Kind::Float => (TokenType::Float, self.text.clone(), false),
            Kind::Null => (TokenType::String, String::new(), false),
            Kind::Number => (TokenType::Number, self.text.clone(), false),
            _ => (TokenType::String, self.text.clone(), true),
        };
        Token {
            kind,
            pos: Pos::default(),
            text,
            json,
        }
    }
}

struct Scanner<'a> {
    r: Reader<'a>,
}

impl<'a> Scanner<'a> {
    fn scan(&mut self) -> JToken {
        let mut ch = self.r.next_char();
        while matches!(ch, ' ' | '\t' | '\n' | '\r') {
            ch = self.r.next_char();
        }
        self.r.start_token();
        let kind = if is_letter(ch) {
            let lit = self.scan_identifier();
            match lit.as_str() {
                "true" | "false" => Kind::Bool,
                "null" => Kind::Null,
                _ => {
                    self.r.err("illegal char");
                    Kind::Illegal
                }
            }
        } else if ch.is_ascii_digit() {
            self.scan_number(ch)
        } else {
            match ch {
                EOF => Kind::Eof,
                '"' => {
                    self.scan_string();
                    Kind::String
                }
                '.' => {
                    let c = self.r.peek();
                    if c.is_ascii_digit() {
                        let c = self.r.scan_mantissa(c);
                        self.r.scan_exponent(c);
                        Kind::Float
                    } else {
                        Kind::Period
                    }
                }
                '[' => Kind::Lbrack,
                ']' => Kind::Rbrack,
                '{' => Kind::Lbrace,
                '}' => Kind::Rbrace,
                ',' => Kind::Comma,
                ':' => Kind::Colon,
                '-' => {
                    if self.r.peek().is_ascii_digit() {
                        let c = self.r.next_char();
                        self.scan_number(c)
                    } else {
                        self.r.err("illegal char");
                        Kind::Illegal
                    }
                }
                other => {
                    self.r.err(&format!("illegal char: {other}"));
                    Kind::Illegal
                }
            }
        };
        JToken {
            kind,
            pos: self.r.tok_pos,
            text: self.r.token_text(),
        }
    }

    fn scan_number(&mut self, ch: char) -> Kind {
        let zero = ch == '0';
        let pos = self.r.src_pos;
        self.r.scan_mantissa(ch);
        let mut ch = self.r.next_char();
        if ch == 'e' || ch == 'E' {
            self.r.scan_exponent(ch);
            return Kind::Float;
        }
        if ch == '.' {
            ch = self.r.scan_fraction(ch);
            if ch == 'e' || ch == 'E' {
                ch = self.r.next_char();
                self.r.scan_exponent(ch);
            }
            return Kind::Float;
        }
        if ch != EOF {
            self.r.unread();
        }
        if zero && pos != self.r.src_pos {
            self.r.err("numbers cannot start with 0");
        }
        Kind::Number
    }

    fn scan_string(&mut self) {
        loop {
            let ch = self.r.next_char();
            if ch == '\n' || ch == EOF {
                self.r.err("literal not terminated");
                return;
            }
            if ch == '"' {
                break;
            }
            if ch == '\\' {
                self.r.scan_escape();
            }
        }
    }

    fn scan_identifier(&mut self) -> String {
        let offs = self.r.offset_before_last();
        let mut ch = self.r.next_char();
        while is_letter(ch) || is_digit(ch) || ch == '-' {
            ch = self.r.next_char();
        }
        if ch != EOF {
            self.r.unread();
        }
        self.r
            .src()
            .get(offs..self.r.src_pos.offset)
            .unwrap_or_default()
            .to_string()
    }
}

/// Why a parse step stopped.
enum Stop {
    /// Go's `errEofToken`: end of input where an item or value was expected.
    Eof,
    /// A real error, already formatted.
    Err(String),
}

struct Parser<'a> {
    sc: Scanner<'a>,
    tok: JToken,
    /// Objects and lists currently open (bounded like the HCL parser's).
    depth: usize,
}

impl Parser<'_> {
    fn scan(&mut self) -> JToken {
        self.tok = self.sc.scan();
        self.tok.clone()
    }

    fn object(&mut self) -> Result<ObjectType, Stop> {
        let tok = self.scan();
        match tok.kind {
            Kind::Lbrace => self.object_type(),
            Kind::Eof => Err(Stop::Eof),
            _ => Err(Stop::Err(format!(
                "Expected object, got unknown token: {}",
                tok.describe()
            ))),
        }
    }

    /// Enter an object or list, failing past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Err(TOO_DEEP.into()));
        }
        Ok(())
    }

    fn object_type(&mut self) -> Result<ObjectType, Stop> {
        self.enter()?;
        let result = self.object_type_inner();
        self.depth -= 1;
        result
    }

    fn list_type(&mut self) -> Result<ListType, Stop> {
        self.enter()?;
        let result = self.list_type_inner();
        self.depth -= 1;
        result
    }

    fn object_type_inner(&mut self) -> Result<ObjectType, Stop> {
        let (list, err) = self.object_list();
        if let Some(e) = err
            && self.tok.kind != Kind::Rbrace
        {
            return Err(e);
        }
        Ok(ObjectType {
            lbrace: Pos::default(),
            list,
        })
    }

    fn object_list(&mut self) -> (ObjectList, Option<Stop>) {
        let mut node = ObjectList::default();
        loop {
            match self.object_item() {
                Err(Stop::Eof) => break,
                Err(e) => return (node, Some(e)),
                Ok(item) => node.items.push(item),
            }
            if self.scan().kind != Kind::Comma {
                break;
            }
        }
        (node, None)
    }

    fn object_item(&mut self) -> Result<ObjectItem, Stop> {
        let keys = self.object_key()?;
        // object_key only returns after a colon.
        let assign = self.tok.pos;
        let val = self.object_value()?;
        Ok(ObjectItem { keys, assign, val })
    }

    fn object_key(&mut self) -> Result<Vec<Token>, Stop> {
        let mut keys = Vec::new();
        loop {
            let tok = self.scan();
            match tok.kind {
                Kind::Eof => return Err(Stop::Eof),
                Kind::String => keys.push(tok.hcl()),
                Kind::Colon => {
                    if keys.is_empty() {
                        return Err(Stop::Err(format!(
                            "expected: STRING got: {}",
                            tok.kind.name()
                        )));
                    }
                    return Ok(keys);
                }
                Kind::Illegal => return Err(Stop::Err("illegal".into())),
                other => {
                    return Err(Stop::Err(format!("expected: STRING got: {}", other.name())));
                }
            }
        }
    }

    fn object_value(&mut self) -> Result<Node, Stop> {
        let tok = self.scan();
        match tok.kind {
            Kind::Number | Kind::Float | Kind::Bool | Kind::Null | Kind::String => {
                Ok(Node::Literal(tok.hcl()))
            }
            Kind::Lbrace => self.object_type().map(Node::Object),
            Kind::Lbrack => self.list_type().map(Node::List),
            Kind::Eof => Err(Stop::Eof),
            _ => Err(Stop::Err(format!(
                "Expected object value, got unknown token: {}",
                tok.describe()
            ))),
        }
    }

    fn list_type_inner(&mut self) -> Result<ListType, Stop> {
        let mut l = ListType::default();
        loop {
            let tok = self.scan();
            match tok.kind {
                Kind::Number | Kind::Float | Kind::String => l.list.push(Node::Literal(tok.hcl())),
                Kind::Comma => {}
                Kind::Lbrace => l.list.push(Node::Object(self.object_type()?)),
                // The Go parser skips booleans and nested list brackets inside lists.
                Kind::Bool | Kind::Lbrack => {}
                Kind::Rbrack => return Ok(l),
                other => {
                    return Err(Stop::Err(format!(
                        "unexpected token while parsing list: {}",
                        other.name()
                    )));
                }
            }
        }
    }
}

/// Parse a JSON policy document into HCL's object list, with Go's error texts.
pub(crate) fn parse(src: &str) -> Result<ObjectList, String> {
    let mut p = Parser {
        sc: Scanner {
            r: Reader::new(src),
        },
        tok: JToken {
            kind: Kind::Illegal,
            pos: Pos::default(),
            text: String::new(),
        },
        depth: 0,
    };
    let object = p.object();
    if let Some((pos, msg)) = p.sc.r.error.take() {
        return Err(format!("{pos}: {msg}"));
    }
    let mut list = match object {
        Ok(o) => o.list,
        Err(Stop::Eof) => return Err("EOF token found".into()),
        Err(Stop::Err(e)) => return Err(e),
    };
    flatten_list(&mut list);
    Ok(list)
}

/// Go's `flattenObjects`: walk every object list and flatten items whose value is an object
/// (or list of objects) made only of objects into multi-key items.
fn flatten_list(list: &mut ObjectList) {
    let mut items = Vec::with_capacity(list.items.len());
    let mut frontier: Vec<ObjectItem> = std::mem::take(&mut list.items);
    while let Some(item) = frontier.pop() {
        match &item.val {
            Node::Object(ot) => flatten_object_type(ot.clone(), item, &mut items, &mut frontier),
            Node::List(lt) => flatten_list_type(lt.clone(), item, &mut items, &mut frontier),
            Node::Literal(_) => items.push(item),
        }
    }
    items.reverse();
    list.items = items;
    // Walk continues into the children of the rewritten list.
    for item in &mut list.items {
        flatten_node(&mut item.val);
    }
}

fn flatten_node(node: &mut Node) {
    match node {
        Node::Object(ot) => flatten_list(&mut ot.list),
        Node::List(lt) => {
            for n in &mut lt.list {
                flatten_node(n);
            }
        }
        Node::Literal(_) => {}
    }
}

fn flatten_list_type(
    lt: ListType,
    item: ObjectItem,
    items: &mut Vec<ObjectItem>,
    frontier: &mut Vec<ObjectItem>,
) {
    if lt.list.is_empty() || !lt.list.iter().all(|n| matches!(n, Node::Object(_))) {
        items.push(item);
        return;
    }
    for elem in lt.list {
        frontier.push(ObjectItem {
            keys: item.keys.clone(),
            assign: item.assign,
            val: elem,
        });
    }
}

fn flatten_object_type(
    ot: ObjectType,
    item: ObjectItem,
    items: &mut Vec<ObjectItem>,
    frontier: &mut Vec<ObjectItem>,
) {
    // Go checks `ot.List.Items == nil`; an empty JSON object has a nil item list.
    if ot.list.items.is_empty()
        || !ot
            .list
            .items
            .iter()
            .all(|sub| matches!(sub.val, Node::Object(_)))
    {
        items.push(item);
        return;
    }
    for sub in ot.list.items {
        let mut keys = item.keys.clone();
        keys.extend(sub.keys);
        frontier.push(ObjectItem {
            keys,
            assign: item.assign,
            val: sub.val,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_path_objects_like_hcl() {
        let l = parse(r#"{"path":{"secret/*":{"capabilities":["read","list"]}}}"#).unwrap();
        assert_eq!(l.items.len(), 1);
        let item = &l.items[0];
        let keys: Vec<String> = item
            .keys
            .iter()
            .map(|k| k.string_value().unwrap())
            .collect();
        assert_eq!(keys, vec!["path", "secret/*"]);
        assert_eq!(item.assign.to_string(), "1:8");
    }

    #[test]
    fn reports_errors_like_go() {
        assert_eq!(parse(r#"{"path": x}"#).unwrap_err(), "1:10: illegal char");
        assert_eq!(
            parse(r#"{"path": [null]}"#).unwrap_err(),
            "unexpected token while parsing list: NULL"
        );
        assert_eq!(
            parse(r#"{1: 2}"#).unwrap_err(),
            "expected: STRING got: NUMBER"
        );
    }
}
