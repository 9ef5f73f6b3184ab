//! Text helpers every layer shares: cutting text to a limit, and neutralising untrusted text
//! for Slack's mrkdwn.
//!
//! Slack's and Kibana's limits count characters, not bytes, so every cut here is by `char` and
//! never splits a UTF-8 sequence.

/// `text` without NUL: U+FFFD stands in its place. Outside text (alert fields, an assistant's
/// answer, a host's output) passes through here where it enters, because PostgreSQL's TEXT
/// cannot hold NUL and a value must read the same in memory and in the record (hashes, lookups).
pub fn nul_free(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// Escapes the three characters Slack treats as control characters in text, so alert fields
/// and AI output can never create mentions, channel pings or links.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters of `text`. When it had to cut, the result ends with `note` (which
/// counts toward `max`), so a reader can tell something is missing.
pub fn truncate(text: &str, max: usize, note: &str) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(note.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(note);
    out
}

/// Wildcard match: `*` any run, `?` one character (PowerShell's `-like`, host patterns, route
/// selectors). Case-sensitive: fold both sides first where case does not matter.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::{escape, truncate};

    #[test]
    fn escape_neutralises_mentions_and_links() {
        assert_eq!(
            escape("<@U1> & <!channel>"),
            "&lt;@U1&gt; &amp; &lt;!channel&gt;"
        );
    }

    #[test]
    fn cuts_by_character_and_keeps_the_note_within_the_limit() {
        assert_eq!(truncate("short", 10, "…"), "short");
        let cut = truncate(&"é".repeat(20), 10, "…");
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("abcdef", 3, ""), "abc");
    }
}
