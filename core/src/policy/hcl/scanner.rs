//! The HCL v1 scanner (`hcl/scanner`), ported so that token boundaries, positions and error
//! texts match what OpenBao reports.
//!
//! Like the Go scanner it reads one character at a time with a single step of look-back, uses
//! `'\0'` as the end-of-input marker and reports errors through a side channel: scanning goes
//! on, and the parser reports the last recorded error in preference to its own.

use super::ast::{Pos, Token, TokenType};

/// End-of-input marker (Go's `eof = rune(0)`).
pub(super) const EOF: char = '\0';

/// Shared by the HCL and JSON scanners: a character reader with Go's position bookkeeping.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    src: &'a str,
    /// Byte offset of the next character to read.
    next: usize,
    /// Size of the last character read, for `unread`.
    last_read: usize,
    /// Current position (after the last character read).
    pub(super) src_pos: Pos,
    prev_pos: Pos,
    last_char_len: usize,
    last_line_len: usize,
    /// Start of the token being scanned.
    pub(super) tok_pos: Pos,
    tok_start: usize,
    /// The last error reported, if any.
    pub(super) error: Option<(Pos, String)>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(src: &'a str) -> Reader<'a> {
        Reader {
            src,
            next: 0,
            last_read: 0,
            src_pos: Pos {
                offset: 0,
                line: 1,
                column: 0,
            },
            prev_pos: Pos::default(),
            last_char_len: 0,
            last_line_len: 0,
            tok_pos: Pos::default(),
            tok_start: 0,
            error: None,
        }
    }

    /// The source text.
    pub(super) fn src(&self) -> &'a str {
        self.src
    }

    /// Read the next character, or [`EOF`] at the end.
    pub(super) fn next_char(&mut self) -> char {
        let Some(ch) = self.src.get(self.next..).and_then(|s| s.chars().next()) else {
            self.src_pos.column += 1;
            self.last_char_len = 0;
            self.last_read = 0;
            return EOF;
        };
        let size = ch.len_utf8();
        self.next += size;
        self.last_read = size;
        self.prev_pos = self.src_pos;
        self.src_pos.column += 1;
        self.last_char_len = size;
        self.src_pos.offset += size;
        if ch == '\n' {
            self.src_pos.line += 1;
            self.last_line_len = self.src_pos.column;
            self.src_pos.column = 0;
        }
        ch
    }

    /// Step back over the last character read.
    pub(super) fn unread(&mut self) {
        self.next = self.next.saturating_sub(self.last_read);
        self.last_read = 0;
        self.src_pos = self.prev_pos;
    }

    /// The next character without consuming it.
    pub(super) fn peek(&self) -> char {
        self.src
            .get(self.next..)
            .and_then(|s| s.chars().next())
            .unwrap_or(EOF)
    }

    /// Record where the token whose first character was just read starts.
    pub(super) fn start_token(&mut self) {
        self.tok_start = self.src_pos.offset.saturating_sub(self.last_char_len);
        self.tok_pos.offset = self.tok_start;
        if self.src_pos.column > 0 {
            self.tok_pos.line = self.src_pos.line;
            self.tok_pos.column = self.src_pos.column;
        } else {
            self.tok_pos.line = self.src_pos.line.saturating_sub(1);
            self.tok_pos.column = self.last_line_len;
        }
    }

    /// The text of the token scanned since [`Reader::start_token`].
    pub(super) fn token_text(&self) -> String {
        self.src
            .get(self.tok_start..self.src_pos.offset)
            .unwrap_or_default()
            .to_string()
    }

    /// Byte offset just before the last character read.
    pub(super) fn offset_before_last(&self) -> usize {
        self.src_pos.offset.saturating_sub(self.last_char_len)
    }

    /// Position just after the most recently read character (Go's `recentPosition`).
    fn recent_position(&self) -> Pos {
        let offset = self.src_pos.offset.saturating_sub(self.last_char_len);
        if self.src_pos.column > 0 {
            Pos {
                offset,
                line: self.src_pos.line,
                column: self.src_pos.column,
            }
        } else if self.last_line_len > 0 {
            Pos {
                offset,
                line: self.src_pos.line.saturating_sub(1),
                column: self.last_line_len,
            }
        } else {
            Pos {
                offset,
                line: 1,
                column: 1,
            }
        }
    }

    /// Report a scanning error (the last one wins).
    pub(super) fn err(&mut self, msg: &str) {
        self.error = Some((self.recent_position(), msg.to_string()));
    }

    pub(super) fn scan_mantissa(&mut self, mut ch: char) -> char {
        let mut scanned = false;
        while ch.is_ascii_digit() {
            ch = self.next_char();
            scanned = true;
        }
        if scanned && ch != EOF {
            self.unread();
        }
        ch
    }

    pub(super) fn scan_fraction(&mut self, ch: char) -> char {
        if ch == '.' {
            let peeked = self.peek();
            return self.scan_mantissa(peeked);
        }
        ch
    }

    pub(super) fn scan_exponent(&mut self, mut ch: char) -> char {
        if ch == 'e' || ch == 'E' {
            ch = self.next_char();
            if ch == '-' || ch == '+' {
                ch = self.next_char();
            }
            ch = self.scan_mantissa(ch);
        }
        ch
    }

    pub(super) fn scan_escape(&mut self) {
        let ch = self.next_char();
        match ch {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' | '"' => {}
            '0'..='7' => self.scan_digits(ch, 8, 3),
            'x' => {
                let c = self.next_char();
                self.scan_digits(c, 16, 2);
            }
            'u' => {
                let c = self.next_char();
                self.scan_digits(c, 16, 4);
            }
            'U' => {
                let c = self.next_char();
                self.scan_digits(c, 16, 8);
            }
            _ => self.err("illegal char escape"),
        }
    }

    fn scan_digits(&mut self, mut ch: char, base: u32, n: usize) {
        let start = n;
        let mut n = n;
        while n > 0 && ch.to_digit(16).is_some_and(|d| d < base) {
            ch = self.next_char();
            if ch == EOF {
                break;
            }
            n -= 1;
        }
        if n > 0 {
            self.err("illegal char escape");
        }
        if n != start && ch != EOF {
            self.unread();
        }
    }
}

