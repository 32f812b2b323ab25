//! Removes personal data from text before it leaves the machine (the same rules and
//! placeholders as the Python client's `_scrub.py`).

use std::net::Ipv6Addr;

use regex::{Regex, RegexBuilder};

pub const USER: &str = "<user>";
pub const EMAIL: &str = "<email>";
pub const IP: &str = "<ip>";
pub const REDACTED: &str = "<redacted>";

/// Deny-list strings, emails, home-directory user names and IP addresses out of text.
pub struct Scrubber {
    deny: Option<Regex>,
    home: Option<Regex>,
    email: Regex,
    unix_home: Regex,
    win_home: Regex,
    ipv4: Regex,
    ipv6: Regex,
}

impl Scrubber {
    pub fn new(deny_list: &[String]) -> Scrubber {
        let mut words: Vec<&str> = deny_list
            .iter()
            .map(String::as_str)
            .filter(|w| !w.is_empty())
            .collect();
        // Longest first, so a word that contains another is replaced whole.
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        words.dedup();
        let deny = (!words.is_empty())
            .then(|| {
                let alternation: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
                RegexBuilder::new(&alternation.join("|"))
                    .case_insensitive(true)
                    .build()
                    .ok()
            })
            .flatten();
        Scrubber {
            deny,
            home: home_pattern(),
            email: fixed(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
            unix_home: fixed(r#"(/(?:home|Users)/)([^/\\\s"'<>:;|]+)"#),
            win_home: fixed(
                r#"(?i)([A-Za-z]:(?:\\\\|\\|/)(?:Users|Documents and Settings)(?:\\\\|\\|/))([^\\/\s"'<>:;|]+)"#,
            ),
            ipv4: fixed(
                r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
            ),
            // Candidates only; each is confirmed by `Ipv6Addr`'s parser.
            ipv6: fixed(
                r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?(?:%[0-9A-Za-z_.\-]+)?",
            ),
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut text = match &self.deny {
            Some(deny) => deny.replace_all(text, REDACTED).into_owned(),
            None => text.to_owned(),
        };
        // The match starts where a run of local-part characters starts (leftmost match).
        text = self.email.replace_all(&text, EMAIL).into_owned();
        text = self
            .win_home
            .replace_all(&text, |c: &regex::Captures| format!("{}{USER}", &c[1]))
            .into_owned();
        text = self
            .unix_home
            .replace_all(&text, |c: &regex::Captures| format!("{}{USER}", &c[1]))
            .into_owned();
        if let Some(home) = &self.home {
            text = replace_checked(
                home,
                &text,
                |_, _, after| after.is_empty() || after.starts_with(['/', '\\']),
                |_| "~".to_owned(),
            );
        }
        text = replace_checked(
            &self.ipv6,
            &text,
            |m, before, after| {
                let word = |c: char| c.is_ascii_alphanumeric() || c == ':';
                let candidate = m.split('%').next().unwrap_or_default();
                // At least two groups: `a[::2]` in code is not an address.
                !before.is_some_and(word)
                    && !after.starts_with(word)
                    && !dot_digit(after)
                    && candidate.split(':').filter(|g| !g.is_empty()).count() >= 2
                    && candidate.parse::<Ipv6Addr>().is_ok()
            },
            |_| IP.to_owned(),
        );
        replace_checked(
            &self.ipv4,
            &text,
            |_, before, after| {
                !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
                    && !after.starts_with(|c: char| c.is_ascii_digit())
                    && !dot_digit(after)
            },
            |_| IP.to_owned(),
        )
    }
}

/// `.5…`: the match is the start of a longer dotted number (a version, say).
fn dot_digit(rest: &str) -> bool {
    let mut chars = rest.chars();
    chars.next() == Some('.') && chars.next().is_some_and(|c| c.is_ascii_digit())
}

fn fixed(pattern: &str) -> Regex {
    // A compile-time constant pattern: a failure here is a bug caught by every test.
    Regex::new(pattern).expect("a valid built-in pattern")
}

/// A home outside the usual places (`/var/lib/alice`): its last part is a user name.
fn home_pattern() -> Option<Regex> {
    let home = std::env::var("HOME")
        .or_else(|_| std::env::var("USERPROFILE"))
        .ok()?;
    let trimmed = home.trim_end_matches(['/', '\\']);
    let user = trimmed.rsplit(['/', '\\']).next().unwrap_or_default();
    if trimmed.is_empty() || user.is_empty() || user == "root" || home == "~" {
        return None;
    }
    Regex::new(&regex::escape(trimmed)).ok()
}

/// Replaces the matches of `re` that `keep(match, char before, text after)` accepts, as the
/// regex crate has no look-around.
fn replace_checked(
    re: &Regex,
    text: &str,
    keep: impl Fn(&str, Option<char>, &str) -> bool,
    with: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in re.find_iter(text) {
        let before = text[..m.start()].chars().next_back();
        if !keep(m.as_str(), before, &text[m.end()..]) {
            continue;
        }
        out.push_str(&text[last..m.start()]);
        out.push_str(&with(m.as_str()));
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}
