//! CIDR bindings (`token_bound_cidrs`, `secret_id_bound_cidrs`): parse at write time, check at
//! login and at token use. Without a known caller address a binding fails closed.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// Parse a list of CIDR blocks (a bare address counts as a /32 or /128).
pub(crate) fn parse_list(field: &str, v: &[String]) -> Result<Vec<String>> {
    v.iter()
        .map(|s| {
            parse_one(s).map(|n| n.to_string()).ok_or_else(|| {
                Error::invalid_input(format!("invalid CIDR block in `{field}`: `{s}`"))
            })
        })
        .collect()
}

fn parse_one(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether `addr` is inside one of `cidrs` (an empty list allows everything; an unknown
/// address is never allowed by a non-empty list).
pub(crate) fn allows(cidrs: &[String], addr: Option<IpAddr>) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(addr) = addr else {
        return false;
    };
    cidrs
        .iter()
        .filter_map(|c| parse_one(c))
        .any(|n| n.contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings() {
        let l = parse_list("x", &["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(l, vec!["10.0.0.0/8", "127.0.0.1/32"]);
        assert!(allows(&l, Some("10.1.2.3".parse().unwrap())));
        assert!(allows(&l, Some("127.0.0.1".parse().unwrap())));
        assert!(!allows(&l, Some("192.168.1.1".parse().unwrap())));
        assert!(!allows(&l, None));
        assert!(allows(&[], None));
        assert!(parse_list("x", &["nope".into()]).is_err());
    }
}
