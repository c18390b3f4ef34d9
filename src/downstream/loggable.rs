//! What of a request's own text may go into a log line: user names, function names
//! and parameter names are the caller's to choose, so a line carries at most
//! [`LOGGED_CHARS`] characters of each, with control and invisible characters escaped
//! (`\n`, `\u{202e}`, …), never written raw: no request forges a log line or fills the
//! disk.

/// Characters of a caller's text kept in a log line.
pub const LOGGED_CHARS: usize = 64;

/// `text` cut to [`LOGGED_CHARS`] characters (an ellipsis marks the cut) and escaped.
pub fn loggable(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    for c in chars.by_ref().take(LOGGED_CHARS) {
        // Printable text stays readable (quotes included); control, invisible and
        // format characters (bidi overrides, zero-width, separators) and the
        // backslash are escaped, so an escape in the log is always one of ours.
        if matches!(c, '"' | '\'') {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_control_characters_are_escaped() {
        let cut = loggable(&"a".repeat(500_000));
        assert_eq!(cut, format!("{}…", "a".repeat(LOGGED_CHARS)));
        let escaped = loggable("eve\n2024-01-01 INFO forged\r\u{1b}[31m\u{202e}x");
        assert!(!escaped.chars().any(|c| c.is_control()), "{escaped}");
        assert!(escaped.starts_with("eve\\n2024"), "{escaped}");
        assert!(escaped.contains("\\u{202e}"), "{escaped}");
        assert_eq!(loggable("reseller@example.com"), "reseller@example.com");
        assert_eq!(loggable("сервер \"o'b\""), "сервер \"o'b\"");
        assert_eq!(loggable("a\\b"), "a\\\\b");
    }
}
