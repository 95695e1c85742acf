//! The HCL v1 parser (`hcl/parser`), ported with its quirks: an assignment with nothing after
//! it at the end of the input is dropped silently, a few errors inside a block are swallowed
//! when the block closes, and a scanner error anywhere wins over the parser's own.

use super::ast::{ListType, Node, ObjectItem, ObjectList, ObjectType, Pos, Token, TokenType};
use super::scanner::Scanner;

/// Why a parse step stopped.
enum Stop {
    /// Go's `errEofToken`.
    Eof,
    /// A positioned error (Go's `PosError`), printed as `At line:col: msg`.
    At(Pos, String),
}

impl Stop {
    fn message(&self) -> String {
        match self {
            Stop::Eof => "EOF token found".into(),
            Stop::At(pos, msg) => format!("At {pos}: {msg}"),
        }
    }
}

struct Parser<'a> {
    sc: Scanner<'a>,
    tok: Token,
    /// A token pushed back by `unscan`.
    buffered: bool,
    /// Objects and lists currently open.
    depth: usize,
}

/// How deeply objects and lists may nest. Go's growable stacks have no practical limit; here
/// a hostile document must not overflow the thread's stack. Real policies nest a few levels.
pub(super) const MAX_DEPTH: usize = 100;

/// The error for a document nested deeper than [`MAX_DEPTH`] (Strongroom's own text).
pub(super) const TOO_DEEP: &str = "maximum nesting depth exceeded";

/// Parse HCL text into its top-level object list, with Go's error texts.
pub(crate) fn parse(src: &str) -> Result<ObjectList, String> {
    // The Go parser normalises line endings first.
    let normalised = src.replace("\r\n", "\n");
    let mut p = Parser {
        sc: Scanner::new(&normalised),
        tok: Token {
            kind: TokenType::Illegal,
            pos: Pos::default(),
            text: String::new(),
            json: false,
        },
        buffered: false,
        depth: 0,
    };
    let (list, err) = p.object_list(false);
    if let Some((pos, msg)) = p.sc.r.error.take() {
        return Err(format!("At {pos}: {msg}"));
    }
    match err {
        Some(e) => Err(e.message()),
        None => Ok(list),
    }
}