/// Go's `isLetter` in both scanners.
pub(super) fn is_letter(ch: char) -> bool {
    ch.is_ascii_alphabetic() || ch == '_' || (ch as u32 >= 0x80 && ch.is_alphabetic())
}

/// Go's `isDigit` in both scanners.
pub(super) fn is_digit(ch: char) -> bool {
    ch.is_ascii_digit() || (ch as u32 >= 0x80 && ch.is_numeric())
}

fn is_whitespace(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\n' | '\r')
}

/// The HCL scanner.
#[derive(Debug)]
pub(super) struct Scanner<'a> {
    pub(super) r: Reader<'a>,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(src: &'a str) -> Scanner<'a> {
        Scanner {
            r: Reader::new(src),
        }
    }

    /// The next token.
    pub(super) fn scan(&mut self) -> Token {
        let mut ch = self.next();
        while is_whitespace(ch) {
            ch = self.next();
        }
        self.r.start_token();
        let kind = if is_letter(ch) {
            let lit = self.scan_identifier();
            if lit == "true" || lit == "false" {
                TokenType::Bool
            } else {
                TokenType::Ident
            }
        } else if ch.is_ascii_digit() {
            self.scan_number(ch)
        } else {
            match ch {
                EOF => TokenType::Eof,
                '"' => {
                    self.scan_string();
                    TokenType::String
                }
                '#' | '/' => {
                    self.scan_comment(ch);
                    TokenType::Comment
                }
                '.' => {
                    let c = self.r.peek();
                    if c.is_ascii_digit() {
                        let c = self.r.scan_mantissa(c);
                        self.r.scan_exponent(c);
                        TokenType::Float
                    } else {
                        TokenType::Period
                    }
                }
                '<' => {
                    self.scan_heredoc();
                    TokenType::Heredoc
                }
                '[' => TokenType::Lbrack,
                ']' => TokenType::Rbrack,
                '{' => TokenType::Lbrace,
                '}' => TokenType::Rbrace,
                ',' => TokenType::Comma,
                '=' => TokenType::Assign,
                '+' => TokenType::Add,
                '-' => {
                    if self.r.peek().is_ascii_digit() {
                        let c = self.next();
                        self.scan_number(c)
                    } else {
                        TokenType::Sub
                    }
                }
                _ => {
                    self.r.err("illegal char");
                    TokenType::Illegal
                }
            }
        };
        Token {
            kind,
            pos: self.r.tok_pos,
            text: self.r.token_text(),
            json: false,
        }
    }

    /// Read a character, reporting NUL as an error (the HCL scanner's `next`).
    fn next(&mut self) -> char {
        let ch = self.r.next_char();
        if ch == EOF && self.r.last_char_len > 0 {
            self.r.err("unexpected null character (0x00)");
            return EOF;
        }
        if ch == '\u{E123}' {
            self.r
                .err("unicode code point U+E123 reserved for internal use");
            return '\u{FFFD}';
        }
        ch
    }

    fn scan_comment(&mut self, ch: char) {
        if ch == '#' || (ch == '/' && self.r.peek() != '*') {
            if ch == '/' && self.r.peek() != '/' {
                self.r.err("expected '/' for comment");
                return;
            }
            let mut c = self.next();
            while c != '\n' && c != EOF {
                c = self.next();
            }
            if c != EOF {
                self.r.unread();
            }
            return;
        }
        let mut c = ch;
        if c == '/' {
            self.next();
            c = self.next();
        }
        loop {
            if c == EOF {
                self.r.err("comment not terminated");
                break;
            }
            let c0 = c;
            c = self.next();
            if c0 == '*' && c == '/' {
                break;
            }
        }
    }

    fn scan_number(&mut self, ch: char) -> TokenType {
        let mut ch = ch;
        if ch == '0' {
            ch = self.next();
            if ch == 'x' || ch == 'X' {
                ch = self.next();
                let mut found = false;
                while ch.is_ascii_hexdigit() {
                    ch = self.next();
                    found = true;
                }
                if !found {
                    self.r.err("illegal hexadecimal number");
                }
                if ch != EOF {
                    self.r.unread();
                }
                return TokenType::Number;
            }
            let mut illegal_octal = false;
            while ch.is_ascii_digit() {
                ch = self.next();
                if ch == '8' || ch == '9' {
                    illegal_octal = true;
                }
            }
            if ch == 'e' || ch == 'E' {
                self.r.scan_exponent(ch);
                return TokenType::Float;
            }
            if ch == '.' {
                ch = self.r.scan_fraction(ch);
                if ch == 'e' || ch == 'E' {
                    ch = self.next();
                    self.r.scan_exponent(ch);
                }
                return TokenType::Float;
            }
            if illegal_octal {
                self.r.err("illegal octal number");
            }
            if ch != EOF {
                self.r.unread();
            }
            return TokenType::Number;
        }
        self.r.scan_mantissa(ch);
        ch = self.next();
        if ch == 'e' || ch == 'E' {
            self.r.scan_exponent(ch);
            return TokenType::Float;
        }
        if ch == '.' {
            ch = self.r.scan_fraction(ch);
            if ch == 'e' || ch == 'E' {
                ch = self.next();
                self.r.scan_exponent(ch);
            }
            return TokenType::Float;
        }
        if ch != EOF {
            self.r.unread();
        }
        TokenType::Number
    }

    fn scan_heredoc(&mut self) {
        if self.next() != '<' {
            self.r.err("heredoc expected second '<', didn't see it");
            return;
        }
        let offs = self.r.src_pos.offset;
        let mut ch = self.next();
        if ch == '-' {
            ch = self.next();
        }
        while is_letter(ch) || is_digit(ch) {
            ch = self.next();
        }
        if ch == EOF {
            self.r.err("heredoc not terminated");
            return;
        }
        if ch == '\r' && self.r.peek() == '\n' {
            ch = self.next();
        }
        if ch != '\n' {
            self.r.err("invalid characters in heredoc anchor");
            return;
        }
        let src = self.r.src();
        let ident = src
            .get(offs..self.r.offset_before_last())
            .unwrap_or_default();
        if ident.is_empty() || ident == "-" {
            self.r.err("zero-length heredoc anchor");
            return;
        }
        let anchor = ident.strip_prefix('-').unwrap_or(ident);
        let mut line_start = self.r.src_pos.offset;
        loop {
            let c = self.next();
            if c == '\n' {
                let line_end = self.r.offset_before_last();
                let line = src.get(line_start..line_end).unwrap_or_default();
                if line.len() >= ident.len() && is_anchor_line(line, anchor) {
                    break;
                }
                line_start = self.r.src_pos.offset;
            }
            if c == EOF {
                self.r.err("heredoc not terminated");
                return;
            }
        }
    }

    fn scan_string(&mut self) {
        let mut braces = 0usize;
        loop {
            let ch = self.next();
            if (ch == '\n' && braces == 0) || ch == EOF {
                self.r.err("literal not terminated");
                return;
            }
            if ch == '"' && braces == 0 {
                break;
            }
            if braces == 0 && ch == '$' && self.r.peek() == '{' {
                braces += 1;
                self.next();
            } else if braces > 0 && ch == '{' {
                braces += 1;
            }
            if braces > 0 && ch == '}' {
                braces -= 1;
            }
            if ch == '\\' {
                self.r.scan_escape();
            }
        }
    }

    fn scan_identifier(&mut self) -> &'a str {
        let offs = self.r.offset_before_last();
        let mut ch = self.next();
        while is_letter(ch) || is_digit(ch) || ch == '-' || ch == '.' {
            ch = self.next();
        }
        if ch != EOF {
            self.r.unread();
        }
        self.r
            .src()
            .get(offs..self.r.src_pos.offset)
            .unwrap_or_default()
    }
}

