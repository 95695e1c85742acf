//! Statement templating and splitting, usernames and passwords, in OpenBao's formats.

// Built without any database plugin (`--no-default-features`), statement templating has no caller.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(
        dead_code,
        unused_variables,
        reason = "no database plugin in this build"
    )
)]

use rand::Rng;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Values substituted into statements.
pub(crate) struct Vars<'a> {
    /// `{{name}}` and `{{username}}`.
    pub name: &'a str,
    /// `{{password}}`.
    pub password: &'a str,
    /// `{{expiration}}`, already formatted.
    pub expiration: &'a str,
}

/// Replace `{{name}}`, `{{username}}`, `{{password}}` and `{{expiration}}` (OpenBao's
/// `dbutil.QueryHelper`).
pub(crate) fn render(stmt: &str, v: &Vars<'_>) -> String {
    stmt.replace("{{name}}", v.name)
        .replace("{{username}}", v.name)
        .replace("{{password}}", v.password)
        .replace("{{expiration}}", v.expiration)
}

/// Split a statement as OpenBao's SQL plugins do: on `;`, unless it holds an `END` keyword
/// outside quotes (a `DO $$ ... END $$` block), which is sent whole. Empty pieces are dropped.
pub(crate) fn split(stmt: &str) -> Vec<String> {
    if has_end_keyword(stmt) {
        let s = stmt.trim();
        return if s.is_empty() {
            Vec::new()
        } else {
            vec![s.to_string()]
        };
    }
    stmt.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `END` stands as a word outside single or double quotes.
fn has_end_keyword(stmt: &str) -> bool {
    let mut unquoted = String::with_capacity(stmt.len());
    let mut quote: Option<char> = None;
    for c in stmt.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                unquoted.push(' ');
            }
            None => unquoted.push(c),
        }
    }
    unquoted
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w.eq_ignore_ascii_case("end"))
}

/// `{{expiration}}` in Go's layout `2006-01-02 15:04:05-0700`, UTC.
pub(crate) fn expiration(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const PASSWORD_CHARSET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";

fn pick(rng: &mut impl Rng, set: &[u8]) -> char {
    let i = rng.random_range(0..set.len());
    char::from(set.get(i).copied().unwrap_or(b'a'))
}

/// `n` random alphanumeric characters (the `random` template function).
pub(crate) fn random_alnum(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| pick(&mut rng, ALNUM)).collect()
}

/// OpenBao's default password: 20 characters of `[a-zA-Z0-9-]` with at least one lowercase
/// letter, one uppercase letter, one digit and one `-`.
pub(crate) fn password() -> String {
    let mut rng = rand::rng();
    loop {
        let p: String = (0..20).map(|_| pick(&mut rng, PASSWORD_CHARSET)).collect();
        if p.chars().any(|c| c.is_ascii_lowercase())
            && p.chars().any(|c| c.is_ascii_uppercase())
            && p.chars().any(|c| c.is_ascii_digit())
            && p.contains('-')
        {
            return p;
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// How a plugin names the users it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UsernameStyle {
    /// PostgreSQL: `v-<display 8>-<role 8>-<random 20>-<unix>`, at most 63 characters.
    Postgres,
    /// MySQL / MariaDB: `v-<display 10>-<role 10>-<random 20>-<unix>`, at most 32.
    Mysql,
    /// mysql-legacy, -rds, -aurora: `v-<role 4>-<random>`, at most 16.
    MysqlLegacy,
    /// Redis: `V_<DISPLAY 10>_<ROLE 10>_<RANDOM 20>_<unix>`, at most 100.
    Redis,
}

impl UsernameStyle {
    /// The prefix every generated username starts with (the reconciler looks for it).
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            UsernameStyle::Redis => "V_",
            _ => "v-",
        }
    }
}