impl Parser<'_> {
    /// The next token that is not a comment (comments only matter to Go's printer).
    fn scan(&mut self) -> Token {
        if self.buffered {
            self.buffered = false;
            return self.tok.clone();
        }
        loop {
            self.tok = self.sc.scan();
            if self.tok.kind != TokenType::Comment {
                return self.tok.clone();
            }
        }
    }

    fn unscan(&mut self) {
        self.buffered = true;
    }

    fn object_list(&mut self, obj: bool) -> (ObjectList, Option<Stop>) {
        let mut node = ObjectList::default();
        loop {
            if obj {
                let tok = self.scan();
                self.unscan();
                if tok.kind == TokenType::Rbrace {
                    break;
                }
            }
            match self.object_item() {
                Err(Stop::Eof) => break,
                Err(e) => return (node, Some(e)),
                Ok(item) => node.items.push(item),
            }
            // Items may be separated by commas.
            if self.scan().kind != TokenType::Comma {
                self.unscan();
            }
        }
        (node, None)
    }

    fn object_item(&mut self) -> Result<ObjectItem, Stop> {
        let (keys, mut err) = self.object_key();
        if !keys.is_empty() && matches!(err, Some(Stop::Eof)) {
            err = None;
        }
        if !keys.is_empty() && err.is_some() && self.tok.kind == TokenType::Rbrace {
            // Keys with no value just before `}`: report the missing value instead.
            err = None;
            self.tok.kind = TokenType::Eof;
        }
        if let Some(e) = err {
            return Err(e);
        }
        let item = match self.tok.kind {
            TokenType::Assign => {
                let assign = self.tok.pos;
                let val = self.object()?;
                ObjectItem { keys, assign, val }
            }
            TokenType::Lbrace => {
                let val = Node::Object(self.object_type()?);
                ObjectItem {
                    keys,
                    assign: Pos::default(),
                    val,
                }
            }
            _ => {
                let names: Vec<&str> = keys.iter().map(|k| k.text.as_str()).collect();
                return Err(Stop::At(
                    self.tok.pos,
                    format!(
                        "key '{}' expected start of object ('{{') or assignment ('=')",
                        names.join(" ")
                    ),
                ));
            }
        };
        // Look-ahead for a line comment, as the Go parser does (it can surface scanner errors).
        self.scan();
        self.unscan();
        Ok(item)
    }

    fn object_key(&mut self) -> (Vec<Token>, Option<Stop>) {
        let mut keys: Vec<Token> = Vec::new();
        loop {
            let tok = self.scan();
            match tok.kind {
                TokenType::Eof => return (keys, Some(Stop::Eof)),
                TokenType::Assign => {
                    if keys.len() > 1 {
                        return (
                            Vec::new(),
                            Some(Stop::At(
                                tok.pos,
                                format!("nested object expected: LBRACE got: {}", tok.kind),
                            )),
                        );
                    }
                    if keys.is_empty() {
                        return (
                            Vec::new(),
                            Some(Stop::At(tok.pos, "no object keys found!".into())),
                        );
                    }
                    return (keys, None);
                }
                TokenType::Lbrace => {
                    let err = keys.is_empty().then(|| {
                        Stop::At(
                            tok.pos,
                            format!("expected: IDENT | STRING got: {}", tok.kind),
                        )
                    });
                    return (keys, err);
                }
                TokenType::Ident | TokenType::String => keys.push(tok),
                TokenType::Illegal => {
                    return (keys, Some(Stop::At(tok.pos, "illegal character".into())));
                }
                other => {
                    return (
                        keys,
                        Some(Stop::At(
                            tok.pos,
                            format!("expected: IDENT | STRING | ASSIGN | LBRACE got: {other}"),
                        )),
                    );
                }
            }
        }
    }

    fn object(&mut self) -> Result<Node, Stop> {
        let tok = self.scan();
        match tok.kind {
            TokenType::Number
            | TokenType::Float
            | TokenType::Bool
            | TokenType::String
            | TokenType::Heredoc => Ok(Node::Literal(tok)),
            TokenType::Lbrace => self.object_type().map(Node::Object),
            TokenType::Lbrack => self.list_type().map(Node::List),
            TokenType::Eof => Err(Stop::Eof),
            _ => Err(Stop::At(tok.pos, format!("Unknown token: {tok}"))),
        }
    }

    /// Enter an object or list, failing past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::At(self.tok.pos, TOO_DEEP.into()));
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
        let lbrace = self.tok.pos;
        let (list, err) = self.object_list(true);
        if let Some(e) = err
            && self.tok.kind != TokenType::Rbrace
        {
            return Err(e);
        }
        let tok = self.scan();
        if tok.kind != TokenType::Rbrace {
            return Err(Stop::At(
                tok.pos,
                format!("object expected closing RBRACE got: {}", tok.kind),
            ));
        }
        Ok(ObjectType { lbrace, list })
    }

    fn list_type_inner(&mut self) -> Result<ListType, Stop> {
        let mut l = ListType {
            lbrack: self.tok.pos,
            list: Vec::new(),
        };
        let mut need_comma = false;
        loop {
            let tok = self.scan();
            if need_comma && !matches!(tok.kind, TokenType::Comma | TokenType::Rbrack) {
                return Err(Stop::At(
                    tok.pos,
                    format!(
                        "error parsing list, expected comma or list end, got: {}",
                        tok.kind
                    ),
                ));
            }
            match tok.kind {
                TokenType::Bool
                | TokenType::Number
                | TokenType::Float
                | TokenType::String
                | TokenType::Heredoc => {
                    l.list.push(Node::Literal(tok));
                    need_comma = true;
                }
                TokenType::Comma => {
                    self.scan();
                    self.unscan();
                    need_comma = false;
                }
                TokenType::Lbrace => {
                    let node = self.object_type().map_err(|e| {
                        Stop::At(
                            tok.pos,
                            format!(
                                "error while trying to parse object within list: {}",
                                e.message()
                            ),
                        )
                    })?;
                    l.list.push(Node::Object(node));
                    need_comma = true;
                }
                TokenType::Lbrack => {
                    let node = self.list_type().map_err(|e| {
                        Stop::At(
                            tok.pos,
                            format!(
                                "error while trying to parse list within list: {}",
                                e.message()
                            ),
                        )
                    })?;
                    // The Go parser does not require a comma after a nested list.
                    l.list.push(Node::List(node));
                }
                TokenType::Rbrack => return Ok(l),
                other => {
                    return Err(Stop::At(
                        tok.pos,
                        format!("unexpected token while parsing list: {other}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_and_assignments() {
        let l = parse("path \"a/*\" {\n  capabilities = [\"read\"]\n}\nname = \"x\"\n").unwrap();
        assert_eq!(l.items.len(), 2);
        assert_eq!(l.items[0].keys.len(), 2);
        assert_eq!(l.items[0].assign, Pos::default());
        assert_eq!(l.items[1].assign.to_string(), "4:6");
    }

    #[test]
    fn syntax_errors_match_go() {
        assert_eq!(
            parse("a = [\"x\" \"y\"]").unwrap_err(),
            "At 1:10: error parsing list, expected comma or list end, got: STRING"
        );
        // Inside a block the list error is swallowed because the current token is `}`, and
        // the block then misses its own closing brace (as in Go).
        assert_eq!(
            parse("path \"a\" {\n  capabilities = [\"read\"\n}").unwrap_err(),
            "At 3:2: object expected closing RBRACE got: EOF"
        );
        assert_eq!(
            parse("path \"a\" { foo }").unwrap_err(),
            "At 1:16: key 'foo' expected start of object ('{') or assignment ('=')"
        );
        assert_eq!(
            parse("path \"a\" {").unwrap_err(),
            // Two EOF reads, each advancing the column, as Go's scanner does.
            "At 1:12: object expected closing RBRACE got: EOF"
        );
        assert_eq!(
            parse("a = read").unwrap_err(),
            "At 1:5: Unknown token: 1:5 IDENT read"
        );
        assert_eq!(
            parse("a = \"x").unwrap_err(),
            "At 1:7: literal not terminated"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).unwrap_err().ends_with(TOO_DEEP));
        let ok = format!("a = {}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn dangling_assignment_at_eof_is_dropped() {
        let l = parse("a = 1\nb =").unwrap();
        assert_eq!(l.items.len(), 1);
    }
}