/// Go's heredoc terminator regexp `^[[:space:]]*ANCHOR\r*\z`.
fn is_anchor_line(line: &str, anchor: &str) -> bool {
    let trimmed = line.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    trimmed
        .strip_prefix(anchor)
        .is_some_and(|rest| rest.chars().all(|c| c == '\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenType, String, String)> {
        let mut s = Scanner::new(src);
        let mut out = Vec::new();
        loop {
            let t = s.scan();
            if t.kind == TokenType::Eof {
                break;
            }
            out.push((t.kind, t.text.clone(), t.pos.to_string()));
        }
        out
    }

    #[test]
    fn scans_a_policy_line() {
        let toks = kinds("path \"a/*\" {\n  capabilities = [\"read\", 1.5, 0x1f]\n}\n");
        let k: Vec<TokenType> = toks.iter().map(|t| t.0).collect();
        assert_eq!(
            k,
            vec![
                TokenType::Ident,
                TokenType::String,
                TokenType::Lbrace,
                TokenType::Ident,
                TokenType::Assign,
                TokenType::Lbrack,
                TokenType::String,
                TokenType::Comma,
                TokenType::Float,
                TokenType::Comma,
                TokenType::Number,
                TokenType::Rbrack,
                TokenType::Rbrace,
            ]
        );
        assert_eq!(toks[3].2, "2:3");
        assert_eq!(toks[4].2, "2:16");
    }

    #[test]
    fn reports_unterminated_strings() {
        let mut s = Scanner::new("a = \"abc\n");
        while s.scan().kind != TokenType::Eof {}
        let (pos, msg) = s.r.error.clone().unwrap();
        assert_eq!(msg, "literal not terminated");
        assert_eq!(pos.to_string(), "1:9");
    }

    #[test]
    fn scans_heredocs() {
        let toks = kinds("a = <<EOF\nhello\nEOF\n");
        assert_eq!(toks[2].0, TokenType::Heredoc);
        assert_eq!(toks[2].1, "<<EOF\nhello\nEOF\n");
    }
}
