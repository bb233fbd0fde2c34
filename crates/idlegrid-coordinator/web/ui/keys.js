// Every account's secrets: its keys (API keys, enrollment tokens, operator keys) and its
// dashboard sessions. Make a key (shown once), rotate one (the new secret shown once), revoke
// one. The secrets themselves are never listed: only their first characters.

import { api, signedOut } from './api.js';
import { alertSlot, announce, field, h, heading, replace, redraw, timeTag } from './dom.js';
import { confirmDialog } from './dialog.js';
import { secretOnce } from './copy.js';

/** What a key is called for each kind of account. */
export const KEY_NOUN = { customer: 'API key', owner: 'enrollment token', operator: 'operator key' };

export async function keysView(main, _params, { me, isCurrent }) {
  const noun = KEY_NOUN[me.kind] || 'key';
  main.append(heading('Keys'),
    h('p', { class: 'lead' }, `Your ${noun}s and dashboard sessions. A key works until it is revoked; a session is made when you sign in here and ends when you sign out, after seven days, or when it is revoked.`));
  const alerts = alertSlot();
  const shownOnce = h('div');
  const name = h('input', { type: 'text', name: 'key-name', autocomplete: 'off', maxlength: 100, required: true });
  const make = h('button', { type: 'submit' }, `Make an ${noun}`);
  const formAlerts = alertSlot();
  const form = h('form', { class: 'card narrow', novalidate: true, 'aria-labelledby': 'make-h' },
    h('h2', { id: 'make-h' }, `New ${noun}`),
    field('Name', name, 'What it is for, e.g. “laptop” or “build server”: 1 to 100 characters.').wrap,
    formAlerts.el, h('div', { class: 'actions left' }, make));
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(alerts.el, shownOnce, form,
    h('section', { class: 'card', 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h' }, 'Keys and sessions'), list));

  async function load() {
    try {
      const { secrets } = await api('/v1/secrets');
      if (!isCurrent()) return;
      redraw(list, table(secrets));
    } catch (e) {
      alerts.show(e, 'The keys could not be loaded');
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formAlerts.clear();
    name.removeAttribute('aria-invalid');
    if (!name.value.trim()) {
      name.setAttribute('aria-invalid', 'true');
      formAlerts.show(`Give the ${noun} a name.`);
      name.focus();
      return;
    }
    make.disabled = true;
    try {
      const made = await api('/v1/secrets', { method: 'POST', body: { name: name.value.trim() } });
      name.value = '';
      replace(shownOnce, secretOnce({ title: `Your new ${noun} “${made.name}”`, secret: made.secret, what: noun }));
      announce(`Made the ${noun} “${made.name}”.`);
      await load();
    } catch (e) {
      formAlerts.show(e, `The ${noun} was not made`);
      name.focus();
    } finally {
      make.disabled = false;
    }
  });

  async function revoke(secret) {
    const current = secret.current;
    const ok = await confirmDialog({
      title: `Revoke “${secret.name}”?`,
      text: [current
        ? 'This is the session you are using: revoking it signs you out here.'
        : `It stops working at once, on every coordinator of the grid.${secret.kind === 'key' ? ' Programs or devices using it are refused from then on.' : ''}`,
      'This cannot be undone.'],
      yes: 'Revoke',
    });
    if (!ok) return;
    alerts.clear();
    try {
      await api(`/v1/secrets/${secret.id}`, { method: 'DELETE' });
    } catch (e) {
      alerts.show(e, `“${secret.name}” was not revoked`);
      return;
    }
    if (current) {
      signedOut('You revoked the session you were using: you are signed out.');
      return;
    }
    announce(`Revoked “${secret.name}”.`);
    await load();
  }

  async function rotate(secret) {
    const ok = await confirmDialog({
      title: `Rotate “${secret.name}”?`,
      text: [`It gets a new secret, shown once; the old one stops working at once. Put the new one wherever the old one was used.`],
      yes: 'Rotate',
    });
    if (!ok) return;
    alerts.clear();
    try {
      const made = await api(`/v1/secrets/${secret.id}/rotate`, { method: 'POST' });
      replace(shownOnce, secretOnce({ title: `The new secret of “${made.name}”`, secret: made.secret, what: noun }));
      announce(`Rotated “${made.name}”.`);
      await load();
    } catch (e) {
      alerts.show(e, `“${secret.name}” was not rotated`);
    }
  }

  function table(secrets) {
    if (!secrets.length) return h('p', { class: 'muted' }, 'No keys.');
    return h('table', { class: 'stack keys' },
      h('caption', { class: 'sr-only' }, `Your ${noun}s and sessions, oldest first`),
      h('thead', {}, h('tr', {}, ['Name', 'Starts with', 'Kind', 'Made', 'Last used', 'Expires', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, secrets.map((s) => h('tr', { dataset: { secret: String(s.id), kind: s.kind }, class: s.current ? 'current' : null },
        h('th', { scope: 'row', 'data-label': 'Name' }, s.name, s.current ? [' ', h('span', { class: 'badge state-current' }, 'this session')] : null),
        h('td', { 'data-label': 'Starts with' }, h('code', {}, `${s.prefix}…`)),
        h('td', { 'data-label': 'Kind' }, s.kind === 'session' ? 'session' : noun),
        h('td', { 'data-label': 'Made' }, timeTag(s.created_at)),
        h('td', { 'data-label': 'Last used' }, s.last_used_at ? timeTag(s.last_used_at) : 'not yet'),
        h('td', { 'data-label': 'Expires' }, s.expires_at ? timeTag(s.expires_at) : 'never'),
        h('td', { 'data-label': 'Actions' }, h('div', { class: 'row-actions' },
          s.kind === 'key' ? h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `Rotate “${s.name}”`,
            dataset: { key: `rotate-${s.id}` }, onclick: () => rotate(s),
          }, 'Rotate') : null,
          h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `Revoke “${s.name}”`,
            dataset: { key: `revoke-${s.id}` }, onclick: () => revoke(s),
          }, 'Revoke')))))));
  }

  await load();
  return undefined;
}