/// The caller's token display name as it goes into a username: OpenBao puts it in as it is,
/// but it lands inside quoted SQL identifiers and Redis ACL rules, so anything but ASCII
/// letters, digits, `-` and `_` becomes `-` (`userpass-bob@corp` → `userpass-bob-corp`).
/// An empty name (a call that did not come through a token) is `token`.
pub(crate) fn display_name(name: &str) -> String {
    if name.is_empty() {
        return "token".into();
    }
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A fresh username for `role`, requested by a token with `display_name`.
///
/// Follows OpenBao's default templates, except that when the length limit would cut into the
/// random part, the role part is shortened instead: truncation never leaves two names that
/// differ only in the cut-off characters (vault#10476).
pub(crate) fn username(style: UsernameStyle, display_name: &str, role: &str, now: i64) -> String {
    let random = random_alnum(20);
    match style {
        UsernameStyle::Postgres => {
            let s = format!(
                "v-{}-{}-{}-{}",
                truncate(display_name, 8),
                truncate(role, 8),
                random,
                now
            );
            truncate(&s, 63)
        }
        UsernameStyle::Redis => {
            let s = format!(
                "V_{}_{}_{}_{}",
                truncate(display_name, 10).to_uppercase(),
                truncate(role, 10).to_uppercase(),
                random.to_uppercase(),
                now
            );
            truncate(&s, 100)
        }
        UsernameStyle::MysqlLegacy => truncate(&format!("v-{}-{}", truncate(role, 4), random), 16),
        UsernameStyle::Mysql => {
            let dn = truncate(display_name, 10);
            // `v-` + dn + `-` + role + `-` + random(20) must fit in 32.
            let room = 32usize.saturating_sub(2 + dn.chars().count() + 2 + 20);
            let full = format!("v-{}-{}-{}-{}", dn, truncate(role, 10), random, now);
            if full.chars().count() <= 32 {
                return full;
            }
            let head = format!("v-{}-{}-{}", dn, truncate(role, room.min(10)), random);
            let with_time = format!("{head}-{now}");
            if with_time.chars().count() <= 32 {
                with_time
            } else {
                truncate(&head, 32)
            }
        }
    }
}

/// Role and connection names: OpenBao's `\w(([\w-.]+)?\w)?`. Names reach SQL through usernames,
/// so anything else is refused.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(ok_char)
        && name.chars().next().is_some_and(word)
        && name.chars().last().is_some_and(word);
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "invalid {kind} name `{name}`"
        )))
    }
}

/// OpenBao's glob match for `allowed_roles` (`*` matches any run of characters).
pub(crate) fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = rest.get(pos + part.len()..).unwrap_or(""),
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_unless_a_block_ends() {
        assert_eq!(
            split("CREATE ROLE \"a\"; GRANT x TO \"a\";;  "),
            vec!["CREATE ROLE \"a\"", "GRANT x TO \"a\""]
        );
        let block = "DO $$ BEGIN CREATE ROLE a; END $$;";
        assert_eq!(split(block), vec![block.to_string()]);
        // `END` inside quotes or as part of a word does not count.
        assert_eq!(split("SELECT 'END'; SELECT 1 AS ending").len(), 2);
    }

    #[test]
    fn renders_every_placeholder() {
        let v = Vars {
            name: "u",
            password: "p",
            expiration: "e",
        };
        assert_eq!(
            render("{{name}} {{username}} {{password}} {{expiration}}", &v),
            "u u p e"
        );
    }

    #[test]
    fn expiration_uses_gos_layout() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_905_212).unwrap();
        assert_eq!(expiration(t), "2026-11-28 22:33:32+0000");
    }

    #[test]
    fn passwords_have_every_class() {
        for _ in 0..200 {
            let p = password();
            assert_eq!(p.len(), 20);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            assert!(p.contains('-') && p.chars().any(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn usernames_fit_and_keep_twenty_random_characters() {
        let pg = username(
            UsernameStyle::Postgres,
            "token",
            "readonly-role",
            1_795_815_207,
        );
        let parts: Vec<&str> = pg.split('-').collect();
        assert_eq!(parts[0..3], ["v", "token", "readonly"]);
        assert_eq!(parts[3].len(), 20);
        assert_eq!(parts[4], "1795815207");
        for role in ["ro", "a-very-long-role-name", "x"] {
            let m = username(UsernameStyle::Mysql, "token", role, 1_795_815_207);
            assert!(m.len() <= 32, "{m}");
            let random_len = m.split('-').map(str::len).filter(|l| *l == 20).count();
            assert_eq!(random_len, 1, "{m}");
        }
        assert!(username(UsernameStyle::MysqlLegacy, "token", "role", 1).len() <= 16);
        assert!(username(UsernameStyle::Redis, "token", "ro", 1).starts_with("V_TOKEN_RO_"));
    }

    #[test]
    fn display_names_are_safe_in_usernames() {
        assert_eq!(display_name(""), "token");
        assert_eq!(display_name("root"), "root");
        assert_eq!(display_name("userpass-bob@corp"), "userpass-bob-corp");
        assert_eq!(display_name("a\"b'c;d"), "a-b-c-d");
        let u = username(UsernameStyle::Postgres, &display_name("token-ci"), "ro", 1);
        assert!(u.starts_with("v-token-ci-ro-"), "{u}");
    }

    #[test]
    fn names_refuse_sql_metacharacters() {
        assert!(check_name("role", "api-role.v2").is_ok());
        for bad in ["", "a\"b", "a'b", "-a", "a;drop", "a b", "a/b"] {
            assert!(check_name("role", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("static*", "static-1"));
        assert!(glob_match("a*c", "abbc"));
        assert!(!glob_match("a*c", "abcd"));
        assert!(!glob_match("ro", "rw"));
    }
}
