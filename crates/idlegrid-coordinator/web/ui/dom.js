// Small DOM helpers shared by the pages: element building, formatting, alerts, status.
//
// Every string becomes text (a text node or `textContent`, never markup), and passes through
// `shown` on the way: what a device or a server sends — a failure reason, a device's name — is
// shown with its control characters escaped, whichever page shows it.

import { shown } from './text.js';

/**
 * Builds an element. `attrs` keys: `class`, `text`, `on<event>` (function), `dataset` (object),
 * booleans (set when true), anything else as an attribute (`title` and `aria-label` shown as
 * text). Children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const svg = SVG_TAGS.has(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') el.textContent = shown(value);
    else if (key === 'title' || key === 'aria-label') el.setAttribute(key, shown(value));
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else if (!svg && key in PROPS) el[PROPS[key]] = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

const PROPS = { value: 'value', checked: 'checked' };
const SVG_TAGS = new Set(['svg', 'g', 'path', 'polyline', 'line', 'circle', 'rect', 'text', 'title', 'desc']);

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(shown(child)));
  }
}

/**
 * Text of several lines for a <pre>: each line shown as text (through `shown`, like every
 * string here), the line breaks between them kept. Only for text whose line breaks are the
 * page's own (a JSON it formatted, a command it wrote), never for a device's.
 */
export function lines(text) {
  return String(text).split('\n').flatMap((line, i) => (i ? [document.createTextNode('\n'), line] : [line]));
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Replaces the children of `el` keeping keyboard focus: when a control inside had focus, the
 * control of the new children with the same `data-key` gets it, or, when it is gone with its
 * row (revoked, removed), the heading of the section holding the list. A list drawn again
 * (refreshed, or changed by one of its own buttons) does not throw a keyboard user back to the
 * top of the page.
 */
export function redraw(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : null;
  replace(el, ...children);
  if (!key) return el;
  const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
  const heading = again ? null : el.closest('section')?.querySelector('h2');
  if (heading && !heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1');
  (again || heading)?.focus();
  return el;
}

/** An element showing an error, announced at once (`role="alert"`). */
export function alertBox(error, prefix) {
  const message = error && error.message ? error.message : String(error);
  return h('div', { class: 'alert', role: 'alert' }, prefix ? `${prefix}: ${message}` : message);
}

/** An empty alert slot: `show(error)` fills it, `clear()` empties it. */
export function alertSlot() {
  const el = h('div', { class: 'alert-slot' });
  return {
    el,
    show(error, prefix) { replace(el, alertBox(error, prefix)); },
    clear() { el.replaceChildren(); },
  };
}

/** Says `text` in the page's polite live region (and shows it in the status bar). */
export function announce(text) {
  const region = document.getElementById('status');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after clearing makes screen readers repeat an identical message.
  requestAnimationFrame(() => { region.textContent = shown(text); });
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * Micro-credits as credits: "0.004210 credits", every digit. `short` drops the trailing zeros
 * past the cents ("0.42 credits", "0.00001 credits") for a list, still exact: nothing is rounded.
 */
export function formatCredits(micros, { short = false } = {}) {
  if (micros === null || micros === undefined) return '—';
  const n = Number(micros);
  const sign = n < 0 ? '−' : '';
  const abs = Math.abs(n);
  let fraction = String(abs % 1e6).padStart(6, '0');
  if (short) fraction = fraction.replace(/0+$/, '').padEnd(2, '0');
  return `${sign}${Math.floor(abs / 1e6)}.${fraction} credits`;
}

export function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString();
}

/** "3 s", "4 min 10 s", "2 h 5 min". */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function timeTag(iso) {
  if (!iso) return '—';
  return h('time', { datetime: iso }, formatTime(iso));
}

/** A definition list from [term, value] pairs (values may be nodes). */
export function facts(pairs, cls = 'facts') {
  return h('dl', { class: cls }, pairs.filter(Boolean).map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/** A page heading that receives focus on navigation. */
export function heading(text) {
  return h('h1', { tabindex: '-1', id: 'page-title' }, text);
}

/** A state badge. */
export function badge(state) {
  return h('span', { class: `badge state-${state}`, dataset: { state } }, state);
}

/** Unique ids for label/control pairs. */
let counter = 0;
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form field: returns { wrap, control }. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  const wrap = h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
  return { wrap, control };
}

/**
 * A chunk's number as people count it, from 1, with the job's total when known: "3 of 10".
 * The API's chunk `index` (and a lease's `chunk_index`) counts from 0; every page numbers
 * chunks through this, so a chunk has one number wherever it is shown.
 */
export function chunkNumber(index, total) {
  const n = Number(index) + 1;
  return total === null || total === undefined ? String(n) : `${n} of ${total}`;
}

/** `n` and the noun that goes with it: "1 chunk", "3 chunks". */
export function counted(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Numbers shown as tiles: a definition list of [label, value] pairs, one group per tile. */
export function counts(pairs) {
  return h('dl', { class: 'counts' }, pairs.filter(Boolean).map(([term, value]) =>
    h('div', { class: 'count' }, h('dt', {}, term), h('dd', {}, value))));
}
