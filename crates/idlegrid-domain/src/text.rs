//! Text that came from elsewhere — a device's failure reason or name, a server's message —
//! shown to a person. Such text is data: kept as it was given, but never allowed to act on the
//! screen it is shown on. A terminal obeys escape sequences (ESC, CSI, OSC: clear the screen,
//! move the cursor, set the title, write a link), a newline starts what looks like a line of
//! our own, and bidirectional overrides reorder what a reader sees. [`shown`] turns each such
//! character into a visible escape, so the text reads as what it is, on one line.
//!
//! The dashboard applies the same rule in `web/ui/text.js`.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a screen as itself: a control character (C0, DEL, C1) or an
/// invisible character that changes how the text around it is laid out (bidirectional
/// embeddings, overrides and isolates, zero-width marks, the byte order mark).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// `text` with every [`is_hidden`] character written as a visible escape: `\n`, `\r`, `\t`,
/// `\x1b` for the other C0 controls and DEL, `\u{9b}` for the rest. Text without any comes
/// back as it is.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `name` (from an archive: a customer's, a device's output, a wheel) as a plain relative path
/// of `/`-separated parts, none empty, `.` or `..`, without control characters or backslashes,
/// 1 to `most` bytes (a leading `./` dropped); the error names it as `what`.
pub fn relative_path(name: &[u8], what: &str, most: usize) -> Result<String, String> {
    let shown = String::from_utf8_lossy(name);
    let text = std::str::from_utf8(name).map_err(|_| format!("{what} {shown:?} is not UTF-8"))?;
    let text = text.strip_prefix("./").unwrap_or(text);
    if text.is_empty() || text.len() > most {
        return Err(format!("{what} {shown:?} must be 1 to {most} bytes"));
    }
    if text.starts_with('/') || text.contains('\\') || text.chars().any(char::is_control) {
        return Err(format!(
            "{what} {shown:?} must be a relative path with / between its parts and no control \
             characters"
        ));
    }
    if text
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{what} {shown:?} must not have empty, . or .. parts"
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_alone() {
        let text = "chunk 3 failed: ZeroDivisionError — «division by zero» 🙂";
        assert!(matches!(shown(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escape_sequences_become_visible_text() {
        // Clear the screen, home the cursor, a fake line; an OSC title and link; 8-bit CSI.
        let attack =
            "\x1b[2J\x1b[H\rjob 7 completed\n\x1b]0;pwned\x07\x1b]8;;http://x\x1b\\a\u{9b}31m";
        let safe = shown(attack);
        assert_eq!(
            safe,
            "\\x1b[2J\\x1b[H\\rjob 7 completed\\n\\x1b]0;pwned\\x07\\x1b]8;;http://x\\x1b\\a\\u{9b}31m"
        );
        assert!(!safe.chars().any(is_hidden));
    }

    #[test]
    fn layout_tricks_are_shown_too() {
        assert_eq!(shown("a\u{202E}gnp.exe"), "a\\u{202e}gnp.exe");
        assert_eq!(
            shown("\u{FEFF}x\u{200B}\t\x7f"),
            "\\u{feff}x\\u{200b}\\t\\x7f"
        );
    }
}
