// A small, safe Markdown renderer for the descriptions of the API (doc comments of the Rust
// code, through /openapi.json). It knows paragraphs, `-`/`*`/`1.` lists, fenced code blocks,
// `code`, **bold**, [links](url) and rustdoc's [`Name`] references, and builds DOM nodes with
// `h` — never markup from the text — so whatever a description says is shown as text. A link
// goes only to an http(s) URL or a relative one; any other (`javascript:`, `data:`…) is shown
// as its words, with no link.

import { h, lines as textLines } from './dom.js';

const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
const FENCE = /^\s*```/;

/**
 * The blocks of `text` (paragraphs, lists, code blocks) as an array of elements. `reference`
 * (optional) turns a rustdoc reference's name into an href, or null for none.
 */
export function markdown(text, { reference } = {}) {
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let paragraph = [];
  let list = null; // { ordered, items: [[line, …], …] }
  const flush = () => {
    if (paragraph.length) blocks.push(h('p', {}, inline(paragraph.join(' '), reference)));
    paragraph = [];
    if (list) {
      blocks.push(h(list.ordered ? 'ol' : 'ul', {}, list.items.map((item) => h('li', {}, inline(item.join(' '), reference)))));
    }
    list = null;
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (FENCE.test(line)) {
      flush();
      const code = [];
      for (i += 1; i < lines.length && !FENCE.test(lines[i]); i += 1) code.push(lines[i]);
      blocks.push(h('pre', {}, h('code', {}, textLines(code.join('\n')))));
      continue;
    }
    const trimmed = line.trim();
    const item = line.match(LIST_ITEM);
    if (!trimmed) {
      flush();
    } else if (item) {
      const ordered = /\d/.test(item[1]);
      if (paragraph.length || (list && list.ordered !== ordered)) flush();
      if (!list) list = { ordered, items: [] };
      list.items.push([item[2].trim()]);
    } else if (list) {
      // A wrapped line of a list item (doc comments wrap at their width).
      list.items[list.items.length - 1].push(trimmed);
    } else {
      paragraph.push(trimmed);
    }
  }
  flush();
  return blocks;
}

/** One line of `text` (a summary): its inline Markdown, line breaks as spaces. */
export function markdownInline(text, { reference } = {}) {
  return inline(String(text ?? '').replace(/\s+/g, ' ').trim(), reference);
}

/** Whether `url` may be a link: http(s), or relative to this page (no scheme of its own). */
function safeHref(url) {
  // Browsers drop tabs and line breaks inside URLs ("java\nscript:"): none is allowed at all.
  if (!url || /[\s\x00-\x1f\x7f]/.test(url) || url.startsWith('//') || url.startsWith('\\')) return null;
  const scheme = url.match(/^([^/?#]*):/);
  if (scheme && !/^https?$/i.test(scheme[1])) return null;
  return url;
}

/** The inline nodes of one paragraph: text, <code>, <strong>, <a>. */
function inline(text, reference) {
  const out = [];
  let plain = '';
  const push = (node) => {
    if (plain) out.push(plain);
    plain = '';
    out.push(node);
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && /[!-/:-@[-`{-~]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
    } else if (c === '`') {
      const run = text.slice(i).match(/^`+/)[0];
      const end = text.indexOf(run, i + run.length);
      if (end < 0) {
        plain += run;
        i += run.length;
      } else {
        push(h('code', {}, text.slice(i + run.length, end).trim() || ' '));
        i = end + run.length;
      }
    } else if (text.startsWith('**', i) && text.indexOf('**', i + 2) > i + 2) {
      const end = text.indexOf('**', i + 2);
      push(h('strong', {}, inline(text.slice(i + 2, end), reference)));
      i = end + 2;
    } else if (c === '[') {
      const link = linkAt(text, i);
      if (!link) {
        plain += c;
        i += 1;
        continue;
      }
      i = link.end;
      if (link.url === null) {
        // rustdoc's [`Name`]: a link to the thing named, where this page has it.
        const href = reference ? reference(link.label.replace(/^`|`$/g, '')) : null;
        const label = inline(link.label, reference);
        push(href ? h('a', { href }, label) : h('span', {}, label));
      } else {
        const href = safeHref(link.url);
        push(href ? h('a', { href }, inline(link.label, reference)) : h('span', {}, inline(link.label, reference)));
      }
    } else {
      plain += c;
      i += 1;
    }
  }
  if (plain) out.push(plain);
  return out;
}

/**
 * A link starting at `text[start]` ('['): `[label](url)` → {label, url, end}; rustdoc's
 * `` [`Name`] `` → {label, url: null, end}; anything else → null.
 */
function linkAt(text, start) {
  let depth = 0;
  let close = -1;
  for (let j = start; j < text.length; j += 1) {
    if (text[j] === '\\') { j += 1; continue; }
    if (text[j] === '[') depth += 1;
    else if (text[j] === ']' && --depth === 0) { close = j; break; }
  }
  if (close < 0) return null;
  const label = text.slice(start + 1, close);
  if (text[close + 1] === '(') {
    const end = text.indexOf(')', close + 2);
    if (end < 0) return null;
    return { label, url: text.slice(close + 2, end).trim(), end: end + 1 };
  }
  if (/^`[^`]+`$/.test(label)) return { label, url: null, end: close + 1 };
  return null;
}
