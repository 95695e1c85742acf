//! A port of the HCL v1 reader that OpenBao parses policies with (hashicorp/hcl v1 and
//! OpenBao's `sdk/helper/hclutil`).
//!
//! HCL2 libraries accept a different language (expressions, no quoted attribute names in
//! blocks, no JSON flattening) and cannot reproduce OpenBao's error texts (`At 3:1: ...`,
//! `invalid key "x" on line N`), so policy parsing uses this small port instead.

mod ast;
pub(crate) mod decode;
mod json;
mod parser;
mod scanner;
pub(crate) mod strconv;

pub(crate) use ast::{Node, ObjectItem, ObjectList, TokenType};

/// Parse a policy document: JSON when the trimmed text starts with `{`, HCL otherwise
/// (`hclutil.ParseConfig`). Errors are Go's texts, without the `failed to parse policy: `
/// prefix.
pub(crate) fn parse_config(text: &str) -> Result<ObjectList, String> {
    if text.trim_start().starts_with('{') {
        json::parse(text)
    } else {
        parser::parse(text)
    }
}

/// The keys an HCL node holds, for [`check_keys`].
pub(crate) enum Keyed<'a> {
    /// A file or filtered list.
    List(&'a ObjectList),
    /// Any value node.
    Node(&'a Node),
}

/// Reject items whose key is not in `valid` (`hclutil.CheckHCLKeys`): the error lists every
/// offender with the line of its `=` (0 for blocks), formatted as a Go multierror.
pub(crate) fn check_keys(node: Keyed<'_>, valid: &[&str]) -> Result<(), String> {
    let list = match node {
        Keyed::List(l) => l,
        Keyed::Node(Node::Object(o)) => &o.list,
        Keyed::Node(other) => {
            return Err(format!("cannot check HCL keys of type {}", other.go_type()));
        }
    };
    let mut errors = Vec::new();
    for item in &list.items {
        let key = item.first_key()?;
        if !valid.contains(&key.as_str()) {
            errors.push(format!(
                "invalid key {} on line {}",
                strconv::quote(&key),
                item.assign.line
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(multierror(&errors))
    }
}

/// Go's `go-multierror` list format.
pub(crate) fn multierror(errors: &[String]) -> String {
    if let [only] = errors {
        return format!("1 error occurred:\n\t* {only}\n\n");
    }
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errors.len(),
        points.join("\n\t")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_keys_report_the_assign_line() {
        let list = parse_config("pth \"a/*\" {}\nfoo = 1\n").unwrap();
        assert_eq!(
            check_keys(Keyed::List(&list), &["name", "path"]).unwrap_err(),
            "2 errors occurred:\n\t* invalid key \"pth\" on line 0\n\t* invalid key \"foo\" on line 2\n\n"
        );
    }
}
