// Copying a command or a secret: a "Copy" button beside its text, and the box that shows a
// new secret this once.

import { announce, h, uid } from './dom.js';

/**
 * A "Copy" button for the text of `target` (an element with an id), and the line that says
 * what happened. Where the clipboard is refused, the text is selected for Ctrl+C instead.
 */
export function copyButton(target) {
  if (!target.id) target.id = uid('copy');
  const said = h('span', { class: 'muted copy-said', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'secondary', 'aria-describedby': target.id }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(target.textContent);
      said.textContent = 'Copied.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(target);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      said.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
    announce(said.textContent);
  });
  return { button, said };
}

/**
 * A secret just made, shown this once: what it is, the secret with a Copy button, and the
 * warning to keep it now. Focus moves to its heading, so a keyboard or screen-reader user
 * lands on it; `extra` (nodes) follows the warning.
 */
export function secretOnce({ title, secret, what, extra = null }) {
  const headingId = uid('secret');
  const code = h('code', { class: 'secret', dataset: { secret: 'new' } }, secret);
  const { button, said } = copyButton(code);
  const box = h('section', { class: 'notice secret-once', 'aria-labelledby': headingId },
    h('h2', { id: headingId, tabindex: '-1' }, title),
    h('div', { class: 'command' }, code, button), said,
    h('p', {}, h('strong', {}, 'Keep it now: '), `this ${what} is shown only this once. Copy it to a safe place (a password manager); if it is lost, make a new one.`),
    extra);
  requestAnimationFrame(() => { if (box.isConnected) document.getElementById(headingId).focus(); });
  return box;
}
