// Text that came from elsewhere — a device's failure reason or name, a server's message — made
// safe to show: the rule of `idlegrid_domain::text` (Rust), so the CLI and the pages agree.
// Control characters and the invisible characters that change how text around them is laid out
// (bidirectional overrides, zero-width marks) are written as visible escapes: `\n`, `\x1b`,
// `\u{202e}`. The text reads as what it is, on one line, and nothing in it can pass for the
// page's own words.

/** Whether the character with code point `c` must not be shown as itself. */
export function isHidden(c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f)
    || (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e)
    || (c >= 0x2060 && c <= 0x2069) || c === 0xfeff;
}

const NAMED = { 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' };

/** `text` with every hidden character written as a visible escape. */
export function shown(text) {
  const s = String(text);
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (!isHidden(c)) out += ch;
    else if (NAMED[c]) out += NAMED[c];
    else if (c < 0x80) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += `\\u{${c.toString(16)}}`;
  }
  return out;
}
